"""One rank of the scale probe's all-reduce (harness.probes.scale starts WORLD of these in the framework's environment):

    python -m harness.scale_rank ADAPTER DEVICE RANK WORLD PORT OUT

imports the adapter, joins the group on 127.0.0.1:PORT, sum-reduces rank_value(RANK) and writes the result (or why it
could not) to OUT. Its own module, so the probe never imports an entry point. Worker side: Python 3.9+.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def rank_value(rank: int) -> np.ndarray:
    """What each rank contributes: the sum over the ranks is known to the probe in advance."""
    return (np.arange(6, dtype=np.float32) + 1.0) * (rank + 1)


def main(argv: list[str]) -> int:
    """One rank: import the adapter, join the group, all-reduce, write the result file."""
    from harness.adapter import Unsupported, load_adapter_class
    from harness.results import error_line, write_json_atomic

    ref, device, rank, world, port, out = argv
    r = int(rank)
    try:
        adapter = load_adapter_class(ref)(device)
        res = adapter.allreduce(r, int(world), "127.0.0.1", int(port), rank_value(r))
        payload: dict[str, Any] = {"rank": r, "api": res.api, "builtin": res.builtin,
                                   "value": np.asarray(res.value, dtype=np.float64).tolist(), "notes": res.notes}
    except Unsupported as exc:
        payload = {"rank": r, "unsupported": str(exc) or "unsupported", "looked_up": exc.looked_up}
    except Exception as exc:
        payload = {"rank": r, "error": error_line(exc, 600)}
    write_json_atomic(Path(out), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

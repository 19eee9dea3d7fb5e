"""showdown: an empirical benchmarking harness for deep-learning frameworks."""

__version__ = "0.1.0"

"""Framework-neutral data: the 32 ops, the graph programs, the throughput workloads, the ONNX reference models."""

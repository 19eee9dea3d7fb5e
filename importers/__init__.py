"""ONNX importers that are not among the scored frameworks (compilers such as Apache TVM), each in a folder of its
own laid out like a framework's (requirements-cpu.txt, its lock, adapter.py), so the venv runner builds their
environments unchanged. harness.conformance names them; the registry does not."""

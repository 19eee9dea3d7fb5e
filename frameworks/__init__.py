"""Framework adapters: one package per framework, the only code that imports a deep-learning framework.

Each holds adapter.py, requirements-cpu.txt and requirements-cuda.txt (pinned: the single source for virtualenvs
and images). Nothing on the host side imports these packages; the worker does, inside the framework's environment.
"""

"""minbench: a multi-task benchmark suite for recognising minerals in photographs."""

__version__ = "0.1.0"

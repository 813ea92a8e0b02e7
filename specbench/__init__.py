"""specbench: reference benchmark for embedding-spectrum methods in recommendation."""

__version__ = "0.1.0"

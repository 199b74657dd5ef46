"""External tools: one module per tool, and the one subprocess entry point (run.py)."""

"""The stacks of a stage, declared once in specs.py, one module each."""

"""The `clca` command: one module per command group, composed in main.py."""

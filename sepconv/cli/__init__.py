"""Command-line shell: parses arguments and calls importable functions."""

"""The one exception type users see: a clear message naming the file, key or value at fault."""


class SpecbenchError(Exception):
    """Bad input or a failed run, explained in one paragraph (no traceback needed)."""

"""One exception type for every user-facing error.

The CLI turns an ``LTBenchError`` into a one-line message and exit status 2 (never a traceback); anything
else is a bug and keeps its traceback.
"""


class LTBenchError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ConfigError(LTBenchError):
    """An invalid configuration value (unknown name, wrong type, out-of-range value)."""


class DataError(LTBenchError):
    """Data that is missing, unreadable or does not have the expected layout."""

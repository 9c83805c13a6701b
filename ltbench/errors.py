"""One exception type for every user-facing error.

The CLI turns an ``LTBenchError`` into a one-line message and exit status 2 (never a traceback); anything
else is a bug and keeps its traceback.
"""


class LTBenchError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ConfigError(LTBenchError, ValueError):
    """An invalid configuration value (unknown name, wrong type, out-of-range value). Also a ``ValueError``, as
    numpy/torch users expect from a library function given a bad argument value."""


class DataError(LTBenchError):
    """Data that is missing, unreadable or does not have the expected layout."""


class CheckpointError(LTBenchError):
    """A checkpoint exists but cannot be used (incompatible code, refused content, device); every file is kept."""


class FrozenWeightsChanged(LTBenchError):
    """A stage that trains only part of the model changed weights it declared frozen (a method bug)."""


class StorageError(LTBenchError):
    """A file could not be written (disk full, quota, permissions). Earlier files are left intact and the
    run is not marked failed, so rerunning after freeing space resumes it."""


def storage_error(exc: OSError, path: object) -> StorageError:
    """The user-facing form of an OSError raised while writing ``path``."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    else:
        reason = exc.strerror or str(exc)
    return StorageError(
        f"{reason} while writing {path}; the files written before are intact — free space (or fix the "
        "directory) and rerun the same command to resume"
    )

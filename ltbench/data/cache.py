"""A decoded-array cache keyed by a cheap fingerprint of the source files.

Decoding 60,000 small image files takes seconds to tens of seconds; reading one uncompressed ``.npz`` takes a
fraction of a second. The key changes whenever the source changes (path, file count, total size, newest
mtime), so a stale cache is never used, and writes are atomic (temporary file + ``os.replace``) so a killed
process never leaves a half-written cache that a later run would trust. Torch-free on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ltbench.records import umask_mode

CACHE_VERSION = 1  # bump when the stored layout changes so old cache files are ignored


def folder_fingerprint(split_dir: Path, exts: Iterable[str]) -> dict[str, Any]:
    """Class folder names, image count, total bytes and newest mtime/ctime under ``split_dir/<class>/``.

    One ``os.scandir`` pass with one ``stat`` per file (~0.2 s for 50,000 files); no file is opened. The
    class folders' own mtimes are included because adding, removing or renaming a file changes them.
    """
    exts = tuple(e.lower() for e in exts)
    classes, files, total, newest = [], 0, 0, 0
    with os.scandir(split_dir) as it:
        class_dirs = sorted((e for e in it if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)
    for d in class_dirs:
        classes.append(d.name)
        newest = max(newest, d.stat().st_mtime_ns)
        with os.scandir(d.path) as it:
            for e in it:
                if e.name.lower().endswith(exts) and e.is_file():
                    st = e.stat()
                    files += 1
                    total += st.st_size
                    newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    names = hashlib.sha256("\n".join(classes).encode()).hexdigest()[:12]
    return {
        "path": str(Path(split_dir).resolve()),
        "classes": names,
        "files": files,
        "bytes": total,
        "mtime_ns": newest,
    }


def files_fingerprint(paths: Iterable[Path]) -> dict[str, Any]:
    """Absolute path, size and mtime of each file (for the few large files of a pickle release)."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return {"files": out}


def cache_key(payload: dict[str, Any]) -> str:
    """Hex digest of the canonical JSON of ``payload`` (+ the cache layout version)."""
    text = json.dumps({"cache_version": CACHE_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_cached(path: Path, check: Callable[[dict[str, np.ndarray]], bool] | None = None) -> dict | None:
    """The arrays stored at ``path``, or ``None`` if it is missing, unreadable or fails ``check``.

    A file that exists but cannot be read or fails the check (truncated by a crash, disk full, edited) is
    deleted so the caller rebuilds it; reading every member also verifies the zip CRCs.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if check is None or check(arrays):
            return arrays
        reason = "unexpected content"
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"ignoring corrupt cache file {path} ({reason}); rebuilding it", stacklevel=2)
    try:
        path.unlink()
    except OSError:
        pass
    return None


def save_cached(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz`` atomically; ``False`` (with a warning) on failure.

    A cache that cannot be written (read-only disk, quota) must not fail the run: the data is already decoded.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp creates 0600; a shared cache must be readable as the umask allows
        os.replace(tmp, path)
        return True
    except OSError as exc:
        warnings.warn(f"could not write the decoded-data cache {path}: {exc}", stacklevel=2)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        return False

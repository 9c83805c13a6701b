"""Run records on disk (ARCHITECTURE.md §4): atomic JSON writes, the ``done`` marker and run states.

A result is written to a temporary file in the same directory, flushed to disk and renamed over the
target, so a reader (the sweep, the table) sees either the old file or the complete new one, never a
torn write. ``done`` is created only after result.json is in place.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ltbench.errors import storage_error

SCHEMA_VERSION = 1
STATES = ("pending", "running", "incomplete", "done", "failed")
LOCK_NAME = "run.lock"


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/run.lock`` held while a process trains the run.

    It tells the sweep which incomplete runs are alive (``running``) and stops a second process (a
    duplicate submission, a user rerunning by hand) from training the same run at the same time. The
    kernel releases it when the process dies, even on kill -9.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_locked(run_dir: Path) -> bool:
    lock = RunLock(run_dir)
    if not lock.path.exists():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def _clean(obj: Any) -> Any:
    """Strict JSON: NaN/inf become null (pandas reads them back as NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via tmp file + fsync + os.replace; on any error the old file is left untouched."""
    path = Path(path)
    try:
        _write_json_atomic(path, obj)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(obj), f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None if it is missing, truncated or corrupt."""
    try:
        with open(path) as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def run_state(run_dir: Path) -> str:
    """pending (nothing yet) | running (a live process holds its lock) | incomplete (started, no valid
    result, nobody running it) | done | failed."""
    run_dir = Path(run_dir)
    result = read_json(run_dir / "result.json")
    if result is not None and result.get("status") == "done" and (run_dir / "done").exists():
        return "done"
    if is_locked(run_dir):
        return "running"
    if result is not None and result.get("status") == "failed":
        return "failed"
    if (run_dir / "config.json").exists():
        return "incomplete"
    return "pending"


def write_result(run_dir: Path, record: dict) -> None:
    """result.json atomically, then the ``done`` marker for successful runs."""
    record = {"schema_version": SCHEMA_VERSION, **record}
    write_json_atomic(Path(run_dir) / "result.json", record)
    if record.get("status") == "done":
        (Path(run_dir) / "done").touch()


def append_jsonl(path: Path, obj: dict) -> None:
    """One line per call, flushed to disk; a torn last line (killed process) is skipped by readers."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(_clean(obj), allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise storage_error(exc, path) from exc


def truncate_log(path: Path, keep) -> None:
    """Keep only the log lines for which ``keep(entry)`` is true (after a resume from a checkpoint)."""
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line from a killed process
        if keep(entry):
            lines.append(json.dumps(entry))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def git_info() -> dict:
    """Commit and dirty flag of the ltbench checkout, if it is one (provenance of every result)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def env_info(device: str, precision: str, threads: int) -> dict:
    import torch

    import ltbench

    info = {
        "ltbench": ltbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "precision": precision,
        "threads": threads,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }
    info.update(git_info())
    return info

"""Run records on disk (docs/architecture.md §4): atomic JSON writes, the ``done`` marker and run states.

A result is written to a temporary file in the same directory, flushed to disk and renamed over the
target, so a reader (the sweep, the table) sees either the old file or the complete new one, never a
torn write. ``done`` is created only after result.json is in place.
"""

from __future__ import annotations

import hashlib
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
FEATURES_FILE = "features.npz"  # arrays: features (n x d float), labels (n int); a test-set sample
PREDICTIONS_FILE = "predictions.npz"  # arrays: preds (N int), labels (N int), logits; the reported test predictions


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


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the process umask lets a new file have it (what ``open`` would give): ``mkstemp`` creates 0600,
    and on shared cluster storage colleagues must be able to read each other's records."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _write_json_atomic(path: Path, obj: Any) -> None:
    _write_text_atomic(path, json.dumps(_clean(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text via tmp file + fsync + os.replace (tables, probe results): a reader never sees half a file."""
    path = Path(path)
    try:
        _write_text_atomic(path, text)
    except OSError as exc:
        raise storage_error(exc, path) from exc


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w") as f:
            f.write(text)
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


def is_run_dir(path: Path) -> bool:
    """A run directory: a folder holding the config.json written at a run's start or its result.json."""
    path = Path(path)
    return path.is_dir() and ((path / "config.json").exists() or (path / "result.json").exists())


def log_entries(run_dir: Path) -> list[dict]:
    """The entries of a run's log.jsonl, one per finished epoch (a torn last line is skipped)."""
    path = Path(run_dir) / "log.jsonl"
    entries = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a torn last line from a killed process
    return entries


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
    lines = [json.dumps(entry) for entry in log_entries(path.parent) if keep(entry)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def git_info() -> dict:
    """Code version of the ltbench checkout, if it is one: commit, dirty flag and, for a dirty tree, a
    SHA-256 of ``git diff HEAD`` plus the names of untracked files (so two runs from differently modified
    trees never look alike). A table mixing versions is flagged by ``ltbench table``."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode != 0:
            return {"commit": None, "dirty": None, "diff_sha256": None}
        status = git("status", "--porcelain")
        diff = git("diff", "HEAD") if status.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "diff_sha256": None}
    digest = None
    if diff is not None:
        untracked = "".join(line for line in status.stdout.splitlines(True) if line.startswith("??"))
        digest = hashlib.sha256((diff.stdout + untracked).encode()).hexdigest()
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()), "diff_sha256": digest}


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def cpu_info() -> dict:
    """CPU model and the instruction-set flags that decide bf16 speed (AMX, avx512_bf16) on Linux."""
    from ltbench.train.runtime import cpu_flags

    model = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    flags = cpu_flags()
    return {"cpu_model": model, "cpu_flags": [f for f in CPU_FLAGS if f in flags], "cpu_count": os.cpu_count()}


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
        **cpu_info(),
        "precision": precision,
        "threads": threads,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }
    info.update(git_info())
    return info

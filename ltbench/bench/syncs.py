"""Host synchronisations inside a training step, found without a GPU.

On a GPU every device -> host transfer inside the step stalls the pipeline: ``.item()``, ``.tolist()``,
``.cpu()``/``.numpy()``, ``bool(t)``/``float(t)``/``int(t)``, and the ops whose output size depends on the data
(``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``, ``bincount``); ``torch.tensor(host data)``
(or ``torch.as_tensor``, ``t.new_tensor``) inside the step is a blocking host -> device copy. :class:`SyncAudit`
counts each of them, by kind and by the innermost ltbench source line that caused it, while active. CPU runs
execute the same Python and the same aten ops as CUDA runs, so what it finds on the CPU is what the GPU would
sync on. The trainer's own periodic loss check (every 20 steps) is outside ``training_step`` and is not counted.
"""

from __future__ import annotations

import collections
import os
import traceback
import warnings

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_ROOTS = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep
    for p in (__import__("ltbench").__file__, __import__("ltbench.methods", fromlist=["x"]).__file__)
)
_BASE = os.path.dirname(_ROOTS[0].rstrip(os.sep))  # sites are shown relative to the folder holding ltbench/
HOST_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__"}
HOST_COPIES = {"tensor", "as_tensor", "new_tensor"}  # torch.tensor(list): a host -> device copy
DATA_SIZED = {"nonzero", "masked_select", "unique", "_unique2", "unique_consecutive", "bincount", "_local_scalar_dense"}


def _site() -> str:
    """The innermost frame of ltbench / its methods (not this module) on the stack: ``file:line (function)``."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.abspath(frame.filename)
        if path.startswith(_ROOTS) and not path.endswith(os.path.join("bench", "syncs.py")):
            return f"{os.path.relpath(path, _BASE)}:{frame.lineno} ({frame.name})"
    return "?"


class _Functions(TorchFunctionMode):
    def __init__(self, audit: SyncAudit) -> None:
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS or (name in HOST_COPIES and _host_data(name, args, kwargs or {})):
            self.audit.hit(name)
        elif name == "to" and _to_host(args, kwargs or {}):
            self.audit.hit("to(cpu)")
        return func(*args, **(kwargs or {}))


class _Ops(TorchDispatchMode):
    def __init__(self, audit: SyncAudit) -> None:
        super().__init__()
        self.audit = audit

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in DATA_SIZED and name != "_local_scalar_dense":
            self.audit.hit(name)
        elif name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] or ()):
            self.audit.hit("boolean-mask indexing")
        return func(*args, **(kwargs or {}))


def _host_data(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether a ``HOST_COPIES`` call builds its tensor from host data (a number, a list), i.e. copies it to the
    device. The data is the first argument of ``torch.tensor``/``torch.as_tensor`` but the second of
    ``Tensor.new_tensor(data)``, whose first is the tensor it is called on: reading ``args[0]`` there missed every
    ``t.new_tensor(0.5)``. Data that is already a tensor is a device-side copy (or none), not a host sync."""
    position = 1 if name == "new_tensor" else 0
    data = args[position] if len(args) > position else kwargs.get("data")
    return not isinstance(data, torch.Tensor)


def _to_host(args, kwargs) -> bool:
    target = kwargs.get("device", args[1] if len(args) > 1 else None)
    return (
        isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu" and args[0].device.type != "cpu"
    )


class SyncAudit:
    """``with SyncAudit() as audit: ...`` counts host syncs by ``(kind, site)`` in ``audit.counts``; ``active``
    can be switched off and on (e.g. only inside ``training_step``). ``cuda=True`` also turns on CUDA's own
    sync detector (``torch.cuda.set_sync_debug_mode``) while active: on a GPU every real synchronisation is then
    counted as kind ``cuda``, whatever Python line caused it."""

    def __init__(self, cuda: bool = False) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.cuda = cuda
        self._active = True
        self._modes = (_Functions(self), _Ops(self))
        self._warnings = None

    @property
    def active(self) -> bool:
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = value
        if self.cuda:
            torch.cuda.set_sync_debug_mode("warn" if value else "default")

    def hit(self, kind: str) -> None:
        if self._active:
            self.counts[(kind, _site())] += 1

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        if "synchroniz" in str(message):
            self.hit("cuda")

    def __enter__(self) -> SyncAudit:
        if self.cuda:
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.simplefilter("always")
            warnings.showwarning = self._show
            self.active = self._active
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
            self._warnings.__exit__(*exc)

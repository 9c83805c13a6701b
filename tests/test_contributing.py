"""CONTRIBUTING.md's worked example is code that works: its method module and its hand-computed test are
taken from the file as written, the method is registered (for this test only), its test functions pass and
it trains through the real trainer. A change to the method API that breaks the guide fails here."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from ltbench.records import log_entries
from ltbench.registry import METHODS
from ltbench.run import execute
from tests.conftest import tiny_config

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.fixture
def ce_ls(monkeypatch) -> types.ModuleType:
    """The guide's ``methods/ce_ls.py`` imported as ``ltbench.methods.ce_ls``; the registry is restored after."""
    module_src, _ = _python_blocks()
    METHODS.names()  # every built-in method loaded (into the real registry) before the copy is made
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    module = types.ModuleType("ltbench.methods.ce_ls")
    module.__file__ = str(GUIDE)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(module_src, "CONTRIBUTING.md:methods/ce_ls.py", "exec"), module.__dict__)
    return module


def test_the_guide_has_the_method_and_its_test():
    blocks = _python_blocks()
    assert len(blocks) == 2 and '@METHODS.register("ce_ls")' in blocks[0] and "def test_" in blocks[1]


def test_the_guides_own_tests_pass(ce_ls):
    _, test_src = _python_blocks()
    namespace: dict = {}
    exec(compile(test_src, "CONTRIBUTING.md:tests/test_ce_ls.py", "exec"), namespace)
    by_hand = namespace["test_label_smoothing_by_hand"]
    (mark,) = [m for m in by_hand.pytestmark if m.name == "parametrize"]  # the cases as the guide writes them
    names, cases = mark.args
    names = names.split(",") if isinstance(names, str) else names
    assert len(cases) >= 2
    for case in cases:
        by_hand(**dict(zip(names, case, strict=True)))
    namespace["test_method_loss_uses_the_declared_default"]()


def test_the_guides_method_trains_with_the_smoothing_set_on_the_command_line(ce_ls, out_dir):
    assert "ce_ls" in METHODS.names()
    cfg = tiny_config(out_dir, "ce_ls", epochs=1, hparams={"smoothing": "0.2"})  # as `--set smoothing=0.2`
    rec = execute(cfg, progress=False)
    assert rec["status"] == "done" and rec["resolved"]["hp"]["smoothing"] == 0.2
    assert len(log_entries(cfg.run_dir)) == 1


def test_the_example_is_not_left_in_the_registry():
    assert "ce_ls" not in METHODS.names() and "ce" in METHODS.names()

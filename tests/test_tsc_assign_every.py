"""TSC's ``assign_every``: the Hungarian assignment (a device -> host copy and a scipy solve per call) runs once
every N target-phase steps; the steps in between reuse the last assignment. What the guard of
tests/test_gpu_guards.py counts as TSC's one declared host sync must fall by that factor."""

from __future__ import annotations

import pytest

from tests.test_gpu_guards import audit_method


def _assignment_syncs(tmp_path, every: int) -> int:
    # synthetic_lt has 240 training images: batch 30 gives 8 steps per epoch; the audit watches the second epoch
    # (steps 9-16 of the target phase, kcl_epochs = 0): every 1 -> 8 assignments, every 4 -> 2 (steps 9 and 13)
    hp = {"variant": "paper", "assign_every": every, "batch_size": 30}
    audit = audit_method("tsc", tmp_path / str(every), extra_hp=hp)
    return sum(n for (_, site), n in audit.counts.items() if "hungarian_assignment" in site)


def test_assigning_every_fourth_step_makes_a_quarter_of_the_host_syncs(tmp_path):
    every_step, every_fourth = _assignment_syncs(tmp_path, 1), _assignment_syncs(tmp_path, 4)
    assert every_fourth > 0
    assert every_step == pytest.approx(4 * every_fourth)

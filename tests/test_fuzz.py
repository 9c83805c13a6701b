"""Property: whatever a user types after ``ltbench run``, the outcome is a clean one-line error with exit
status 2 or a run that starts training — never a traceback (issue "Hardening": fuzz the CLI/config layer).

Training itself is replaced by a sentinel (``_WouldTrain``): reaching it means every input was accepted.
Downloads are stubbed to fail as offline, and torch's thread count is left alone.
"""

from __future__ import annotations

import contextlib
import io
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltbench import cli
from ltbench.registry import METHODS


class _WouldTrain(BaseException):
    """Raised where training would start (a BaseException: nothing in ltbench may swallow it)."""


NUMBERS = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "abc", "1e400", "-0", "0x10", "1,2", " 7 ", "nan", "inf", "None", "[1]"]),
)
WORDS = st.one_of(st.text(max_size=12), st.sampled_from(["", "CE", "none", "B", "exp", "step", "first", "ldam"]))
HP_KEYS = ["lr", "batch_size", "epochs", "gamma", "tau", "beta", "momentum", "k", "teacher", "nokey", "", "a=b"]

FLAGS = {
    "--method": st.one_of(st.sampled_from(sorted(METHODS.names())), WORDS),
    "--dataset": st.sampled_from(["synthetic_lt", "digits_lt", "cifar10_lt", "cifar100_lt", "imagenet", ""]),
    "--backbone": st.one_of(st.sampled_from(["resnet32", "resnet18_cifar", "timm:nope"]), WORDS),
    "--epochs": NUMBERS,
    "--batch-size": NUMBERS,
    "--lr": NUMBERS,
    "--seed": NUMBERS,
    "--threads": NUMBERS,
    "--eval-every": NUMBERS,
    "--imbalance-ratio": NUMBERS,
    "--profile": WORDS,
    "--subset": WORDS,
    "--val": WORDS,
    "--precision": st.one_of(st.sampled_from(["auto", "bf16", "fp32", "fp16"]), WORDS),
    "--device": st.one_of(st.sampled_from(["auto", "cpu", "cuda", "mps"]), WORDS),
    "--preset": st.one_of(st.sampled_from(["quick", "paper", "digits", "resnet32"]), WORDS),
    "--shots": st.one_of(st.sampled_from(["100,20", "20,100", "5", "a,b", "-1,3", "0,0"]), WORDS),
    "--set": st.builds(lambda k, v: f"{k}={v}", st.sampled_from(HP_KEYS), st.one_of(NUMBERS, WORDS)),
}
ARGS = st.lists(st.sampled_from(sorted(FLAGS)), max_size=6).flatmap(
    lambda flags: st.tuples(*(st.tuples(st.just(f), FLAGS[f]) for f in flags))
)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=ARGS)
def test_any_run_arguments_give_a_clean_error_or_a_start(pairs, tmp_path):
    argv = ["run", "--quiet", "--out", str(tmp_path / "out"), "--data-root", str(tmp_path / "no-data")]
    for flag, value in pairs:
        argv += [f"{flag}={value}"]  # "--flag=value": values may start with "-"
    err = io.StringIO()
    with (
        mock.patch("ltbench.run._train_and_evaluate", side_effect=_WouldTrain),
        mock.patch("ltbench.data.cifar.torchvision_download", side_effect=OSError("offline (test)")),
        mock.patch("torch.set_num_threads"),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(argv)
        except _WouldTrain:
            return
        except SystemExit as exc:  # argparse: usage + one error line
            assert exc.code == 2, err.getvalue()
            return
    text = err.getvalue().strip()
    assert code == 2, f"{argv}: exit {code}\n{text}"
    assert "Traceback" not in text
    assert text.splitlines()[-1].startswith("ltbench: error: "), text

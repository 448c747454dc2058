"""Progress output: a tqdm bar on a terminal, plain lines (no carriage returns) in logs and pipes."""

from __future__ import annotations

import gc
import io
import re

import pytest

from medssl.utils.progress import LineProgress, format_seconds, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_every_few_percent_with_postfix() -> None:
    out = io.StringIO()
    bar = progress_bar(total=200, desc="pretrain", unit="step", file=out, every_percent=10)
    assert isinstance(bar, LineProgress)
    for i in range(200):
        bar.set_postfix(loss=f"{1.0 / (i + 1):.4f}", lr=0.001)
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10  # 10%, 20%, ..., 100%; close() adds nothing after 100%
    assert [int(re.search(r"(\d+)% ", ln).group(1)) for ln in lines] == list(range(10, 101, 10))
    assert lines[-1].startswith("pretrain: 100% 200/200 step [")
    assert "ETA 00:00" in lines[-1] and "step/s]" in lines[-1]
    assert lines[-1].endswith("loss=0.0050, lr=0.001")


def test_line_progress_wraps_an_iterable_and_closes() -> None:
    out = io.StringIO()
    seen = list(progress_bar(range(7), desc="prepare synthetic", unit="case", file=out, every_percent=50))
    assert seen == list(range(7))
    lines = out.getvalue().splitlines()
    # 4/7 = 57% crosses the 50% mark; the loop's end closes the bar with the final count
    assert [ln.split(" [")[0] for ln in lines] == [
        "prepare synthetic:  57% 4/7 case",
        "prepare synthetic: 100% 7/7 case",
    ]


def test_a_loop_left_by_an_error_prints_nothing_after_it() -> None:
    out = io.StringIO()

    def run() -> None:
        for i in progress_bar(range(10), desc="prepare", file=out, every_percent=20):
            if i == 5:
                raise RuntimeError("bad case")

    with pytest.raises(RuntimeError):
        run()
    gc.collect()  # the abandoned generator is closed: no final line
    assert [ln.split(" [")[0] for ln in out.getvalue().splitlines()] == [
        "prepare:  20% 2/10 it",
        "prepare:  40% 4/10 it",
    ]


def test_resumed_count_starts_at_initial() -> None:
    out = io.StringIO()
    bar = progress_bar(total=100, initial=50, desc="ft", unit="step", file=out, every_percent=25)
    for _ in range(50):
        bar.update()
    bar.close()
    assert [ln.split(" [")[0] for ln in out.getvalue().splitlines()] == [
        "ft:  75% 75/100 step",
        "ft: 100% 100/100 step",
    ]


def test_unknown_total_prints_on_close_only_when_fast() -> None:
    out = io.StringIO()
    bar = LineProgress(desc="x", unit="it", file=out, interval_s=3600)
    for _ in range(5):
        bar.update()
    assert out.getvalue() == ""
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and out.getvalue().startswith("x: 5 it [")


def test_disabled_and_off_print_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    bar = progress_bar(total=3, file=out, disable=True)
    for _ in range(3):
        bar.update()
    bar.close()
    monkeypatch.setenv("MEDSSL_PROGRESS", "off")
    assert list(progress_bar([1, 2], file=out)) == [1, 2]
    assert out.getvalue() == ""


def test_terminal_gets_a_tqdm_bar_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import tqdm

    term = _Terminal()
    bar = progress_bar(total=3, file=term, dynamic_ncols=True)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "\r" in term.getvalue()
    monkeypatch.setenv("MEDSSL_PROGRESS", "lines")
    assert isinstance(progress_bar(total=3, file=_Terminal()), LineProgress)
    monkeypatch.setenv("MEDSSL_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="MEDSSL_PROGRESS"):
        progress_bar(total=3, file=io.StringIO())


def test_format_seconds() -> None:
    assert format_seconds(65) == "01:05"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(float("nan")) == "?"


def test_cli_prepare_writes_plain_lines_to_a_log(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:
    """`medssl prepare ... 2> log`: stderr is not a terminal, so no carriage-return redraws."""
    from medssl.cli.main import main

    monkeypatch.delenv("MEDSSL_PROGRESS", raising=False)
    code = main(
        [
            "prepare",
            "synthetic",
            "builtin",
            str(tmp_path / "p"),
            "--option",
            "n_patients=20",
            "--option",
            "frames=1",
            "--option",
            "slices=3",
            "--option",
            "size=16",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("prepare synthetic:")]
    assert len(lines) == 20  # one line per 5% of 20 cases
    assert lines[-1].startswith("prepare synthetic: 100% 20/20 case [")

"""`medssl demo > log` as a newcomer runs it: the report compares with the published numbers shipped
in the package, and the log holds plain progress lines, not carriage-return bar redraws."""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.cli.main import main


def test_quick_demo_into_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDSSL_PROGRESS", raising=False)
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    cap = capsys.readouterr()
    log = cap.out + cap.err  # stdout and stderr are not terminals here, as in `medssl demo > log 2>&1`
    assert "paper_results.csv not found" not in log
    assert "## Comparison with the published numbers" in log
    assert "\r" not in log
    progress = [ln for ln in cap.err.splitlines() if "% " in ln and "/s]" in ln]
    assert any(ln.startswith("prepare synthetic: 100% 6/6 case [") for ln in progress)
    assert sum(" 100% " in ln and " step [" in ln for ln in progress) >= 3  # pre-training + 2 fine-tunings
    assert len(cap.err) < 20_000
    assert (tmp_path / "demo" / "report" / "paper_comparison.md").is_file()
    # the story is written from this run's own numbers: every pre-trained method against Scratch
    story = cap.out[cap.out.index("What this run shows:") :]
    assert "- Scratch: DSC" in story and story.count("points vs Scratch: no conclusion possible from one seed") == 2
    assert story.count("paired Wilcoxon over") == 2 and "ahead of Scratch" not in story  # one seed: no verdict
    assert (tmp_path / "demo" / "report" / "figures" / "pretrain_diagnostics_synthetic.png").is_file()
    # the demo ends with `medssl predict` on phantoms no run trained on, and says where the label maps are
    seg_dir = tmp_path / "demo" / "new_phantoms" / "segmentations"
    assert f"label maps: {seg_dir}" in cap.out and len(list(seg_dir.glob("*.nii.gz"))) == 3

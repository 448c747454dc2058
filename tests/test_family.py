"""medssl.reporting.family: comparisons with Scratch across folders, Holm-corrected over all of them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from medssl.errors import DataError
from medssl.reporting import family
from medssl.reporting.family import (
    ReadCache,
    Setting,
    family_comparisons,
    family_table,
    family_text,
    finetune_label,
    grid_settings,
    grid_warnings,
    write_family,
)
from medssl.reporting.replicates import holm, seed_t_test
from medssl.reporting.tables import collect_runs

CASES = [f"p{i:02d}" for i in range(6)]


def _run(
    folder: Path, method: str, seed: int, dsc: list[float], dataset: str = "MS-CMRSeg", cfg: dict | None = None
) -> None:
    """A complete fine-tuning run folder with one foreground class and the given per-case DSC."""
    folder.mkdir(parents=True)
    cfg = cfg or {"recipe": "standard", "train": {"max_steps": 500}, "transfer": {"schedule": "standard"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    info = {"kind": "finetune", "method": method, "dataset": dataset.lower(), "dataset_label": dataset,
            "labels": "10%", "seed": seed, "protocol": "standard", "data": None,
            "class_names": ["background", "LV"]}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(info))
    with open(folder / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(
            fh, fieldnames=["protocol", "case_id", "class_index", "class_name", "dsc", "jc", "hd95", "asd"]
        )
        w.writeheader()
        for cid, v in zip(CASES, dsc):
            w.writerow(
                {
                    "protocol": "standard",
                    "case_id": cid,
                    "class_index": 1,
                    "class_name": "LV",
                    "dsc": v,
                    "jc": v / (2 - v),
                    "hd95": 2.0,
                    "asd": 1.0,
                }
            )
    (folder / "summary.json").write_text(json.dumps({"mean": {"dsc": float(np.mean(dsc))}}))


def _scratch(seed: int) -> list[float]:
    return list(np.random.default_rng(seed).uniform(0.5, 0.7, len(CASES)))


def _grid(root: Path, shifts: dict[str, dict[int, float]], scratch: bool = True, cfg: dict | None = None) -> Path:
    """Scratch per seed and each method = Scratch + its per-seed shift (the same for every case)."""
    for s in range(5):
        if scratch:
            _run(root / "finetune" / f"scratch__s{s}", "scratch", s, _scratch(s), cfg=cfg)
        for m, per_seed in shifts.items():
            _run(root / "finetune" / f"{m}__s{s}", m, s, [v + per_seed[s] for v in _scratch(s)], cfg=cfg)
    return root


def test_family_pairs_by_seed_and_corrects_over_every_folder(tmp_path: Path) -> None:
    up = {s: 0.05 + 0.01 * s for s in range(5)}  # clearly ahead on every seed
    mixed = {0: 0.04, 1: -0.03, 2: 0.02, 3: -0.02, 4: 0.01}  # seeds disagree
    a = _grid(tmp_path / "a", {"macl": up, "supercl": mixed})
    b = _grid(tmp_path / "b", {"macl": mixed})
    rows = family_comparisons([Setting("500 steps", a), Setting("150 steps", b)])
    assert [(r.setting, r.cmp.method) for r in rows] == [("500 steps", "supercl"), ("500 steps", "macl"),
                                                         ("150 steps", "macl")]  # fmt: skip
    macl = rows[1].cmp
    assert macl.seed_diffs == pytest.approx([100 * up[s] for s in range(5)])
    assert macl.n_ahead == 5 and macl.ci_low > 0
    ps = [seed_t_test([100 * d[s] for s in range(5)]) for d in (mixed, up, mixed)]
    assert [r.cmp.p_holm for r in rows] == pytest.approx(list(holm(ps)))  # Holm over all three, not per folder
    assert [r.cmp.verdict for r in rows] == ["inconclusive", "ahead", "inconclusive"]
    assert rows[1].method_dsc - rows[1].scratch_dsc == pytest.approx(100 * np.mean(list(up.values())))


def test_family_correction_can_undo_a_folder_level_verdict(tmp_path: Path) -> None:
    # p about 0.01 alone: a one-folder report would call it ahead; among 8 comparisons Holm makes it undecided
    weak = {0: 0.02, 1: 0.035, 2: 0.01, 3: 0.03, 4: 0.015}
    null = {0: 0.01, 1: -0.01, 2: 0.0, 3: 0.02, 4: -0.02}
    assert seed_t_test([100 * v for v in weak.values()]) < 0.05
    settings = [Setting(f"s{i}", _grid(tmp_path / f"g{i}", {"macl": weak if i == 0 else null})) for i in range(8)]
    rows = family_comparisons(settings)
    assert rows[0].cmp.ci_low > 0 and rows[0].cmp.p_holm >= 0.05 and rows[0].cmp.verdict == "inconclusive"
    assert "Ahead of Scratch: none." in family_text(rows)


def test_scratch_from_another_folder(tmp_path: Path) -> None:
    base = _grid(tmp_path / "base", {"macl": {s: 0.0 for s in range(5)}})
    down = {s: -0.05 - 0.005 * s for s in range(5)}
    variant = _grid(tmp_path / "base" / "variants" / "transfer500", {"macl": down}, scratch=False)
    with pytest.raises(DataError, match="no pre-trained method meets a Scratch run"):
        family_comparisons([Setting("transfer", variant)])
    rows = family_comparisons([Setting("standard", base), Setting("transfer", variant, scratch=base)])
    assert len(rows) == 2  # the base folder's variants/ is not searched
    assert rows[1].cmp.seed_diffs == pytest.approx([100 * down[s] for s in range(5)])
    assert rows[1].cmp.verdict == "behind" and rows[1].scratch_from == str(base)


def test_a_seed_that_scored_other_cases_is_named(tmp_path: Path) -> None:
    g = _grid(tmp_path / "g", {"macl": {s: 0.01 for s in range(5)}})
    rows_path = g / "finetune" / "macl__s3" / "metrics.csv"
    lines = rows_path.read_text().splitlines()
    rows_path.write_text("\n".join(lines[:-1]) + "\n")  # one case fewer
    (row,) = family_comparisons([Setting("x", g)])
    assert any("seeds [3]" in n for n in row.cmp.notes)


def test_write_family_files(tmp_path: Path) -> None:
    g = _grid(tmp_path / "g", {"pcl": {s: 0.01 * (s - 2) for s in range(5)}, "macl": {s: 0.03 for s in range(5)}})
    rows = family_comparisons([Setting("standard, 500 steps", g)])
    files = write_family(rows, tmp_path / "out")
    assert set(files) == {"csv", "forest", "md", "tex", "txt", "table"}
    with open(files["csv"], newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [r["method"] for r in got] == ["PCL", "MACL"] and got[1]["seeds_ahead"] == "5"
    assert math.isclose(float(got[1]["mean_diff"]), 3.0, abs_tol=1e-6)
    md = files["md"].read_text()
    assert "| standard, 500 steps | MS-CMRSeg | 10% | MACL | 5 |" in md and "Holm's correction over all 2" in md
    assert r"\toprule" in files["tex"].read_text()
    assert files["forest"].stat().st_size > 5000
    assert "MACL on MS-CMRSeg (standard, 500 steps): +3.0 DSC points" in files["txt"].read_text()
    assert "| MS-CMRSeg | standard, 500 steps |" in files["table"].read_text()


def test_family_table_has_a_row_per_setting_and_a_column_per_method(tmp_path: Path) -> None:
    both = _grid(tmp_path / "a", {"pcl": {s: -0.01 for s in range(5)}, "macl": {s: 0.03 for s in range(5)}})
    macl = _grid(tmp_path / "b", {"macl": {s: 0.01 * (s - 1) for s in range(5)}})
    rows = family_comparisons([Setting("standard, 500 steps", both), Setting("paper, 750 steps", macl)])
    lines = family_table(rows).splitlines()
    assert lines[0] == "| Set | Setting | Scratch DSC (%) | PCL | MACL |" and len(lines) == 4
    assert lines[2].startswith("| MS-CMRSeg | standard, 500 steps | ")
    assert lines[2].endswith(" | -1.0 [-1.0, -1.0], 0 of 5 | +3.0 [+3.0, +3.0], 5 of 5 |")
    assert lines[3].startswith("| MS-CMRSeg | paper, 750 steps | ") and "| not run | +1.0 [" in lines[3]
    assert lines[3].endswith("], 3 of 5 |")


def _cfg(steps: int, recipe: str = "standard", **transfer: object) -> dict:
    return {"recipe": recipe, "train": {"max_steps": steps}, "transfer": {"schedule": "standard", **transfer}}


def test_finetune_label_says_what_the_configuration_does() -> None:
    assert finetune_label(_cfg(500)) == "standard, 500 steps"
    assert finetune_label(_cfg(750, "paper")) == "paper, 750 steps"
    lpft = _cfg(150, schedule="lpft", lpft_fraction=0.1, pretrained_lr_scale=0.1)
    assert finetune_label(lpft) == "standard + LP-FT 10%, pre-trained lr x0.1, 150 steps"
    assert finetune_label(_cfg(500, warmup_fraction=0.05, layer_decay=0.75)) == (
        "standard + layer decay 0.75, warm-up 5%, 500 steps"
    )


def test_grid_settings_find_variants_and_the_scratch_of_their_budget(tmp_path: Path) -> None:
    root = _grid(tmp_path / "g", {"macl": {s: 0.02 for s in range(5)}})
    _grid(root / "variants" / "steps150", {"macl": {s: 0.04 for s in range(5)}}, cfg=_cfg(150))
    lpft = {"schedule": "lpft", "lpft_fraction": 0.1}
    _grid(
        root / "variants" / "transfer150", {"macl": {s: 0.05 for s in range(5)}}, scratch=False, cfg=_cfg(150, **lpft)
    )
    _grid(root / "variants" / "transfer500", {"macl": {s: 0.0 for s in range(5)}}, scratch=False, cfg=_cfg(500, **lpft))
    settings = grid_settings(root)
    got = [(st.label, st.folder.name, st.scratch.name if st.scratch else None) for st in settings]
    assert got == [
        ("standard, 500 steps", "g", None),
        ("standard, 150 steps", "steps150", None),
        ("standard + LP-FT 10%, 150 steps", "transfer150", "steps150"),
        ("standard + LP-FT 10%, 500 steps", "transfer500", "g"),
    ]
    rows = family_comparisons(settings)
    assert [round(r.cmp.mean_diff, 6) for r in rows] == [2.0, 4.0, 5.0, 0.0]
    read: ReadCache = {}  # shared: each of the 4 folders read once by all three
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(family, "collect_runs", lambda f, **kw: calls.append(f) or collect_runs(f, **kw))
        assert grid_warnings(root, read) == []
        shared = family_comparisons(grid_settings(root, read), read)
    assert sorted(p.name for p in calls) == ["g", "steps150", "transfer150", "transfer500"]
    assert [(r.setting, r.cmp.mean_diff) for r in shared] == [(r.setting, r.cmp.mean_diff) for r in rows]
    warm = root / "variants" / "warm"
    _grid(warm, {"macl": {s: 0.0 for s in range(5)}}, scratch=False, cfg=_cfg(500, warmup_fraction=0.05))
    with pytest.raises(DataError, match="warm.*no Scratch runs here nor"):
        grid_settings(root)  # a warm-up changes Scratch too: no borrowed Scratch fits


def test_evidence_summary_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import evidence_summary

    ms = _grid(tmp_path / "ms", {"macl": {s: 0.03 + 0.002 * s for s in range(5)}})
    ch = _grid(tmp_path / "ch", {"macl": {s: 0.0 for s in range(5)}}, cfg=_cfg(150))
    assert evidence_summary.main([str(ms), str(ch), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Ahead of Scratch: MACL on MS-CMRSeg (standard, 500 steps): +3.4 DSC points")
    assert "2 comparisons in 2 settings" in out and (tmp_path / "out" / "forest.png").is_file()
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["command"] == f"python benchmarks/evidence_summary.py {ms} {ch} --out {tmp_path / 'out'}"
    assert [g["path"] for g in prov["grids"]] == [str(ms), str(ch)] and prov["comparisons"] == 2
    assert evidence_summary.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing: not a folder of runs" in capsys.readouterr().err


def test_evidence_summary_refuses_repeated_grids_and_bad_outputs_and_names_what_it_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from conftest import REPO

    from medssl.reporting.bundle import export_bundle

    sys.path.insert(0, str(REPO / "benchmarks"))
    import evidence_summary

    g = _grid(tmp_path / "g", {"macl": {s: 0.02 for s in range(5)}})
    _grid(g / "variants" / "steps150", {"macl": {s: 0.04 for s in range(5)}}, cfg=_cfg(150))
    bundle = export_bundle(g, tmp_path / "bundle", command="test").out
    out = str(tmp_path / "out")
    for grids in ([g, g], [g, bundle], [bundle, g / "variants" / "steps150"]):  # was: counted twice, Holm too
        assert evidence_summary.main([*map(str, grids), "--out", out]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"evidence_summary: error: {grids[1]}: "), err
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    assert evidence_summary.main([str(g), "--out", str(tmp_path / "file")]) == 2  # was: a traceback
    assert capsys.readouterr().err.startswith(f"evidence_summary: error: {tmp_path / 'file'}: exists and is not")
    scratch_only = _grid(tmp_path / "s", {})
    assert evidence_summary.main([str(scratch_only), "--out", out]) == 2  # was: summary.csv, then an error
    assert "no comparison" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (g / "finetune" / "macl__s4" / "summary.json").write_text("{")  # one run left out: said, not silent
    (bundle / "finetune" / "macl__s0" / "metrics.csv").write_text("case_id\n")
    assert evidence_summary.main([str(g), "--out", out]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "warning: left out or unverified:" in err[0] and "macl__s4/summary.json" in err[0]
    assert evidence_summary.main([str(bundle), "--out", out]) == 0
    err = capsys.readouterr().err
    assert "bundle " in err and "finetune/macl__s0/metrics.csv: changed since export" in err

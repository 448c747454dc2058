"""Tests of medssl.reporting: tables, marks, LaTeX, Wilcoxon, paper comparison, figures.

Fake run folders with known numbers are built in tmp_path (a tiny prepared store, per-case
metrics, logs, predictions); the published numbers come from a small CSV written here too.
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats as sps

from medssl.errors import DataError
from medssl.reporting import report
from medssl.reporting.figures import select_slices
from medssl.reporting.report import load_paper_results, paper_comparison
from medssl.reporting.stats import compare_methods, paired_samples, paired_wilcoxon, pairwise_markdown, pairwise_tests
from medssl.reporting.tables import (
    MetricSummary,
    collect_runs,
    format_mean_std,
    labels_sort_key,
    latex_escape,
    results_tables,
    run_metric_value,
)

CASES = [f"case{i:02d}" for i in range(8)]
CLASSES = ["RV", "Myo"]
D, H, W = 5, 32, 32

# run-level DSC (fraction) per (method, labels, seed); JC = DSC - 0.1, HD95 = 10 - 10 * DSC, ASD = HD95 / 4
DSC = {
    ("scratch", "10%", 0): 0.80,
    ("scratch", "10%", 1): 0.82,
    ("pcl", "10%", 0): 0.84,
    ("pcl", "10%", 1): 0.85,
    ("supercl", "10%", 0): 0.86,
    ("supercl", "10%", 1): 0.88,
    ("macl", "10%", 0): 0.87,
    ("macl", "10%", 1): 0.85,
    ("scratch", "25%", 0): 0.85,
    ("scratch", "25%", 1): 0.86,
    ("pcl", "25%", 0): 0.90,
    ("pcl", "25%", 1): 0.88,
    ("supercl", "25%", 0): 0.89,
    ("supercl", "25%", 1): 0.89,
    ("macl", "25%", 0): 0.91,
    ("macl", "25%", 1): 0.92,
    ("scratch", "100%", 0): 0.93,
}
METRICS_FIELDS = [
    "protocol",
    "case_id",
    "class_index",
    "class_name",
    "dsc",
    "jc",
    "hd95",
    "asd",
    "assd",
    "tp",
    "fp",
    "fn",
    "gt_empty",
    "pred_empty",
    "n_slices",
]


def _case_values(method: str, labels: str, seed: int) -> np.ndarray:
    """Deterministic per-case, per-class DSC (8 cases x 2 classes) around the run's DSC."""
    base = DSC[(method, labels, seed)]
    g = np.random.default_rng(zlib.crc32(f"{method}|{labels}|{seed}".encode()))
    return np.clip(base + g.normal(0, 0.03, size=(len(CASES), len(CLASSES))), 0, 1)


def make_store(root: Path) -> Path:
    """Tiny store: images/labels (D,H,W); case k's slice 3 has the largest foreground."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    g = np.random.default_rng(1)
    for k, cid in enumerate(CASES):
        lab = np.zeros((D, H, W), np.uint8)
        for z in range(D):
            r = 2 + z + (3 if z == 3 else 0) + (k == 5) * 4  # case05 the largest, slice 3 the largest
            lab[z, 16 - r : 16 + r, 16 - r : 16] = 1
            lab[z, 16 - r : 16 + r, 16 : 16 + r] = 2
        lab[0] = 0  # an empty slice
        np.save(root / "labels" / f"{cid}.npy", lab)
        np.save(root / "images" / f"{cid}.npy", (g.normal(size=(D, H, W)) + lab).astype(np.float32))
    return root


def make_run(
    folder: Path,
    method: str,
    labels: str,
    seed: int,
    store: Path | None,
    *,
    dataset_label: str = "ACDC",
    protocol: str = "paper",
    complete: bool = True,
) -> Path:
    folder.mkdir(parents=True)
    info = {
        "kind": "finetune",
        "method": method,
        "dataset": dataset_label.lower(),
        "dataset_label": dataset_label,
        "labels": labels,
        "seed": seed,
        "protocol": protocol,
        "data": str(store) if store else None,
        "class_names": ["background", *CLASSES],
        "git_commit": "abc",
        "versions": {},
        "device": "cpu",
    }
    (folder / "run.json").write_text(json.dumps(info))
    dsc = DSC.get((method, labels, seed), 0.5)
    vals = _case_values(method, labels, seed) if (method, labels, seed) in DSC else np.full((len(CASES), 2), dsc)
    with open(folder / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METRICS_FIELDS)
        w.writeheader()
        for i, cid in enumerate(CASES):
            for c, name in enumerate(CLASSES):
                w.writerow(
                    {
                        "protocol": protocol,
                        "case_id": cid,
                        "class_index": c + 1,
                        "class_name": name,
                        "dsc": vals[i, c],
                        "jc": vals[i, c] - 0.1,
                        "hd95": 3.0,
                        "asd": 1.0,
                        "assd": 1.0,
                        "tp": 100,
                        "fp": 10,
                        "fn": 10,
                        "gt_empty": False,
                        "pred_empty": False,
                        "n_slices": D,
                    }
                )
    with open(folder / "log.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "step", "lr", "train_loss", "val_dice", "seconds"])
        for e in range(6):
            w.writerow([e, (e + 1) * 10, 1e-3, 1.0 / (e + 1) + seed * 0.05, dsc * (1 - 0.5 ** (e + 1)), 1.0])
    pred_dir = folder / "predictions"
    pred_dir.mkdir()
    if store is not None:
        for cid in CASES[:6]:
            lab = np.load(store / "labels" / f"{cid}.npy")
            np.save(pred_dir / f"{cid}.npy", np.roll(lab, 1 + (method == "scratch"), axis=2).astype(np.uint8))
    if complete:
        summary = {
            "protocol": protocol,
            "mean": {"dsc": dsc, "jc": dsc - 0.1, "hd95": 10 - 10 * dsc, "asd": (10 - 10 * dsc) / 4},
            "per_class": {},
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grid")
    store = make_store(root / "store")
    for m, lab, s in DSC:
        make_run(root / "runs" / lab.replace("%", "pct") / m / f"seed{s}", m, lab, s, store)
    # a method that is not published, one dataset without published numbers, an incomplete run
    make_run(root / "runs" / "extra" / "wcl", "wcl", "10%", 0, store)
    make_run(root / "runs" / "other" / "scratch", "scratch", "10%", 0, None, dataset_label="My_Data & Co")
    make_run(root / "runs" / "other" / "macl", "macl", "10%", 0, None, dataset_label="My_Data & Co")
    make_run(root / "runs" / "broken" / "pcl", "pcl", "10%", 2, store, complete=False)
    # a pre-training run
    pre = root / "pretrain" / "supercl"
    pre.mkdir(parents=True)
    (pre / "run.json").write_text(json.dumps({"kind": "pretrain", "method": "supercl", "dataset": "acdc"}))
    with open(pre / "log.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "epoch", "lr", "loss", "ins", "intra", "inter"])
        for t in range(20):
            w.writerow([t, t // 5, 0.01, 3 - 0.1 * t, 1 - 0.03 * t, 1.5 - 0.04 * t, 0.5 - 0.01 * t])
    return root


@pytest.fixture(scope="module")
def reference_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("ref") / "paper_results.csv"
    p.write_text(
        "source,dataset,labels,method,dsc,jc,hd95,asd\n"
        "MACL (JBHI 2026) Tables I-II,ACDC,10%,Scratch,79.99,67.39,8.78,3.82\n"
        "MACL (JBHI 2026) Tables I-II,ACDC,10%,SimCLR,78.60,65.47,8.11,3.36\n"
        "MACL (JBHI 2026) Tables I-II,ACDC,10%,PCL,84.91,74.16,6.54,2.65\n"
        "MACL (JBHI 2026) Tables I-II,ACDC,10%,MACL,86.63,76.72,5.23,1.73\n"
        "MACL (JBHI 2026) Tables I-II,ACDC,25%,MACL,90.00,80.00,4.00,1.00\n"
        "MACL (JBHI 2026) Tables I-II,MMWHS,10%,MACL,70.00,60.00,6.00,2.00\n"
        '"SuperCL (TIP 2026) Table, as summarised",ACDC,10%,SuperCL,86.06,75.79,4.68,1.80\n'
    )
    return p


# ----------------------------------------------------------------------------------------- tables


def test_collect_skips_incomplete_and_finds_pretrain(grid: Path) -> None:
    coll = collect_runs(grid)
    assert len(coll.runs) == len(DSC) + 3
    assert len(coll.skipped) == 1 and coll.skipped[0][0].name == "pcl" and "summary.json" in coll.skipped[0][1]
    assert len(coll.pretrain) == 1


def test_table_mean_std_and_marks(grid: Path) -> None:
    runs = [r for r in collect_runs(grid).runs if r.dataset_label == "ACDC"]
    (table,) = results_tables(runs)
    assert table.labels == ["10%", "25%", "100%"]
    assert table.methods("10%") == ["scratch", "pcl", "wcl", "supercl", "macl"]
    row = table.cell("10%", "scratch", "ACDC")
    assert row is not None and row.seeds == (0, 1)
    dsc = row.metrics["dsc"]
    assert dsc.mean == pytest.approx(81.0)
    assert dsc.std == pytest.approx(np.std([80.0, 82.0], ddof=1))  # sample std over seeds
    assert format_mean_std(dsc) == "81.00 ± 1.41"
    hd = row.metrics["hd95"]
    assert hd.mean == pytest.approx(1.9)  # 10 - 10 * 0.81
    md = table.markdown()
    # 10%: SuperCL 87.00 best, MACL 86.00 second; HD95 lower is better -> SuperCL 1.30 best
    assert "**87.00 ± 1.41**" in md and "<u>86.00 ± 1.41</u>" in md and "**1.30 ± 0.14**" in md
    assert table.marks[("10%", "supercl", "ACDC", "dsc")] == "best"
    assert table.marks[("10%", "macl", "ACDC", "dsc")] == "second"
    assert table.marks[("10%", "supercl", "ACDC", "hd95")] == "best"
    assert ("10%", "scratch", "ACDC", "dsc") not in table.marks
    # 25%: MACL 91.50 best; PCL and SuperCL tie at 89.00 -> both second
    assert table.marks[("25%", "macl", "ACDC", "dsc")] == "best"
    assert table.marks[("25%", "pcl", "ACDC", "dsc")] == "second"
    assert table.marks[("25%", "supercl", "ACDC", "dsc")] == "second"
    # 100%: a single run -> no std, no mark
    s100 = table.cell("100%", "scratch", "ACDC")
    assert s100 is not None and format_mean_std(s100.metrics["dsc"]) == "93.00"
    assert not any(k[0] == "100%" for k in table.marks)
    # rows grouped: the 10% block comes before the 25% block, Scratch first in each
    lines = [ln for ln in md.splitlines()[2:]]
    assert [ln.split("|")[2].strip() for ln in lines[:5]] == ["Scratch", "PCL", "WCL", "SuperCL", "MACL"]
    assert lines[5].split("|")[1].strip() == "25%"


def test_latex_escaping_and_booktabs(grid: Path) -> None:
    assert latex_escape("My_Data & Co 10% $x# {a}") == r"My\_Data \& Co 10\% \$x\# \{a\}"
    assert latex_escape("a\\b~^") == r"a\textbackslash{}b\textasciitilde{}\textasciicircum{}"
    (table,) = results_tables(collect_runs(grid).runs)
    tex = table.latex()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"My\_Data \& Co" in tex and r"\textit{10\% labels}" in tex
    assert r"\textbf{87.00 $\pm$ 1.41}" in tex and r"\underline{86.00 $\pm$ 1.41}" in tex
    body = next(ln for ln in tex.splitlines() if ln.startswith("SuperCL"))
    assert body.count("&") == 2 * 4  # two datasets x four metrics


def test_labels_sort_and_metric_recompute(tmp_path: Path) -> None:
    assert sorted(["100%", "10 cases", "25%", "10%", "5 cases"], key=labels_sort_key) == [
        "10%",
        "25%",
        "100%",
        "5 cases",
        "10 cases",
    ]
    run_dir = make_run(tmp_path / "r", "pcl", "10%", 0, None)
    (run_dir / "summary.json").write_text(json.dumps({"protocol": "paper"}))  # no "mean": recompute pooled
    rows = []
    for cid, (tp, fp, fn) in zip(["a", "b"], [(10, 0, 0), (0, 5, 5)]):
        rows.append(
            {
                "protocol": "paper",
                "case_id": cid,
                "class_index": 1,
                "class_name": "x",
                "dsc": "",
                "jc": "",
                "hd95": 2.0 if cid == "a" else 5.0,
                "asd": 1.0,
                "assd": 1.0,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "gt_empty": False,
                "pred_empty": False,
                "n_slices": 3 if cid == "a" else 1,
            }
        )
    with open(run_dir / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METRICS_FIELDS)
        w.writeheader()
        w.writerows(rows)
    (run,) = collect_runs(tmp_path).runs
    assert run_metric_value(run, "dsc") == pytest.approx(20 / 30)  # 2*10 / (2*10 + 5 + 5)
    assert run_metric_value(run, "jc") == pytest.approx(10 / 20)
    assert run_metric_value(run, "hd95") == pytest.approx((2 * 3 + 5 * 1) / 4)  # n_slices-weighted


def test_duplicate_runs_keep_newest(tmp_path: Path) -> None:
    import os

    a = make_run(tmp_path / "a", "pcl", "10%", 0, None)
    b = make_run(tmp_path / "b", "pcl", "10%", 0, None)
    os.utime(a / "summary.json", (1_000_000, 1_000_000))
    coll = collect_runs(tmp_path)
    assert [r.path for r in coll.runs] == [b]
    assert coll.skipped == [(a, "duplicate of a newer run")]


# ------------------------------------------------------------------------------------------ stats


def test_wilcoxon_matches_scipy_on_pooled_seed_pairs(grid: Path) -> None:
    runs = [r for r in collect_runs(grid).runs if r.dataset_label == "ACDC" and r.labels == "10%"]
    sup = [r for r in runs if r.method == "supercl"]
    scr = [r for r in runs if r.method == "scratch"]
    x, y, keys = paired_samples(sup, scr)
    assert len(keys) == 2 * len(CASES)  # (seed, case) pairs from both seeds
    # oracle: per-case DSC averaged over classes, straight from the generator
    ox = np.concatenate([_case_values("supercl", "10%", s).mean(axis=1) for s in (0, 1)])
    oy = np.concatenate([_case_values("scratch", "10%", s).mean(axis=1) for s in (0, 1)])
    np.testing.assert_allclose(x, ox, atol=1e-12)
    np.testing.assert_allclose(y, oy, atol=1e-12)
    expected = sps.wilcoxon(ox, oy)
    res = paired_wilcoxon(x, y)
    assert res.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert res.statistic == pytest.approx(float(expected.statistic))
    assert res.n_pairs == 16 and res.mean_diff == pytest.approx((ox - oy).mean() * 100)
    rows = {s.method: s for s in compare_methods(runs)}
    assert rows["supercl"].vs_scratch is not None
    assert rows["supercl"].vs_scratch.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    # best baseline: best non-Scratch method other than itself by mean DSC
    assert rows["supercl"].best_baseline == "macl"  # 86.0 (87.0 is SuperCL itself)
    assert rows["macl"].best_baseline == "supercl"
    assert rows["scratch"].vs_scratch is None and rows["scratch"].best_baseline == "supercl"
    # WCL has one seed: pairs only on seed 0
    assert rows["wcl"].vs_scratch is not None and rows["wcl"].vs_scratch.n_pairs == len(CASES)


def test_pairwise_tests_cover_every_pair_with_a_ahead_when_positive(grid: Path) -> None:
    runs = [r for r in collect_runs(grid).runs if r.dataset_label == "ACDC" and r.labels == "10%"]
    methods = {r.method for r in runs}
    rows = pairwise_tests(runs)
    assert len(rows) == len(methods) * (len(methods) - 1) // 2
    assert len({frozenset((r.method_a, r.method_b)) for r in rows}) == len(rows)
    by_pair = {(r.method_a, r.method_b): r.test for r in rows}
    # Scratch comes first in table order, so it is always B; the test equals compare_methods' one
    t = by_pair[("supercl", "scratch")]
    ref = {s.method: s for s in compare_methods(runs)}["supercl"].vs_scratch
    assert ref is not None and t.p_value == ref.p_value and t.mean_diff == pytest.approx(ref.mean_diff)
    x, y, _ = paired_samples([r for r in runs if r.method == "supercl"], [r for r in runs if r.method == "scratch"])
    assert t.mean_diff == pytest.approx((x - y).mean() * 100) and t.mean_diff > 0  # SuperCL ahead in the fixture
    md = pairwise_markdown(rows)
    body = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| Protocol")]
    assert len(body) == len(rows)


def test_wilcoxon_nan_cases() -> None:
    t = paired_wilcoxon(np.array([0.5, 0.6, 0.7]), np.array([0.4, 0.5, 0.9]))
    assert math.isnan(t.p_value) and t.n_pairs == 3 and "too few pairs" in t.note
    same = np.linspace(0.1, 0.9, 8)
    t = paired_wilcoxon(same, same.copy())
    assert math.isnan(t.p_value) and t.n_nonzero == 0 and "zero" in t.note
    t = paired_wilcoxon(np.array([]), np.array([]))
    assert math.isnan(t.p_value) and t.n_pairs == 0
    # one tie among 7: dropped, as scipy's default zero_method
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    y = x + np.array([0.01, -0.02, 0.03, 0.04, 0.0, 0.06, 0.07])
    t = paired_wilcoxon(x, y)
    assert t.n_nonzero == 6 and "1 zero" in t.note
    assert t.p_value == pytest.approx(float(sps.wilcoxon(x, y).pvalue))
    with pytest.raises(ValueError):
        paired_wilcoxon(np.zeros(3), np.zeros(4))


# ------------------------------------------------------------------------------ paper comparison


def test_paper_comparison_picks_published_cells(grid: Path, reference_csv: Path) -> None:
    rows, notes = paper_comparison(collect_runs(grid).runs, load_paper_results(reference_csv))
    by = {(r.dataset, r.labels, r.method): r for r in rows}
    sup = by[("ACDC", "10%", "supercl")]
    assert sup.paper is not None and sup.paper.dsc == pytest.approx(86.06) and sup.paper.source.startswith("SuperCL")
    assert sup.ours is not None and sup.ours["dsc"].mean == pytest.approx(87.0)
    assert sup.diff("dsc") == pytest.approx(87.0 - 86.06)
    macl25 = by[("ACDC", "25%", "macl")]
    assert macl25.paper is not None and macl25.paper.dsc == pytest.approx(90.0)  # 25%, not the 10% cell
    assert macl25.diff("hd95") == pytest.approx((10 - 9.15) - 4.0)
    # published but not run: listed without our numbers; run but not published: no paper cell
    simclr = by[("ACDC", "10%", "simclr")]
    assert simclr.ours is None and math.isnan(simclr.diff("dsc"))
    assert by[("ACDC", "10%", "wcl")].paper is None
    assert ("ACDC", "25%", "simclr") not in by  # nothing invented where neither exists
    assert by[("My_Data & Co", "10%", "macl")].paper is None  # MMWHS MACL not picked for another dataset
    assert any("My_Data & Co" in n for n in notes)


# ----------------------------------------------------------------------------------------- report


def _assert_real_png(path: Path, min_side: int = 150) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 5_000
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert img.shape[0] >= min_side and img.shape[1] >= min_side
    assert img.std() > 10.0  # not blank
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    return img


def test_report_writes_everything(grid: Path, reference_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = report(grid, out_dir=out, reference_csv=reference_csv, n_slices=2, dpi=60)
    for name in (
        "results.md",
        "results.csv",
        "results.tex",
        "stats.md",
        "stats.csv",
        "pairwise.md",
        "pairwise.csv",
        "paper_comparison.md",
        "paper_comparison.csv",
    ):
        assert (out / name).is_file(), name
    assert res.n_runs == len(DSC) + 3 and len(res.skipped) == 1 and res.n_pretrain == 1
    assert "1 skipped" in res.markdown and res.markdown == (out / "results.md").read_text()
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cell = next(
        r
        for r in rows
        if r["labels"] == "10%" and r["method"] == "Scratch" and r["dataset"] == "ACDC" and r["metric"] == "DSC"
    )
    assert float(cell["mean"]) == pytest.approx(81.0) and cell["n_seeds"] == "2" and cell["cell"] == "81.00 ± 1.41"
    with open(out / "paper_comparison.csv", newline="") as fh:
        comp = {(r["dataset"], r["labels"], r["method"]): r for r in csv.DictReader(fh)}
    assert float(comp[("ACDC", "10%", "MACL")]["dsc_paper"]) == pytest.approx(86.63)
    assert float(comp[("ACDC", "10%", "MACL")]["dsc_diff"]) == pytest.approx(86.0 - 86.63)
    assert comp[("ACDC", "10%", "SimCLR")]["dsc_ours"] == ""
    with open(out / "stats.csv", newline="") as fh:
        st = list(csv.DictReader(fh))
    assert any(r["method"] == "SuperCL" and r["vs_scratch_n_pairs"] == "16" for r in st)
    # figures: DSC vs labels per dataset, qualitative + curves per group, pre-training curves
    names = sorted(p.name for p in res.figures)
    assert "dsc_vs_labels_paper_acdc.png" in names
    assert "qualitative_paper_acdc_10pct.png" in names and "curves_paper_acdc_25pct.png" in names
    assert any(n.startswith("pretrain_supercl") for n in names)
    # the validation curve's numbers beside its figure: mean over the seeds' own log.csv
    with open(out / "figures" / "curves_paper_acdc_25pct.csv", newline="") as fh:
        curve = {(r["method"], int(r["step"])): r for r in csv.DictReader(fh)}
    sup = [
        r
        for r in collect_runs(grid).runs
        if r.method == "supercl" and r.dataset_label == "ACDC" and r.labels == "25%" and r.protocol == "paper"
    ]
    last = [float(next(x for x in r.log_rows() if x["step"] == "60")["val_dice"]) for r in sup]
    assert sup and int(curve[("SuperCL", 60)]["n"]) == len(sup)
    assert float(curve[("SuperCL", 60)]["val_dice_mean"]) == pytest.approx(np.mean(last), abs=1e-4)
    assert "qualitative_paper_my_data_co_10pct.png" not in names  # no store for that dataset: noted, not drawn
    assert any("My_Data & Co" in n and "store" in n for n in res.notes)
    for p in res.figures:
        _assert_real_png(p)
        assert f"figures/{p.name}" in res.markdown
    q = _assert_real_png(out / "figures" / "qualitative_paper_acdc_10pct.png")
    red = (q[..., 0] > 180) & (q[..., 1] < 120) & (q[..., 2] < 120)
    assert red.sum() > 100  # class-1 overlay drawn


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        report(tmp_path / "missing")
    make_run(tmp_path / "g" / "r", "pcl", "10%", 0, None, complete=False)
    with pytest.raises(DataError, match="1 incomplete skipped"):
        report(tmp_path / "g")
    make_run(tmp_path / "g" / "ok", "pcl", "10%", 0, None)
    with pytest.raises(DataError, match="reference results file not found"):
        report(tmp_path / "g", reference_csv=tmp_path / "nope.csv", figures=False)


def test_select_slices_largest_foreground() -> None:
    lab = np.zeros((6, 8, 8), np.uint8)
    for z, n in enumerate([0, 5, 20, 3, 20, 9]):
        lab[z].reshape(-1)[:n] = 1
    assert select_slices(lab, 3) == [2, 4, 5]
    assert select_slices(lab, 1) == [2]  # tie broken towards lower z
    assert select_slices(np.zeros((4, 8, 8)), 2) == [2]


def test_metric_summary_ignores_nan() -> None:
    s = MetricSummary.of([1.0, float("nan"), 3.0])
    assert s.mean == 2.0 and s.n == 2 and s.std == pytest.approx(math.sqrt(2))
    assert format_mean_std(MetricSummary.of([float("nan")])) == "–"


def test_standard_protocol_uses_assd_and_nan_classes(tmp_path: Path) -> None:
    for m, v in (("scratch", 0.7), ("macl", 0.8)):
        d = make_run(tmp_path / m, m, "5 cases", 0, None, protocol="standard")
        (d / "summary.json").write_text(
            json.dumps(
                {"protocol": "standard", "mean": {"dsc": v, "jc": v - 0.1, "hd95": 4.0, "asd": 9.0, "assd": 2.0 * v}}
            )
        )
    with open(tmp_path / "macl" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["dsc"] = "nan"  # case00 class RV: empty ground truth -> NaN, the case keeps its Myo value
    with open(tmp_path / "macl" / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METRICS_FIELDS)
        w.writeheader()
        w.writerows(rows)
    runs = collect_runs(tmp_path).runs
    (table,) = results_tables(runs)
    assert [s.label for s in table.specs] == ["DSC", "JC", "HD95", "ASSD"] and table.specs[3].unit == "mm"
    assert "ACDC ASSD (mm)" in table.markdown()
    macl = table.cell("5 cases", "macl", "ACDC")
    assert macl is not None and macl.metrics["assd"].mean == pytest.approx(1.6)
    assert table.marks[("5 cases", "scratch", "ACDC", "assd")] == "best"  # 1.4 < 1.6: lower is better
    x, _y, keys = paired_samples([r for r in runs if r.method == "macl"], [r for r in runs if r.method == "scratch"])
    assert keys[0] == (0, "case00") and x[0] == pytest.approx(float(rows[1]["dsc"]))


def test_evaluation_summary_layout_and_standard_recompute(tmp_path: Path) -> None:
    """summary.json as medssl.evaluation.write_results writes it (a "summary" list of rows)."""
    d = make_run(tmp_path / "a", "pcl", "10%", 0, None, protocol="standard")
    (d / "summary.json").write_text(
        json.dumps(
            {
                "protocol": "standard",
                "class_names": ["bg", *CLASSES],
                "summary": [
                    {"class_index": 1, "class_name": "RV", "dsc_mean": 0.5},
                    {"class_index": None, "class_name": "mean", "dsc_mean": 0.75, "jc_mean": 0.6, "hd95_mean": None},
                ],
            }
        )
    )
    (run,) = collect_runs(tmp_path).runs
    assert run_metric_value(run, "dsc") == pytest.approx(0.75)
    assert math.isnan(run_metric_value(run, "hd95"))  # null -> NaN
    # "asd" missing from the summary: recomputed as the mean over cases of the class mean (all 1.0 here)
    assert run_metric_value(run, "asd") == pytest.approx(1.0)
    run.summary = {}
    expected = _case_values("pcl", "10%", 0).mean(axis=1).mean()
    assert run_metric_value(run, "dsc") == pytest.approx(expected)


def test_report_uses_the_packaged_table_by_default(grid: Path, reference_csv: Path, tmp_path: Path) -> None:
    """No reference given: the published numbers shipped in medssl/resources are used; a user's file wins."""
    from medssl.reporting.report import find_reference_csv, packaged_reference_csv

    packaged = packaged_reference_csv()
    assert packaged.parent.name == "resources" and packaged.parent.parent.name == "medssl"
    assert find_reference_csv() == packaged and find_reference_csv(reference_csv) == reference_csv
    res = report(grid, out_dir=tmp_path / "default", figures=False)
    assert not any("not found" in n for n in res.notes)
    with open(tmp_path / "default" / "paper_comparison.csv", newline="") as fh:
        comp = {(r["dataset"], r["labels"], r["method"]): r for r in csv.DictReader(fh)}
    assert float(comp[("ACDC", "10%", "MoCo")]["dsc_paper"]) == pytest.approx(81.34)  # only in the packaged table
    assert float(comp[("ACDC", "25%", "MACL")]["dsc_paper"]) == pytest.approx(89.64)
    report(grid, out_dir=tmp_path / "user", reference_csv=reference_csv, figures=False)
    with open(tmp_path / "user" / "paper_comparison.csv", newline="") as fh:
        comp = {(r["dataset"], r["labels"], r["method"]): r for r in csv.DictReader(fh)}
    assert ("ACDC", "10%", "MoCo") not in comp
    assert float(comp[("ACDC", "25%", "MACL")]["dsc_paper"]) == pytest.approx(90.00)


def test_cli_report_compares_with_the_packaged_numbers(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medssl.cli.main import main

    assert main(["report", str(grid), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "paper_results.csv not found" not in out
    assert "| ACDC | 10% | MoCo | – | not run | 81.34 |" in out
    assert "Published numbers: MACL (JBHI 2026) Tables I-II" in out


def test_tables_label_distances_in_voxels_where_the_spacing_is_unknown(tmp_path: Path) -> None:
    """A data set that stores no spacing (summary.json distance_unit voxels): its HD95/ASD columns
    say voxels in Markdown, LaTeX, CSV and the report text; the others keep mm."""
    for label, unit in (("ACDC", "voxels"), ("CHAOS", "mm")):
        for m in ("scratch", "macl"):
            run = make_run(tmp_path / "g" / label / m, m, "10%", 0, None, dataset_label=label, protocol="standard")
            summary = json.loads((run / "summary.json").read_text())
            (run / "summary.json").write_text(json.dumps({**summary, "distance_unit": unit}))
    (table,) = results_tables(collect_runs(tmp_path / "g").runs)
    assert table.distance_units == {"ACDC": "voxels"}
    header = table.markdown().splitlines()[0]
    assert "ACDC HD95 (voxels)" in header and "ACDC ASD (voxels)" in header and "ACDC DSC (%)" in header
    assert "CHAOS HD95 (mm)" in header
    assert "HD95 (voxels)" in table.latex() and "HD95 (mm)" in table.latex()
    units = {(r["dataset"], r["metric"]): r["unit"] for r in table.csv_rows()}
    assert units[("ACDC", "HD95")] == "voxels" and units[("CHAOS", "HD95")] == "mm" and units[("ACDC", "DSC")] == "%"
    res = report(tmp_path / "g", figures=False)
    assert "Distances not in mm: ACDC (voxels); spacing unknown: distances in voxels." in res.markdown


def test_loss_windows_known_means() -> None:
    from medssl.reporting.pretrain_losses import loss_windows

    # 120 steps logged every 10: windows (0, 10], (60, 70], (110, 120]
    rows = [
        {
            "step": str(s),
            "epoch": "0",
            "lr": "0.1",
            "loss": str(1000 - s),
            "ins": str(s % 20),
            "knn_position_mae": "0.5",
        }
        for s in range(10, 121, 10)
    ]
    got = loss_windows(rows, window=1 / 12)
    assert set(got) == {"loss", "ins"}  # step/epoch/lr and the diagnostics are not losses
    assert got["loss"] == (120, 990.0, 930.0, 880.0)
    assert got["ins"] == (120, 10.0, 10.0, 0.0)
    # wider windows average more rows: (0, 30] -> steps 10, 20, 30
    assert loss_windows(rows, window=0.25)["loss"][1] == pytest.approx(980.0)
    # log.csv columns with the train_ prefix, named without it
    log = [
        {"epoch": "0", "step": "50", "train_loss": "2.0", "seconds": "1"},
        {"epoch": "1", "step": "100", "train_loss": "1.0", "seconds": "1"},
    ]
    assert loss_windows(log, window=0.5, prefix="train_") == {"loss": (100, 2.0, 1.0, 1.0)}
    with pytest.raises(ValueError, match="window"):
        loss_windows(rows, window=0.6)


def test_report_writes_pretrain_loss_windows(grid: Path, tmp_path: Path) -> None:
    from medssl.reporting.pretrain_losses import LossWindows

    res = report(grid, out_dir=tmp_path / "rep", figures=False)
    with open(res.files["pretrain_losses_csv"], newline="") as fh:
        rows = {r["term"]: r for r in csv.DictReader(fh)}
    # the fixture's SuperCL log: loss = 3 - 0.1 t for t = 0..19, so N = 19, windows (0, 1.58], (9.5, 11.08], (17.42, 19]
    assert set(rows) == {"loss", "ins", "intra", "inter"}
    assert float(rows["loss"]["start"]) == pytest.approx(2.9)
    assert float(rows["loss"]["middle"]) == pytest.approx(3 - 0.1 * 10.5)
    assert float(rows["loss"]["end"]) == pytest.approx(3 - 0.1 * 18.5)
    assert float(rows["loss"]["change_second_half"]) == pytest.approx((1.15 - 1.95) / 1.95, rel=1e-3)
    assert "## Pre-training losses" in res.markdown and "| acdc | SuperCL | loss | 19 |" in res.markdown
    assert math.isnan(LossWindows("m", "d", "t", 10, 1.0, 0.0, 1.0).change_second_half)


def test_mean_band_interpolates_seeds_scored_at_other_steps() -> None:
    from medssl.reporting.figures import _mean_band

    # one seed scored at 50 and 100, another (longer epochs) at 52 and 102
    xs, mean, std, n = _mean_band([{50.0: 0.2, 100.0: 0.4}, {52.0: 0.3, 102.0: 0.5}])
    assert xs.tolist() == [50, 52, 100, 102]
    assert n.tolist() == [1, 2, 2, 1]  # never extrapolated outside a seed's own range
    assert mean[0] == pytest.approx(0.2) and math.isnan(std[0])
    assert mean[1] == pytest.approx((0.2 + 0.2 * 2 / 50 + 0.3) / 2)  # no saw-tooth between 50 and 52
    assert mean[2] == pytest.approx((0.4 + 0.3 + 0.2 * 48 / 50) / 2)
    assert mean[3] == pytest.approx(0.5)


def test_report_lists_a_damaged_prediction_that_its_drawn_figure_left_out(tmp_path: Path, reference_csv: Path) -> None:
    store = make_store(tmp_path / "store")
    for m in ("scratch", "macl"):
        make_run(tmp_path / "runs" / m, m, "10%", 0, store)
    for f in (tmp_path / "runs" / "macl" / "predictions").glob("*.npy"):
        f.write_bytes(f.read_bytes()[:140])  # cut short after the run
    res = report(tmp_path / "runs", out_dir=tmp_path / "rep", reference_csv=reference_csv, n_slices=2, dpi=40)
    drawn = [p for p in res.figures if "qualitative" in p.name]
    assert drawn, res.figures  # the figure is still drawn (the prediction left black) ...
    # ... and the report says which prediction it could not read (was: said only when no figure was drawn)
    assert any("unreadable prediction" in n and "macl" in n for n in res.notes), res.notes

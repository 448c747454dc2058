"""Numbers that the documentation quotes equal the shipped files they come from.

Each test reads one benchmark output under ``benchmarks/results/`` and the sentence of the
documentation that quotes it, and recomputes the quoted number (a range is the min and max of the
file's column), so that a rerun of a benchmark or an edit of a page cannot leave them disagreeing.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _page(name: str) -> str:
    return " ".join((REPO / "docs" / name).read_text(encoding="utf-8").split())  # lines joined


def _table(path: Path, header: str) -> list[list[str]]:
    """The fields of each line under the header line ``header`` (compared with its spaces collapsed)
    of a benchmark output, up to the first line with another number of fields than the first row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = next(k for k, line in enumerate(lines) if " ".join(line.split()) == header)
    rows: list[list[str]] = []
    for line in lines[i + 1 :]:
        if rows and len(line.split()) != len(rows[0]):
            break
        rows.append(line.split())
    return rows


def _range(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


WORDS = {11: "Eleven", 13: "thirteen"}


def test_gpu_step_ratios_quote_step_192() -> None:
    head = "method step ms bare ms ratio img/s peak MiB"
    rows = {r[0]: float(r[3]) for r in _table(RESULTS / "h100_2026-11-25" / "step_192.txt", head)}
    above = {m: v for m, v in rows.items() if v > 1.15}
    within = [v for m, v in rows.items() if m not in above]
    text = _page("performance.md")
    assert f"{_range(within, 2)} for {len(within)} methods" in text
    assert f"MACL {above.pop('macl'):.2f}, WCL {above.pop('wcl'):.2f}" in text and not above
    assert f"{WORDS[len(within)]} of {WORDS[len(rows)]} methods are within the 1.15 target" in text


def test_cpu_step_ratios_quote_bench_step() -> None:
    table = _table(
        RESULTS / "cpu" / "bench_step.txt", "method step ms bare ms ratio img/s peak MiB step ops bare ops extra"
    )
    rows = {r[0]: float(r[3]) for r in table}
    desd = rows.pop("desd")
    extra = [int(r[8]) for r in table]
    text = _page("performance.md")
    assert f"{_range(list(rows.values()), 2)} for {len(rows)} methods; DeSD {desd:.2f}" in text
    assert f"the losses add {min(extra)}-{max(extra)} working" in text


def test_metrics_speed_ups_quote_bench_metrics() -> None:
    text = (RESULTS / "cpu" / "bench_metrics.txt").read_text()
    per_case = [float(x) for x in re.findall(r"([\d.]+)x\s+[\d.]+e[+-]\d+$", text, flags=re.M)]
    overall = float(re.search(r"metrics speed-up vs medpy: ([\d.]+)x", text).group(1))
    assert len(per_case) == 9
    page = _page("protocols.md")
    assert f"{min(per_case):.0f}-{max(per_case):.0f}x faster per volume, {overall:.0f}x over all volumes" in page
    assert f"**{overall:.0f}x** faster than medpy" in _page("performance.md")


VIEW_COLUMNS = (
    "size medssl/s torch/s naive/s bg-style/s medssl/naive medssl/bg torch/naive torch/medssl lattice/s "
    "lattice/medssl T_int ms T_sp ms T_sp torch T_sp lattice"
)


def test_view_speed_ups_quote_bench_views() -> None:
    lines = (RESULTS / "cpu" / "bench_views.txt").read_text().splitlines()
    assert " ".join(lines[1].split()) == VIEW_COLUMNS  # the columns below are read by position
    names = ["size", "scipy", "torch", "naive", "bg", "scipy/naive", "scipy/bg", "torch/naive", "torch/scipy"]
    names += ["lattice", "lattice/scipy", "t_int", "t_sp", "t_sp_torch", "t_sp_lattice"]
    row = next(dict(zip(names, map(float, x.split()))) for x in lines[2:] if x.split()[:1] == ["512"])
    text = _page("performance.md")
    assert f"{row['torch/scipy']:.1f}x faster views at 512 px" in text
    assert f"{row['torch']} with torch ({row['torch/scipy']:.1f}x scipy)" in text
    assert f"512 px {row['t_sp_torch'] / row['t_sp_lattice']:.1f}x cheaper" in text
    assert f"{row['t_sp_lattice']:.1f} against {row['t_sp_torch']:.1f} ms" in text


def test_superpixel_cache_speed_ups_quote_bench_superpixels() -> None:
    text = (RESULTS / "cpu" / "bench_superpixels.txt").read_text()
    cache = {int(s): float(x) for s, x in re.findall(r"^\s*(\d+) cache: .*?([\d.]+)x$", text, flags=re.M)}
    for page in ("methods.md", "results/superpixel-mode.md"):
        body = _page(page)
        assert f"{cache[512]:.0f}x" in body and f"{cache[256]:.0f}x at 256 px" in body, page
    assert f"{cache[256]:.0f}x** and **{cache[512]:.0f}x**" in _page("performance.md")


def test_recipes_core_hours_quote_recipes_csv() -> None:
    with open(RESULTS / "cpu" / "recipes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    seeds = {r["seed"] for r in rows}
    hours = sum(float(r["seconds"]) for r in rows) / 3600
    text = _page("results/recipes.md")
    assert f"ten runs took {hours:.1f} core-hours" in text and len(rows) == 10 and seeds == {"0"}
    assert f"about {3 * hours:.0f}, not run yet" in text


def test_cardiac_p_values_quote_pairwise_csv() -> None:
    with open(RESULTS / "cpu" / "cardiac_grid" / "pairwise.csv", newline="") as fh:
        p = {(r["method_a"], r["method_b"]): float(r["p"]) for r in csv.DictReader(fh)}
    text = _page("results/mscmrseg.md")
    assert f"MACL vs SimCLR +4.37 (p {p[('MACL', 'SimCLR')]:.2g})" in text
    assert f"SuperCL vs SimCLR +3.43 (p {p[('SuperCL', 'SimCLR')]:.1g})" in text
    assert f"p {p[('SuperCL', 'SimCLR')]:.1g} and {p[('MACL', 'SimCLR')]:.2g}" in text
    assert "p <= 0.001" not in text


def test_chaos_validation_dice_quote_validation_curves() -> None:
    with open(RESULTS / "cpu" / "chaos_grid" / "validation_curves.csv", newline="") as fh:
        v = {(r["method"], int(r["step"])): float(r["val_dice_mean"]) for r in csv.DictReader(fh)}
    text = _page("results/chaos.md")
    end = f"({v[('Scratch', 500)]:.2f} against SuperCL's {v[('SuperCL', 500)]:.2f} and MACL's {v[('MACL', 500)]:.2f})"
    assert end in text
    assert f"at step 52 SuperCL {v[('SuperCL', 52)]:.2f}, MACL {v[('MACL', 52)]:.2f} against Scratch" in text


@pytest.mark.parametrize(
    "page, gone",
    [
        ("results/hippocampus.md", "pretrain_supercl_msd_1.png"),
        ("diagnostics.md", "0.06 with He init"),
        ("protocols.md", "4-60x"),
        ("results/chaos.md", "Every loss is flat"),
    ],
)
def test_fixed_mismatches_stay_gone(page: str, gone: str) -> None:
    assert gone not in _page(page)


def test_supercl_ablation_page_quotes_its_bundle() -> None:
    rows = {}
    for line in (RESULTS / "cpu" / "supercl_ablation" / "supercl_ablation.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and cells[0] in ("default", "no_intra", "no_inter", "ins_only"):
            rows[cells[0]] = cells[3:6]  # probe, k-NN, effective rank
    assert len(rows) == 4
    text = _page("results/supercl-ablation.md")
    for name, label in (
        ("default", "default (L_ins + L_intra + 0.5 L_inter)"),
        ("no_intra", "without L_intra"),
        ("no_inter", "without L_inter"),
        ("ins_only", "L_ins alone"),
    ):
        assert f"| {label} | {' | '.join(rows[name])} |" in text, name


def test_bootstrap_coverage_quotes_its_table() -> None:
    rows = {}
    for line in (RESULTS / "cpu" / "bootstrap_coverage.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[1].isdigit():
            rows[(cells[0].split()[1], int(cells[1]))] = [float(c.split("%")[0]) for c in cells[2:]]
    text = _page("statistics.md")
    differ, alike = (
        {n: v for (k, n), v in rows.items() if k == "differ"},
        {n: v for (k, n), v in rows.items() if k == "alike"},
    )
    assert set(differ) == set(alike) == {3, 5, 10}
    assert (
        f"holds 0 in {differ[3][0]}% of them with 3 seeds, {differ[5][0]}% with 5 and {differ[10][0]}% with 10" in text
    )
    assert f"too wide instead ({min(v[0] for v in alike.values())}% to {max(v[0] for v in alike.values())}%)" in text
    t = [v[1] for v in rows.values()]
    assert f"holds its 95% ({min(t)}% to {max(t)}% in every row)" in text
    wrong = [v[2] for v in rows.values()]
    assert f"`behind` in {differ[5][2]}% of them with 5 seeds (at most {max(wrong)}% in any row)" in text
    assert max(wrong) <= 5.5  # the verdict's false claims stay near the promised 5%


def test_loader_projection_quotes_both_files() -> None:
    head = "method backend loader/s per core step/s ratio modelled projected"
    here = {
        r[0]: float(r[7]) for r in _table(RESULTS / "cpu" / "bench_loader_512_projection.txt", head) if r[1] == "scipy"
    }
    recorded = {
        r[0]: float(r[5])
        for r in _table(
            RESULTS / "h100_2026-11-25" / "loader_512.txt", "method loader/s per core step/s ratio modelled"
        )
    }
    order = ("supercl", "macl", "pcl")
    quote = f"{' / '.join(f'{here[m]:.1f}' for m in order)}x against the recorded {' / '.join(f'{recorded[m]:.1f}' for m in order)}x"
    assert _page("performance.md").count(quote) == 2


def test_transfer_choice_quotes_its_bundle() -> None:
    """docs/finetuning.md and the README quote stage 3's bundle (transfer.csv, choice.json, transfer.png)."""
    bundle = RESULTS / "cpu" / "evidence_transfer"
    with open(bundle / "transfer.csv", newline="") as fh:
        best = {(r["dataset"], int(r["seed"]), r["arm"]): 100 * float(r["best_val"]) for r in csv.DictReader(fh)}
    choice = json.loads((bundle / "choice.json").read_text())
    assert choice["overall"] == "lpft"
    page, readme = _page("finetuning.md"), (REPO / "README.md").read_text()
    ahead, drops = 0, []
    for name, label in (("mscmrseg", "MS-CMRSeg"), ("chaos", "CHAOS"), ("hippocampus", "Hippocampus")):
        m = {a: np.mean([best[(name, s, a)] for s in range(3)]) for a in ("standard", "lpft", "lr0.1", "lpft_lr0.1")}
        gains = [best[(name, s, "lpft")] - best[(name, s, "standard")] for s in range(3)]
        ahead += sum(g > 0 for g in gains)
        drops += [m["standard"] - m["lr0.1"], m["standard"] - m["lpft_lr0.1"]]
        cells = " | ".join(f"{m[a]:.1f}" for a in ("standard", "lpft", "lr0.1", "lpft_lr0.1"))
        assert f"| {label} | {cells} | {' / '.join(f'{g:+.1f}' for g in gains)} |" in page, label
    gain = f"{100 * choice['gain_over_standard']['lpft']:+.2f} points"
    assert page.count(gain) == 2 and f"({ahead} of 9 seeds higher)" in page
    span = f"{min(drops):.1f} to {max(drops):.1f} points"
    assert span in page and span in " ".join(readme.split())
    quote = f"LP-FT differs from the standard fine-tuning by {gain.replace(' points', '')} DSC points"
    assert quote in " ".join(readme.split())
    assert "benchmarks/results/cpu/evidence_transfer/transfer.png" in readme
    figure = (REPO / "docs" / "figures" / "transfer_validation.png").read_bytes()
    assert figure == (bundle / "transfer.png").read_bytes()  # the docs' copy is the bundle's figure


def _core_hours(runs: list[dict]) -> float:
    """``run.json`` wall seconds (every attempt's, where the run recorded them) times torch threads, in hours."""
    return sum(r.get("wall_s_total", r["wall_s"]) * r["environment"]["torch_threads"] for r in runs) / 3600


def test_transfer_core_hours_quote_the_bundle_run_files() -> None:
    runs = [json.loads(p.read_text()) for p in (RESULTS / "cpu" / "evidence_transfer").glob("*/s*/*/run.json")]
    assert not any("wall_s_total" in r for r in runs)  # hence "the last attempt only"
    hours = _core_hours(runs)
    resumed = sum(r["started_at"] != r["attempt_started_at"] for r in runs)
    text = _page("finetuning.md")
    assert f"{len(runs)} runs, {hours:.1f} core-hours by their `run.json`" in text
    assert f"for the {resumed} runs resumed after a session's end, the last attempt only" in text


SUMMARY = RESULTS / "cpu" / "evidence_summary"
_EXACT = ("setting", "dataset", "labels", "method", "n_seeds", "pretrainings", "seed_diffs", "seeds_ahead", "verdict")


def _summary() -> list[dict[str, str]]:
    with open(SUMMARY / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _row(setting: str, method: str, dataset: str = "MS-CMRSeg") -> dict[str, str]:
    """The summary's one comparison of ``method`` with Scratch in ``setting`` on ``dataset``."""
    (row,) = [r for r in _summary() if (r["dataset"], r["setting"], r["method"]) == (dataset, setting, method)]
    return row


def _seed_diffs(row: dict[str, str]) -> list[float]:
    """A comparison's per-seed differences in DSC points (``seed_diffs``: ``s0:+1.2 s1:-0.3 ...``)."""
    return [float(d.split(":")[1]) for d in row["seed_diffs"].split()]


def test_the_shipped_evidence_summary_is_what_its_bundles_give(tmp_path: Path) -> None:
    """benchmarks/results/cpu/evidence_summary/summary.csv and table.md, recomputed from the bundles its
    provenance.json names (``benchmarks/evidence_summary.py``'s path through the library), row by row."""
    from medssl.reporting.family import ReadCache, family_comparisons, grid_settings, write_family

    shipped = _summary()
    prov = json.loads((SUMMARY / "provenance.json").read_text())  # the command that made it, and its grids
    grids = [REPO / g["path"] for g in prov["grids"]]
    assert prov["comparisons"] == len(shipped) and prov["command"].endswith(" ".join(g["path"] for g in prov["grids"]))
    read: ReadCache = {}
    files = write_family(family_comparisons([s for g in grids for s in grid_settings(g, read)], read), tmp_path)
    with open(files["csv"], newline="") as fh:
        fresh = list(csv.DictReader(fh))
    assert len(fresh) == len(shipped) >= 14
    assert files["table"].read_text() == (SUMMARY / "table.md").read_text()  # the README's table
    for got, row in zip(fresh, shipped):
        assert {k: str(got[k]) for k in _EXACT} == {k: row[k] for k in _EXACT}
        for k in ("method_dsc", "scratch_dsc", "mean_diff", "ci_low", "ci_high", "p_t_seeds", "p_holm_family"):
            assert float(got[k]) == pytest.approx(float(row[k]), abs=1e-5), (row["setting"], row["method"], k)


def _cell(row: dict[str, str]) -> str:
    """A comparison as the tables print it: mean difference and 95% interval, in DSC points."""
    return f"{float(row['mean_diff']):+.1f} [{float(row['ci_low']):+.1f}, {float(row['ci_high']):+.1f}]"


def _grid_runs(grid: str) -> list[dict]:
    """Every run.json of an evidence bundle, its variants' included."""
    root = RESULTS / "cpu" / grid
    return [json.loads(p.read_text()) for p in [*root.glob("*/*/run.json"), *root.glob("variants/*/*/*/run.json")]]


def test_readme_pay_off_table_quotes_the_evidence_summary() -> None:
    """The README's 'Does pre-training pay off?' table is the summary's table.md (a row per set and setting);
    the sentences around it quote summary.csv and the runs."""
    readme = (REPO / "README.md").read_text()
    text = " ".join(readme.split())
    rows = _summary()
    table = (SUMMARY / "table.md").read_text()
    assert table in readme and len(table.splitlines()) == 2 + len({(r["dataset"], r["setting"]) for r in rows})
    scratch = {r["setting"]: r["scratch_dsc"] for r in rows if r["dataset"] == "MS-CMRSeg"}
    assert {r["dataset"] for r in rows} == {"MS-CMRSeg", "CHAOS"}
    assert all(r["verdict"] == "inconclusive" for r in rows) and "so no comparison is decided" in text
    assert f"Holm-corrected over all {len(rows)} comparisons" in text
    assert f"the smallest corrected p is {min(float(r['p_holm_family']) for r in rows):.2f}" in text
    pcl = _row("standard, 150 steps", "PCL")
    assert pcl["seeds_ahead"] == pcl["n_seeds"] and f"but p {float(pcl['p_t_seeds']):.3f} before the correction" in text
    page = _page("results/evidence.md")
    assert f"p {float(pcl['p_t_seeds']):.3f} before the correction and {float(pcl['p_holm_family']):.2f} after" in page
    sc150, m150 = (_seed_diffs(_row("standard, 150 steps", m)) for m in ("SuperCL", "MACL"))
    assert f"fewer seeds at 150 steps ({sum(d > 0 for d in sc150)} and {sum(d > 0 for d in m150)};" in text
    assert f"MACL's seeds spread from {min(m150):+.1f} to {max(m150):+.1f})" in text
    sc500 = _seed_diffs(_row("standard, 500 steps", "SuperCL"))
    near = [abs(float(_row("standard, 500 steps", m)["mean_diff"])) for m in ("PCL", "MACL")]
    assert len(near) == 2 and max(near) < 1 and "the mean differences of PCL and MACL are within a point" in text
    assert f"SuperCL is below Scratch on {sum(d < 0 for d in sc500)} of 5 seeds (one seed {min(sc500):+.1f})" in text
    pcl500 = _row("standard + LP-FT 10%, 500 steps", "PCL")
    lowered = f"lowers PCL ({float(pcl500['mean_diff']):+.1f} at 500 steps, {pcl500['seeds_ahead']} of 5 seeds above)"
    assert lowered in text
    gap = float(scratch["standard, 500 steps"]) - float(scratch["paper, 750 steps"])
    paper = f"{float(scratch['paper, 750 steps']):.1f}"
    assert f"over a Scratch of {paper}, {gap:.0f} points below the `standard` recipe's Scratch at 500 steps" in text
    figure = "benchmarks/results/cpu/evidence_summary/forest.png"
    assert figure in readme and (REPO / figure).is_file()
    ms, ch = _grid_runs("evidence_mscmrseg"), _grid_runs("evidence_chaos")
    assert {r["environment"]["torch_threads"] for r in ms + ch} == {1}
    assert f"the grids' {len(ms) + len(ch)} runs" in text
    assert f"evidence_mscmrseg`, {len(ms)} runs, {_core_hours(ms):.1f} core-hours by their `run.json`" in text
    assert f"evidence_chaos`, {len(ch)} runs, {_core_hours(ch):.1f} core-hours;" in text
    assert f"{_core_hours(ms):.1f} core-hours by the runs' `run.json`" in _page("finetuning.md")


def _chaos_validation(method: str) -> list[float]:
    """CHAOS at 150 steps: ``method``'s validation Dice at each evaluation, the mean over the 5 seeds (a seed's
    first evaluation falls at step 50 or 52, the end of the first epoch past it)."""
    per_seed = []
    for p in sorted((RESULTS / "cpu" / "evidence_chaos" / "finetune").glob(f"{method}__chaos__10pct__s*/log.csv")):
        with open(p, newline="") as fh:
            per_seed.append([float(r["val_dice"]) for r in csv.DictReader(fh) if r["val_dice"]])
    assert len(per_seed) == 5 and len({len(v) for v in per_seed}) == 1
    return [float(x) for x in np.mean(per_seed, axis=0)]


def test_readme_pay_off_quotes_chaos_rows_and_curves() -> None:
    """CHAOS at 150 steps: MACL above Scratch on every seed, SuperCL below on every seed, their intervals and
    uncorrected p (summary.csv), and SuperCL's mean validation Dice behind Scratch's from the second evaluation
    on (the runs' log.csv)."""
    text = " ".join((REPO / "README.md").read_text().split())
    macl, macl_lpft, sc = (
        _row("standard, 150 steps", "MACL", "CHAOS"),
        _row("standard + LP-FT 10%, 150 steps", "MACL", "CHAOS"),
        _row("standard, 150 steps", "SuperCL", "CHAOS"),
    )
    assert min(_seed_diffs(macl)) > 0 and max(_seed_diffs(sc)) < 0
    assert float(macl["ci_low"]) > 0 and float(macl["p_holm_family"]) >= 0.05
    assert f"MACL is above Scratch on all 5 seeds, {_cell(macl)} (with LP-FT {_cell(macl_lpft)}, p" in text
    assert f"{float(macl_lpft['p_t_seeds']):.3f} before the correction)" in text
    after = f"(p {float(sc['p_t_seeds']):.3f} before the correction, {float(sc['p_holm_family']):.2f} after)"
    assert f"below Scratch on all 5 seeds, {_cell(sc)} {after}" in text
    val = {m: _chaos_validation(m) for m in ("supercl", "scratch")}
    assert val["supercl"][0] > val["scratch"][0] and all(a < b for a, b in zip(val["supercl"][1:], val["scratch"][1:]))
    assert "its validation Dice, averaged over seeds, behind Scratch's from step 100 on" in text
    macl_val = _chaos_validation("macl")
    assert all(a > b for a, b in zip(macl_val, val["scratch"]))  # docs/results/evidence.md: ahead at every one
    steps = {r["total_steps"] for r in _grid_runs("evidence_chaos") if r["kind"] == "finetune"}
    assert steps == {150} and "CHAOS was fine-tuned for 150 steps only" in text


def _diagnostics(grid: str) -> dict[str, dict[str, list[float]]]:
    """Per method, ``<metric>/<initial|final>`` over an evidence bundle's pre-trainings (diagnostics.json)."""
    got: dict[str, dict[str, list[float]]] = {}
    for p in sorted((RESULTS / "cpu" / grid / "pretrain").glob("*/diagnostics.json")):
        d = json.loads(p.read_text())
        per = got.setdefault(p.parent.name.split("__")[0], {})
        for when in ("initial", "final"):
            for k in ("knn_position_mae", "linear_probe_dice"):
                per.setdefault(f"{k}/{when}", []).append(float(d[when][k]))
    assert sorted(got) == ["macl", "pcl", "supercl"] and all(len(v) == 5 for m in got.values() for v in m.values())
    return got


def test_readme_pay_off_diagnostics_quote_the_pretraining_runs() -> None:
    """The README's ranges of the nearest-neighbour position error and the linear probe before and after
    pre-training are the min and max over each bundle's diagnostics.json files."""
    got, chaos = _diagnostics("evidence_mscmrseg"), _diagnostics("evidence_chaos")

    def span(key: str, methods: tuple[str, ...] = ("macl", "pcl", "supercl"), of: dict = got) -> str:
        return _range([x for m in methods for x in of[m][key]], 2)

    def down(method: str, of: dict = got) -> int:  # runs whose probe Dice fell
        return sum(
            a > b for a, b in zip(of[method]["linear_probe_dice/initial"], of[method]["linear_probe_dice/final"])
        )

    assert down("supercl") == down("macl") == 5  # docs/diagnostics.md: "falls after every SuperCL and MACL run"
    assert all(down(m, chaos) == 5 for m in chaos)
    for of in (got, chaos):  # docs/diagnostics.md: "the position error falls in every run"
        for m in of.values():
            assert all(b < a for a, b in zip(m["knn_position_mae/initial"], m["knn_position_mae/final"]))
    assert "(15 on MS-CMRSeg, 15 on CHAOS) show the same: the position error falls in every run" in " ".join(
        _page("diagnostics.md").split()
    )
    knn = f"{span('knn_position_mae/initial', of=chaos)} to {span('knn_position_mae/final', of=chaos)}"
    for text in (" ".join((REPO / "README.md").read_text().split()), _page("results/evidence.md")):
        assert f"position error from {span('knn_position_mae/initial')} to {span('knn_position_mae/final')}" in text
        assert f"CHAOS: from {knn})" in text and "and worse after all 15 pre-trainings on CHAOS" in text
        assert f"(MACL {span('linear_probe_dice/final', ('macl',))} Dice, lower on {down('macl')} of 5 seeds;" in text
        pcl = f"{span('linear_probe_dice/final', ('pcl',))}, from {span('linear_probe_dice/initial', ('pcl',))}"
        assert f"about as well after PCL ({pcl}, higher on {5 - down('pcl')} of 5)" in text
        sc = ("linear_probe_dice/initial", "linear_probe_dice/final")
        assert f"starts higher, from {span(sc[0], ('supercl',))} to {span(sc[1], ('supercl',))})" in text
        assert "every loss still falling over its second half" in text


def test_every_evidence_pretraining_loss_was_still_falling_over_its_second_half() -> None:
    """docs/results/evidence.md: the mean loss of each pre-training's last three epochs against that of the three
    at mid-run (``log.csv``), the range of the fall in percent over both grids' 30 pre-trainings."""
    falls = []
    for grid in ("evidence_mscmrseg", "evidence_chaos"):
        for p in sorted((RESULTS / "cpu" / grid / "pretrain").glob("*/log.csv")):
            with open(p, newline="") as fh:
                loss = [float(r["train_loss"]) for r in csv.DictReader(fh)]
            mid = float(np.mean(loss[len(loss) // 2 - 2 : len(loss) // 2 + 1]))
            falls.append(100 * (mid - float(np.mean(loss[-3:]))) / abs(mid))
    assert len(falls) == 30 and min(falls) > 0
    assert f"last three epochs {_range(falls, 1)}% below that of the three at mid-run" in _page("results/evidence.md")


def test_the_results_index_sets_the_pooled_grid_against_the_evidence() -> None:
    """docs/results/index.md's MACL at 150 steps: the 3-seed grid's pooled difference (its stats.csv)
    against the 5-seed evidence's mean difference and interval (summary.csv)."""
    with open(RESULTS / "cpu" / "cardiac_grid" / "finetune_150_steps" / "stats.csv", newline="") as fh:
        (old,) = [float(r["vs_scratch_mean_diff"]) for r in csv.DictReader(fh) if r["method"] == "MACL"]
    new = _row("standard, 150 steps", "MACL")
    cell = f"{float(new['mean_diff']):+.1f} [{float(new['ci_low']):+.1f}, {float(new['ci_high']):+.1f}]"
    assert f'MACL\'s "{old:+.1f} at 150 steps" there is {cell} DSC points' in _page("results/index.md")


def test_the_evidence_pages_advice_quotes_the_500_step_rows() -> None:
    best = max(float(r["mean_diff"]) for r in _summary() if r["setting"].endswith(", 500 steps"))
    assert f"no pre-trained method here was more than {best:.1f} DSC points above Scratch" in _page(
        "results/evidence.md"
    )


def test_the_evidence_pages_worst_seed_quotes_its_runs() -> None:
    """SuperCL's seed 4 at 500 steps against Scratch's: (patient, class) pairs below, validation Dice at
    the first evaluation and at best (metrics.csv, log.csv of the MS-CMRSeg bundle)."""
    ft = RESULTS / "cpu" / "evidence_mscmrseg" / "finetune"

    def rows(run: str, name: str) -> list[dict[str, str]]:
        with open(ft / f"{run}__mscmrseg__10pct__s4" / name, newline="") as fh:
            return list(csv.DictReader(fh))

    dsc = {
        m: {(r["case_id"], r["class_name"]): float(r["dsc"]) for r in rows(m, "metrics.csv")}
        for m in ("supercl", "scratch")
    }
    below = sum(dsc["supercl"][k] < dsc["scratch"][k] for k in dsc["scratch"])
    val = {m: [(int(r["step"]), float(r["val_dice"])) for r in rows(m, "log.csv") if r["val_dice"]] for m in dsc}
    (s0, a), (_, b) = val["supercl"][0], val["scratch"][0]
    assert val["supercl"][1][1] < val["scratch"][1][1]  # "fell behind by step 100"
    best = {m: max(v for _, v in val[m]) for m in val}
    text = _page("results/evidence.md")
    assert f"below Scratch's on {below} of {len(dsc['scratch'])} (patient, class) pairs" in text
    assert f"led Scratch's at step {s0} ({a:.2f} against {b:.2f}), fell behind by step {val['supercl'][1][0]}" in text
    assert f"peaked at {best['supercl']:.2f} against Scratch's {best['scratch']:.2f}" in text


def test_the_evidence_page_is_the_shipped_summary() -> None:
    """docs/results/evidence.md holds summary.md's table and legend line for line, and the docs' copy of
    the forest plot is the shipped one."""
    page = (REPO / "docs" / "results" / "evidence.md").read_text()
    shipped = [line for line in (SUMMARY / "summary.md").read_text().splitlines()[1:] if line.strip()]
    assert shipped[-1] == "![forest](forest.png)" and len(shipped) >= 16
    for line in shipped[:-1]:
        assert line in page.splitlines(), line[:60]
    assert (REPO / "docs" / "figures" / "evidence_forest.png").read_bytes() == (SUMMARY / "forest.png").read_bytes()


def test_the_default_for_init_is_what_default_json_says() -> None:
    """default.json (stage 6: DEFAULT_RULE on the grids' validation curves): its mean gain and interval as the
    README and docs/finetuning.md quote them, and the shipped default for ``--init`` the one it names."""
    from medssl.config import FinetuneConfig

    d = json.loads((SUMMARY / "default.json").read_text())
    assert len(d["gain_per_unit"]) == 10 and len(d["gain_per_cell"]) == 45
    mean, (lo, hi) = 100 * d["mean_gain"], (100 * x for x in d["ci95"])
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"({mean:+.2f} points per set and seed on average, 95% interval [{lo:+.2f}, {hi:+.2f}]" in readme
    assert f"{-mean:.2f} points below the standard fine-tuning's on average, 95% interval [{lo:+.2f}, {hi:+.2f}]" in (
        _page("finetuning.md")
    )
    assert d["default"] == "standard" == FinetuneConfig().transfer.schedule


def test_the_evidence_pages_reading_quotes_the_chaos_rows() -> None:
    """docs/results/evidence.md's 'Reading it': CHAOS's MACL and SuperCL rows at 150 steps, both fine-tunings,
    and PCL's seeds there (summary.csv); SuperCL's intervals never above 0; Scratch's validation still rising."""
    page = " ".join(_page("results/evidence.md").split())
    macl = [_row(s, "MACL", "CHAOS") for s in ("standard, 150 steps", "standard + LP-FT 10%, 150 steps")]
    assert all(float(r["ci_low"]) > 0 and r["seeds_ahead"] == "5" for r in macl)
    p_t, p_holm = (
        " and ".join(f"{float(r[k]):.{d}f}" for r in macl) for k, d in (("p_t_seeds", 3), ("p_holm_family", 2))
    )
    assert f"The t-tests give p {p_t} before the correction, {p_holm} after." in page
    sc = _row("standard, 150 steps", "SuperCL", "CHAOS")
    low, high = f"{float(sc['ci_low']):.1f}", f"{float(sc['ci_high']):.1f}"
    assert f"below Scratch on all 5 seeds ({float(sc['mean_diff']):.1f}, interval {low} to {high})" in page
    assert f"(p {float(sc['p_t_seeds']):.3f} before the correction, {float(sc['p_holm_family']):.2f} after)" in page
    assert max(float(r["ci_low"]) for r in _summary() if r["method"] == "SuperCL") < 0
    pcl = _row("standard, 150 steps", "PCL", "CHAOS")
    assert f"on CHAOS it is above on {pcl['seeds_ahead']} of 5" in page
    scratch = _chaos_validation("scratch")
    assert scratch == sorted(scratch) and "Scratch's validation Dice is still rising at step 150" in page


def test_the_evidence_grids_compute_of_epochs_and_rates_quote_their_bundles() -> None:
    """docs/finetuning.md: each grid's core-hours of epochs (``log.csv`` seconds x threads, what
    ``run_evidence.sh status`` sums) and the median seconds per step of each kind of run, from the bundles."""
    from medssl.grid_status import run_progress

    text = " ".join(_page("finetuning.md").split())
    quoted = {
        "evidence_mscmrseg": "{h} core-hours of epochs for the whole grid",
        "evidence_chaos": "{h} core-hours of epochs, 9.5 by the runs' `run.json`",
    }
    for grid, sentence in quoted.items():
        root = RESULTS / "cpu" / grid
        pre = [(p.name.split("__")[0], run_progress(p, None)) for p in sorted((root / "pretrain").iterdir())]
        fine = [run_progress(p, None) for p in [*(root / "finetune").iterdir(), *root.glob("variants/*/finetune/*")]]
        assert len(pre) == 15 and all(r.state == "done" for _, r in pre) and all(r.state == "done" for r in fine)
        hours = sum(r.seconds * r.threads for r in [*(r for _, r in pre), *fine]) / 3600
        digits = 1 if grid == "evidence_mscmrseg" else 2
        assert sentence.format(h=f"{hours:.{digits}f}") in text, grid

        def rate(runs: list) -> str:
            return f"{float(np.median([x for r in runs for x in r.epoch_rates])):.2f}"

        pcl, sc, macl = (rate([r for m, r in pre if m == k]) for k in ("pcl", "supercl", "macl"))
        if grid == "evidence_chaos":
            want = f"PCL {pcl}, SuperCL {sc} and MACL {macl} s per pre-training step, fine-tuning {rate(fine)}"
        else:
            want = f"{pcl} s per step for PCL, {sc} s for SuperCL and {macl} s for MACL"
            assert f"its fine-tunings at {rate(fine)} s per step" in text
        assert want in text, grid
    assert f"{_core_hours(_grid_runs('evidence_chaos')):.1f} by the runs' `run.json`" in text

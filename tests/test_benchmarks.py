"""The benchmark scripts run, at tiny sizes, and print the columns their results files quote.

Speed is not asserted here (no timed unit tests); what is checked is that each script still works
end to end and that the values it prints that are not timings hold: metric values identical to
medpy, operation counts, the variants listed.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, shared_data_dir


def _run(script: str, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()


def _row(lines: list[str], first: str, second: str | None = None) -> list[str]:
    for line in lines:
        cols = line.split()
        if cols and cols[0] == first and (second is None or (len(cols) > 1 and cols[1] == second)):
            return cols
    raise AssertionError(f"no row {first} {second or ''} in:\n" + "\n".join(lines))


def _half_unit(text: str) -> float:
    """Half a unit of the last digit of a printed number ("0.11" -> 0.005)."""
    return 0.5 * 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)


def _ratio_of_printed(num: str, den: str, ratio: str) -> bool:
    """Whether the printed ``ratio`` is ``num / den`` of the unrounded values: it must lie in the
    interval that the printed (rounded) numbers allow, widened by its own rounding. Timings of tiny
    runs print with few digits, so a fixed relative tolerance fails on rounding alone."""
    n, d, r = float(num), float(den), float(ratio)
    dn, dd, dr = _half_unit(num), _half_unit(den), _half_unit(ratio)
    return (n - dn) / (d + dd) - dr <= r <= (n + dn) / max(d - dd, 1e-12) + dr


def test_bench_step_ratio_and_operation_counts():
    out = _run(
        "bench_step.py",
        "--methods",
        "simclr,dira",
        "--size",
        "64",
        "--batch",
        "2",
        "--width",
        "4",
        "--reps",
        "1",
        "--count-ops",
    )
    for name in ("simclr", "dira"):
        cols = _row(out, name)
        step_ms, bare_ms, _ratio = map(float, cols[1:4])
        assert step_ms > 0 and bare_ms > 0
        # the printed ratio is step / bare before rounding: it lies in the interval the rounded
        # printed times allow (half a unit of their last printed digit), widened by its own rounding
        assert _ratio_of_printed(cols[1], cols[2], cols[3])
        n_step, n_bare, extra = map(int, cols[6:9])
        # the loss adds work on top of the same network passes; counted from the same random state
        assert n_bare > 100 and n_step > n_bare and extra == n_step - n_bare


def test_bench_views_prints_every_variant():
    out = _run("bench_views.py", "--sizes", "32", "--n", "2", "--repeats", "1")
    cols = _row(out, "32")
    assert len(cols) == 15 and all(math.isfinite(float(c)) and float(c) > 0 for c in cols[1:])


def test_bench_loader_all_variants_and_projection():
    out = _run(
        "bench_loader.py",
        "--size",
        "64",
        "--batch",
        "2",
        "--batches",
        "1",
        "--workers",
        "0",
        "--methods",
        "pcl",
        "--backend",
        "all",
        "--width",
        "4",
        "--project",
        "pcl=100",
        "--project-cores",
        "4",
        "--project-scipy",
        "pcl=10",
    )
    for variant in ("scipy", "torch", "torch-lattice"):
        cols = _row(out, "pcl", variant)
        loader, _per_core, step, _ratio = map(float, cols[2:6])
        assert loader > 0 and step > 0 and _ratio_of_printed(cols[2], cols[4], cols[5])
    # the scipy row projects the recorded scipy rate itself: 10 per core x 4 cores / 100
    assert float(_row(out, "pcl", "scipy")[-1]) == pytest.approx(0.4, abs=0.05)


def test_bench_loader_rejects_an_unknown_variant():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_loader.py"), "--backend", "cv2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown --backend variant" in proc.stderr


def test_bench_metrics_values_identical_to_medpy():
    data = shared_data_dir()
    args = ["--chaos", "0", "--synthetic-size", "32", "--dice-repeats", "1"]
    args += ["--data", str(data), "--hippocampus", "1"] if data else ["--hippocampus", "0"]
    out = _run("bench_metrics.py", *args)
    summary = next(line for line in out if line.startswith("metrics speed-up vs medpy"))
    assert "max |diff| 0.0e+00" in summary


def test_bench_boundary_medssl_equals_surface_distance():
    pytest.importorskip("surface_distance")
    data = shared_data_dir()
    if data is None:
        pytest.skip("needs ../shared/data (real label volumes)")
    out = _run("bench_boundary.py", "--data", str(data), "--cardiac", "0", "--chaos", "0", "--hippocampus", "1")
    same = next(line for line in out if line.startswith("max |medssl - surface-distance|"))
    assert float(same.rsplit(":", 1)[1]) < 1e-6
    assert any(line.startswith("speed-up of medssl standard (with NSD)") for line in out)
    assert _row(out, "medssl")[1:] == _row(out, "surface-distance")[1:]  # the same differences from the reference


def test_bench_superpixels_cache_path():
    out = _run("bench_superpixels.py", "--sizes", "64", "--samples", "2", "--slices", "2")
    ref = next(line for line in out if "reference: SLIC" in line)
    cache = next(line for line in out if "cache: mmap read" in line)
    assert float(ref.split()[-2]) > 0 and float(cache.split()[-2]) > 0


def test_bench_amp_variants():
    out = _run(
        "bench_amp.py", "--methods", "finetune,simclr", "--size", "32", "--batch", "2", "--width", "4", "--reps", "1"
    )
    assert out[0].startswith("device cpu") and "train.amp=auto here:" in out[0]
    for name in ("finetune", "simclr"):
        cols = _row(out, name)
        ms = list(map(float, cols[1:5]))
        assert all(t > 0 for t in ms)
        assert all(_ratio_of_printed(cols[1], cols[2 + i], cols[5 + i]) for i in range(3))


def test_finetune_recipes_and_yardstick_on_a_tiny_store(tmp_path):
    """The recipes benchmark end to end at a tiny size: both medssl recipes, the control arm and the
    plain-loop yardstick run on one seeded split, and the table, CSV and figure come out."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import finetune_recipes as fr

    from medssl.data.store import prepare

    store = tmp_path / "prepared" / "synthetic"
    prepare(
        "synthetic",
        "builtin",
        store,
        target_spacing=None,
        progress=False,
        reader_options={"n_patients": 8, "frames": 1, "slices": 4, "size": 32, "seed": 0},
    )
    run = tmp_path / "synthetic" / "s0"
    split = fr.split_file(store, "2", 0, run / "split.json")
    assert len(split["train"]) == 2 and split["test"] and split["val"]
    args = fr.argparse.Namespace(size=32, labels="2", steps=4, batch=2, workers=0, width=4, val_every=2, control=True)
    cmds = fr.commands("hippocampus", store, run / "split.json", run, args, 0)
    assert set(cmds) == {"paper", "standard", "control", "yardstick"}
    assert "--recipe" in cmds["paper"] and cmds["paper"][cmds["paper"].index("--recipe") + 1] == "paper"
    fr.run_jobs([(name, cmd, run / f"{name}.log") for name, cmd in cmds.items()], 2)
    for name in ("paper", "standard", "control"):
        assert (run / name / "summary.json").is_file(), (run / f"{name}.log").read_text()[-1500:]
    ys = json.loads((run / "yardstick.json").read_text())
    assert [s for s, _ in ys["curve"]] == [2, 4] and 0.0 <= ys["test_dice"] <= 1.0
    rows = fr.collect(tmp_path, ["synthetic"], [0])
    assert {r["recipe"] for r in rows} == {"paper", "standard", "control", "yardstick"}
    for r in rows:
        assert 0.0 <= r["test_dice"] <= 1.0 and r["curve"], r
    fr.write_outputs(rows, tmp_path)
    table = (tmp_path / "recipes.md").read_text()
    assert "| synthetic | standard |" in table and "| synthetic | yardstick |" in table
    assert (tmp_path / "recipes.png").stat().st_size > 1000


def test_yardstick_volume_dice_known_values():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import numpy as np
    from yardstick import volume_dice

    lab = np.zeros((2, 4, 4), np.int64)
    lab[0, :2, :2] = 1  # class 1: 4 voxels
    lab[1, 2:, 2:] = 2  # class 2: 4 voxels
    pred = lab.copy()
    pred[1, 2, 2] = 0  # class 2: 3 of 4 found
    assert math.isclose(volume_dice(pred, lab, 3), (1.0 + 6 / 7) / 2)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from medssl.data.store import prepare

    store = tmp_path_factory.mktemp("bench") / "prepared"
    prepare(
        "synthetic",
        "builtin",
        store,
        target_spacing=None,
        progress=False,
        reader_options={"n_patients": 8, "frames": 1, "slices": 4, "size": 64, "seed": 0},
    )
    return store


def test_ilcp_geometry_reference_vs_default(tiny_store):
    lines = _run("ilcp_geometry.py", "--data", str(tiny_store), "--sizes", "64", "--cases", "3")
    rows = [ln for ln in lines if ln.startswith("| 64 |")]
    assert rows, lines
    tokens = {(c := [x.strip() for x in r.split("|")])[2]: int(c[4]) for r in rows}
    # the reference's raster stride keeps 1 token of a 4 x 4 bottleneck; the default keeps them all
    assert any(t == 1 for g, t in tokens.items() if g.startswith("reference")), rows
    assert any(t == 16 for g, t in tokens.items() if g == "default"), rows


def test_superpixel_mode_tiny(tiny_store, tmp_path):
    lines = _run(
        "superpixel_mode.py",
        "--data",
        str(tiny_store),
        "--out",
        str(tmp_path),
        "--steps",
        "2",
        "--size",
        "32",
        "--batch",
        "4",
        "--width",
        "4",
        "--workers",
        "0",
        "--labels",
        "2",
        "--finetune-seeds",
        "0",
        "--finetune-steps",
        "2",
    )
    table = (tmp_path / "superpixel_mode.md").read_text()
    assert "| online |" in table and "| cache |" in table, lines


def test_gpu_throughput_levers_on_cpu():
    lines = _run(
        "gpu_throughput.py",
        "--size",
        "32",
        "--batch",
        "2",
        "--width",
        "4",
        "--reps",
        "1",
        "--warmup",
        "0",
        "--variants",
        "fp32,bf16,bf16+cl",
        "--methods",
        "supercl,macl",
        "--batches",
        "2",
        "4",
    )
    for name in ("supercl", "macl"):
        base = _row(lines, name, "fp32")
        assert base[4] == "1.00" and base[-1] == "1.00000"  # fp32 against itself
        cl = _row(lines, name, "bf16+cl")
        assert 0.5 < float(cl[-1]) <= 1.0  # cosine with the fp32 gradient
        assert any(ln.startswith(f"{name}: fastest") for ln in lines)
        assert sum(1 for ln in lines if ln.startswith(name) and " batch " in ln) == 2


def test_supercl_ablation_tiny(tiny_store, tmp_path):
    bundle = tmp_path.parent / f"{tmp_path.name}_bundle"
    lines = _run(
        "supercl_ablation.py",
        "--data",
        str(tiny_store),
        "--out",
        str(tmp_path),
        "--bundle",
        str(bundle),
        "--steps",
        "2",
        "--size",
        "32",
        "--batch",
        "4",
        "--width",
        "4",
        "--workers",
        "0",
        "--variants",
        "default",
        "ins_only",
    )
    table = (tmp_path / "supercl_ablation.md").read_text()
    assert "| default | 1 | 0.5 |" in table and "| ins_only | 0 | 0 |" in table, lines
    # the weights reached the method: the resolved configuration of each run records them
    cfg = (tmp_path / "ins_only" / "config.yaml").read_text()
    assert "w_intra: 0.0" in cfg and "w_inter: 0.0" in cfg, cfg
    assert (tmp_path / "supercl_ablation.png").stat().st_size > 0
    # the bundle holds the runs' provenance, no checkpoint, and gives the same table from its files alone
    from medssl.reporting.bundle import verify_bundle

    assert verify_bundle(bundle) == [] and not list(bundle.rglob("*.pt"))
    assert (bundle / "ins_only" / "diagnostics.json").is_file()
    assert (bundle / "supercl_ablation.md").read_text() == table
    (bundle / "supercl_ablation.md").unlink()
    _run("supercl_ablation.py", "--report-only", "--out", str(bundle), "--variants", "default", "ins_only")
    assert (bundle / "supercl_ablation.md").read_text() == table


def test_finetune_budget_reruns_a_grid_cell_with_only_the_steps_changed(tiny_store, tmp_path):
    import yaml

    cell = tmp_path / "grid" / "finetune" / "scratch__synthetic__2__s0"
    proc = subprocess.run(
        [
            "medssl",
            "finetune",
            "--data",
            str(tiny_store),
            "--out",
            str(cell),
            "--labels",
            "2",
            "--max-steps",
            "2",
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--no-progress",
            "--set",
            "model.base_width=4",
            "--init",
            "none",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = _run(
        "finetune_budget.py", "--grid", str(tmp_path / "grid"), "--out", str(tmp_path / "budget"), "--steps", "3"
    )
    assert any(ln.startswith("3 steps: 1 cells") for ln in lines), lines
    new = tmp_path / "budget" / "steps3" / "finetune" / cell.name
    before = yaml.safe_load((cell / "config.yaml").read_text())
    after = yaml.safe_load((new / "config.yaml").read_text())
    assert after["train"].pop("max_steps") == 3 and before["train"].pop("max_steps") == 2
    assert after.pop("out") == str(new) and before.pop("out") == str(cell)
    assert after == before
    assert json.loads((new / "run.json").read_text())["status"] == "done"
    assert (tmp_path / "budget" / "steps3" / "report" / "results.md").is_file()
    # the class confusion of the same cell: every ground-truth row's fractions sum to 100 %
    _run("class_confusion.py", "--grid", str(tmp_path / "grid"), "--out", str(tmp_path / "conf"))
    with open(tmp_path / "conf" / "confusion.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["method"] == "Scratch" and r["seeds"] == "1" for r in rows)
    for r in rows:
        fr = [float(v) for k, v in r.items() if k.startswith("as_") and v != "nan"]
        assert not fr or math.isclose(sum(fr), 1.0, abs_tol=1e-3), r


def test_class_confusion_known_counts(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("class_confusion", REPO / "benchmarks" / "class_confusion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "p").mkdir()
    (tmp_path / "l").mkdir()
    gt = np.array([[0, 1, 1, 2], [2, 2, 0, 0]])
    pred = np.array([[0, 1, 0, 1], [2, 2, 0, 1]])
    np.save(tmp_path / "p" / "a.npy", pred)
    np.save(tmp_path / "l" / "a.npy", gt)
    counts = mod.run_confusion(tmp_path / "p", tmp_path / "l", ["a"], 4)
    want = np.zeros((4, 4), int)
    want[0] = [2, 1, 0, 0]  # background: 2 right, 1 as class 1
    want[1] = [1, 1, 0, 0]  # class 1: half missed
    want[2] = [0, 1, 2, 0]  # class 2: one taken for class 1
    np.testing.assert_array_equal(counts, want)
    frac = mod.row_fractions(counts)
    np.testing.assert_allclose(frac[2], [0, 1 / 3, 2 / 3, 0])
    assert np.isnan(frac[3]).all()  # class 3 absent: no fraction


def test_bootstrap_coverage_null_shares():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bootstrap_coverage", REPO / "benchmarks" / "bootstrap_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    boot, t, wrong = mod.coverage(5, 7, 3.0, 5.0, reps=60, n_boot=300, rng=np.random.default_rng(0))
    assert 0.8 <= boot <= 1.0 and 0.85 <= t <= 1.0  # null comparisons: intervals and tests mostly hold 0
    assert wrong <= 1.0 - t + 1e-12  # a verdict needs the t-test's p < 0.05 as well
    # no spread at all: every interval is [0, 0] and every p is 1
    boot, t, wrong = mod.coverage(3, 4, 0.0, 0.0, reps=5, n_boot=50, rng=np.random.default_rng(0))
    assert (boot, t, wrong) == (1.0, 1.0, 0.0)

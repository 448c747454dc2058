"""``medssl demo``: the whole pipeline on built-in synthetic data in a few minutes on a CPU.

Prepares synthetic phantoms, pre-trains SuperCL and MACL briefly, fine-tunes Scratch, SuperCL and
MACL on two labelled patients with the default recipe, evaluates them, and prints the report, the
paths of the figures (the pre-training diagnostics among them) and :func:`demo_story`: what the
numbers of this very run show, and how far they can be trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

__all__ = ["demo_config_path", "demo_story", "run_demo", "segment_new_phantoms"]

#: the generator seed of the phantoms segmented at the end (the grid's phantoms use seed 0)
NEW_PHANTOM_SEED = 1000


def demo_config_path() -> Path:
    return Path(str(resources.files("medssl.configs").joinpath("demo.yaml")))


def run_demo(
    out: str | Path = "medssl_demo",
    quick: bool = False,
    log_fn: Callable[[str], None] | None = None,
    device: str = "auto",
) -> Path:
    """Run the demo grid into ``out`` and print its report.

    Args:
        out: output folder (rerunning resumes and skips what is finished).
        quick: a much shorter run (used by the tests).
        log_fn: where messages go.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The report folder.
    """
    from .benchmark import run_benchmark
    from .reporting.report import report

    say = log_fn or print
    overrides = [f"pretrain.train.device={device}", f"finetune.train.device={device}"]
    if quick:
        overrides += [
            "pretrain.train.epochs=1",
            "pretrain.train.max_steps=3",
            "finetune.train.epochs=1",
            "finetune.train.max_steps=4",
            "datasets=[{name: synthetic, dataset: synthetic, src: builtin, prepare: {reader_options: {n_patients: 6, frames: 1, slices: 6, size: 32, seed: 0}}}]",
            "pretrain.data.image_size=32",
            "finetune.data.image_size=32",
            "pretrain.data.batch_size=4",
            "pretrain.model.base_width=4",
            "finetune.model.base_width=4",
        ]
    say(run_benchmark(demo_config_path(), out, overrides=overrides, log_fn=say, report=False))
    rep = report(Path(out))
    say(getattr(rep, "markdown", str(rep)))
    out_dir = Path(getattr(rep, "out_dir", Path(out) / "report"))
    figs = sorted((out_dir / "figures").glob("*.png")) if (out_dir / "figures").is_dir() else []
    for f in figs:
        say(f"figure: {f}")
    say(demo_story(Path(out)))
    segment_new_phantoms(Path(out), say, device)
    return out_dir


def _demo_run(root: Path) -> Path | None:
    """A finished fine-tuning run of the demo (SuperCL's if there is one), or None."""
    import json

    runs = []
    for info in sorted(root.rglob("run.json")):
        doc = json.loads(info.read_text())
        if doc.get("kind") == "finetune" and doc.get("status") == "done":
            runs.append((doc.get("method") != "supercl", str(info.parent)))
    return Path(min(runs)[1]) if runs else None


def segment_new_phantoms(root: Path, say: Callable[[str], None], device: str = "auto", n: int = 3) -> Path | None:
    """The last step of the demo: ``medssl predict`` on ``n`` phantoms that no run trained on.

    The phantoms come from another generator seed than the grid's, are written as NIfTI files
    (``root/new_phantoms/images``), and a fine-tuned run of the demo segments them into
    ``root/new_phantoms/segmentations`` (label maps in each file's own geometry).

    Returns:
        The folder of the label maps (None when the demo has no finished fine-tuning run).
    """
    from .data.store import SliceStore
    from .data.synthetic import generate_cases, write_nifti_folder
    from .evaluation.evaluate import evaluate_folders
    from .inference import Segmenter, predict_inputs

    run = _demo_run(root)
    if run is None:
        return None
    seg = Segmenter.from_run(run, device=device)
    d, h, _ = SliceStore(seg.specs[0].store).cases[0].shape
    cases = generate_cases(n_patients=n, frames=1, slices=d, size=h, seed=NEW_PHANTOM_SEED)
    src = write_nifti_folder(root / "new_phantoms", cases)
    res = predict_inputs(seg, src / "images", src / "segmentations", progress=False)
    dsc = evaluate_folders(src / "segmentations", src / "labels", class_names=seg.class_names).summary[-1]["dsc_mean"]
    say(
        f"\nSegmented {res.predicted + res.skipped} new phantoms (never trained on) with `medssl predict {run} "
        f"{src / 'images'} {src / 'segmentations'}`: mean DSC {100 * dsc:.1f}% against their labels."
    )
    say(f"label maps: {src / 'segmentations'} (class names in classes.json)")
    return src / "segmentations"


def demo_story(root: str | Path) -> str:
    """What a finished demo (or any benchmark folder) shows, written from its own numbers.

    For every pre-trained method: its DSC against Scratch with the paired Wilcoxon test over the
    test volumes, a verdict that follows from the test (better / not distinguishable / worse at
    p < 0.05), and how its representation diagnostics moved from the random initialisation.

    Args:
        root: the benchmark folder.

    Returns:
        A few lines of text.
    """
    import json

    from .reporting.stats import compare_methods
    from .reporting.tables import collect_runs, method_display_name

    coll = collect_runs(Path(root))
    rows = compare_methods(coll.runs)
    lines = ["", "What this run shows:"]
    scratch = {(r.dataset, r.labels): r.mean_dsc for r in rows if r.method == "scratch"}
    for r in rows:
        name = method_display_name(r.method)
        if r.method == "scratch":
            lines.append(f"- {name}: DSC {r.mean_dsc:.1f}% ({r.dataset}, {r.labels} labelled, {r.n_seeds} seed(s)).")
            continue
        t = r.vs_scratch
        if t is None or scratch.get((r.dataset, r.labels)) is None:
            lines.append(f"- {name}: DSC {r.mean_dsc:.1f}% (no Scratch run to compare with).")
            continue
        tested = t.p_value == t.p_value
        p_ok = tested and t.p_value < 0.05
        verdict = (
            "better than Scratch"
            if p_ok and t.mean_diff > 0
            else "worse than Scratch"
            if p_ok and t.mean_diff < 0
            else "not distinguishable from Scratch"
            if tested
            else "no conclusion possible"
        )
        p_txt = f"p = {t.p_value:.2g}" if t.p_value == t.p_value else (t.note or "no test")
        lines.append(
            f"- {name}: DSC {r.mean_dsc:.1f}%, {t.mean_diff:+.1f} points vs Scratch "
            f"(paired Wilcoxon over {t.n_pairs} test volumes, {p_txt}): {verdict}."
        )
        for pre in coll.pretrain:
            diag = pre.path / "diagnostics.json"
            if pre.method == r.method and pre.dataset.lower() == r.dataset.lower() and diag.is_file():
                d = json.loads(diag.read_text())
                moved = [
                    f"{label} {d['initial'][k]:.2f} -> {d['final'][k]:.2f}"
                    for k, label in (
                        ("linear_probe_dice", "linear-probe Dice"),
                        ("knn_position_mae", "k-NN position error"),
                    )
                    if k in d.get("initial", {}) and k in d.get("final", {})
                ]
                if moved:
                    lines.append(
                        f"  its pre-training moved the diagnostics from the random encoder's: {', '.join(moved)}."
                    )
    lines.append(
        "One seed on synthetic phantoms after a short pre-training: a check that the whole pipeline works and "
        "how to read it, not evidence about the methods; the README's grids on real MRI (MS-CMRSeg, CHAOS, "
        "3 seeds, paired tests) are."
    )
    return "\n".join(lines)

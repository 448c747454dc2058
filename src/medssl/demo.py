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
from typing import Any

from .errors import DataError

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
    if Path(out).exists() and not Path(out).is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for the demo's runs and report (--out)")
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

    For every pre-trained method: its DSC against Scratch, the seed-level verdict of the report
    (:mod:`medssl.reporting.replicates`: "ahead" / "behind" only when the bootstrap interval excludes 0
    and the Holm-corrected p < 0.05, which one seed never gives), the case-level Wilcoxon test as a
    secondary number, and how its representation diagnostics moved from the random initialisation.

    Args:
        root: the benchmark folder.

    Returns:
        A few lines of text.
    """
    from .reporting.replicates import seed_comparisons
    from .reporting.tables import collect_runs

    coll = collect_runs(Path(root))
    verdicts = {(c.dataset, c.labels, c.method): c for c in seed_comparisons(coll.runs) if c.other == "scratch"}
    lines = ["", "What this run shows:"]
    for r in _story_rows(coll.runs):
        lines += _story_lines(r, verdicts.get((r.dataset, r.labels, r.method)), coll.pretrain)
    lines.append(
        "One seed on synthetic phantoms after a short pre-training: a check that the whole pipeline works and "
        "how to read it, not evidence about the methods; the documentation's results pages say what several "
        "seeds on real MRI (MS-CMRSeg, CHAOS) show."
    )
    return "\n".join(lines)


def _story_rows(runs: Any) -> list[Any]:
    """One row per (method, group) with its mean DSC and its case-level test against Scratch."""
    from .reporting.stats import compare_methods

    return list(compare_methods(runs))


def _story_lines(r: Any, seed_cmp: Any, pretrain: Any) -> list[str]:
    """The lines of one method: DSC, the difference to Scratch with its verdict, the diagnostics."""
    from .reporting.tables import method_display_name

    name = method_display_name(r.method)
    if r.method == "scratch":
        return [f"- {name}: DSC {r.mean_dsc:.1f}% ({r.dataset}, {r.labels} labelled, {r.n_seeds} seed(s))."]
    t = r.vs_scratch
    if t is None:
        return [f"- {name}: DSC {r.mean_dsc:.1f}% (no Scratch run to compare with)."]
    verdict = _story_verdict(seed_cmp)
    p_txt = f"p = {t.p_value:.2g}" if t.p_value == t.p_value else (t.note or "no test")
    lines = [
        f"- {name}: DSC {r.mean_dsc:.1f}%, {t.mean_diff:+.1f} points vs Scratch: {verdict} "
        f"(secondary: paired Wilcoxon over {t.n_pairs} test volumes pooled over seeds, {p_txt})."
    ]
    return lines + _diagnostics_lines(r, pretrain)


def _story_verdict(seed_cmp: Any) -> str:
    """The seed-level verdict in words (one seed gives no interval, hence no conclusion)."""
    if seed_cmp is None or len(seed_cmp.seeds) < 2:
        return "no conclusion possible from one seed"
    if seed_cmp.verdict == "ahead":
        return f"ahead of Scratch (95% interval {seed_cmp.ci_low:+.1f} to {seed_cmp.ci_high:+.1f}, Holm p {seed_cmp.p_holm:.2g})"
    if seed_cmp.verdict == "behind":
        return f"behind Scratch (95% interval {seed_cmp.ci_low:+.1f} to {seed_cmp.ci_high:+.1f}, Holm p {seed_cmp.p_holm:.2g})"
    return f"inconclusive over {len(seed_cmp.seeds)} seeds (95% interval {seed_cmp.ci_low:+.1f} to {seed_cmp.ci_high:+.1f})"


def _diagnostics_lines(r: Any, pretrain: Any) -> list[str]:
    """How the method's pre-training moved the representation diagnostics (``diagnostics.json``)."""
    import json

    out: list[str] = []
    for pre in pretrain:
        diag = pre.path / "diagnostics.json"
        if pre.method != r.method or pre.dataset.lower() != r.dataset.lower() or not diag.is_file():
            continue
        d = json.loads(diag.read_text())
        moved = [
            f"{label} {d['initial'][k]:.2f} -> {d['final'][k]:.2f}"
            for k, label in (("linear_probe_dice", "linear-probe Dice"), ("knn_position_mae", "k-NN position error"))
            if k in d.get("initial", {}) and k in d.get("final", {})
        ]
        if moved:
            out.append(f"  its pre-training moved the diagnostics from the random encoder's: {', '.join(moved)}.")
    return out

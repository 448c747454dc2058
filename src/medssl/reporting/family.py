"""One family of comparisons across several result folders: where pre-training pays and where not.

A grid's report (:func:`~medssl.reporting.report.report`) compares methods inside one folder and
corrects its p-values over that folder. A question such as "does pre-training pay off on MS-CMRSeg
and CHAOS, at 150 or 500 fine-tuning steps, with the standard, the papers' or a transfer-minded
fine-tuning?" spans several folders (a grid, its variants, another grid): asked of all of them at
once, the p-values must be corrected over all of them, or the chance of a false "ahead" grows with
every folder looked at. This module takes a list of :class:`Setting` (a label and a folder of runs),
compares every pre-trained method with Scratch per seed in each (:func:`~medssl.reporting.replicates.compare_pair`:
per-seed differences, hierarchical-bootstrap interval, t-test over seeds), and applies Holm's
correction over the whole family. The verdict rule is the report's: ``ahead`` / ``behind`` only
when the interval excludes 0 and the family-corrected p < 0.05.

A setting may take its Scratch runs from another folder (``scratch``): a grid variant that only
changes how pre-trained weights are fine-tuned (a learning-rate scale, LP-FT) leaves Scratch, which
has no pre-trained weights, exactly as it is, so the variant need not train Scratch again. Scratch
and the method are paired by seed (same split, same fine-tuning seed) and by the test cases both
scored; a seed whose two runs scored different cases is named in the notes.

Example::

    rows = family_comparisons([
        Setting("MS-CMRSeg, standard, 500 steps", Path("bundle")),
        Setting("MS-CMRSeg, LP-FT, 500 steps", Path("bundle/variants/transfer500"), scratch=Path("bundle")),
    ])
    write_family(rows, Path("summary"))   # summary.md / .csv / .tex, forest.png
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import DataError
from ..utils.files import atomic_write_text
from .replicates import (
    N_BOOT,
    SeedComparison,
    compare_pair,
    csv_number,
    format_p,
    holm,
    min_sign_flip_p,
    verdict,
)
from .stats import case_dsc
from .tables import (
    RunCollection,
    RunRecord,
    collect_runs,
    latex_escape,
    method_display_name,
    method_sort_key,
    run_metric_value,
    write_csv,
)

__all__ = [
    "FAMILY_FIELDS",
    "FamilyRow",
    "ReadCache",
    "Setting",
    "check_distinct_grids",
    "family_comparisons",
    "family_markdown",
    "family_table",
    "family_text",
    "finetune_label",
    "grid_settings",
    "grid_warnings",
    "plot_forest",
    "write_family",
]

SCRATCH = "scratch"


@dataclass(frozen=True)
class Setting:
    """A folder of fine-tuning runs under one label.

    Attributes:
        label: what the folder's runs share, as a reader should see it ("standard, 500 steps").
        folder: a benchmark folder, a grid variant's folder or a results bundle (its ``report/`` and
            ``variants/`` are not searched).
        scratch: where the Scratch runs come from when not from ``folder`` (None: ``folder``).
    """

    label: str
    folder: Path
    scratch: Path | None = None


@dataclass
class FamilyRow:
    """One method against Scratch in one setting and group, corrected over the family.

    Attributes:
        setting: the :class:`Setting` label.
        cmp: the seed-level comparison; its ``p_holm`` and ``verdict`` are the family's.
        method_dsc, scratch_dsc: mean over seeds of each run's mean test DSC (points).
        scratch_from: the folder Scratch came from when not the setting's own.
    """

    setting: str
    cmp: SeedComparison
    method_dsc: float
    scratch_dsc: float
    scratch_from: str = ""


#: the run collections already read, by folder: one read of each folder where a caller shares it between
#: :func:`grid_warnings`, :func:`grid_settings` and :func:`family_comparisons` (a dict the caller holds)
ReadCache = dict[Path, RunCollection]


def _collection(folder: Path, read: ReadCache | None) -> RunCollection:
    """The runs of one folder (its ``report/`` and ``variants/`` not searched), from ``read`` when there."""
    if read is not None and folder in read:
        return read[folder]
    coll = collect_runs(folder, exclude=[folder / "report", folder / "variants"])
    if read is not None:
        read[folder] = coll
    return coll


def _runs(folder: Path, read: ReadCache | None = None) -> list[RunRecord]:
    if not folder.is_dir():
        raise DataError(folder, "not a folder of runs")
    coll = _collection(folder, read)
    if not coll.runs:
        first = f"; first: {coll.skipped[0][1].removeprefix('ERROR: ')}" if coll.skipped else ""
        raise DataError(folder, f"no complete fine-tuning run ({len(coll.skipped)} skipped{first})")
    return coll.runs


def _folders(root: Path) -> list[Path]:
    """A grid folder and its ``variants/*``: the folders :func:`grid_settings` reads."""
    return [root, *sorted(p for p in (root / "variants").glob("*") if p.is_dir())]


def grid_warnings(root: Path, read: ReadCache | None = None) -> list[str]:
    """What a summary of ``root`` leaves out or cannot vouch for, one line each: runs left out (incomplete,
    corrupt, stale, duplicate) and, for a results bundle, files missing, changed or added since its export.

    Args:
        root: a benchmark folder or results bundle.
        read: the folders' runs already read (filled in as they are read), shared with :func:`grid_settings`
            and :func:`family_comparisons` so that each folder is read once.

    Returns:
        The lines (empty: every run is used and the bundle, if any, is intact).

    Raises:
        DataError: an unreadable ``bundle.json``.
    """
    from .bundle import is_bundle, verify_bundle

    lines = [f"bundle {root}: {p}" for p in verify_bundle(root)] if is_bundle(root) else []
    for f in _folders(root):
        for folder, why in _collection(f, read).skipped:
            text = why.removeprefix("ERROR: ")
            lines.append(text if str(folder) in text else f"{folder}: {text}")
    return lines


def check_distinct_grids(roots: Sequence[Path]) -> None:
    """No folder of runs is given twice: as itself, as a variant of a grid also given, or as a results
    bundle exported from it. Its comparisons would enter the family twice (and Holm's correction
    would count them twice).

    Raises:
        DataError: the second folder, and the one it repeats.
    """
    import json

    from .bundle import BUNDLE_FILE, is_bundle

    seen: dict[Path, Path] = {}
    for root in roots:
        source = None
        if is_bundle(root):
            try:
                source = json.loads((root / BUNDLE_FILE).read_text()).get("source")
            except (OSError, ValueError, AttributeError):
                source = None
        same = {f.resolve() for f in _folders(root)}
        if isinstance(source, str):  # the folders the bundle was exported from
            same |= {(Path(source) / f.relative_to(root)).resolve() for f in _folders(root)}
        first = next((seen[p] for p in sorted(same) if p in seen), None)
        if first is not None:
            what = "is given twice" if first.resolve() == root.resolve() else f"repeats runs of {first}"
            raise DataError(root, f"{what} (a grid, one of its variants, or a bundle exported from it): each once")
        seen.update(dict.fromkeys(same, root))


def _read_config(run: Path) -> dict[str, Any]:
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DataError(run / "config.yaml", f"unreadable ({e.__class__.__name__})") from None
    if not isinstance(cfg, dict):
        raise DataError(run / "config.yaml", "not a mapping")
    return cfg


def finetune_label(cfg: dict[str, Any]) -> str:
    """What a fine-tuning configuration does, in a few words: recipe, transfer options, budget.

    Example: ``"standard + LP-FT 10%, pre-trained lr x0.1, 500 steps"``; ``"paper, 750 steps"``.
    """
    t = cfg.get("transfer") or {}
    parts = []
    if t.get("schedule") == "lpft":
        share = t.get("lpft_fraction")
        parts.append(f"LP-FT {share:.0%}" if isinstance(share, (int, float)) else f"LP-FT {t.get('lpft_steps')} steps")
    for key, text in (("pretrained_lr_scale", "pre-trained lr x{}"), ("layer_decay", "layer decay {}")):
        v = t.get(key)
        if isinstance(v, (int, float)) and v != 1.0:
            parts.append(text.format(v))
    if isinstance(t.get("warmup_fraction"), (int, float)) and t["warmup_fraction"] > 0:
        parts.append(f"warm-up {t['warmup_fraction']:.0%}")
    steps = (cfg.get("train") or {}).get("max_steps")
    head = str(cfg.get("recipe") or "standard") + (" + " + ", ".join(parts) if parts else "")
    return f"{head}, {steps} steps" if steps else head


def _scratch_view(cfg: dict[str, Any]) -> dict[str, Any]:
    """The configuration as it acts on Scratch: of the transfer options only the warm-up (the others act
    on pre-trained weights, which Scratch has none of)."""
    warm = (cfg.get("transfer") or {}).get("warmup_fraction")
    return {**cfg, "transfer": {"warmup_fraction": warm}}


def _folder_label(folder: Path, runs: Sequence[RunRecord], scratch: bool) -> str:
    """The one :func:`finetune_label` of a folder's Scratch runs (``scratch``) or pre-trained methods' runs."""
    labels = set()
    for r in runs:
        if (r.method == SCRATCH) == scratch:
            cfg = _read_config(r.path)
            labels.add(finetune_label(_scratch_view(cfg) if scratch else cfg))
    if len(labels) > 1:
        raise DataError(folder, f"its runs were fine-tuned in {len(labels)} ways ({sorted(labels)}); one per folder")
    return labels.pop() if labels else ""


def grid_settings(root: Path, read: ReadCache | None = None) -> list[Setting]:
    """A benchmark folder (or bundle) and each of its ``variants/*`` as settings, labelled from the runs'
    configurations (:func:`finetune_label`; the dataset is a column of its own).

    A variant without Scratch runs takes them from the folder (the grid's own or another variant's)
    whose Scratch runs were fine-tuned at the same recipe, budget and warm-up: the other transfer
    options act on pre-trained weights only and would leave Scratch unchanged. None such is an error.

    Args:
        root: a benchmark folder or results bundle.
        read: the folders' runs already read, shared as in :func:`grid_warnings`.

    Returns:
        The settings, the grid's own folder first, then its variants by name.

    Raises:
        DataError: a folder without complete runs, with runs fine-tuned in more than one way, or a
            variant without a Scratch to compare with.
    """
    folders = _folders(root)
    runs = {f: _runs(f, read) for f in folders}
    scratch_of: dict[str, Path] = {}
    for f in folders:
        label = _folder_label(f, runs[f], scratch=True)
        if label:
            scratch_of.setdefault(label, f)
    out = []
    for f in folders:
        label = _folder_label(f, runs[f], scratch=False)
        if not label:
            continue  # Scratch alone: nothing to compare
        if any(r.method == SCRATCH for r in runs[f]):
            out.append(Setting(label, f))
            continue
        cfg = _read_config(next(r.path for r in runs[f] if r.method != SCRATCH))
        plain = finetune_label(_scratch_view(cfg))
        if plain not in scratch_of:
            raise DataError(f, f"no Scratch runs here nor in a folder whose Scratch was fine-tuned as '{plain}'")
        out.append(Setting(label, f, scratch=scratch_of[plain]))
    return out


def _mean_dsc(runs: Sequence[RunRecord], seeds: Sequence[int]) -> float:
    v = [run_metric_value(r, "dsc") for r in runs if r.seed in seeds]
    v = [x for x in v if math.isfinite(x)]
    return float(np.mean(v)) * 100.0 if v else math.nan


def _case_mismatch(a: Sequence[RunRecord], b: Sequence[RunRecord]) -> list[int]:
    """Seeds whose runs of A and B scored different sets of cases."""
    ca = {r.seed: set(case_dsc(r)) for r in a}
    cb = {r.seed: set(case_dsc(r)) for r in b}
    return [s for s in sorted(set(ca) & set(cb)) if ca[s] != cb[s]]


def family_comparisons(settings: Sequence[Setting], read: ReadCache | None = None) -> list[FamilyRow]:
    """Every pre-trained method against Scratch, per setting and group, Holm-corrected over all of them.

    Args:
        settings: the folders, in the order the tables should list them.
        read: the folders' runs already read, shared as in :func:`grid_warnings`.

    Returns:
        One :class:`FamilyRow` per (setting, group, method), in settings order, then group, then method.

    Raises:
        DataError: a folder without complete runs, or a setting where no method meets a Scratch run.
    """
    rows: list[FamilyRow] = []
    read = {} if read is None else read  # a grid's folder is read once, also where variants borrow its Scratch
    for st in settings:
        runs = _runs(st.folder, read)
        scratch_runs = [r for r in _runs(st.scratch or st.folder, read) if r.method == SCRATCH]
        groups: dict[tuple[str, str, str], dict[str, list[RunRecord]]] = {}
        for r in runs:
            if r.method != SCRATCH:
                groups.setdefault(r.group, {}).setdefault(r.method, []).append(r)
        for r in scratch_runs:
            if r.group in groups:
                groups[r.group].setdefault(SCRATCH, []).append(r)
        n_before = len(rows)
        for group, by_method in sorted(groups.items(), key=lambda kv: (kv[0][1].lower(), kv[0][0], kv[0][2])):
            if SCRATCH not in by_method:
                continue
            for m in sorted((k for k in by_method if k != SCRATCH), key=method_sort_key):
                cmp = compare_pair(group, m, SCRATCH, by_method)
                bad = _case_mismatch(by_method[m], by_method[SCRATCH])
                if bad:
                    cmp.notes.append(f"seeds {bad}: the two runs scored different test cases (compared on common ones)")
                rows.append(
                    FamilyRow(
                        st.label,
                        cmp,
                        _mean_dsc(by_method[m], cmp.seeds),
                        _mean_dsc(by_method[SCRATCH], cmp.seeds),
                        str(st.scratch) if st.scratch else "",
                    )
                )
        if len(rows) == n_before:
            where = st.scratch or st.folder
            raise DataError(st.folder, f"no pre-trained method meets a Scratch run of its group (Scratch from {where})")
    for row, ph in zip(rows, holm([r.cmp.p for r in rows])):
        row.cmp.p_holm = float(ph)
        row.cmp.verdict = verdict(row.cmp.ci_low, row.cmp.ci_high, row.cmp.p_holm)
    return rows


FAMILY_FIELDS = [
    "setting",
    "protocol",
    "dataset",
    "labels",
    "method",
    "n_seeds",
    "pretrainings",
    "method_dsc",
    "scratch_dsc",
    "seed_diffs",
    "seeds_ahead",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_t_seeds",
    "p_holm_family",
    "verdict",
    "scratch_from",
    "notes",
]


def _csv_rows(rows: Sequence[FamilyRow]) -> list[dict[str, Any]]:
    return [
        {
            "setting": r.setting,
            "protocol": r.cmp.protocol,
            "dataset": r.cmp.dataset,
            "labels": r.cmp.labels,
            "method": method_display_name(r.cmp.method),
            "n_seeds": len(r.cmp.seeds),
            "pretrainings": r.cmp.pretrainings,
            "method_dsc": csv_number(r.method_dsc),
            "scratch_dsc": csv_number(r.scratch_dsc),
            "seed_diffs": " ".join(f"s{s}:{d:+.4f}" for s, d in zip(r.cmp.seeds, r.cmp.seed_diffs)),
            "seeds_ahead": r.cmp.n_ahead,
            "mean_diff": csv_number(r.cmp.mean_diff),
            "ci_low": csv_number(r.cmp.ci_low),
            "ci_high": csv_number(r.cmp.ci_high),
            "p_t_seeds": csv_number(r.cmp.p),
            "p_holm_family": csv_number(r.cmp.p_holm),
            "verdict": r.cmp.verdict,
            "scratch_from": r.scratch_from,
            "notes": "; ".join(r.cmp.notes),
        }
        for r in rows
    ]


def _pp(x: float) -> str:
    return f"{x:+.1f}" if math.isfinite(x) else "–"


def _ci(r: FamilyRow, sep: str = ", ") -> str:
    return f"[{_pp(r.cmp.ci_low)}{sep}{_pp(r.cmp.ci_high)}]" if math.isfinite(r.cmp.ci_low) else "–"


def _d(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "–"


def _legend(rows: Sequence[FamilyRow]) -> str:
    counts = sorted({len(r.cmp.seeds) for r in rows if r.cmp.seeds})
    floor = ", ".join(f"{min_sign_flip_p(n):.4g} with {n} seeds" for n in counts)
    borrowed = sorted({r.setting for r in rows if r.scratch_from})
    text = (
        "Δ = method minus Scratch, per seed the mean over the test cases both scored of the per-case DSC (mean over "
        "foreground classes), in DSC points; a seed is one whole pipeline (its own pre-training, split and "
        "fine-tuning). DSC: mean over seeds of the runs' mean test DSC. 95% CI: hierarchical bootstrap (seeds, "
        f"then cases within a seed; {N_BOOT} resamples). p: two-sided t-test of the per-seed Δ; p Holm: Holm's "
        f"correction over all {len(rows)} comparisons of this table (every setting and dataset together), "
        "stricter than a single report's. A verdict names a direction only when the interval excludes 0 and "
        f"p Holm < 0.05. (An exact sign-flip test over seeds cannot go below {floor}.)"
    )
    if borrowed:
        text += (
            f" Settings {', '.join(repr(s) for s in borrowed)} compare with the Scratch runs of the folder named in "
            "`scratch_from` (same seeds, splits and budget): their fine-tuning options act on pre-trained weights "
            "only, which Scratch has none of, so its runs would be the same."
        )
    return text


def family_markdown(rows: Sequence[FamilyRow]) -> str:
    """The family's Markdown table, with the paragraph that says how to read it."""
    if not rows:
        return "_No comparison with Scratch._"
    lines = [
        "| Setting | Dataset | Labels | Method | Seeds | DSC (%) | Scratch DSC (%) | Δ per seed (pp) | Seeds ahead "
        "| Mean Δ (pp) | 95% CI (pp) | p (t, seeds) | p Holm (family) | Verdict |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        c = r.cmp
        cells = [
            r.setting,
            c.dataset,
            c.labels,
            method_display_name(c.method),
            str(len(c.seeds)),
            _d(r.method_dsc),
            _d(r.scratch_dsc),
            " / ".join(_pp(d) for d in c.seed_diffs) or "–",
            f"{c.n_ahead} of {len(c.seeds)}",
            _pp(c.mean_diff),
            _ci(r),
            format_p(c.p),
            format_p(c.p_holm),
            f"**{c.verdict}**" if c.verdict != "inconclusive" else c.verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"- {r.setting}, {r.cmp.dataset}, {method_display_name(r.cmp.method)}: {n}" for r in rows for n in r.cmp.notes
    ]
    return "\n".join([*lines, "", _legend(rows), *([""] + notes if notes else [])])


def family_table(rows: Sequence[FamilyRow]) -> str:
    """The family as one compact Markdown table: a row per dataset and setting, Scratch's DSC, then a
    column per pre-trained method with its mean Δ, 95% interval and seeds above Scratch ("not run"
    where the setting lacks the method); the form a README quotes (``table.md``)."""
    methods = list(dict.fromkeys(r.cmp.method for r in rows))
    settings: dict[tuple[str, str], dict[str, FamilyRow]] = {}
    for r in rows:
        settings.setdefault((r.cmp.dataset, r.setting), {})[r.cmp.method] = r
    lines = [
        "| Set | Setting | Scratch DSC (%) | " + " | ".join(method_display_name(m) for m in methods) + " |",
        "|---|---|---:|" + "---|" * len(methods),
    ]
    for (dataset, setting), by in settings.items():
        cells = [
            f"{_pp(by[m].cmp.mean_diff)} {_ci(by[m])}, {by[m].cmp.n_ahead} of {len(by[m].cmp.seeds)}"
            if m in by
            else "not run"
            for m in methods
        ]
        scratch = _d(next(iter(by.values())).scratch_dsc)
        lines.append(f"| {dataset} | {setting} | {scratch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def family_latex(rows: Sequence[FamilyRow]) -> str:
    """The family's table as a booktabs LaTeX tabular."""
    head = r"Setting & Dataset & Method & DSC & Scratch & Seeds ahead & Mean $\Delta$ & 95\% CI & $p_\mathrm{Holm}$ \\"
    body = [
        " & ".join(
            [
                latex_escape(r.setting),
                latex_escape(r.cmp.dataset),
                latex_escape(method_display_name(r.cmp.method)),
                _d(r.method_dsc),
                _d(r.scratch_dsc),
                f"{r.cmp.n_ahead}/{len(r.cmp.seeds)}",
                _pp(r.cmp.mean_diff),
                _ci(r),
                format_p(r.cmp.p_holm),
            ]
        )
        + r" \\"
        for r in rows
    ]
    return "\n".join(
        [r"\begin{tabular}{lllrrrrlr}", r"\toprule", head, r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]
    )


def family_text(rows: Sequence[FamilyRow]) -> str:
    """Plain sentences from the numbers: where pre-training is ahead of Scratch, behind, or undecided.

    The words "ahead" and "behind" appear only for verdicts (interval excludes 0, family-corrected
    p < 0.05); every other comparison is reported as undecided with its interval.
    """
    if not rows:
        return "No comparison with Scratch."

    def one(r: FamilyRow) -> str:
        c = r.cmp
        return (
            f"{method_display_name(c.method)} on {c.dataset} ({r.setting}): {_pp(c.mean_diff)} DSC points "
            f"{_ci(r)}, {c.n_ahead} of {len(c.seeds)} seeds above Scratch, p Holm {format_p(c.p_holm)}"
        )

    out = []
    for word, label in (("ahead", "Ahead of Scratch"), ("behind", "Behind Scratch")):
        hit = [one(r) for r in rows if r.cmp.verdict == word]
        out.append(f"{label}: " + ("; ".join(hit) if hit else "none") + ".")
    rest = [r for r in rows if r.cmp.verdict == "inconclusive"]
    if rest:
        out.append(
            f"Undecided (the interval includes 0 or p Holm >= 0.05; {len(rest)} of {len(rows)}): "
            + "; ".join(map(one, rest))
            + "."
        )
    return "\n".join(out)


def plot_forest(rows: Sequence[FamilyRow], path: Path, dpi: int = 110) -> Path:
    """Forest plot: per comparison its per-seed Δ (dots), mean Δ and 95% interval (bar), a line at 0.

    Rows are grouped by dataset and setting, top to bottom in table order; a verdict colours the bar
    (green ahead, red behind, grey undecided).
    """
    if not rows:
        raise DataError(path, "no comparison to draw")
    colours = {"ahead": (0.1, 0.55, 0.2), "behind": (0.8, 0.15, 0.15), "inconclusive": (0.35, 0.35, 0.35)}
    n = len(rows)
    fig = Figure(figsize=(8.0, 0.9 + 0.36 * n))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = np.arange(n)[::-1].astype(float)
    for y, r in zip(ys, rows):
        c = r.cmp
        col = colours.get(c.verdict, colours["inconclusive"])
        if math.isfinite(c.ci_low):
            ax.plot([c.ci_low, c.ci_high], [y, y], color=col, lw=2.2, solid_capstyle="butt")
        if math.isfinite(c.mean_diff):
            ax.plot([c.mean_diff], [y], marker="D", color=col, ms=6, zorder=3)
        if c.seed_diffs:
            jitter = np.linspace(-0.12, 0.12, len(c.seed_diffs))
            ax.scatter(c.seed_diffs, y + jitter, s=12, facecolors="none", edgecolors=col, linewidths=0.8, zorder=2)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(
        [f"{r.cmp.dataset} · {r.setting} · {method_display_name(r.cmp.method)}" for r in rows], fontsize=8
    )
    ax.set_xlabel("Δ DSC vs Scratch (points): per seed (circles), mean and 95% CI (diamond, bar)")
    ax.set_ylim(-0.7, n - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Pre-training against Scratch: {n} comparisons, Holm over all", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def write_family(rows: Sequence[FamilyRow], out: Path, dpi: int = 110) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv``, ``summary.tex``, ``summary.txt`` (the sentences), ``table.md``
    (:func:`family_table`) and ``forest.png``.

    Returns:
        The written files by kind.

    Raises:
        DataError: ``out`` is a file, or there is no comparison to write (nothing is written then).
    """
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for summary.* and forest.png (--out)")
    if not rows:
        raise DataError(None, "no comparison: no setting has both a pre-trained method and Scratch")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": write_csv(out / "summary.csv", FAMILY_FIELDS, _csv_rows(rows)),
        "forest": plot_forest(rows, out / "forest.png", dpi=dpi),
    }
    title = "# Pre-training against Scratch, every setting\n\n"
    for kind, name, text in (
        ("md", "summary.md", title + family_markdown(rows) + "\n\n![forest](forest.png)\n"),
        ("tex", "summary.tex", family_latex(rows) + "\n"),
        ("txt", "summary.txt", family_text(rows) + "\n"),
        ("table", "table.md", family_table(rows) + "\n"),
    ):
        files[kind] = atomic_write_text(out / name, text)
    return files

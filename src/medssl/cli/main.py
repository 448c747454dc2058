"""``medssl``: label-efficient medical image segmentation from the command line.

Every sub-command parses its arguments, calls one documented Python function, and prints the result.
Errors in the input are reported on one line (``medssl: error: <file or setting>: <problem>``), never as a
traceback (``-v`` shows it). Exit status: 0 success, 2 usage (a bad argument, setting, path or input
file), 1 failure (training failed, an I/O or internal error), 130 interrupted (:mod:`medssl.errors`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, ConfigError, DataError, MedsslError

__all__ = ["build_parser", "main"]

#: what ``add_subparsers`` returns; each ``_add_<command>_parser`` adds its command(s) to it
_SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EPILOG = "Docs: README.md and docs/ (mkdocs serve). Every training command writes its resolved config, git commit, seed and environment into its run folder."


def _say(msg: str) -> None:
    print(msg, flush=True)


# --- shared training options ----------------------------------------------------------------------


def _add_training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (any field of the typed configuration can also be set with --set)")
    g.add_argument("--config", metavar="FILE", help="YAML configuration file (defaults < file < flags < --set)")
    g.add_argument("--data", metavar="PREPARED", help="prepared store (output of `medssl prepare`)")
    g.add_argument("--out", metavar="RUN", help="run folder (created; rerunning the same command resumes)")
    g.add_argument("--epochs", type=int, help="passes over the training slices")
    g.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    g.add_argument("--batch-size", type=int, help="batch size per process")
    g.add_argument("--image-size", type=int, help="patch / view size in pixels")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--seed", type=int, help="random seed (papers: 1234)")
    g.add_argument("--workers", type=int, help="data-loader worker processes")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"], help="mixed precision")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (identical CPU results)")
    g.add_argument(
        "--no-resume",
        action="store_true",
        help="start over: replace the run already in --out (needed when its configuration differs)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any configuration field, e.g. optim.lr=0.1 (repeatable)",
    )


def _training_overrides(a: argparse.Namespace) -> list[str]:
    pairs: list[str] = []
    flag_map = {
        "data": "data.path",
        "out": "out",
        "epochs": "train.epochs",
        "max_steps": "train.max_steps",
        "batch_size": "data.batch_size",
        "image_size": "data.image_size",
        "device": "train.device",
        "seed": "train.seed",
        "workers": "data.num_workers",
        "lr": "optim.lr",
        "amp": "train.amp",
    }
    for attr, key in flag_map.items():
        v = getattr(a, attr, None)
        if v is not None:
            pairs.append(f"{key}={v}")
    if a.deterministic:
        pairs.append("train.deterministic=true")
    if a.no_progress:
        pairs.append("train.progress=false")
    return pairs


# --- commands ---------------------------------------------------------------------------------------


def cmd_datasets(a: argparse.Namespace) -> int:
    from ..data.readers import list_datasets

    for spec in list_datasets():
        tag = " (pre-training only)" if spec.pretrain_only else ""
        _say(f"{spec.name:<12} {spec.description}{tag}")
        if a.layouts:
            for line in spec.layout.strip().splitlines():
                _say(f"{'':<13}{line}")
            _say(
                f"{'':<13}classes: {', '.join(spec.class_names)}; spacing {spec.target_spacing}; normalisation {spec.normalization}; patch {spec.patch_size}"
            )
    return 0


def cmd_methods(a: argparse.Namespace) -> int:
    from ..methods.catalog import list_methods

    _say(f"{'name':<11} {'pre-trains':<17} description (paper)")
    for m in list_methods():
        extra = f" [variants: {', '.join(m.variants)}]" if m.variants else ""
        _say(f"{m.name:<11} {'+'.join(m.pretrains):<17} {m.description} ({m.paper}){extra}")
    return 0


LABEL_MAP_EXAMPLE = '--option "label_map={0: 0, 205: 1, 420: 2}"'


def _check_label_map(value: Any) -> None:
    """``label_map``: a mapping of raw label values (integers) to class indices (integers >= 0)."""
    ok = (
        isinstance(value, dict)
        and value
        and all(
            (
                (isinstance(k, int) and not isinstance(k, bool))
                or (isinstance(k, str) and re.fullmatch(r"-?\d+", k.strip()))
            )
            and isinstance(v, int)
            and not isinstance(v, bool)
            and v >= 0
            for k, v in value.items()
        )
    )
    if not ok:
        spaces = isinstance(value, dict) and any(isinstance(k, str) and ":" in k for k in value)
        raise ConfigError(
            f"--option label_map: expected a mapping of raw label values to class indices (integers >= 0), "
            f"e.g. {LABEL_MAP_EXAMPLE}, got {value!r}" + ("; YAML needs a space after each ':'" if spaces else "")
        )


def parse_reader_options(items: Sequence[str]) -> dict[str, Any]:
    """``--option key=value`` items -> reader options (values parsed as YAML; ``label_map`` and
    ``class_names`` checked for shape).

    Raises:
        ConfigError: an item without ``=``, YAML that does not parse, a malformed label_map or class_names.
    """
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option expects key=value, got '{item}'")
        k, v = item.split("=", 1)
        try:
            options[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise ConfigError(f"--option {k.strip()}: not a valid value ({str(e).splitlines()[0]})") from None
    if "label_map" in options:
        _check_label_map(options["label_map"])
    names = options.get("class_names")
    if names is not None and not (
        isinstance(names, list) and len(names) >= 2 and all(isinstance(n, (str, int)) for n in names)
    ):
        raise ConfigError(
            f"--option class_names: expected a list of at least 2 names, background first, e.g. "
            f"--option class_names=[background,liver], got {names!r}"
        )
    return options


def parse_spacing(text: str | None) -> Any:
    """``--spacing``: ``None`` -> the dataset's default; ``keep``/``none`` -> no resampling; else a positive number (mm).

    Raises:
        ConfigError: not a positive finite number.
    """
    if text is None:
        return "default"
    if text.strip().lower() in ("none", "keep"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--spacing: expected a positive in-plane spacing in mm, or 'keep', got '{text}'")
    return value


def _fmt_list(values: Iterable[float]) -> str:
    """``[1, 2.5, 3]``: numbers in their shortest form (a list, a tuple or a 1-D array)."""
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def cmd_prepare(a: argparse.Namespace) -> int:
    import numpy as np

    from ..data.store import prepare

    options = parse_reader_options(a.option)
    spacing = parse_spacing(a.spacing)
    try:
        res = prepare(
            a.dataset,
            a.src,
            a.out,
            target_spacing=spacing,
            normalization=a.normalization,
            skip_bad=a.skip_bad,
            overwrite=a.overwrite,
            progress=not a.no_progress,
            reader_options=options,
            log=_say,
        )
    except DataError as e:
        for p in getattr(e, "problems", []):
            print(f"  {p}", file=sys.stderr)
        raise
    for s in res.skipped:
        _say(f"skipped {s['case_id']}: {s['reasons']}")
    fp = res.fingerprint
    _say(f"{fp['num_cases']} cases, {fp['num_patients']} patients, {fp['num_slices']} slices")
    _say(f"source:   median shape {_fmt_list(fp['median_shape'])}, median spacing {_fmt_list(fp['median_spacing'])}")
    target = (
        "kept (no resampling)"
        if spacing is None
        else f"in-plane {spacing:g} mm"
        if spacing != "default"
        else "the dataset's default"
    )
    _say(
        f"prepared: median shape {_fmt_list(np.median([c.shape for c in res.cases], 0))}, "
        f"median spacing {_fmt_list(np.median([c.spacing for c in res.cases], 0))} (spacing: {target})"
    )
    _say(f"fingerprint: {Path(a.out) / 'fingerprint.json'}")
    return 0


def _finetune_cfg(a: argparse.Namespace) -> Any:
    from ..config import FinetuneConfig, load_config

    pairs = _training_overrides(a)
    if a.labels is not None:
        pairs.append(f"data.labels={a.labels}")
    if a.protocol is not None:
        pairs.append(f"protocol={a.protocol}")
    if a.recipe is not None:
        pairs.append(f"recipe={a.recipe}")
    if a.split is not None:
        pairs.append(f"data.split={a.split}")
    if a.init is not None:
        pairs.append("init=null" if a.init.lower() == "none" else f"init={a.init}")
    if a.method_name is not None:
        pairs.append(f"method={a.method_name}")
    return load_config(FinetuneConfig, a.config, pairs + a.overrides)


@contextlib.contextmanager
def _run_folder_lock(out: str) -> Iterator[None]:
    """Hold ``out/.lock`` (:mod:`medssl.utils.locks`) while this command writes its run folder, so
    that a second ``medssl finetune`` / ``pretrain`` on the same ``--out`` stops with a one-line
    error instead of writing into it; ``medssl benchmark`` locks its own cells. Under ``torchrun``
    only rank 0 (which alone writes the folder) takes it; a path that is a file is left for
    :func:`medssl.engine.rundir.bind_run_dir` to report. A folder made only for the lock is removed
    again when the command wrote nothing into it (it stopped on bad input)."""
    from ..utils.locks import holder, try_lock

    folder = Path(out)
    if int(os.environ.get("RANK", "0")) != 0 or (folder.exists() and not folder.is_dir()):
        yield
        return
    made = not folder.exists()
    got = try_lock(folder)
    if not got:  # None: a live process holds it (False only comes with a done check, not given)
        pid = holder(folder)
        raise DataError(
            out,
            f"another process is writing this run folder{f' (pid {pid})' if pid else ''}; "
            "wait for it to end or give another --out",
        )
    try:
        yield
    finally:
        got.release()
        if made and not any(folder.iterdir()):
            folder.rmdir()


def cmd_finetune(a: argparse.Namespace) -> int:
    from ..finetune import finetune

    cfg = _finetune_cfg(a)
    with _run_folder_lock(cfg.out):
        res = finetune(cfg, resume=not a.no_resume, log_fn=_say)
    _say(res.table)
    _say(
        f"best epoch {res.best_epoch} (selected on {'validation' if cfg.protocol == 'standard' else 'TEST, as the papers did'}); results in {res.out}"
    )
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    from ..config import PretrainConfig, load_config
    from ..pretrain import pretrain

    pairs = _training_overrides(a)
    if a.method is not None:
        pairs.append(f"method={a.method}")
    if a.variant is not None:
        pairs.append(f"variant={a.variant}")
    cfg = load_config(PretrainConfig, a.config, pairs + a.overrides)
    with _run_folder_lock(cfg.out):
        res = pretrain(cfg, resume=not a.no_resume, log_fn=_say)
    losses = ", ".join(f"{k}={v:.4f}" for k, v in res.final_losses.items())
    _say(f"{res.method}: pre-trained {'+'.join(res.pretrains)}; last epoch: {losses}")
    _say(f"checkpoint: {res.checkpoint}  (use: medssl finetune --init {res.out} ...)")
    return 0


def _nsd_tolerance_arg(text: str | None) -> float | dict[str, float] | None:
    """``--nsd-tolerance``: None, one value in mm or ``{class: mm}`` (ConfigError on bad input)."""
    from ..evaluation.metrics import parse_nsd_tolerance

    if text is None:
        return None
    try:
        return parse_nsd_tolerance(text)
    except ValueError as exc:
        raise ConfigError(f"--nsd-tolerance: {exc}") from exc


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_folders, format_summary_table, write_results

    tolerance = _nsd_tolerance_arg(a.nsd_tolerance)
    if a.run:
        from ..evaluation.run import evaluate_run

        _check_evaluate_options(a)
        _check_evaluable_run(Path(a.run))
        result = evaluate_run(a.run, a.protocol, a.distances, tolerance)
        _say(format_summary_table(result.summary))
        return 0
    if not (a.pred and a.gt):
        raise ConfigError("evaluate: give a fine-tuning RUN folder, or both --pred DIR and --gt DIR")
    names = None
    if a.labels is not None:
        names = [n.strip() for n in a.labels.split(",") if n.strip()]
        if len(names) < 2:
            raise ConfigError(
                f"--labels: give the class names, background first and at least one foreground class, "
                f"comma-separated (e.g. background,liver), got '{a.labels}'"
            )
    out = Path(a.out or a.pred)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for metrics.csv and summary.* (--out)")
    result = evaluate_folders(
        a.pred,
        a.gt,
        class_names=names,
        protocol=a.protocol or "standard",
        distances=a.distances,
        nsd_tolerance=tolerance,
    )
    write_results(result, out)
    _say(format_summary_table(result.summary))
    _say(f"metrics.csv and summary.md written to {out}")
    return 0


def _check_evaluate_options(a: argparse.Namespace) -> None:
    """A run folder is evaluated into itself: options that only apply to --pred/--gt are refused, not ignored."""
    given = [f for f, v in (("--pred", a.pred), ("--gt", a.gt), ("--labels", a.labels), ("--out", a.out)) if v]
    if given:
        raise ConfigError(
            f"evaluate: {', '.join(given)} cannot be combined with a RUN folder (a run is evaluated against its "
            "store, its results written into the run folder, or RUN/eval-<protocol> with another --protocol); "
            "give either RUN or --pred DIR --gt DIR"
        )


def _check_evaluable_run(run: Path) -> None:
    """A fine-tuning run folder that got as far as its split (else one line saying what it is)."""
    from ..engine.rundir import read_run

    if not run.is_dir():
        raise DataError(run, "no such run folder")
    info = read_run(run)
    if info is None:
        raise DataError(run, "not a medssl run folder (no readable run.json)")
    if info.get("kind") == "pretrain":
        raise DataError(
            run,
            "is a pre-training run: it has no predictions to evaluate; fine-tune from it "
            f"(medssl finetune --init {run} ...) and evaluate that run",
        )
    if not (run / "splits.json").is_file():
        raise DataError(run, "this fine-tuning run has not started (no splits.json); rerun its finetune command")


def cmd_report(a: argparse.Namespace) -> int:
    from ..reporting.report import report

    if a.export:
        from ..reporting.bundle import export_bundle

        b = export_bundle(a.dir, a.export)
        _say(
            f"bundle {b.out}: {b.n_runs} runs, {b.n_files} files, {b.bytes / 1e6:.1f} MB (no checkpoints, no predictions)"
        )
        if b.unfinished:
            shown = "; ".join(b.unfinished[:3]) + ("; ..." if len(b.unfinished) > 3 else "")
            print(
                f"medssl: warning: bundle {b.out}: {len(b.unfinished)} run{'s' * (len(b.unfinished) > 1)} not finished "
                f"({shown}): exported as "
                "they stood, left out of its tables (bundle.json 'unfinished'); export again when they are done",
                file=sys.stderr,
            )
        return 0
    res = report(a.dir, a.out, a.reference)
    _say(res.markdown if hasattr(res, "markdown") else str(res))
    _warn_left_out(getattr(res, "skipped", []), "report")
    _warn_bundle_changed(Path(a.dir))
    return 0


def _warn_bundle_changed(folder: Path) -> None:
    """One ``medssl: warning:`` line per file of a results bundle that is missing or changed since its export
    (the report's notes say it too, but a table recomputed from edited files must not pass unseen)."""
    from ..reporting.bundle import is_bundle, verify_bundle

    if is_bundle(folder):
        for problem in verify_bundle(folder):
            print(f"medssl: warning: bundle {folder}: {problem}; its tables are not the exported ones", file=sys.stderr)


def _warn_left_out(skipped: Sequence[tuple[Any, str]], what: str) -> None:
    """One visible ``medssl: warning:`` line on stderr per run left out (incomplete, corrupt, stale, duplicate)."""
    for folder, why in skipped:
        text = why.removeprefix("ERROR: ")
        where = "" if str(folder) in text else f"{folder}: "
        print(f"medssl: warning: left out of the {what}: {where}{' '.join(text.split())}", file=sys.stderr)


def cmd_benchmark(a: argparse.Namespace) -> int:
    from ..benchmark import run_benchmark

    res = run_benchmark(
        a.config,
        a.out,
        cells=a.cells,
        dry_run=a.dry_run,
        overrides=a.overrides,
        log_fn=_say,
        report=not a.no_report,
        pretrain_only=a.pretrain_only,
        status=a.status,
        only=a.only,
    )
    _say(res)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(a.out, quick=a.quick, log_fn=_say, device=a.device)
    return 0


def cmd_figure(a: argparse.Namespace) -> int:
    from ..reporting.supercl_figure import supercl_figure

    if not 1 <= a.n <= MAX_FIGURE_SLICES:
        raise ConfigError(f"-n: the number of slices must be in 1..{MAX_FIGURE_SLICES}, got {a.n}")
    if not 0 <= a.seed <= 2**32 - 1:
        raise ConfigError(f"--seed: expected an integer in 0..{2**32 - 1}, got {a.seed}")
    if Path(a.out).is_dir():
        raise ConfigError(
            f"--out {a.out}: is a folder; give the image file to write, e.g. {Path(a.out) / 'figure.png'}"
        )
    path = supercl_figure(a.data, a.out, n=a.n, seed=a.seed)
    _say(f"figure: {path}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    """``medssl predict RUN [RUN ...] INPUT OUTPUT``: label maps of new scans in their own geometry."""
    from ..inference import Segmenter, predict_inputs

    if len(a.paths) < 3:
        raise ConfigError(
            "predict: give RUN [RUN ...] INPUT OUTPUT (at least one run folder, the input and the output)"
        )
    *runs, src, out = a.paths
    seg = Segmenter.from_run(runs, device=a.device, batch_size=a.batch_size, tta=a.tta, warn=_say)
    what = f"ensemble of {len(runs)} runs" if len(runs) > 1 else str(runs[0])
    _say(f"predict: {what} ({', '.join(seg.class_names[1:])}){'; TTA: 4 mirrorings' if a.tta else ''}")
    res = predict_inputs(
        seg, src, out, overwrite=a.overwrite, save_probabilities=a.save_probabilities, progress=not a.no_progress
    )
    _say(res.line())
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    """``medssl export RUN --format torchscript|onnx --out DIR``: the network plus ``model.json``."""
    from ..inference.export import export_run

    res = export_run(a.run, a.format, a.out)
    _say(f"exported {a.run} as {a.format}: {res.model} and {res.meta}")
    return 0


#: rows of ``medssl figure`` (each row is four panels)
MAX_FIGURE_SLICES = 32


def _add_inference_parsers(sub: _SubParsers) -> None:
    """``predict`` and ``export``: a fine-tuned run used on new scans."""
    s = sub.add_parser(
        "predict",
        usage="medssl predict [options] RUN [RUN ...] INPUT OUTPUT",
        help="segment new scans with fine-tuned run(s): label maps in each input's own geometry",
    )
    s.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="fine-tuning run folder(s) (several: an ensemble, softmax averaged), then a NIfTI file, a folder of "
        "NIfTI files (nnU-Net _0000 names accepted) or a DICOM series folder, then the output folder",
    )
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    s.add_argument("--batch-size", type=int, default=16, help="slices per forward pass (default 16)")
    s.add_argument(
        "--tta", action="store_true", help="average over mirrored slices (refused for classes defined by side)"
    )
    s.add_argument("--save-probabilities", action="store_true", help="also write CASE.npz with the softmax maps")
    s.add_argument("--overwrite", action="store_true", help="redo cases already in OUTPUT (default: skip them, resume)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser(
        "export", help="export a fine-tuned run as TorchScript or ONNX with model.json (deploy without medssl)"
    )
    s.add_argument("run", help="a fine-tuning run folder")
    s.add_argument("--format", choices=["torchscript", "onnx"], default="onnx", help="network format (default onnx)")
    s.add_argument("--out", required=True, help="output folder (model.pt or model.onnx, and model.json)")
    s.set_defaults(fn=cmd_export)


def _add_listing_parsers(sub: _SubParsers) -> None:
    """``datasets`` and ``methods``: what medssl can read and pre-train."""
    s = sub.add_parser("datasets", help="list the dataset readers and the layout each expects")
    s.add_argument(
        "--verbose",
        "-v",
        dest="layouts",  # not the global -v (tracebacks): `medssl datasets -v | head` must not show one
        action="store_true",
        help="show each layout and the preprocessing defaults",
    )
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("methods", help="list the pre-training methods, their papers and what they pre-train")
    s.set_defaults(fn=cmd_methods)


def _add_prepare_parser(sub: _SubParsers) -> None:
    """``prepare``: a dataset folder -> a prepared store of normalised slices."""
    s = sub.add_parser("prepare", help="check, resample, normalise and slice a dataset into a prepared store")
    s.add_argument("dataset", help="dataset name (see `medssl datasets`)")
    s.add_argument("src", help="the dataset folder in its official layout (`builtin` for synthetic)")
    s.add_argument("out", help="output folder of the prepared store")
    s.add_argument(
        "--spacing", help="in-plane spacing in mm, a positive number (default: the papers'; `keep` = no resampling)"
    )
    s.add_argument(
        "--normalization",
        choices=["zscore", "clip_zscore", "minmax", "slice_minmax", "max", "none"],
        help="override the dataset's normalisation",
    )
    s.add_argument(
        "--skip-bad", action="store_true", help="prepare the good cases and record the bad ones in skipped.json"
    )
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the store already in OUT (another dataset or settings), or write into a non-empty folder",
    )
    s.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reader option (YAML value; repeatable), e.g. modality=flair, class_names=[bg,liver], "
        "label_map={0: 0, 205: 1, 420: 2} (raw label value: class index; nifti-folder)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_prepare)


def _add_pretrain_parser(sub: _SubParsers) -> None:
    """``pretrain``: self-supervised pre-training with one method (plus the shared training options)."""
    s = sub.add_parser("pretrain", help="self-supervised pre-training of the U-Net with one method")
    s.add_argument("--method", help="method name (see `medssl methods`); default supercl")
    s.add_argument("--variant", help="named option set where paper and code disagree (e.g. macl: paper)")
    _add_training_args(s)
    s.set_defaults(fn=cmd_pretrain)


def _add_finetune_parser(sub: _SubParsers) -> None:
    """``finetune``: few-label fine-tuning and test evaluation (plus the shared training options)."""
    s = sub.add_parser(
        "finetune", help="fine-tune the U-Net with a share of the labels, then evaluate on the test patients"
    )
    s.add_argument(
        "--labels",
        help="labelled training patients: a count is an integer (1 = one patient), a fraction has "
        "%% or a decimal point (10%%, 0.1; 100%% or 1.0 = all); default 10%%",
    )
    s.add_argument(
        "--init",
        help="pre-trained weights: a pre-training run folder (its pretrain.pt), a checkpoint file "
        "(pretrain.pt or a reference-code checkpoint), or `none`",
    )
    s.add_argument(
        "--protocol",
        choices=["paper", "standard"],
        help="paper: select on test, pooled 2D Dice, pixel distances; standard (default): validation split, per-volume 3D metrics in mm",
    )
    s.add_argument(
        "--recipe",
        choices=["auto", "paper", "standard"],
        help="settings left unset: paper (the papers' CE, Adam 5e-4, heavy augmentation), standard (Dice+CE, "
        "Adam 1e-3, mild augmentation: converges in hundreds of steps); auto (default) = the protocol's",
    )
    s.add_argument(
        "--split", choices=["seeded", "paper"], help="seeded patient split (default) or the papers' published lists"
    )
    s.add_argument(
        "--method-name", dest="method_name", help="name shown in reports (default: the checkpoint's method, or scratch)"
    )
    _add_training_args(s)
    s.set_defaults(fn=cmd_finetune)


def _add_evaluate_parser(sub: _SubParsers) -> None:
    """``evaluate``: the metrics of a fine-tuning run, or of two folders of NIfTI label maps."""
    s = sub.add_parser(
        "evaluate", help="DSC, JC, HD95, ASD, ASSD per case and class: of a run, or of two NIfTI folders"
    )
    s.add_argument("run", nargs="?", help="a fine-tuning run folder")
    s.add_argument("--pred", help="folder of predicted NIfTI label maps")
    s.add_argument("--gt", help="folder of ground-truth NIfTI label maps with the same file names")
    s.add_argument("--labels", help="class names, comma-separated, background first")
    s.add_argument(
        "--protocol", choices=["paper", "standard"], help="metric protocol (default: the run's, or standard)"
    )
    s.add_argument(
        "--distances",
        choices=["surface", "medpy"],
        help="standard protocol's boundary definition: surface (default: directed HD95, area-weighted boundary "
        "elements, as DeepMind's surface-distance) or medpy (the earlier medpy-exact values); paper is always medpy",
    )
    s.add_argument(
        "--nsd-tolerance",
        metavar="MM",
        help="NSD (surface Dice) tolerance in mm: one value or per class, e.g. RV=2,Myo=1.5 (default 2)",
    )
    s.add_argument("--out", help="where to write metrics.csv and summary.* (default: the prediction folder)")
    s.set_defaults(fn=cmd_evaluate)


def _add_report_parser(sub: _SubParsers) -> None:
    """``report``: tables, statistics and figures of a folder of runs (or a slim bundle of it)."""
    s = sub.add_parser("report", help="tables (Markdown, CSV, LaTeX), statistics and figures of a folder of runs")
    s.add_argument("dir", help="a benchmark folder (or any folder holding run folders)")
    s.add_argument("--out", help="output folder (default DIR/report)")
    s.add_argument("--reference", help="published numbers CSV (default: the papers' numbers shipped with medssl)")
    s.add_argument(
        "--export",
        metavar="BUNDLE",
        help="write a slim recomputable bundle of DIR's runs (configs, metrics, logs; no checkpoints or predictions) "
        "into the new folder BUNDLE instead of a report; `medssl report BUNDLE` recomputes every table",
    )
    s.set_defaults(fn=cmd_report)


def _add_benchmark_parser(sub: _SubParsers) -> None:
    """``benchmark``: a grid of methods x datasets x label fractions x seeds."""
    s = sub.add_parser(
        "benchmark",
        help="run a grid of methods x datasets x label fractions x seeds, reusing pre-trainings and skipping finished cells",
    )
    s.add_argument("--config", required=True, help="grid YAML (see configs/benchmark_*.yaml)")
    s.add_argument("--out", required=True, help="benchmark folder")
    s.add_argument(
        "--cells", help="run only part of the grid: `i/n` (cells i, i+n, ...) to split across machines or GPUs"
    )
    s.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="run only the cells that meet every condition of one --only (keys: method, seed, dataset, labels, "
        "variant; variant=- is the grid's own cells), e.g. --only method=macl,seed=0",
    )
    s.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    s.add_argument(
        "--status",
        action="store_true",
        help="run nothing: which runs are done, started or pending, compute spent and an estimate of what is left",
    )
    s.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    s.add_argument(
        "--pretrain-only",
        action="store_true",
        help="run only the pre-trainings of these cells (fine-tune later with the same command)",
    )
    s.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a grid setting"
    )
    s.set_defaults(fn=cmd_benchmark)


def _add_demo_parser(sub: _SubParsers) -> None:
    """``demo``: the whole pipeline on built-in synthetic data."""
    s = sub.add_parser("demo", help="the whole pipeline on built-in synthetic data, in a few minutes on a CPU")
    s.add_argument("--out", default="medssl_demo", help="output folder (default ./medssl_demo)")
    s.add_argument("--quick", action="store_true", help="an even shorter run (for tests)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    s.set_defaults(fn=cmd_demo)


def _add_figure_parser(sub: _SubParsers) -> None:
    """``figure``: what SuperCL does to a batch, as an image."""
    s = sub.add_parser("figure", help="show what SuperCL does: image, superpixels, ASP map and CCL groups of a batch")
    s.add_argument("data", help="prepared store")
    s.add_argument(
        "--out", default="supercl_figure.png", help="image file; its suffix sets the format (png, pdf, svg, jpg...)"
    )
    s.add_argument("-n", type=int, default=6, help="number of slices (rows), 1..32")
    s.add_argument("--seed", type=int, default=0, help="seed of the slice choice and of the random-init encoder")
    s.set_defaults(fn=cmd_figure)


def build_parser() -> argparse.ArgumentParser:
    """The ``medssl`` argument parser: global options, then one sub-parser per command, in ``medssl -h`` order.

    The documentation's CLI reference is generated from it.

    Returns:
        The full parser; ``parse_args`` sets ``fn`` to the chosen command's ``cmd_*`` function.
    """
    p = argparse.ArgumentParser(
        prog="medssl",
        description="Self-supervised pre-training (SuperCL, MACL and 11 baselines) and few-label fine-tuning of a 2D U-Net for medical image segmentation.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version="medssl 0.1.0")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_listing_parsers(sub)
    _add_prepare_parser(sub)
    _add_pretrain_parser(sub)
    _add_finetune_parser(sub)
    _add_evaluate_parser(sub)
    _add_report_parser(sub)
    _add_benchmark_parser(sub)
    _add_demo_parser(sub)
    _add_figure_parser(sub)
    _add_inference_parsers(sub)
    return p


_INTERRUPTED = {
    "predict": "rerun the same command to continue: finished label maps are kept and skipped",
    "prepare": "rerun the same command to continue: the cases already written are kept",
    "pretrain": "rerun the same command to resume from the last complete epoch",
    "finetune": "rerun the same command to resume from the last complete epoch",
    "benchmark": "rerun the same command: finished cells are skipped and the interrupted one resumes from its last complete epoch",
    "demo": "rerun the same command: finished steps are skipped and the interrupted one resumes",
}


def _error(message: str) -> None:
    print(f"medssl: error: {' '.join(str(message).split())}", file=sys.stderr)


def _check_environment() -> None:
    from ..run_checks import check_environment

    check_environment()


def _closed_pipe() -> int:
    """The reader of our output went away (``medssl ... | head``): exit quietly and successfully, as Unix tools do."""
    import os

    try:  # point stdout at /dev/null so that the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if a.command in ("prepare", "pretrain", "finetune", "benchmark", "demo"):  # the commands with progress bars
            _check_environment()
        return int(a.fn(a) or 0)
    except MedsslError as e:
        if a.verbose:
            raise
        _error(str(e))
        return e.exit_code
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        hint = _INTERRUPTED.get(a.command)
        print(f"medssl: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if a.verbose:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _error(f"{where}{e.strerror or e}")
        return EXIT_FAILURE
    except Exception as e:
        if a.verbose:
            raise
        _error(f"internal error ({e.__class__.__name__}: {e}); rerun with -v for the traceback and report it")
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

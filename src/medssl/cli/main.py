"""``medssl``: label-efficient medical image segmentation from the command line.

Every sub-command parses its arguments, calls one documented Python function, and prints the result.
Errors in the input are reported on one line (``medssl: error: <file>: <problem>``), never as a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

EPILOG = "Docs: README.md. Every training command writes its resolved config, git commit, seed and environment into its run folder."


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
    g.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a checkpoint")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override any configuration field, e.g. optim.lr=0.1 (repeatable)")


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
        if a.verbose:
            for line in spec.layout.strip().splitlines():
                _say(f"{'':<13}{line}")
            _say(f"{'':<13}classes: {', '.join(spec.class_names)}; spacing {spec.target_spacing}; normalisation {spec.normalization}; patch {spec.patch_size}")
    return 0


def cmd_methods(a: argparse.Namespace) -> int:
    from ..methods.catalog import list_methods

    _say(f"{'name':<11} {'pre-trains':<17} description (paper)")
    for m in list_methods():
        extra = f" [variants: {', '.join(m.variants)}]" if m.variants else ""
        _say(f"{m.name:<11} {'+'.join(m.pretrains):<17} {m.description} ({m.paper}){extra}")
    return 0


def cmd_prepare(a: argparse.Namespace) -> int:
    from ..data.store import prepare
    from ..errors import DataError

    import yaml

    options: dict[str, Any] = {}
    for item in a.option:
        if "=" not in item:
            raise SystemExit(f"medssl: error: --option expects key=value, got '{item}'")
        k, v = item.split("=", 1)
        options[k] = yaml.safe_load(v)
    spacing: Any = "default"
    if a.spacing is not None:
        spacing = None if a.spacing.lower() in ("none", "keep") else float(a.spacing)
    try:
        res = prepare(a.dataset, a.src, a.out, target_spacing=spacing, normalization=a.normalization, skip_bad=a.skip_bad, overwrite=a.overwrite, progress=not a.no_progress, reader_options=options, log=_say)
    except DataError as e:
        for p in getattr(e, "problems", []):
            print(f"  {p}", file=sys.stderr)
        raise
    for s in res.skipped:
        _say(f"skipped {s['case_id']}: {s['reasons']}")
    fp = res.fingerprint
    _say(f"{fp['num_cases']} cases, {fp['num_patients']} patients, {fp['num_slices']} slices; median shape {fp['median_shape']}, median spacing {fp['median_spacing']}")
    _say(f"fingerprint: {Path(a.out) / 'fingerprint.json'}")
    return 0


def _finetune_cfg(a: argparse.Namespace) -> Any:
    from ..config import FinetuneConfig, load_config

    pairs = _training_overrides(a)
    if a.labels is not None:
        pairs.append(f"data.labels={a.labels}")
    if a.protocol is not None:
        pairs.append(f"protocol={a.protocol}")
    if a.split is not None:
        pairs.append(f"data.split={a.split}")
    if a.init is not None:
        pairs.append("init=null" if a.init.lower() == "none" else f"init={a.init}")
    if a.method_name is not None:
        pairs.append(f"method={a.method_name}")
    return load_config(FinetuneConfig, a.config, pairs + a.overrides)


def cmd_finetune(a: argparse.Namespace) -> int:
    from ..finetune import finetune

    cfg = _finetune_cfg(a)
    res = finetune(cfg, resume=not a.no_resume, log_fn=_say)
    _say(res.table)
    _say(f"best epoch {res.best_epoch} (selected on {'validation' if cfg.protocol == 'standard' else 'TEST, as the papers did'}); results in {res.out}")
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
    res = pretrain(cfg, resume=not a.no_resume, log_fn=_say)
    losses = ", ".join(f"{k}={v:.4f}" for k, v in res.final_losses.items())
    _say(f"{res.method}: pre-trained {'+'.join(res.pretrains)}; last epoch: {losses}")
    _say(f"checkpoint: {res.checkpoint}  (use: medssl finetune --init {res.checkpoint} ...)")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_folders, format_summary_table, write_results

    if a.run:
        from ..evaluation.run import evaluate_run

        result = evaluate_run(a.run, a.protocol)
        _say(format_summary_table(result.summary))
        return 0
    if not (a.pred and a.gt):
        raise SystemExit("medssl: error: give a RUN folder, or both --pred DIR and --gt DIR")
    names = a.labels.split(",") if a.labels else None
    result = evaluate_folders(a.pred, a.gt, class_names=names, protocol=a.protocol or "standard")
    out = Path(a.out or a.pred)
    write_results(result, out)
    _say(format_summary_table(result.summary))
    _say(f"metrics.csv and summary.md written to {out}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from ..reporting.report import report

    res = report(a.dir, a.out, a.reference)
    _say(res.markdown if hasattr(res, "markdown") else str(res))
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    from ..benchmark import run_benchmark

    res = run_benchmark(a.config, a.out, cells=a.cells, dry_run=a.dry_run, overrides=a.overrides, log_fn=_say, report=not a.no_report)
    _say(res)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(a.out, quick=a.quick, log_fn=_say, device=a.device)
    return 0


def cmd_figure(a: argparse.Namespace) -> int:
    from ..reporting.supercl_figure import supercl_figure

    path = supercl_figure(a.data, a.out, n=a.n, seed=a.seed)
    _say(f"figure: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medssl", description="Self-supervised pre-training (SuperCL, MACL and 11 baselines) and few-label fine-tuning of a 2D U-Net for medical image segmentation.", epilog=EPILOG)
    p.add_argument("--version", action="version", version="medssl 0.1.0")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("datasets", help="list the dataset readers and the layout each expects")
    s.add_argument("--verbose", "-v", action="store_true", help="show each layout and the preprocessing defaults")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("methods", help="list the pre-training methods, their papers and what they pre-train")
    s.set_defaults(fn=cmd_methods)

    s = sub.add_parser("prepare", help="check, resample, normalise and slice a dataset into a prepared store")
    s.add_argument("dataset", help="dataset name (see `medssl datasets`)")
    s.add_argument("src", help="the dataset folder in its official layout (`builtin` for synthetic)")
    s.add_argument("out", help="output folder of the prepared store")
    s.add_argument("--spacing", help="in-plane spacing in mm (default: the papers'; `keep` = no resampling)")
    s.add_argument("--normalization", choices=["zscore", "clip_zscore", "minmax", "slice_minmax", "max", "none"], help="override the dataset's normalisation")
    s.add_argument("--skip-bad", action="store_true", help="prepare the good cases and record the bad ones in skipped.json")
    s.add_argument("--overwrite", action="store_true", help="re-prepare cases already present")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="reader option, e.g. modality=flair (repeatable)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("pretrain", help="self-supervised pre-training of the U-Net with one method")
    s.add_argument("--method", help="method name (see `medssl methods`); default supercl")
    s.add_argument("--variant", help="named option set where paper and code disagree (e.g. macl: paper)")
    _add_training_args(s)
    s.set_defaults(fn=cmd_pretrain)

    s = sub.add_parser("finetune", help="fine-tune the U-Net with a share of the labels, then evaluate on the test patients")
    s.add_argument("--labels", help="labelled training patients: 10%%, 25%%, 100%%, 0.1 or a count (default 10%%)")
    s.add_argument("--init", help="pre-trained checkpoint (pretrain.pt or a reference-code checkpoint), or `none`")
    s.add_argument("--protocol", choices=["paper", "standard"], help="paper: select on test, pooled 2D Dice, pixel distances; standard (default): validation split, per-volume 3D metrics in mm")
    s.add_argument("--split", choices=["seeded", "paper"], help="seeded patient split (default) or the papers' published lists")
    s.add_argument("--method-name", dest="method_name", help="name shown in reports (default: the checkpoint's method, or scratch)")
    _add_training_args(s)
    s.set_defaults(fn=cmd_finetune)

    s = sub.add_parser("evaluate", help="DSC, JC, HD95, ASD, ASSD per case and class: of a run, or of two NIfTI folders")
    s.add_argument("run", nargs="?", help="a fine-tuning run folder")
    s.add_argument("--pred", help="folder of predicted NIfTI label maps")
    s.add_argument("--gt", help="folder of ground-truth NIfTI label maps with the same file names")
    s.add_argument("--labels", help="class names, comma-separated, background first")
    s.add_argument("--protocol", choices=["paper", "standard"], help="metric protocol (default: the run's, or standard)")
    s.add_argument("--out", help="where to write metrics.csv and summary.* (default: the prediction folder)")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("report", help="tables (Markdown, CSV, LaTeX), statistics and figures of a folder of runs")
    s.add_argument("dir", help="a benchmark folder (or any folder holding run folders)")
    s.add_argument("--out", help="output folder (default DIR/report)")
    s.add_argument("--reference", help="published numbers CSV (default: the papers' numbers shipped with medssl)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("benchmark", help="run a grid of methods x datasets x label fractions x seeds, reusing pre-trainings and skipping finished cells")
    s.add_argument("--config", required=True, help="grid YAML (see configs/benchmark_*.yaml)")
    s.add_argument("--out", required=True, help="benchmark folder")
    s.add_argument("--cells", help="run only part of the grid: `i/n` (cells i, i+n, ...) to split across machines or GPUs")
    s.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    s.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a grid setting")
    s.set_defaults(fn=cmd_benchmark)

    s = sub.add_parser("demo", help="the whole pipeline on built-in synthetic data, in a few minutes on a CPU")
    s.add_argument("--out", default="medssl_demo", help="output folder (default ./medssl_demo)")
    s.add_argument("--quick", action="store_true", help="an even shorter run (for tests)")
    s.add_argument("--device", default="auto")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("figure", help="show what SuperCL does: image, superpixels, ASP map and CCL groups of a batch")
    s.add_argument("data", help="prepared store")
    s.add_argument("--out", default="supercl_figure.png")
    s.add_argument("-n", type=int, default=6, help="number of slices")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_figure)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import MedsslError

    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(a.fn(a) or 0)
    except MedsslError as e:
        if a.verbose:
            raise
        print(f"medssl: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medssl: interrupted; rerun the same command to resume from the last complete epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

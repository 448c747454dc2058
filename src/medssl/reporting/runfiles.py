"""The one validated reader of a fine-tuning run's files, used by ``report``, ``evaluate`` and ``benchmark``.

A run's results are trusted only when they are whole: ``run.json`` and ``summary.json`` are JSON
objects, ``splits.json`` lists the test cases, and ``metrics.csv`` has its header, a complete row of
numbers for every test case and foreground class, each once, and no case outside the test split. A
file cut mid-row, emptied, overwritten with binary data or edited by hand is named with its problem
(:class:`~medssl.errors.DataError`, one line), never read as a partial table.

Example::

    files = read_run_files("runs/ft")            # raises DataError naming the file and the problem
    files.metric_rows[0]["dsc"]
    problem = run_files_problem("runs/ft")       # the same check as a string (None when whole)
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = [
    "METRICS_REQUIRED_COLUMNS",
    "RunFiles",
    "finished_summary_rows",
    "read_json_object",
    "read_metrics_csv",
    "read_run_files",
    "read_splits",
    "recomputed_mean",
    "run_files_problem",
    "stale_problem",
    "unusable_run_problem",
]

#: columns every ``metrics.csv`` must have (the others, such as ``assd`` or ``tp``, are optional)
METRICS_REQUIRED_COLUMNS: tuple[str, ...] = ("case_id", "class_index", "class_name", "dsc", "jc", "hd95", "asd")
#: 0/1 columns that other writers may spell true / false
_FLAGS = ("gt_empty", "pred_empty")
#: columns whose values must be numbers (``nan`` and empty allowed: an empty mask has no distance)
_NUMERIC = ("dsc", "jc", "hd95", "asd", "assd", "tp", "fp", "fn", "gt_empty", "pred_empty", "n_slices")
#: metrics that are fractions in [0, 1]; the other metrics and counts of a run's files are >= 0
_FRACTIONS = ("dsc", "jc", "nsd")


@dataclass
class RunFiles:
    """The validated files of one fine-tuning run.

    Attributes:
        path: the run folder.
        run: ``run.json``.
        summary: ``summary.json``.
        test: the test case ids of ``splits.json`` (None when the run has none: written by another tool).
        metric_rows: the rows of ``metrics.csv`` (strings, as ``csv.DictReader`` gives them).
    """

    path: Path
    run: dict[str, Any]
    summary: dict[str, Any] | list[Any]
    test: list[str] | None
    metric_rows: list[dict[str, str]] = field(default_factory=list)


def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(path, "missing (the run did not finish)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "not a text file (binary data); the file is corrupt") from None
    except OSError as e:
        raise DataError(path, f"cannot be read ({e.strerror or e})") from None


def read_json_object(path: str | Path, allow_list: bool = False) -> Any:
    """A JSON file that must hold an object (or, with ``allow_list``, a list).

    Raises:
        DataError: missing, binary, truncated or not valid JSON, empty, or of the wrong type.
    """
    path = Path(path)
    text = _text(path)
    if not text.strip():
        raise DataError(path, "empty file; the run did not finish or the file was truncated")
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise DataError(path, f"not valid JSON (truncated or corrupt: {str(e).splitlines()[0]})") from None
    if not (isinstance(doc, dict) or (allow_list and isinstance(doc, list))):
        raise DataError(path, f"expected a JSON object, got a {type(doc).__name__}")
    return doc


def read_splits(run_dir: str | Path) -> dict[str, Any]:
    """``splits.json`` of a run, with ``test`` a list of case ids (strings).

    Raises:
        DataError: unreadable, or without a list of test case ids.
    """
    path = Path(run_dir) / "splits.json"
    doc = read_json_object(path)
    test = doc.get("test")
    if not isinstance(test, list) or not all(isinstance(c, str) for c in test):
        raise DataError(path, "no list of test case ids under 'test'; the file is corrupt")
    if len(set(test)) != len(test):
        raise DataError(path, "a test case is listed twice; the file is corrupt")
    return doc


def _check_header(path: Path, header: list[str] | None) -> None:
    if not header:
        raise DataError(path, "empty file (no header line); the run did not finish or the file was truncated")
    garbled = next((c for c in header if not re.fullmatch(r"[A-Za-z0-9_]+", c)), None)
    if garbled is not None:
        raise DataError(path, f"the header has a garbled column name {garbled[:20]!r}; the file is corrupt")
    missing = [c for c in METRICS_REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(path, f"header lacks the column(s) {', '.join(missing)}; not a medssl metrics file")


def _check_row(path: Path, line: int, row: dict[str, Any]) -> None:
    if None in row:
        raise DataError(path, f"line {line}: more fields than the header; the file is corrupt")
    short = [k for k, v in row.items() if v is None]
    if short:
        raise DataError(path, f"line {line}: the row is cut short (no {short[0]}); the file was truncated")
    for k in _NUMERIC:
        v = row.get(k)
        if v is None or v.strip() == "" or (k in _FLAGS and v.strip().lower() in ("true", "false")):
            continue
        try:
            x = float(v)
        except ValueError:
            raise DataError(path, f"line {line}: {k} is not a number ({v[:20]!r})") from None
        if _out_of_range(k, x):
            raise DataError(path, f"line {line}: {k} = {v} is out of range")
    try:
        int(row["class_index"])
    except ValueError:
        raise DataError(path, f"line {line}: class_index is not an integer ({row['class_index'][:20]!r})") from None


def _out_of_range(metric: str, x: float) -> bool:
    """Infinite, a fraction (DSC, JC, NSD) outside [0, 1], or a negative distance or count (NaN is allowed)."""
    return math.isinf(x) or (not math.isnan(x) and (x < 0.0 or (metric in _FRACTIONS and x > 1.0)))


def _check_summary_values(path: Path, doc: Any) -> None:
    """The numbers of ``summary.json``'s ``mean`` (and its rows' ``<metric>_mean``) are numbers in range."""
    rows = doc.get("summary") if isinstance(doc, dict) else doc
    items = [("mean", k, v) for k, v in (doc.get("mean") or {}).items()] if isinstance(doc, dict) else []
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, dict):
            items += [(str(r.get("class_name")), k[: -len("_mean")], v) for k, v in r.items() if k.endswith("_mean")]
    for where, k, v in items:
        if v is None:  # NaN as JSON null
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DataError(path, f"{where}: {k} is not a number ({str(v)[:20]!r}); the file is corrupt")
        if _out_of_range(k, float(v)):
            raise DataError(path, f"{where}: {k} = {v} is out of range; the file is corrupt or was edited")


def _check_cases(path: Path, rows: list[dict[str, str]], test: list[str] | None) -> None:
    seen: set[tuple[str, int]] = set()
    for i, r in enumerate(rows, start=2):
        key = (r["case_id"], int(r["class_index"]))
        if key in seen:
            raise DataError(path, f"line {i}: case {key[0]} class {key[1]} appears twice")
        seen.add(key)
    if test is None:
        return
    cases, wanted = {c for c, _ in seen}, set(test)
    missing, extra = sorted(wanted - cases), sorted(cases - wanted)
    if missing:
        raise DataError(
            path, f"incomplete: {len(missing)} of {len(test)} test case(s) of splits.json missing (first: {missing[0]})"
        )
    if extra:
        raise DataError(path, f"case {extra[0]} is not a test case of splits.json; the file does not belong to the run")
    classes = {k for _, k in seen}
    for c in test:
        lacking = [k for k in sorted(classes) if (c, k) not in seen]
        if lacking:
            raise DataError(path, f"incomplete: case {c} has no row for class {lacking[0]}")


def read_metrics_csv(path: str | Path, test: list[str] | None = None) -> list[dict[str, str]]:
    """The rows of a ``metrics.csv``, checked: header, complete numeric rows, every test case once per class.

    Args:
        path: the file.
        test: the test case ids it must cover exactly (None: not checked).

    Raises:
        DataError: the file and its first problem (missing, binary, empty, truncated, not numbers,
            a case missing, twice or not in the test split).
    """
    path = Path(path)
    text = _text(path)
    if "\x00" in text:
        raise DataError(path, "not a text file (binary data); the file is corrupt")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        _check_header(path, list(reader.fieldnames or []))
        rows = list(reader)
    except csv.Error as e:
        raise DataError(path, f"not a valid CSV file ({e})") from None
    if text and not text.endswith("\n"):
        raise DataError(path, "the last line is cut short (no line end); the file was truncated")
    for i, r in enumerate(rows, start=2):
        _check_row(path, i, r)
    if not rows and test:
        raise DataError(path, "no rows; the run did not finish or the file was truncated")
    _check_cases(path, rows, test)
    return rows


def _check_summary(path: Path, doc: Any) -> Any:
    """A ``summary.json``: a mapping with ``protocol``, ``mean`` or ``summary`` (a missing ``mean`` is
    recomputed from the validated ``metrics.csv``), or a list of rows; rows are mappings with a ``class_name``."""
    if isinstance(doc, dict) and not {"protocol", "mean", "summary"} & set(doc):
        raise DataError(path, "none of protocol, mean, summary; not a medssl summary (the file is corrupt)")
    if isinstance(doc, dict) and "mean" in doc and not isinstance(doc["mean"], dict):
        raise DataError(path, "'mean' is not a mapping of metric to value; the file is corrupt")
    rows = doc if isinstance(doc, list) else doc.get("summary", [{"class_name": "-"}])
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "class_name" in r for r in rows):
        raise DataError(
            path, "its summary rows are missing or not rows (class_name, dsc_mean, ...); the file is corrupt"
        )
    _check_summary_values(path, doc)
    return doc


def read_run_files(run_dir: str | Path) -> RunFiles:
    """Every result file of a finished fine-tuning run, validated (see the module docstring).

    Raises:
        DataError: the first file with a problem, named, and the problem.
    """
    run_dir = Path(run_dir)
    info = read_json_object(run_dir / "run.json")
    summary = _check_summary(run_dir / "summary.json", read_json_object(run_dir / "summary.json", allow_list=True))
    # runs written by other tools may lack splits.json: their rows are then checked among themselves
    test = list(read_splits(run_dir)["test"]) if (run_dir / "splits.json").exists() else None
    rows = read_metrics_csv(run_dir / "metrics.csv", test)
    _check_mean_matches_rows(run_dir, summary, rows)
    return RunFiles(run_dir, info, summary, test, rows)


#: the columns of medssl's own ``metrics.csv`` from which its ``summary.json`` mean is recomputed
_SUMMARY_COLUMNS = ("tp", "fp", "fn", "n_slices", "gt_empty", "pred_empty")


def _count(v: str) -> int:
    """A count or a 0/1 flag of ``metrics.csv`` (other writers spell flags true / false)."""
    low = str(v).strip().lower()
    return 1 if low == "true" else 0 if low in ("false", "") else int(float(low))


def recomputed_mean(rows: list[dict[str, str]], protocol: str) -> dict[str, float] | None:
    """The ``mean`` row of ``summary.json`` recomputed from ``metrics.csv``'s rows (as ``evaluate``
    computes it), or None when the rows lack the counts it needs (files written by another tool).

    Args:
        rows: validated rows of :func:`read_metrics_csv`.
        protocol: the summary's ``standard`` or ``paper``.

    Returns:
        Metric -> mean (NaN where no case has a value).
    """
    from ..evaluation.metrics import METRIC_NAMES, summarize
    from .tables import to_float  # tables imports this module

    if not rows or protocol not in ("standard", "paper") or not set(_SUMMARY_COLUMNS) <= set(rows[0]):
        return None
    parsed = [
        {
            "case_id": r["case_id"],
            "class_index": int(r["class_index"]),
            "class_name": r["class_name"],
            **{m: to_float(r.get(m)) for m in METRIC_NAMES},
            **{k: _count(r[k]) for k in _SUMMARY_COLUMNS},
        }
        for r in rows
    ]
    mean_row = summarize(parsed, protocol)[-1]
    return {m: float(mean_row[f"{m}_mean"]) for m in METRIC_NAMES}


def _check_mean_matches_rows(run_dir: Path, summary: Any, rows: list[dict[str, str]]) -> None:
    """``summary.json``'s mean is the mean of ``metrics.csv``: the tables read one, the statistics the
    other, so an edited or mixed-up file would make them disagree unseen. Checked for the files of
    ``medssl evaluate`` (its ``summary.json`` holds ``metric_per_case``), whose mean is defined by
    :func:`~medssl.evaluation.metrics.summarize`; files of other tools may define it otherwise."""
    mean = summary.get("mean") if isinstance(summary, dict) else None
    if not isinstance(mean, dict) or not mean or "metric_per_case" not in summary:
        return
    from .tables import to_float

    again = recomputed_mean(rows, str(summary.get("protocol", "standard")))
    if again is None:
        return
    for m, v in mean.items():
        if m not in again:
            continue
        a, b = to_float(v), again[m]
        if math.isnan(a) and math.isnan(b):
            continue
        if math.isnan(a) != math.isnan(b) or abs(a - b) > 1e-6 * max(1.0, abs(b)):
            raise DataError(
                run_dir / "summary.json",
                f"mean {m} = {a:.6g} but metrics.csv gives {b:.6g}; the files do not belong together or one was "
                f"edited (medssl evaluate {run_dir} writes both again from the predictions)",
            )


def run_files_problem(run_dir: str | Path) -> str | None:
    """Why a fine-tuning run's results cannot be used (``"<file>: <problem>"``), or None when whole."""
    try:
        read_run_files(run_dir)
    except DataError as e:
        return str(e)
    return None


def stale_problem(run_dir: str | Path, info: dict[str, Any]) -> str | None:
    """Why a run's results no longer match its inputs (its store or ``--init`` checkpoint changed), or None."""
    from ..engine.provenance import changed_inputs

    changes = changed_inputs(info.get("inputs"), info.get("data"), info.get("init"))
    if not changes:
        return None
    return f"{run_dir}: stale: {'; '.join(changes)}; run it again (finetune --no-resume) to use it"


def unusable_run_problem(run_dir: str | Path, info: dict[str, Any]) -> str | None:
    """Why a finished fine-tuning run cannot be used in a report or a reused benchmark cell, or None.

    Combines :func:`run_files_problem` (incomplete or corrupt result files) and :func:`stale_problem`.
    """
    return run_files_problem(run_dir) or stale_problem(run_dir, info)


def finished_summary_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The summary rows of a finished fine-tuning run, shown again when its command is rerun.

    Raises:
        DataError: a result file with a problem, and how to rewrite the results from the predictions.
    """
    run_dir = Path(run_dir)
    remedy = f"rewrite the results from its predictions (medssl evaluate {run_dir}) or rerun with --no-resume"
    try:
        doc = read_run_files(run_dir).summary
    except DataError as e:
        raise DataError(None, f"{e}; {remedy}") from None
    rows = doc.get("summary") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"class_name", "n_cases"} <= set(r) for r in rows):
        raise DataError(run_dir / "summary.json", f"no summary rows (class_name, n_cases, ...); {remedy}")
    return rows

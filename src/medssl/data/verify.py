"""Dataset integrity check: look at EVERY case and return every problem (never stop at the first).

Modelled on nnU-Net's ``verify_dataset_integrity``: files present and readable, image and label
of the same shape and geometry (spacing and affine within a tolerance), label values in the
declared set, no NaN/Inf, no empty, zero-size or constant images, unique case ids, and split
lists that only name existing cases. The command line prints one ``path: reason`` line per
problem and exits non-zero when the list is not empty.

Example::

    sources = scan_dataset("mscmrseg", "/data/mscmrseg_bssfp")
    problems = verify_dataset(sources, resolve_spec("mscmrseg"))
    for p in problems:
        print(p)            # /data/mscmrseg_bssfp/label_3.nii.gz: unknown label values [7] (expected {0, 200, 500, 600})
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medssl.data.case import Case, CaseSource, DatasetSpec
from medssl.data.io import one_line
from medssl.data.readers._common import CaseLoader, format_values
from medssl.errors import DataError

__all__ = ["Problem", "verify_dataset"]


@dataclass(frozen=True)
class Problem:
    """One integrity problem.

    Attributes:
        path: the file (or folder) concerned.
        case_id: the case it belongs to (empty for dataset-level problems).
        reason: one line saying what is wrong.
    """

    path: str
    case_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _file_problems(path: str) -> str | None:
    p = Path(path)
    if not p.exists():
        return f"broken link to {p.readlink()}" if p.is_symlink() else "file not found"
    if p.is_file() and p.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def _case_problems(src: CaseSource, spec: DatasetSpec, affine_tol: float) -> list[tuple[str, str]]:
    loader = src.loader
    if isinstance(loader, CaseLoader):
        return _reader_problems(loader, src, spec, affine_tol)
    # any other loader: load it and check the result
    try:
        case = src.load()
    except DataError as exc:
        return [(exc.path or src.paths[0], exc.problem)]
    except Exception as exc:
        return [(src.paths[0] if src.paths else src.case_id, f"unreadable ({one_line(exc)})")]
    return _loaded_case_problems(case, src, spec)


def _reader_problems(
    loader: CaseLoader, src: CaseSource, spec: DatasetSpec, affine_tol: float
) -> list[tuple[str, str]]:
    """Every problem a reader's loader reports, plus a class count that differs from the spec's."""
    probs = loader.problems(affine_tol)
    k = loader.label_map.k if loader.label_map is not None else None
    declared = tuple(src.meta.get("class_names") or spec.class_names)
    if k is not None and not spec.pretrain_only and k != len(declared):
        probs.append(
            (
                src.paths[-1],
                f"reader maps labels to {k} classes but the dataset declares {len(declared)} ({', '.join(declared)})",
            )
        )
    return probs


def _loaded_case_problems(case: Case, src: CaseSource, spec: DatasetSpec) -> list[tuple[str, str]]:
    """The problems of a case loaded by a loader that is not a reader's (it reports none itself)."""
    probs: list[tuple[str, str]] = []
    where = case.source or (src.paths[0] if src.paths else src.case_id)
    img = np.asarray(case.image)
    if img.size == 0:
        return [(where, f"zero-size volume (shape {img.shape})")]
    bad = ~np.isfinite(img)
    if bad.any():
        probs.append((where, f"non-finite intensities: {int(bad.sum())} voxels"))
    elif float(img.max()) == float(img.min()):
        probs.append((where, f"constant image (every voxel is {float(img.min()):g})"))
    if case.label is not None:
        lab = np.asarray(case.label)
        if lab.shape != img.shape:
            probs.append((where, f"label shape {lab.shape} differs from image shape {img.shape} (D, H, W)"))
        if not spec.pretrain_only:
            vals = np.unique(lab)
            extra = [v for v in vals.tolist() if not (float(v).is_integer() and 0 <= v < spec.num_classes)]
            if extra:
                probs.append((where, f"label values {format_values(extra)} outside 0..{spec.num_classes - 1}"))
    return probs


def verify_dataset(
    sources: Sequence[CaseSource],
    spec: DatasetSpec,
    split_case_ids: Iterable[str] | None = None,
    affine_tol: float = 1e-3,
    split_source: str = "split list",
) -> list[Problem]:
    """Check every case of a dataset and return all problems found.

    Each case is read once (one at a time, so memory stays at one case). Readers of
    ``medssl.data.readers`` give a ``CaseLoader`` that reports every problem of a case (not only
    the first); other loaders are loaded and their ``Case`` is checked.

    Args:
        sources: the scanned cases (``scan_dataset``).
        spec: the dataset's spec (``resolve_spec`` gives the task's classes for ``msd`` and
            ``nifti-folder``); a case whose ``meta["class_names"]`` is set (those two readers)
            is checked against its own class list.
        split_case_ids: ids named by split lists; each must match a case id, patient id or
            ``meta["paper_key"]`` (as text) of some case.
        affine_tol: tolerance on spacing and affine entries (``|a - b| <= tol * (1 + |b|)``).
        split_source: the name reported as the path of split-list problems.

    Returns:
        Problems in case order (dataset-level ones first); empty when the data set is clean.
    """
    problems: list[Problem] = []
    if not sources:
        problems.append(Problem(spec.name, "", f"no cases (expected {spec.layout})"))
    problems.extend(_duplicate_ids(sources))
    if split_case_ids is not None:
        problems.extend(_unknown_split_ids(sources, split_case_ids, split_source))
    for src in sources:
        problems.extend(_source_problems(src, spec, affine_tol))
    return problems


def _where(src: CaseSource) -> str:
    return src.paths[0] if src.paths else src.case_id


def _duplicate_ids(sources: Sequence[CaseSource]) -> list[Problem]:
    """One problem per case whose id an earlier case already has."""
    problems: list[Problem] = []
    seen: dict[str, CaseSource] = {}
    for src in sources:
        if src.case_id in seen:
            first = seen[src.case_id]
            problems.append(
                Problem(
                    _where(src),
                    src.case_id,
                    f"duplicate case id '{src.case_id}' (also {first.paths[0] if first.paths else '?'})",
                )
            )
        else:
            seen[src.case_id] = src
    return problems


def _unknown_split_ids(
    sources: Sequence[CaseSource], split_case_ids: Iterable[str], split_source: str
) -> list[Problem]:
    """One problem per id of the split lists that names no case, patient or paper key."""
    known: set[str] = set()
    for src in sources:
        known.update({src.case_id, src.patient_id})
        if src.meta.get("paper_key") is not None:
            known.add(str(src.meta["paper_key"]))
    missing: dict[str, int] = defaultdict(int)
    for cid in split_case_ids:
        if str(cid).strip() not in known:
            missing[str(cid).strip()] += 1
    return [Problem(split_source, cid, f"names case '{cid}' that is not in the data set") for cid in missing]


def _source_problems(src: CaseSource, spec: DatasetSpec, affine_tol: float) -> list[Problem]:
    """The problems of one case: a missing label, missing or empty files, then what reading it finds."""
    problems: list[Problem] = []
    if not spec.pretrain_only and not src.has_label:
        expected = src.meta.get("expected_label")
        problems.append(
            Problem(_where(src), src.case_id, f"no label file{f' (expected {expected})' if expected else ''}")
        )
    file_probs = [(p, r) for p in src.paths if (r := _file_problems(p)) is not None]
    if file_probs:
        return problems + [Problem(p, src.case_id, r) for p, r in file_probs]
    try:
        case_probs = _case_problems(src, spec, affine_tol)
    except Exception as exc:
        case_probs = [(_where(src), f"unreadable ({one_line(exc)})")]
    return problems + [Problem(str(p), src.case_id, r) for p, r in case_probs]

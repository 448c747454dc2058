"""Patient-level splits: seeded (reproducible from a seed) or the papers' published lists.

Every method of a benchmark gets identical splits for the same (dataset, seed, labels): the split
depends on nothing else. Splits are written to ``splits.json`` in each run folder.

The grammar of ``labels`` (``--labels``, ``data.labels``): a **count** is an integer (``"1"`` is one
patient, ``"8"`` eight); a **fraction** has a ``%`` or a decimal point (``"10%"``, ``"0.1"``,
``"100%"`` = ``"1.0"`` = every training patient). A count larger than the training patients left
after the test and validation sets is an error; a fraction is rounded up to whole patients.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .store import SliceStore

__all__ = [
    "LabelSpec",
    "Split",
    "canonical_labels",
    "load_paper_splits",
    "make_split",
    "parse_label_spec",
    "parse_labels",
]


@dataclass
class Split:
    """Case ids of each part. ``val`` is empty for the ``paper`` protocol (it selects on test)."""

    train: list[str]
    val: list[str]
    test: list[str]
    pool: list[str]
    labels: str
    seed: int
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LabelSpec:
    """A parsed ``labels`` value: exactly one of ``count`` (patients) and ``fraction`` (0 < f <= 1) is set.

    ``str(spec)`` is the canonical text: ``"8"`` for a count, ``"10%"`` for a fraction.
    """

    count: int | None = None
    fraction: float | None = None

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{round(float(self.fraction or 0) * 100, 6):g}%"

    def patients(self, pool_size: int) -> int:
        """Labelled patients out of ``pool_size``: the count, or the fraction rounded up (at least 1)."""
        if self.count is not None:
            return self.count
        return max(1, min(pool_size, math.ceil(round(float(self.fraction or 0) * pool_size, 6))))


_GRAMMAR = (
    "a count is an integer such as 8; a fraction has a % or a decimal point, such as 10% or 0.1; 100% or 1.0 means all"
)


def parse_label_spec(labels: Any) -> LabelSpec:
    """Parse ``labels`` by the grammar of the module docstring (no pool size needed).

    Args:
        labels: ``"10%"``, ``"0.1"``, ``0.1``, ``"8"``, ``8``...

    Returns:
        A :class:`LabelSpec`.

    Raises:
        ConfigError: ``labels: <problem>`` for anything else (negative, zero, above 100%, text).
    """
    if isinstance(labels, bool) or not isinstance(labels, (str, int, float)):
        raise ConfigError(f"labels: expected a count or a fraction, got {labels!r}; {_GRAMMAR}")
    text = str(labels).strip()
    if text.startswith("-"):
        raise ConfigError(f"labels: '{text}' is negative; {_GRAMMAR}")
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if n < 1:
            raise ConfigError(f"labels: '{text}' asks for no labelled patient; {_GRAMMAR}")
        return LabelSpec(count=n)
    m = re.fullmatch(r"(\d+\.?\d*|\.\d+)\s*%", text)
    if m:
        frac = float(m.group(1)) / 100
    elif re.fullmatch(r"\d*\.\d*", text) and re.search(r"\d", text):
        frac = float(text)
    else:
        raise ConfigError(f"labels: '{text}' is neither a count nor a fraction; {_GRAMMAR}")
    if not 0 < frac <= 1:
        hint = (
            f" (for {int(frac)} patients write {int(frac)})"
            if "%" not in text and frac > 1 and frac.is_integer()
            else ""
        )
        raise ConfigError(f"labels: the fraction '{text}' must be in (0%, 100%]{hint}")
    return LabelSpec(fraction=frac)


def canonical_labels(labels: Any) -> str:
    """The canonical text of ``labels``: ``"0.1"`` -> ``"10%"``, ``"1.0"`` -> ``"100%"``, ``8`` -> ``"8"``."""
    return str(parse_label_spec(labels))


def parse_labels(labels: str | float | int, pool_size: int) -> int:
    """Number of labelled patients for ``"10%"``, ``"0.1"``, ``0.1`` or ``"8"`` out of ``pool_size``.

    Fractions round up (at least one patient), as the papers' lists do (10% of 80 ACDC patients = 8).

    Raises:
        ConfigError: a malformed value, or a count larger than ``pool_size``.
    """
    spec = parse_label_spec(labels)
    if spec.count is not None and spec.count > pool_size:
        raise ConfigError(f"labels: {spec.count} patients asked, the training pool has {pool_size}")
    return spec.patients(pool_size)


def load_paper_splits(path: str | Path | None = None) -> dict[str, dict[str, list]]:
    """Parse ``paper_splits.txt``: ``{section: {"train": [[keys 10%], [keys 25%]], "test": [keys]}}``."""
    text = (
        Path(path).read_text() if path else resources.files("medssl.resources").joinpath("paper_splits.txt").read_text()
    )
    sections: dict[str, dict[str, list]] = {}
    for block in re.split(r"^#\s*", text, flags=re.M):
        name, _, body = block.partition("\n")
        name = name.strip()
        trains = [
            [int(v) for v in re.findall(r"\d+", m)] for m in re.findall(r"train_keys:\s*\[([^\]]*)\]", body, flags=re.S)
        ]
        tests = re.findall(r"test:\s*\[([^\]]*)\]", body, flags=re.S)
        if trains or tests:
            sections[name] = {"train": trains, "test": [int(v) for v in re.findall(r"\d+", tests[0])] if tests else []}
    return sections


def _patients(store: SliceStore, case_ids: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for cid in case_ids:
        groups.setdefault(store.info(cid).patient_id, []).append(cid)
    return groups


def make_split(
    store: SliceStore,
    labels: str = "10%",
    seed: int = 1234,
    protocol: str = "standard",
    kind: str = "seeded",
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
) -> Split:
    """Split the labelled cases of ``store`` by patient.

    Args:
        store: the prepared store.
        labels: labelled share of the training pool (``"10%"``, ``"0.25"``, ``"100%"``) or a count of
            patients (``"8"``); see the module docstring.
        seed: split seed.
        protocol: ``standard`` carves a validation set from the pool before sampling the labelled patients;
            ``paper`` has none (the papers select on the test set).
        kind: ``seeded`` or ``paper`` (the published lists of ``paper_splits.txt``, 10% and 25% only).
        test_fraction: share of the patients held out for testing.
        val_fraction: share of the training pool carved out for validation.

    Raises:
        ConfigError: impossible fractions, a count larger than the training patients left, or no
            published list for this dataset/label fraction.
    """
    spec = parse_label_spec(labels)
    labelled = [c.case_id for c in store.cases if c.has_label]
    if not labelled:
        raise DataError(store.root, "no labelled case in this prepared store; it can only be used for pre-training")
    if kind == "paper":
        return _paper_split(store, spec, labels, labelled, seed, protocol)
    if kind != "seeded":
        raise ConfigError(f"split must be 'seeded' or 'paper', got '{kind}'")
    groups = _patients(store, labelled)
    test_p, val_p, pool_p, train_p = _seeded_patients(sorted(groups), spec, seed, protocol, test_fraction, val_fraction)

    def cases(ps: list[str]) -> list[str]:
        return sorted(c for p in ps for c in groups[p])

    return Split(cases(train_p), cases(val_p), cases(test_p), cases(pool_p), str(spec), seed, kind)


def _paper_split(
    store: SliceStore, spec: LabelSpec, labels: str, labelled: list[str], seed: int, protocol: str
) -> Split:
    """The published test list and the published training list of the asked size (``kind="paper"``)."""
    key = store.plan.get("paper_split_key")
    table = load_paper_splits()
    if not key or key not in table:
        raise ConfigError(f"no published split for dataset '{store.plan.get('dataset')}' (paper_split_key={key})")
    by_key: dict[int, list[str]] = {}
    for c in store.cases:
        if c.has_label and c.paper_key is not None:
            by_key.setdefault(int(c.paper_key), []).append(c.case_id)
    sec = table[key]
    missing = [k for k in sec["test"] + [k for t in sec["train"] for k in t] if k not in by_key]
    if missing:
        raise DataError(
            store.root, f"the published {key} split names cases not in the store (keys {sorted(set(missing))[:10]})"
        )
    test = sorted(c for k in sec["test"] for c in by_key[k])
    pool = sorted(c for c in labelled if c not in set(test))
    if spec.fraction == 1.0:
        train = pool
    else:
        pool_patients = len(_patients(store, pool))
        n = parse_labels(labels, pool_patients)
        lists = [t for t in sec["train"] if len(t) == n] or []
        if not lists:
            sizes = ", ".join(str(len(t)) for t in sec["train"])
            raise ConfigError(f"published {key} lists have {sizes} patients; '{labels}' asks for {n}")
        train = sorted(c for k in lists[0] for c in by_key[k])
    val: list[str] = []
    if protocol == "standard":
        raise ConfigError("the published splits have no validation set; use --protocol paper or --split seeded")
    return Split(train, val, test, pool, str(spec), seed, "paper")


def _seeded_patients(
    patients: list[str], spec: LabelSpec, seed: int, protocol: str, test_fraction: float, val_fraction: float
) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(test, validation, pool, train)`` patients of a seeded split (``kind="seeded"``).

    One permutation of the sorted patients: the first ``test_fraction`` are the test set, then (protocol
    ``standard``) the first ``val_fraction`` of the rest are validation; the training patients are the
    first ones of what is left (the pool).
    """
    if len(patients) < 2:
        raise ConfigError(f"need at least 2 labelled patients to split, the store has {len(patients)}")
    order = list(np.random.default_rng(seed).permutation(patients))
    n_test = max(1, int(round(test_fraction * len(order))))
    test_p, pool_p = order[:n_test], order[n_test:]
    # a labelled fraction is a share of the whole non-test pool (as in the papers: 10% of 80 ACDC
    # patients = 8), drawn from what is left after the validation patients are set aside
    n_val = max(1, int(round(val_fraction * len(pool_p)))) if protocol == "standard" else 0
    if len(pool_p) - n_val < 1:
        raise ConfigError(
            f"data: {len(patients)} labelled patients are too few for a test ({n_test}), validation ({n_val}) "
            "and training set; lower data.test_fraction or data.val_fraction"
        )
    val_p, pool_p = pool_p[:n_val], pool_p[n_val:]
    if spec.count is not None and spec.count > len(pool_p):
        raise ConfigError(
            f"data.labels: {spec.count} labelled patients asked, but only {len(pool_p)} are left for training "
            f"({len(patients)} labelled patients: {n_test} test, {n_val} validation); lower --labels, "
            "data.test_fraction or data.val_fraction"
        )
    n_train = spec.count if spec.count is not None else min(spec.patients(len(pool_p) + n_val), len(pool_p))
    return test_p, val_p, pool_p, pool_p[:n_train]

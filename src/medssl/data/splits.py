"""Patient-level splits: seeded (reproducible from a seed) or the papers' published lists.

Every method of a benchmark gets identical splits for the same (dataset, seed, labels): the split
depends on nothing else. Splits are written to ``splits.json`` in each run folder.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .store import SliceStore

__all__ = ["Split", "parse_labels", "make_split", "load_paper_splits"]


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


def parse_labels(labels: str | float | int, pool_size: int) -> int:
    """Number of labelled patients for ``"10%"``, ``"0.1"``, ``0.1`` or ``"8"`` out of ``pool_size``.

    Fractions round up (at least one patient), as the papers' lists do (10% of 80 ACDC patients = 8).
    """
    text = str(labels).strip()
    try:
        if text.endswith("%"):
            frac = float(text[:-1]) / 100
        else:
            value = float(text)
            if value.is_integer() and value > 1:
                n = int(value)
                if n > pool_size:
                    raise ConfigError(f"labels: {n} patients asked, the training pool has {pool_size}")
                return n
            frac = value
    except ValueError:
        raise ConfigError(f"labels: expected a percentage, a fraction or a count, got '{labels}'") from None
    if not 0 < frac <= 1:
        raise ConfigError(f"labels: fraction must be in (0, 1], got {labels}")
    return max(1, min(pool_size, math.ceil(round(frac * pool_size, 6))))


def load_paper_splits(path: str | Path | None = None) -> dict[str, dict[str, list]]:
    """Parse ``paper_splits.txt``: ``{section: {"train": [[keys 10%], [keys 25%]], "test": [keys]}}``."""
    text = Path(path).read_text() if path else resources.files("medssl.resources").joinpath("paper_splits.txt").read_text()
    sections: dict[str, dict[str, list]] = {}
    for block in re.split(r"^#\s*", text, flags=re.M):
        name, _, body = block.partition("\n")
        name = name.strip()
        trains = [[int(v) for v in re.findall(r"\d+", m)] for m in re.findall(r"train_keys:\s*\[([^\]]*)\]", body, flags=re.S)]
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
        labels: labelled share of the training pool (``"10%"``, ``"0.25"``, ``"100%"``, ``"8"``).
        seed: split seed.
        protocol: ``standard`` carves a validation set from the pool before sampling the labelled patients;
            ``paper`` has none (the papers select on the test set).
        kind: ``seeded`` or ``paper`` (the published lists of ``paper_splits.txt``, 10% and 25% only).
        test_fraction, val_fraction: shares of patients for test, and of the pool for validation.

    Raises:
        ConfigError: impossible fractions, or no published list for this dataset/label fraction.
    """
    labelled = [c.case_id for c in store.cases if c.has_label]
    if not labelled:
        raise DataError(store.root, "no labelled case in this prepared store; it can only be used for pre-training")
    groups = _patients(store, labelled)
    patients = sorted(groups)
    rng = np.random.default_rng(seed)
    if kind == "paper":
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
            raise DataError(store.root, f"the published {key} split names cases not in the store (keys {sorted(set(missing))[:10]})")
        test = sorted(c for k in sec["test"] for c in by_key[k])
        pool = sorted(c for c in labelled if c not in set(test))
        text = str(labels).strip()
        if text in ("100%", "1", "1.0"):
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
        return Split(train, val, test, pool, str(labels), seed, kind)
    if kind != "seeded":
        raise ConfigError(f"split must be 'seeded' or 'paper', got '{kind}'")
    if len(patients) < 2:
        raise ConfigError(f"need at least 2 labelled patients to split, the store has {len(patients)}")
    order = list(rng.permutation(patients))
    n_test = max(1, int(round(test_fraction * len(order))))
    test_p, pool_p = order[:n_test], order[n_test:]
    val_p: list[str] = []
    # the labelled count is a share of the whole non-test pool (as in the papers: 10% of 80 ACDC
    # patients = 8), drawn from what is left after the validation patients are set aside
    n_train = parse_labels(labels, len(pool_p))
    if protocol == "standard":
        n_val = max(1, int(round(val_fraction * len(pool_p))))
        if len(pool_p) - n_val < 1:
            raise ConfigError(f"{len(patients)} patients are too few for test, validation and training sets")
        val_p, pool_p = pool_p[:n_val], pool_p[n_val:]
    train_p = pool_p[: min(n_train, len(pool_p))]

    def cases(ps: list[str]) -> list[str]:
        return sorted(c for p in ps for c in groups[p])

    return Split(cases(train_p), cases(val_p), cases(test_p), cases(pool_p), str(labels), seed, kind)

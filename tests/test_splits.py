"""Patient-level splits: reproducible, disjoint, label fractions, the papers' published lists."""

import pytest

from medssl.data.splits import load_paper_splits, make_split, parse_labels
from medssl.data.store import SliceStore
from medssl.errors import ConfigError


def test_parse_labels():
    assert parse_labels("10%", 80) == 8
    assert parse_labels("25%", 80) == 20
    assert parse_labels("0.1", 208) == 21  # 20.8 rounds up, as the published Hippocampus list (21)
    assert parse_labels("25%", 208) == 52
    assert parse_labels("3", 10) == 3
    assert parse_labels("100%", 7) == 7
    for bad in ("0%", "abc", "150%"):
        with pytest.raises(ConfigError):
            parse_labels(bad, 10)
    with pytest.raises(ConfigError):
        parse_labels("11", 10)


def test_seeded_split_is_patient_level_disjoint_and_reproducible(synthetic_store):
    store = SliceStore(synthetic_store)
    a = make_split(store, "50%", seed=3, protocol="standard")
    b = make_split(store, "50%", seed=3, protocol="standard")
    c = make_split(store, "50%", seed=4, protocol="standard")
    assert a == b and (a.test != c.test or a.train != c.train)
    pid = lambda ids: {store.info(i).patient_id for i in ids}  # noqa: E731
    assert not (pid(a.train) & pid(a.test)) and not (pid(a.val) & pid(a.test)) and not (pid(a.train) & pid(a.val))
    assert all(len([c for c in a.train if store.info(c).patient_id == p]) == 2 for p in pid(a.train))  # both frames
    paper = make_split(store, "50%", seed=3, protocol="paper")
    assert paper.val == [] and paper.test == a.test


def test_published_lists_parse():
    table = load_paper_splits()
    assert [len(t) for t in table["ACDC"]["train"]] == [8, 20]
    assert len(table["ACDC"]["test"]) == 20
    assert [len(t) for t in table["Hippocampus"]["train"]] == [21, 52] and len(table["Hippocampus"]["test"]) == 52
    assert table["CHAOS"]["test"] == [20, 21, 32, 39]


def test_paper_split_on_real_hippocampus(shared_data, tmp_path):
    from conftest import _subset_msd

    from medssl.data.store import prepare

    src = _subset_msd(shared_data / "msd_hippocampus", tmp_path / "Task04_Hippocampus", 260)
    store = SliceStore(prepare("msd", src, tmp_path / "prep", progress=False).root)
    split = make_split(store, "10%", protocol="paper", kind="paper")
    assert len(split.test) == 52 and len(split.train) == 21
    assert len(split.pool) == 208
    keys = {store.info(c).paper_key for c in split.train}
    assert keys == set(load_paper_splits()["Hippocampus"]["train"][0])
    with pytest.raises(ConfigError):
        make_split(store, "10%", protocol="standard", kind="paper")

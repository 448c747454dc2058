"""Tests of medssl.data.synthetic: determinism, anatomy, registry entry, NIfTI round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medssl.data.case import Case, CaseSource, DatasetSpec, to_dhw
from medssl.data.synthetic import (
    SYNTHETIC_SPACING,
    generate_cases,
    make_phantom,
    scan_synthetic,
    write_nifti_folder,
)
from medssl.errors import DataError
from medssl.registry import DATASETS


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate_cases(n_patients=3, frames=2, slices=10, size=48, seed=0)


def test_ids_shapes_types(cases):
    assert [c.case_id for c in cases] == [f"synth{p:03d}_f{f}" for p in range(3) for f in range(2)]
    assert [c.patient_id for c in cases] == [f"synth{p:03d}" for p in range(3) for _ in range(2)]
    for c in cases:
        assert c.image.shape == c.label.shape == (10, 48, 48)
        assert c.image.dtype == np.float32 and c.label.dtype == np.uint8
        assert c.spacing == SYNTHETIC_SPACING == (8.0, 1.5, 1.5)
        assert np.isfinite(c.image).all() and c.image.min() >= 0


def test_deterministic_from_seed(cases):
    again = generate_cases(n_patients=3, frames=2, slices=10, size=48, seed=0)
    for a, b in zip(cases, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
    other = generate_cases(n_patients=1, frames=1, slices=10, size=48, seed=1)[0]
    assert not np.array_equal(other.label, cases[0].label)
    # a case does not depend on how many patients are generated
    np.testing.assert_array_equal(generate_cases(n_patients=1, frames=2, slices=10, size=48)[1].image, cases[1].image)


def test_all_classes_present_and_mid_slice_complete(cases):
    for c in cases:
        assert set(np.unique(c.label)) == {0, 1, 2, 3}
        mid = c.label[c.label.shape[0] // 3]
        assert set(np.unique(mid)) == {0, 1, 2, 3}


def test_anatomy_base_to_apex(cases):
    for c in cases:
        lv_area = (c.label == 3).sum(axis=(1, 2))
        present = np.nonzero(lv_area)[0]
        assert len(present) >= c.label.shape[0] - 2
        assert lv_area[present[0]] > 1.5 * lv_area[present[-1]]  # shrinks toward the apex
        # the LV blood pool sits inside the myocardium ring: every LV pixel's 4-neighbours are LV or myo
        lab = c.label
        lv = lab == 3
        inner = lv[:, 1:-1, 1:-1]
        for dy, dx in ((0, 1), (1, 0), (2, 1), (1, 2)):
            nb = lab[:, dy : dy + lab.shape[1] - 2, dx : dx + lab.shape[2] - 2]
            assert np.isin(nb[inner], (2, 3)).all()
        # smooth: the LV centre moves little between adjacent slices
        cents = np.array([np.argwhere(lv[k]).mean(0) for k in present])
        assert np.abs(np.diff(cents, axis=0)).max() < 3.0


def test_frames_share_anatomy(cases):
    ed, es = cases[0], cases[1]
    assert (es.label == 3).sum() < (ed.label == 3).sum()  # end-systole: smaller cavity
    heart_ed, heart_es = ed.label > 0, es.label > 0
    dice = 2 * (heart_ed & heart_es).sum() / (heart_ed.sum() + heart_es.sum())
    assert dice > 0.6
    assert not np.allclose(ed.image, es.image)


def test_intensities_overlap(cases):
    """Not solvable by a threshold: the myocardium looks like surrounding tissue, the RV like the LV."""
    for c in cases:
        img, lab = c.image, c.label
        myo = img[lab == 2]
        bg = img[lab == 0]
        lo, hi = np.percentile(myo, [10, 90])
        assert ((bg > lo) & (bg < hi)).mean() > 0.2
        rv_hi = np.percentile(img[lab == 1], 90)
        assert np.percentile(img[lab == 3], 10) < rv_hi
        assert img[lab == 3].mean() > img[lab == 2].mean()  # but there is contrast to learn


def test_make_phantom_classes_and_errors():
    rng = np.random.default_rng(0)
    _, l4 = make_phantom(np.random.default_rng(0), 6, 32, 4)
    _, l3 = make_phantom(np.random.default_rng(0), 6, 32, 3)
    _, l2 = make_phantom(np.random.default_rng(0), 6, 32, 2)
    np.testing.assert_array_equal(l3, np.where(l4 >= 2, l4 - 1, 0))
    np.testing.assert_array_equal(l2, (l4 == 3).astype(np.uint8))
    with pytest.raises(ValueError):
        make_phantom(rng, 6, 32, 5)
    with pytest.raises(ValueError):
        make_phantom(rng, 2, 32)


def test_registry_entry():
    spec = DATASETS.get("synthetic")
    assert isinstance(spec, DatasetSpec)
    assert spec.class_names == ("background", "rv", "myo", "lv") and spec.num_classes == 4
    assert spec.normalization == "zscore" and spec.patch_size == 64 and spec.target_spacing is None
    assert "builtin" in spec.layout
    srcs = spec.scan("builtin")
    assert len(srcs) == 16 and all(isinstance(s, CaseSource) for s in srcs)
    assert srcs[3].case_id == "synth001_f1" and srcs[3].patient_id == "synth001"


def test_scan_lazy_equals_generate(cases):
    srcs = scan_synthetic("builtin", n_patients=3, frames=2, slices=10, size=48)
    for s, c in zip(srcs, cases):
        loaded = s.load()
        assert loaded.case_id == s.case_id == c.case_id
        np.testing.assert_array_equal(loaded.image, c.image)
        np.testing.assert_array_equal(loaded.label, c.label)
    # a name that does not exist also means the built-in defaults
    assert len(scan_synthetic("no/such/file.json")) == 16


def test_scan_parameter_files(tmp_path):
    j = tmp_path / "gen.json"
    j.write_text(json.dumps({"n_patients": 2, "frames": 1, "size": 32, "slices": 5, "seed": 4}))
    srcs = scan_synthetic(j)
    assert [s.case_id for s in srcs] == ["synth000_f0", "synth001_f0"]
    c = srcs[1].load()
    assert c.image.shape == (5, 32, 32)
    np.testing.assert_array_equal(c.image, generate_cases(2, 1, 5, 32, seed=4)[1].image)
    y = tmp_path / "gen.yaml"
    y.write_text("n_patients: 1\nframes: 3\n")
    assert [s.case_id for s in scan_synthetic(y)] == ["synth000_f0", "synth000_f1", "synth000_f2"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_patients": 2, "colour": 1}')
    with pytest.raises(DataError, match="bad.json: unknown synthetic generator option"):
        scan_synthetic(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        scan_synthetic(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"size": "big"}')
    with pytest.raises(DataError, match="must be an integer"):
        scan_synthetic(wrong)


def test_write_nifti_round_trip(tmp_path, cases):
    import nibabel as nib

    out = write_nifti_folder(tmp_path / "synth", cases[:2])
    for c in cases[:2]:
        img = nib.load(str(out / "images" / f"{c.case_id}.nii.gz"))
        lab = nib.load(str(out / "labels" / f"{c.case_id}.nii.gz"))
        arr, spacing = to_dhw(np.asarray(img.dataobj), img.header.get_zooms())
        larr, _ = to_dhw(np.asarray(lab.dataobj), lab.header.get_zooms())
        np.testing.assert_array_equal(arr, c.image)
        np.testing.assert_array_equal(larr, c.label)
        assert spacing == pytest.approx(c.spacing)
        np.testing.assert_allclose(np.diag(img.affine)[:3], (1.5, 1.5, 8.0))

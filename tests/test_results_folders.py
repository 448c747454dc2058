"""benchmarks/results/README.md tells, for every results folder, whether it is a recomputable bundle or
a summary kept from before bundles existed; this keeps that list true."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import REPO

from medssl.reporting.bundle import BUNDLE_FILE

RESULTS = REPO / "benchmarks" / "results"


def _listed(section: str) -> set[str]:
    text = (RESULTS / "README.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", part, flags=re.M))


def test_every_results_folder_is_a_bundle_or_a_listed_summary() -> None:
    bundles, summaries = _listed("Bundles"), _listed("Summaries recorded before bundles existed")
    derived = _listed("Summaries recomputed from bundles")
    top = {p.relative_to(RESULTS).as_posix() for p in RESULTS.glob("cpu/*") if p.is_dir()}
    assert top == bundles | summaries | derived, "a results folder is neither a listed bundle nor a listed summary"
    for name in derived:  # made from listed bundles, by the command its provenance.json records
        prov = json.loads((RESULTS / name / "provenance.json").read_text())
        grids = {Path(g["path"]).relative_to("benchmarks/results").as_posix() for g in prov["grids"]}
        assert grids and grids <= bundles and prov["command"], name
    for name in bundles:
        assert (RESULTS / name / BUNDLE_FILE).is_file(), f"{name} is listed as a bundle but has no {BUNDLE_FILE}"
    for name in summaries:
        assert not (RESULTS / name / BUNDLE_FILE).is_file(), f"{name} is a bundle now: list it under Bundles"

"""benchmarks/finetune_transfer.py: runs at tiny size, resumes, chooses on validation only, exports a bundle."""

from __future__ import annotations

import csv
import importlib
import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from medssl.models.unet import UNet


def _script():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module("finetune_transfer")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _row(dataset, arm, seed, best_val, test):
    return {"dataset": dataset, "seed": seed, "arm": arm, "best_val": best_val, "test_dice": test, "curve": []}


def test_choice_reads_validation_never_test():
    ft = _script()
    rows = [
        _row("a", "standard", 0, 0.60, 0.90),  # the best test Dice: must not matter
        _row("a", "lpft", 0, 0.70, 0.10),
        _row("b", "standard", 0, 0.50, 0.90),
        _row("b", "lpft", 0, 0.48, 0.10),
        _row("b", "lr0.1", 0, 0.55, 0.10),
        _row("a", "lr0.1", 0, 0.61, 0.10),
        _row("a", "scratch", 0, 0.99, 0.99),  # the reference arm is never chosen
    ]
    choice = ft.choose(rows)
    assert choice["per_dataset"] == {"a": "lpft", "b": "lr0.1"}
    # gains over standard: lpft (+0.10 - 0.02) / 2 = 0.04; lr0.1 (+0.01 + 0.05) / 2 = 0.03
    assert choice["overall"] == "lpft" and abs(choice["gain_over_standard"]["lpft"] - 0.04) < 1e-12
    assert choice["overrides"] == ft.ARMS["lpft"]
    worse = [r | {"best_val": r["best_val"] - 0.2} if r["arm"] == "lpft" else r for r in rows if r["arm"] != "lr0.1"]
    assert ft.choose(worse)["overall"] == "standard"  # no option beats the standard one on validation


def test_outputs_recompute_from_the_exported_bundle(tmp_path):
    """run_evidence.sh ships stage 3 as a bundle and recomputes transfer.csv / choice.json from it alone."""
    from medssl.reporting.bundle import export_bundle

    ft = _script()
    out = tmp_path / "transfer"
    for seed in (0, 1):
        for arm, top in (("standard", 0.5), ("lpft", 0.6 + 0.01 * seed)):
            run = out / "mscmrseg" / f"s{seed}" / arm
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps({"kind": "finetune", "method": f"macl+{arm}", "seed": seed}))
            (run / "summary.json").write_text(json.dumps({"mean": {"dsc": 0.4}}))
            (run / "log.csv").write_text(f"epoch,step,val_dice\n0,50,0.2\n1,100,{top}\n")
            (run / "checkpoint.pt").write_bytes(b"heavy")  # not shipped
    rows = ft.collect(out, ["mscmrseg"], [0, 1], ["standard", "lpft"])
    export_bundle(out, tmp_path / "bundle", command="test")
    again = ft.collect(tmp_path / "bundle", ["mscmrseg"], [0, 1], ["standard", "lpft"])
    assert again == rows and len(rows) == 4
    assert ft.write_outputs(again, tmp_path / "bundle")["overall"] == "lpft"
    assert not list((tmp_path / "bundle").rglob("*.pt")) and (tmp_path / "bundle" / "transfer.png").is_file()


@pytest.mark.slow  # ~1 min of subprocesses; the default run covers its parts (test_transfer, test_bundle, above)
def test_script_runs_tiny_and_exports_a_bundle(synthetic_store, tmp_path):
    torch.manual_seed(0)
    enc = {k: v for k, v in UNet(1, 2, base_width=4).state_dict().items() if k.startswith("encoder.")}
    torch.save(enc, tmp_path / "enc.pt")
    args = [
        *("--out", str(tmp_path / "out"), "--datasets", "syn", "--store", f"syn={synthetic_store}"),
        *("--init", f"syn={tmp_path / 'enc.pt'}", "--seeds", "0", "--arms", "scratch", "standard", "lpft"),
        *("--steps", "4", "--val-every", "2", "--size", "32", "--width", "4", "--batch", "4", "--labels", "50%"),
        *("--workers", "0", "--jobs", "2", "--method", "toy"),
    ]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, str(REPO / "benchmarks" / "finetune_transfer.py"), *args, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    proc = run()
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "out" / "transfer.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["arm"] for r in rows) == ["lpft", "scratch", "standard"]
    assert all(r["curve"].startswith("4:") for r in rows)  # one epoch of 4 steps: validated at its end
    cfg = (tmp_path / "out" / "syn" / "s0" / "lpft" / "config.yaml").read_text()
    assert "schedule: lpft" in cfg and "lpft_fraction: 0.1" in cfg
    run_json = json.loads((tmp_path / "out" / "syn" / "s0" / "lpft" / "run.json").read_text())
    assert run_json["method"] == "toy+lpft" and run_json["pretrained_parts"] == ["encoder"]
    choice = json.loads((tmp_path / "out" / "choice.json").read_text())
    assert "validation only" in choice["rule"] and choice["per_dataset"]["syn"] in ("standard", "lpft")
    again = run("--bundle", str(tmp_path / "bundle"))  # resumes: nothing trained again
    assert again.returncode == 0 and "start " not in again.stdout
    manifest = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert manifest["runs"] == 3 and "finetune_transfer.py" in manifest["command"]

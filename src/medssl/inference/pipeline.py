"""``medssl predict``: every scan of an input folder through a :class:`~.segmenter.Segmenter`.

Reading, resampling and writing overlap with the network: a reader thread reads and preprocesses
the next scan, and a writer thread maps the softmax of the previous one back to its grid and writes
it, while the main thread runs the network. The queues between them hold at most two scans, so the
memory used does not grow with the number of files.

Every output is written atomically (a hidden temporary file, then a rename), so an interrupted run
leaves only complete label maps; rerunning skips them (``--overwrite`` redoes them). Every input's
header is checked before the first prediction: a bad file stops the command before any work.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..utils.files import atomic_write, atomic_write_json
from .scans import (
    InputItem,
    Scan,
    check_input,
    check_scale,
    discover_inputs,
    read_scan,
    save_label_map,
    scan_warning,
)

__all__ = ["CLASSES_FILE", "PredictSummary", "output_problem", "predict_inputs", "predict_one", "write_classes"]

#: the class names written beside the label maps
CLASSES_FILE = "classes.json"
_DONE = object()


@dataclass
class PredictSummary:
    """What :func:`predict_inputs` did.

    Attributes:
        out: the output folder.
        predicted: cases segmented now.
        skipped: cases whose label map was already there (resumed folder).
        slices: slices predicted now.
        seconds: wall time of the prediction loop.
    """

    out: Path
    predicted: int
    skipped: int
    slices: int
    seconds: float

    @property
    def slices_per_s(self) -> float:
        return self.slices / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        """The summary line the CLI prints."""
        rate = f", {self.slices_per_s:.1f} slices/s" if self.predicted else ""
        skip = f"; {self.skipped} already done (skipped; --overwrite redoes them)" if self.skipped else ""
        return f"predicted {self.predicted} case(s), {self.slices} slices{rate}{skip}; label maps in {self.out}"


#: the fields of ``classes.json`` that decide what a label map holds: outputs made with other values
#: are not skipped as done (a resumed folder must not mix two settings)
SETTINGS_FIELDS: tuple[str, ...] = ("class_names", "runs", "checkpoints", "largest_component", "tta")


def _settings(seg: Any) -> dict[str, Any]:
    from ..engine.provenance import checkpoint_fingerprint

    return {
        "class_names": list(seg.class_names),
        "runs": [str(s.run.resolve()) for s in seg.specs],
        "checkpoints": [checkpoint_fingerprint(s.checkpoint) for s in seg.specs],
        "largest_component": list(seg.largest_component),
        "tta": bool(seg.tta),
    }


def write_classes(seg: Any, folder: Path) -> Path:
    """``classes.json``: label value -> class name, the runs (and their checkpoints' fingerprints) and
    what was applied."""
    doc = {
        "labels": {str(i): n for i, n in enumerate(seg.class_names)},
        **_settings(seg),
        "label_back_mapping": "softmax resampled bilinearly to the input grid, then argmax",
    }
    return atomic_write_json(folder / CLASSES_FILE, doc)


def check_same_settings(seg: Any, out_dir: Path, skipped: int) -> None:
    """Refuse to skip ``skipped`` finished label maps of ``out_dir`` made with other settings (other
    runs or checkpoints, TTA, post-processing) than ``seg``'s, as its ``classes.json`` records them.

    Raises:
        DataError: ``OUTPUT: holds N label map(s) made with other settings (tta False -> True); ...``, or
            label maps without a readable ``classes.json`` (made by something else).
    """
    path = out_dir / CLASSES_FILE
    if not skipped:
        return
    if not path.is_file():  # predict writes it before the first label map: these maps come from elsewhere
        raise DataError(
            out_dir,
            f"holds {skipped} label map(s) of these cases but no {CLASSES_FILE} saying which runs and settings made "
            "them; give --overwrite to predict them again, or another OUTPUT",
        )
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(path, "is not readable JSON; give --overwrite to predict every case again") from None
    if not isinstance(before, dict):
        raise DataError(path, "is not a medssl classes.json (not a JSON object); give --overwrite to predict again")
    now = _settings(seg)
    diffs = [
        "the runs' checkpoints changed" if k == "checkpoints" else f"{k} {before[k]} -> {now[k]}"
        for k in SETTINGS_FIELDS
        if k in before and before[k] != now[k]
    ]
    if diffs:
        raise DataError(
            out_dir,
            f"holds {skipped} label map(s) made with other settings ({'; '.join(diffs)}); "
            "give --overwrite to predict them again with these, or another OUTPUT",
        )


def _save_probabilities(probs: Any, class_names: list[str], out: Path) -> Path:
    """``(K, D, H, W)`` softmax -> ``out`` (``.npz``, key ``probabilities`` in file order ``(K, X, Y, Z)``)."""
    arr = np.ascontiguousarray(np.asarray(probs, dtype=np.float32).transpose(0, 3, 2, 1))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, probabilities=arr, class_names=np.array(class_names))

    return atomic_write(out, write)


def _outputs(out_dir: Path, case: str) -> tuple[Path, Path]:
    return out_dir / f"{case}.nii.gz", out_dir / f"{case}.npz"


def _write_case(seg: Any, scan: Scan, probs: Any, out_dir: Path, save_probabilities: bool) -> None:
    labels, grid = seg.finish(probs, scan.image.shape)
    label_path, prob_path = _outputs(out_dir, scan.item.case)
    if save_probabilities:
        _save_probabilities(grid, seg.class_names, prob_path)
    save_label_map(labels, scan, label_path)


def _preprocess(seg: Any, scan: Scan) -> np.ndarray:
    """The network input of a scan: its scale checked against the run's spacing, then the run's preprocessing."""
    check_scale(scan, seg.specs[0].target_spacing)
    return seg.preprocess(scan.image, scan.spacing)


def predict_one(seg: Any, path: str | Path, out: str | Path, save_probabilities: bool = False) -> Path:
    """Segment one scan into ``out`` (see :meth:`~.segmenter.Segmenter.predict_file`)."""
    out = Path(out)
    items = discover_inputs(path)
    if len(items) != 1:
        raise DataError(path, f"holds {len(items)} scans; predict_file takes one (use predict_inputs for a folder)")
    scan = read_scan(items[0], seg.specs[0].in_channels)
    if (note := scan_warning(scan)) is not None:
        warnings.warn(note, stacklevel=3)
    labels, grid = seg.finish(seg.network_probabilities(_preprocess(seg, scan)), scan.image.shape)
    if save_probabilities:
        stem = out.name[: -len(".nii.gz")] if out.name.endswith(".nii.gz") else out.stem
        _save_probabilities(grid, seg.class_names, out.with_name(stem + ".npz"))
    write_classes(seg, out.parent)
    return save_label_map(labels, scan, out)


def _check_output(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a folder; give a folder for the label maps (OUTPUT)")


def output_problem(path: Path, kind: str = "label") -> str | None:
    """Why an output file left in OUTPUT is not a finished one, or ``None`` when it reads whole.

    Outputs are written atomically, so a bad one was cut short or changed by something else (a copy
    that ran out of disk space, an edit). Every voxel is decompressed: a truncated gzip stream reads
    its header fine and fails only on its data.

    Args:
        path: a ``.nii.gz`` label map (``kind="label"``) or a ``.npz`` of probabilities (``kind="prob"``).
        kind: which of the two.

    Returns:
        A short description of the problem, or ``None``.
    """
    from ..data.io import load_nifti, one_line

    try:
        if kind == "prob":
            with np.load(path) as z:
                arr = np.asarray(z["probabilities"])
            ok = arr.ndim == 4 and bool(np.isfinite(arr).all())
        else:
            arr = load_nifti(path)[0]
            ok = arr.ndim >= 2
    except DataError as e:
        return e.problem
    except Exception as e:  # any other reader error means: not a finished output
        return one_line(e)
    return None if ok else f"unexpected content (shape {tuple(arr.shape)})"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _todo(
    items: list[InputItem], out_dir: Path, overwrite: bool, save_probabilities: bool, log: Callable[[str], None]
) -> list[InputItem]:
    def done(item: InputItem) -> bool:
        label, prob = _outputs(out_dir, item.case)
        if not (label.is_file() and (prob.is_file() or not save_probabilities)):
            return False
        for path, kind in ((label, "label"), (prob, "prob")) if save_probabilities else ((label, "label"),):
            if (why := output_problem(path, kind)) is not None:
                log(f"medssl: warning: {path}: an unreadable output left in OUTPUT ({why}); predicting the case again")
                return False
        return True

    return [i for i in items if overwrite or not done(i)]


def _reader(
    seg: Any, items: list[InputItem], q: queue.Queue, stop: threading.Event, say: Callable[[str], None]
) -> None:
    """Read and preprocess each scan into ``q`` (``say``: its warning, if any); an exception is passed
    on as the item."""
    try:
        for item in items:
            if stop.is_set():
                return
            scan = read_scan(item, seg.specs[0].in_channels)
            if (note := scan_warning(scan)) is not None:
                say(note)
            q.put((scan, _preprocess(seg, scan)))
    except BaseException as e:  # re-raised in the main thread
        q.put(e)
    q.put(_DONE)


def _writer(seg: Any, q: queue.Queue, out_dir: Path, save_probabilities: bool, errors: list[BaseException]) -> None:
    while (job := q.get()) is not _DONE:
        if errors:
            continue
        try:
            _write_case(seg, job[0], job[1], out_dir, save_probabilities)
        except BaseException as e:
            errors.append(e)


def _stream(seg: Any, todo: list[InputItem], say: Callable[[str], None]) -> Iterator[tuple[Scan, np.ndarray]]:
    """The preprocessed scans, read one ahead by a thread (``say``: where a scan's warning goes)."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    reader = threading.Thread(target=_reader, args=(seg, todo, q, stop, say), daemon=True)
    reader.start()
    try:
        while (got := q.get()) is not _DONE:
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)


def _plan(
    seg: Any, src: str | Path, out_dir: Path, overwrite: bool, save_probabilities: bool, say: Callable[[str], None]
) -> tuple[list[InputItem], list[InputItem]]:
    """Every input of ``src`` checked, and those still to predict; ``out_dir`` made with ``classes.json``."""
    _check_output(out_dir)
    items = discover_inputs(src)
    for item in items:
        check_input(item, seg.specs[0].in_channels)
    todo = _todo(items, out_dir, overwrite, save_probabilities, say)
    check_same_settings(seg, out_dir, len(items) - len(todo))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_classes(seg, out_dir)
    return items, todo


def predict_inputs(
    seg: Any,
    src: str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    save_probabilities: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PredictSummary:
    """Segment every scan of ``src`` into ``out_dir`` (``CASE.nii.gz`` + ``classes.json``).

    Args:
        seg: the :class:`~.segmenter.Segmenter`.
        src: a NIfTI file, a folder of NIfTI files, or a DICOM series folder.
        out_dir: the output folder (created).
        overwrite: redo cases whose label map exists (otherwise they are skipped: a folder resumes).
        save_probabilities: also write ``CASE.npz`` with the softmax maps.
        progress: show a progress bar (plain lines when not on a terminal).
        log: where warnings go (stderr by default): an unreadable output left in ``out_dir`` is predicted
            again; a constant image is segmented with a warning (:func:`~.scans.scan_warning`).

    Returns:
        A :class:`PredictSummary`.

    Raises:
        DataError: the output is a file, or an input is missing, empty, corrupt, 4D or multi-channel,
            or a DICOM folder with several series (no output is written for it; earlier cases stay).
    """
    from ..utils.progress import progress_bar

    out_dir, say = Path(out_dir), log or _stderr
    items, todo = _plan(seg, src, out_dir, overwrite, save_probabilities, say)
    wq: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    writer = threading.Thread(target=_writer, args=(seg, wq, out_dir, save_probabilities, errors), daemon=True)
    writer.start()
    bar = progress_bar(total=len(todo), desc="predict", unit="case", disable=not progress or not todo)
    slices, t0 = 0, time.perf_counter()
    try:
        for scan, volume in _stream(seg, todo, say):
            if errors:
                break
            wq.put((scan, seg.network_probabilities(volume)))
            slices += int(volume.shape[0])
            bar.update(1)
    finally:
        wq.put(_DONE)
        writer.join()
        bar.close()
    if errors:
        raise errors[0]
    return PredictSummary(out_dir, len(todo), len(items) - len(todo), slices, time.perf_counter() - t0)

"""Dataset readers: one module per folder layout, each registering a ``DatasetSpec`` in
``medssl.registry.DATASETS`` under its command-line name.

Example::

    from medssl.data.readers import scan_dataset, resolve_spec

    sources = scan_dataset("msd", "/data/Task04_Hippocampus")
    spec = resolve_spec("msd", "/data/Task04_Hippocampus")   # classes and patch size of the task
    case = sources[0].load()                                  # Case: image (D, H, W) float32, label 0..K-1
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from medssl.data import synthetic  # noqa: F401  (registers the phantom data set, ``synthetic``)
from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers import (  # noqa: F401 - imported to register the specs
    acdc,
    acdc_h5,
    brats,
    chaos,
    chaos_nifti,
    chd,
    hvsmr,
    isic2018,
    kits,
    mmwhs,
    mscmrseg,
    msd,
    nifti_folder,
)
from medssl.errors import ConfigError, DataError
from medssl.registry import DATASETS

__all__ = ["UnknownDatasetError", "get_dataset", "list_datasets", "resolve_spec", "scan_dataset"]


class UnknownDatasetError(ConfigError, KeyError):
    """An unknown dataset name (a ``ConfigError`` for the CLI, a ``KeyError`` like ``Registry.get``)."""

    __str__ = Exception.__str__


def get_dataset(name: str) -> DatasetSpec:
    """The registered ``DatasetSpec`` called ``name``.

    Args:
        name: registry name (``acdc``, ``msd``, ...).

    Returns:
        The spec.

    Raises:
        UnknownDatasetError: unknown name (the message lists the known ones).
    """
    try:
        return DATASETS.get(name)
    except KeyError as exc:
        raise UnknownDatasetError(exc.args[0]) from None


def list_datasets() -> list[DatasetSpec]:
    """Every registered spec, sorted by name."""
    return [entry.obj for entry in DATASETS]


def _check_options(spec: DatasetSpec, options: dict[str, Any]) -> dict[str, Any]:
    opts = {**spec.default_options, **{k: v for k, v in options.items() if v is not None}}
    params = inspect.signature(spec.scan).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in params if n != "root"]
        unknown = sorted(set(opts) - set(allowed))
        if unknown:
            raise ConfigError(
                f"dataset '{spec.name}' has no option {', '.join(map(repr, unknown))}; options: {', '.join(allowed) or 'none'}"
            )
    for k, v in opts.items():
        _check_number_option(k, v, params[k].default if k in params else None)
    return opts


def _check_number_option(key: str, value: Any, default: Any) -> None:
    """An option whose default is a number takes a number (an integer where the default is one); tolerances >= 0."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return
    kind = int if isinstance(default, int) else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"--option {key}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if key.endswith("_tol") and not value >= 0:
        raise ConfigError(f"--option {key}: a tolerance must be >= 0, got {value!r}")


def scan_dataset(name: str, root: str | Path, **options: Any) -> list[CaseSource]:
    """Find the cases of dataset ``name`` in ``root`` (nothing is read yet).

    Args:
        name: registry name.
        root: the dataset folder (``builtin`` or a parameter file for ``synthetic``).
        **options: the reader's options (see each reader's ``scan``); None values are dropped
            so unset command-line flags fall back to the defaults.

    Returns:
        Lazy ``CaseSource`` records; ``load()`` gives a validated ``Case``.

    Raises:
        UnknownDatasetError: unknown name.
        ConfigError: an option the reader does not have.
        DataError: ``root`` missing, or no case of that layout in it (the message says what
            was expected).
    """
    spec = get_dataset(name)
    opts = _check_options(spec, options)
    if spec.name != "synthetic" and not Path(root).expanduser().exists():
        raise DataError(root, f"dataset folder not found (expected {spec.name}: {spec.layout})")
    sources = spec.scan(root, **opts)
    if not sources:
        raise DataError(root, f"no {spec.name} cases found (expected {spec.layout})")
    return sources


def resolve_spec(name: str, root: str | Path | None = None, **options: Any) -> DatasetSpec:
    """The spec of ``name`` specialised to the data at ``root`` where that matters.

    ``msd`` takes the task's classes, patch size and split key; ``nifti-folder`` takes the class
    names of its ``label_map``/``class_names``/``dataset.json``/first label. Other names return
    the registered spec unchanged. Pass this spec (not the generic one) to ``verify_dataset``.

    Args:
        name: registry name.
        root: the dataset folder (needed for ``msd`` and ``nifti-folder``).
        **options: the reader's options.

    Returns:
        The spec.

    Raises:
        UnknownDatasetError: unknown name.
        DataError: ``root`` missing for a dataset that needs it.
    """
    spec = get_dataset(name)
    if root is None:
        return spec
    opts = _check_options(spec, options)
    if spec.name == "msd":
        return msd.task_spec(root, task=opts.get("task"))
    if spec.name == "nifti-folder":
        return nifti_folder.folder_spec(root, label_map=opts.get("label_map"), class_names=opts.get("class_names"))
    return spec

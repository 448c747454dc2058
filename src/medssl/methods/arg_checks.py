"""Meaning checks of the pre-training methods' arguments (``method_args``), before a run folder is made.

Every numeric constructor argument of every registered method has a declared range here, by name
(the methods share their names: ``temperature`` is a softmax temperature wherever it appears), with
per-method entries where one name means something else. :func:`check_method_arg_values` checks the
values given in ``method_args`` against them and against the constructor's annotation (a number, a
list of three weights ...), so that a negative temperature, a positional threshold outside (0, 1]
or a momentum of 2 is refused in one line instead of training to a meaningless loss.
``tests/test_inputs_boundary.py`` fails for a numeric argument without a declared range.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Mapping
from typing import Any

from ..config import Range
from ..errors import ConfigError

__all__ = ["ARG_RANGES", "METHOD_ARG_RANGES", "arg_range", "check_method_arg_values", "numeric_args_without_range"]

_POSITIVE = Range(0, None, lo_open=True)
_AT_LEAST_1 = Range(1)
_NON_NEGATIVE = Range(0)
_UNIT = Range(0, 1)

#: the range of an argument by name (the same meaning in every method that has it)
ARG_RANGES: dict[str, tuple[Range, str]] = {
    **{
        k: (_POSITIVE, "a softmax temperature; 0 divides by zero, a negative one inverts the loss")
        for k in ("temperature", "base_temperature", "student_temp", "teacher_temp_start", "teacher_temp_end")
    },
    "delta": (Range(0, 1, lo_open=True), "positional threshold on slice positions in (0, 1]"),
    "epsilon": (_POSITIVE, "Sinkhorn entropy regularisation"),
    **{
        k: (_UNIT, "an EMA coefficient")
        for k in ("base_momentum", "key_momentum", "ema_momentum", "momentum_start", "center_momentum")
    },
    **{
        k: (_UNIT, "a fraction of training")
        for k in ("teacher_temp_warmup", "freeze_last_layer", "adv_warmup", "global_fraction")
    },
    "down_factor": (Range(0, 1, lo_open=True), "a scale factor"),
    **{
        k: (_AT_LEAST_1, "a size")
        for k in (
            "out_dim",
            "hidden_dim",
            "proj_dim",
            "pixel_dim",
            "proj_hidden_dim",
            "pred_hidden_dim",
            "bottleneck_dim",
            "disc_width",
            "num_prototypes",
            "queue_size",
            "num_partitions",
            "num_decoder_blocks",
            "sinkhorn_iterations",
            "stride",
        )
    },
    **{
        k: (_NON_NEGATIVE, "")
        for k in (
            "decoder_blocks",
            "min_bottleneck",
            "min_tokens",
            "queue_length",
            "queue_start_step",
            "freeze_prototypes_steps",
            "seed",
        )
    },
    **{
        k: (_NON_NEGATIVE, "a loss weight")
        for k in ("restore_weight", "adv_weight", "disc_weight", "w_intra", "w_inter", "graph_weight")
    },
}

#: arguments with a structured value, checked by :func:`_value_problem` itself
_SHAPED = ("weights", "distortion_probs")

#: ``{method: {argument: (range, why)}}``: where a method's argument means something else than the name says
METHOD_ARG_RANGES: dict[str, dict[str, tuple[Range, str]]] = {}


def arg_range(method: str, name: str) -> tuple[Range, str] | None:
    """The declared range (and its reason) of argument ``name`` of ``method``, or None."""
    return METHOD_ARG_RANGES.get(method, {}).get(name) or ARG_RANGES.get(name)


def _numeric(hint: Any) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return any(a in (int, float) for a in args)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)  # type: ignore[misc]  # cls is the class itself, not an instance
    except Exception:  # an annotation that does not resolve: no type check, ranges still apply
        return {}


def numeric_args_without_range(method: str, cls: type) -> list[str]:
    """The numeric constructor arguments of ``cls`` that declare no range (should be none)."""
    hints = _hints(cls)
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # cls is the class itself
    return [
        n for n in params if n in hints and n not in _SHAPED and _numeric(hints[n]) and arg_range(method, n) is None
    ]


def _integer(hint: Any) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return int in args and float not in args


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_problem(method: str, name: str, value: Any, hint: Any) -> str | None:
    """The problem of one value (type from the annotation, then the declared range), or None."""
    if name == "weights":
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(_number(w) and w >= 0 for w in value)
        if not ok or not any(w > 0 for w in value):
            return f"expected three loss weights >= 0, not all 0 (global, dense, equivariance), got {value!r}"
        return None
    if name == "distortion_probs" and value is not None:
        if not isinstance(value, Mapping) or not all(_number(p) and 0 <= p <= 1 for p in value.values()):
            return f"expected a mapping of distortion name to a probability in [0, 1], got {value!r}"
        return None
    declared = arg_range(method, name)
    if value is None:
        return None if hint is None or type(None) in typing.get_args(hint) else f"expected a value, got {value!r}"
    if declared is None and not (hint is not None and _numeric(hint)):
        return None
    if not _number(value):
        return f"expected a number{f' {declared[0]}' if declared else ''}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if _integer(hint) and not isinstance(value, int):
        return f"expected an integer{f' {declared[0]}' if declared else ''}, got {value!r}"
    if declared and not declared[0].contains(value):
        return f"must be {declared[0]}, got {value!r}" + (f" ({declared[1]})" if declared[1] else "")
    return None


def check_method_arg_values(method: str, cls: type, args: Mapping[str, Any]) -> None:
    """Every value of ``method_args`` has the constructor's type and lies in its declared range.

    Args:
        method: the registry name (``supercl``).
        cls: the method class.
        args: ``cfg.method_args``.

    Raises:
        ConfigError: ``method_args.<name> of <method>: must be > 0, got -0.1 (a softmax temperature; ...)``.
    """
    hints = _hints(cls)
    for name, value in args.items():
        problem = _value_problem(method, name, value, hints.get(name))
        if problem:
            raise ConfigError(f"method_args.{name} of {method}: {problem}")

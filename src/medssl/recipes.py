"""Fine-tuning recipes: the named sets of settings that decide whether fine-tuning learns.

A recipe fills every fine-tuning setting that the user left unset (``None`` in
:class:`~medssl.config.FinetuneConfig`): the loss, the learning rate and its schedule, the
augmentation, how often the selection set is scored. Settings given explicitly (YAML, flags,
``--set``) always win; the resolved values are what ``config.yaml`` records.

* ``paper``: the papers' recipe exactly (METHODS.md section 6; ``train_supervised.py`` of the
  reference code): cross-entropy, Adam 5e-4 cosine to 5e-6, no warm-up, mirror on both axes and
  with p = 0.67 elastic deformation + rotation in 0..2 pi + scale 0.7..1.3, and the selection set
  scored every 10 epochs (the reference's ``val_interval``). Made for 100 epochs at 256-512 px;
  ``--protocol paper`` uses it.
* ``standard``: the default of the ``standard`` protocol, made to converge at the budgets a CPU
  user runs (hundreds of steps): Dice + cross-entropy, Adam 1e-3 with a short linear warm-up and
  cosine to 1e-5, and a mild augmentation that never swaps classes defined by side (no mirroring,
  rotations of +-15 degrees, scale 0.85..1.25, no elastic field), padding with the slice's minimum
  (the background of a z-scored slice) rather than 0 (its mean intensity), the selection set scored
  every 50 steps, and each class's largest connected component kept in the test predictions where
  that raises the validation Dice (:mod:`medssl.evaluation.postprocess`). Chosen on validation curves (``benchmarks/finetune_recipes.py``, docs/results/recipes.md).

Example::

    cfg = resolve_recipe(FinetuneConfig(data=DataCfg(path="prepared/acdc")))
    cfg.loss, cfg.optim.lr      # ('dicece', 0.001)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["RECIPES", "Recipe", "describe_recipe", "recipe_name", "resolve_recipe", "unresolve_recipe"]


@dataclass(frozen=True)
class Recipe:
    """One fine-tuning recipe.

    Attributes:
        name: registry key.
        description: one line for ``--help`` and the docs.
        loss: ``ce`` | ``dice`` | ``dicece``.
        dice_mode: ``batch`` | ``sample`` (:func:`medssl.losses.segmentation.soft_dice_loss`).
        lr: peak learning rate (Adam).
        min_lr: learning rate at the end of the cosine schedule.
        warmup_steps: linear warm-up steps.
        mirror: random flips of both axes.
        p_spatial: probability of the spatial transform (rotation / scale / elastic).
        rotation: largest rotation in degrees (180 = any angle, the papers' 0..2 pi).
        scale: range of the coordinate scale factor.
        elastic: elastic deformation inside the spatial transform.
        fill: the image's value where it has no data (``zero``, the papers; ``min``, its minimum).
        postprocess: ``none`` or ``largest_component`` (decided per class on validation volumes).
        val_every: epochs between scorings of the selection set (None: :attr:`val_every_steps`).
        val_every_steps: score the selection set at the end of the first epoch after every
            ``val_every_steps`` optimiser steps (the same rhythm at any data size).
    """

    name: str
    description: str
    loss: str
    dice_mode: str
    lr: float
    min_lr: float
    warmup_steps: int
    mirror: bool
    p_spatial: float
    rotation: float
    scale: tuple[float, float]
    elastic: bool
    fill: str = "zero"
    postprocess: str = "none"
    val_every: int | None = None
    val_every_steps: int | None = None


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(
        name="paper",
        description="the papers' recipe: CE, Adam 5e-4 cosine, mirror + p=0.67 elastic/rotation/scale, scored every 10 epochs",
        loss="ce",
        dice_mode="batch",
        lr=5e-4,
        min_lr=5e-6,
        warmup_steps=0,
        mirror=True,
        p_spatial=0.67,
        rotation=180.0,
        scale=(0.7, 1.3),
        elastic=True,
        fill="zero",
        val_every=10,
    ),
    "standard": Recipe(
        name="standard",
        description="converges at small budgets: Dice+CE, Adam 1e-3 with warm-up, +-15 deg rotation and 0.85-1.25 scale, no flips",
        loss="dicece",
        dice_mode="batch",
        lr=1e-3,
        min_lr=1e-5,
        warmup_steps=50,
        mirror=False,
        p_spatial=0.5,
        rotation=15.0,
        scale=(0.85, 1.25),
        elastic=False,
        fill="min",
        postprocess="largest_component",
        val_every=None,
        val_every_steps=50,
    ),
}


def recipe_name(cfg: Any) -> str:
    """The recipe ``cfg`` asks for: ``cfg.recipe``, or for ``auto`` the protocol's own (paper -> paper)."""
    name = cfg.recipe if cfg.recipe != "auto" else ("paper" if cfg.protocol == "paper" else "standard")
    if name not in RECIPES:
        raise ConfigError(f"recipe: expected auto or one of {', '.join(RECIPES)}, got '{cfg.recipe}'")
    return name


def resolve_recipe(cfg: Any) -> Any:
    """A copy of a :class:`~medssl.config.FinetuneConfig` with every unset setting taken from its recipe.

    Args:
        cfg: the configuration; ``None`` fields are the ones the recipe fills (the validation
            rhythm only when neither ``train.val_every`` nor ``train.val_every_steps`` is set).

    Returns:
        The resolved configuration (``recipe`` set to the concrete name).
    """
    name = recipe_name(cfg)
    r = RECIPES[name]
    optim = dataclasses.replace(
        cfg.optim,
        lr=r.lr if cfg.optim.lr is None else cfg.optim.lr,
        min_lr=r.min_lr if cfg.optim.min_lr is None else cfg.optim.min_lr,
        warmup_steps=r.warmup_steps if cfg.optim.warmup_steps is None else cfg.optim.warmup_steps,
    )
    train = cfg.train
    if train.val_every is None and train.val_every_steps is None:
        train = dataclasses.replace(train, val_every=r.val_every, val_every_steps=r.val_every_steps)
    pick = lambda mine, theirs: theirs if mine is None else mine  # noqa: E731
    return dataclasses.replace(
        cfg,
        recipe=name,
        optim=optim,
        train=train,
        loss=pick(cfg.loss, r.loss),
        dice_mode=pick(cfg.dice_mode, r.dice_mode),
        mirror=pick(cfg.mirror, r.mirror),
        p_spatial=pick(cfg.p_spatial, r.p_spatial),
        rotation=pick(cfg.rotation, r.rotation),
        scale=pick(cfg.scale, list(r.scale)),
        elastic=pick(cfg.elastic, r.elastic),
        fill=pick(cfg.fill, r.fill),
        postprocess=pick(cfg.postprocess, r.postprocess),
    )


#: the settings a recipe fills: ``(section or "", field)`` -> the recipe's attribute
_RECIPE_FIELDS: dict[tuple[str, str], str] = {
    ("optim", "lr"): "lr",
    ("optim", "min_lr"): "min_lr",
    ("optim", "warmup_steps"): "warmup_steps",
    **{
        ("", f): f
        for f in ("loss", "dice_mode", "mirror", "p_spatial", "rotation", "scale", "elastic", "fill", "postprocess")
    },
}


def unresolve_recipe(cfg: Any) -> tuple[Any, list[str]]:
    """Undo :func:`resolve_recipe` where it is visible: every setting that equals the value its concrete
    recipe (``cfg.recipe``) fills is unset (``None``), so that another recipe can fill it.

    A resolved ``config.yaml`` (a run's) holds every recipe setting; changing only its ``recipe``
    would label the run with the new recipe while it trains with the old one's settings. Settings
    that differ from the old recipe (set by the user) are kept.

    Returns:
        ``(cfg, unset)``: the configuration and the dotted names of the settings unset.
    """
    if cfg.recipe not in RECIPES:
        return cfg, []
    r, unset = RECIPES[cfg.recipe], []
    sections: dict[str, dict[str, Any]] = {"optim": {}, "": {}}
    for (section, name), attr in _RECIPE_FIELDS.items():
        value = getattr(cfg.optim if section else cfg, name)
        mine = getattr(r, attr)
        if value is not None and (list(value) == list(mine) if name == "scale" else value == mine):
            sections[section][name] = None
            unset.append(f"{section}.{name}".lstrip("."))
    train = cfg.train
    if (train.val_every, train.val_every_steps) == (r.val_every, r.val_every_steps):
        train = dataclasses.replace(train, val_every=None, val_every_steps=None)
        unset.append("train.val_every")
    optim = dataclasses.replace(cfg.optim, **sections["optim"])
    return dataclasses.replace(cfg, optim=optim, train=train, **sections[""]), unset


def describe_recipe(cfg: Any) -> str:
    """One line: the resolved fine-tuning settings that a recipe decides."""
    aug = (
        "none"
        if not cfg.augment
        else (
            f"{'mirror, ' if cfg.mirror else ''}p {cfg.p_spatial:g}: rotation +-{cfg.rotation:g} deg, scale {cfg.scale[0]:g}-{cfg.scale[1]:g}"
            f"{', elastic' if cfg.elastic else ''}; fill {cfg.fill}"
        )
    )
    every = (
        f"every {cfg.train.val_every} epochs"
        if cfg.train.val_every
        else f"every {cfg.train.val_every_steps} steps"
        if cfg.train.val_every_steps
        else "every epoch"
    )
    return (
        f"recipe '{cfg.recipe}': loss {cfg.loss}{f' ({cfg.dice_mode} Dice)' if cfg.loss != 'ce' else ''}, "
        f"{cfg.optim.name} lr {cfg.optim.lr:g} (warm-up {cfg.optim.warmup_steps}, cosine to {cfg.optim.min_lr:g}), "
        f"augmentation {aug}, scored {every}, post-processing {cfg.postprocess}"
    )

"""The learning cycle's configuration: the component dataclasses composed, the defaults stated in them.

``CycleConfig`` is what one cycle runs with (the retrain flow's ``config`` parameter; a deployment
sets only the fields it changes). ``RECIPE`` names the fields ``tagloop retrain`` exposes as flat
options; each option's type, default and help text come from the dataclass field it sets, so a
default or its explanation is written once, next to the code that uses it.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from ingest.pipeline import IngestConfig
from loop.gate import GateConfig
from loop.mix import MixConfig
from loop.regression import RegressionConfig
from recognizer.finetune import FinetuneConfig


@dataclass
class CycleConfig:
    mix: MixConfig = field(default_factory=MixConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    regression: RegressionConfig = field(default_factory=RegressionConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    since: str | None = None           # only corrections created on/after this date count as new
    forced_by: str | None = None       # a person overriding the gate (--force)
    embed_evidently: bool = True       # Evidently's own report as evidently.html beside drift.html (~5 MB), linked


# flat option name -> the CycleConfig fields it sets (the first one gives its default)
RECIPE: dict[str, tuple[str, ...]] = {
    "steps": ("finetune.train.steps",),
    "batch_size": ("finetune.train.batch_size",),
    "lr": ("finetune.train.lr",),
    "eval_every": ("finetune.train.eval_every",),
    "patience": ("finetune.patience",),
    "patience_after": ("finetune.patience_after",),
    "budget_s": ("finetune.train.seconds",),
    "mix_new": ("mix.new",),
    "mix_replay": ("mix.replay",),
    "mix_synthetic": ("mix.synthetic",),
    "targeted": ("mix.targeted",),
    "min_synthetic": ("mix.min_synthetic",),
    "margin": ("gate.margin",),
    "alpha": ("gate.alpha",),
    "slice_tolerance": ("gate.slice_tolerance",),
    "regression_tolerance": ("gate.regression_tolerance",),
    "require_approval": ("gate.require_approval",),
    "seed": ("mix.seed", "finetune.train.seed"),
    "workers": ("mix.workers",),
    "device": ("finetune.train.device",),
}


def _field(obj: Any, path: str) -> tuple[Any, Field]:
    """(the dataclass instance holding the last name of ``path``, that field)."""
    *parents, name = path.split(".")
    for p in parents:
        obj = getattr(obj, p)
    return obj, next(f for f in fields(obj) if f.name == name)


def _set(obj: Any, path: str, value: Any) -> Any:
    """A copy of ``obj`` with the field at dotted ``path`` set to ``value`` (dataclasses stay immutable in use)."""
    head, _, rest = path.partition(".")
    return replace(obj, **{head: _set(getattr(obj, head), rest, value) if rest else value})


def recipe_default(name: str) -> Any:
    """The default of a flat recipe option: its field's value in ``CycleConfig()``."""
    obj, f = _field(CycleConfig(), RECIPE[name][0])
    return getattr(obj, f.name)


def recipe_help(name: str) -> str:
    """The help text of a flat recipe option: the metadata of the fields it sets."""
    texts = [_field(CycleConfig(), p)[1].metadata.get("help", "") for p in RECIPE[name]]
    return "; ".join(dict.fromkeys(t for t in texts if t))


def cycle_config(base: CycleConfig | None = None, **values: Any) -> CycleConfig:
    """``base`` (default ``CycleConfig()``) with the flat recipe options in ``values`` set.

    The fine-tune's warm-up (``min(25, steps // 10)``: the default's 25 at the default cap) follows
    ``steps`` and its checkpoint interval follows ``eval_every``, as the defaults do. Unknown names are
    a ``ValueError``.
    """
    unknown = set(values) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown retrain options: {sorted(unknown)} (known: {sorted(RECIPE)})")
    cfg = base or CycleConfig()
    for name, value in values.items():
        for path in RECIPE[name]:
            cfg = _set(cfg, path, value)
    train = cfg.finetune.train
    if "steps" in values:
        cfg = _set(cfg, "finetune.train.warmup", min(25, train.steps // 10))
    if "eval_every" in values:
        cfg = _set(cfg, "finetune.train.ckpt_every", train.eval_every)
    return cfg

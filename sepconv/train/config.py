"""``TrainConfig``: everything that decides a training run's result, as a frozen dataclass."""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from pathlib import Path

from sepconv import validate
from sepconv.data.folds import check_folds

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
DTYPES = ("float32", "bfloat16")

# Fields that may change between a run and its resumption without changing its result.
_RESUME_FREE = ("data_dir", "download", "checkpoint_every_steps", "checkpoint_every_seconds")


def _models() -> tuple[str, ...]:
  from sepconv.models import MODELS
  return tuple(MODELS)


def _datasets() -> tuple[str, ...]:
  return tuple(PRESETS)


def _field(default, help: str, **cli):
  """A field with its documentation, from which ``sepconv train``'s flag is generated.

  ``cli`` may name ``choices`` (a tuple, or a function returning one, called when the
  command line is built) and ``aliases`` (further flag names).
  """
  return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run; every field's meaning is its ``help`` (``dataclasses.fields``).

  Each field is also a flag of ``sepconv train`` (``--width-multiplier`` for
  ``width_multiplier``), generated from the field, so the two cannot disagree. A data
  set's preset (``PRESETS``) overrides some defaults; ``default_config`` applies it.
  """

  model: str = _field("mobilenet_v1", "the network (sepconv.models.build_model)", choices=_models)
  conv: str = _field("dws", "the convolution point on the spectrum of every block, e.g. dws, "
                     "standard, grouped:g=4, dws:g=4,m=2 (grammar: sepconv.spectrum.points)")
  width_multiplier: float = _field(1.0, "MobileNet's width multiplier alpha")
  dataset: str = _field("digits", "the data set", choices=_datasets)
  data_dir: str | None = _field(None, "where CIFAR lives: the archive, its extracted folder, or "
                                "a folder holding either")
  download: bool = _field(False, "fetch the official CIFAR archive into the data dir when it is "
                          "missing (MD5-checked)")
  epochs: int = _field(12, "passes over the training split")
  batch_size: int = _field(32, "global batch, over all devices and hosts; must divide by the "
                           "device count")
  optimizer: str = _field("sgd", "sgd (heavy-ball momentum, optionally Nesterov) or adamw",
                          choices=OPTIMIZERS)
  base_lr: float = _field(0.4, "learning rate per 256 images; the peak rate is base_lr x "
                          "batch_size / 256 (linear scaling rule)", aliases=("--lr",))
  momentum: float = _field(0.9, "SGD momentum (AdamW uses its own b1 = 0.9)")
  nesterov: bool = _field(True, "Nesterov momentum for SGD")
  weight_decay: float = _field(5e-4, "L2 coefficient; coupled (added to the gradient) for SGD, "
                               "decoupled (scaled by the learning rate) for AdamW")
  decay_depthwise: bool = _field(False, "also decay depthwise kernels (MobileNet, Howard et al. "
                                 "2017, sec. 3.3, puts very little or no weight decay on them)")
  decay_norm_and_bias: bool = _field(False, "also decay BatchNorm scale/bias and conv/dense "
                                     "biases")
  schedule: str = _field("cosine", "cosine (to zero), step (x step_factor at each of "
                         "step_milestones) or constant, each after a linear warm-up",
                         choices=SCHEDULES)
  warmup_epochs: float = _field(1.0, "epochs of linear warm-up from ~0 to the peak rate")
  step_milestones: tuple[float, ...] = _field((0.5, 0.75), "for the step schedule, fractions of "
                                              "the run at which the rate drops")
  step_factor: float = _field(0.1, "for the step schedule, the factor applied at each milestone")
  label_smoothing: float = _field(0.0, "cross-entropy label smoothing")
  augment: bool = _field(True, "apply the data set's training augmentation")
  seed: int = _field(0, "seeds initialisation, data order and augmentation, and with folds the "
                    "partition into folds (one seed, one repeat of the k-fold)")
  folds: int = _field(0, "0: the data set's own train/test split; k >= 2: k-fold "
                      "cross-validation over its train and test images pooled, stratified by "
                      "class (sepconv.data.fold_split)")
  fold: int = _field(0, "with folds, the fold held out as the test split, 0 <= fold < folds")
  dtype: str = _field("float32", "compute dtype (parameters stay float32)", choices=DTYPES)
  impl: str = _field("auto", "convolution implementation passed to the model ('auto' lets it "
                     "choose)")
  checkpoint_every_steps: int = _field(0, "also checkpoint every this many steps; 0 checkpoints "
                                       "at epochs' ends only",
                                       aliases=("--checkpoint-every",))
  checkpoint_every_seconds: float = _field(
      30.0, "an epoch's end is checkpointed once this many seconds have passed since the "
      "last checkpoint (or the run's start); the last epoch's end always is; 0 checkpoints "
      "every epoch's end (a stop signal checkpoints the step in progress either way)")

  def __post_init__(self):
    """Checks every field for what it means; a bad value raises one ``ValueError`` line."""
    for field, value, choices in (("optimizer", self.optimizer, OPTIMIZERS),
                                  ("schedule", self.schedule, SCHEDULES),
                                  ("dtype", self.dtype, DTYPES)):
      validate.one_of(value, field, choices)
    for field in ("epochs", "batch_size"):
      value = getattr(self, field)
      if not validate.is_int(value) or value < 1:
        kind = "" if validate.is_int(value) else "an int "
        raise ValueError(f"{field} (={value!r}) must be {kind}>= 1")
    validate.nonnegative_int(self.checkpoint_every_steps, "checkpoint_every_steps")
    validate.nonnegative_number(self.checkpoint_every_seconds, "checkpoint_every_seconds")
    if not validate.is_int(self.seed) or not 0 <= self.seed < 2**31:
      raise ValueError(f"seed (={self.seed!r}) must be an int in [0, 2**31)")
    check_folds(self.folds, self.fold)
    for field in ("base_lr", "width_multiplier"):
      validate.positive_number(getattr(self, field), field)
    for field in ("weight_decay", "warmup_epochs"):
      validate.nonnegative_number(getattr(self, field), field)
    for field in ("momentum", "label_smoothing"):
      validate.number_in(getattr(self, field), field, 0, 1)
    validate.number_in(self.step_factor, "step_factor", 0, 1, low_open=True, high_open=False)
    for field in ("nesterov", "download", "decay_depthwise", "decay_norm_and_bias", "augment"):
      validate.boolean(getattr(self, field), field)
    if any(isinstance(m, bool) or not isinstance(m, numbers.Real) or not 0 < m < 1
           for m in self.step_milestones):
      raise ValueError(f"step_milestones (={self.step_milestones}) must be fractions in (0, 1)")
    object.__setattr__(self, "step_milestones", tuple(float(m) for m in self.step_milestones))

  @property
  def lr(self) -> float:
    """Peak learning rate: the linear scaling rule of Goyal et al. (2017)."""
    return self.base_lr * self.batch_size / 256

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise ValueError(f"unknown TrainConfig fields {unknown}")
    if "step_milestones" in data:
      data = {**data, "step_milestones": tuple(data["step_milestones"])}
    return cls(**data)


# Per-data-set departures from TrainConfig's defaults; a field given explicitly overrides
# these. digits: the defaults (12 epochs, 44 steps of 32 images each, base_lr 0.4, wd 5e-4,
# cosine after 1 warm-up epoch) with MobileNet v1 at width 0.25 (small-input variant); on a
# 2-core CPU a run takes well under 2 minutes with depthwise-separable and with standard
# convolutions alike and reaches >= 95% test accuracy (mean of 3 seeds; width 1.0 with
# standard convs would take ~15x longer). cifar: the usual 32x32 recipe (SGD 0.1 per 128
# images, wd 5e-4, cosine, crop+flip).
PRESETS: dict[str, dict] = {
    "digits": dict(width_multiplier=0.25),
    "cifar10": dict(epochs=100, batch_size=128, base_lr=0.2, warmup_epochs=2.0),
    "cifar100": dict(epochs=100, batch_size=128, base_lr=0.2, warmup_epochs=2.0),
    "synthetic": dict(epochs=2, batch_size=128, base_lr=0.2, warmup_epochs=0.0),
}


def default_config(dataset: str = "digits", **overrides) -> TrainConfig:
  """The preset for ``dataset`` with ``overrides`` applied."""
  if dataset not in PRESETS:
    raise ValueError(f"dataset (={dataset!r}) must be one of {tuple(PRESETS)}")
  return TrainConfig(dataset=dataset, **{**PRESETS[dataset], **overrides})


def check_resumable(config: TrainConfig, out_dir: str | os.PathLike, *, write: bool = True) -> None:
  """Checks that a run already in ``out_dir`` matches ``config``, else writes config.json.

  ``write=False`` (processes other than 0 of a multi-host run) only checks.
  """
  path = Path(out_dir) / "config.json"
  if path.exists():
    try:
      saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON ({e}); remove it or pick another out dir"
                       ) from None
    current = _jsonable(config.to_json())
    # A field newer than the saved run was at its default there.
    saved = {**{f.name: _jsonable(f.default) for f in dataclasses.fields(TrainConfig)
                if f.name not in saved}, **saved}
    differing = sorted(k for k in set(saved) | set(current)
                       if k not in _RESUME_FREE and saved.get(k) != current.get(k))
    if differing:
      detail = ", ".join(f"{k} (={current.get(k)!r}, saved {saved.get(k)!r})" for k in differing)
      raise ValueError(f"{out_dir} holds a different run: {detail}; "
                       f"use another --out to start afresh")
    return
  if not write:
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _jsonable(value):
  return json.loads(json.dumps(value))

"""TrainConfig, the learning-rate schedules and the weight-decay mask, in closed form."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sepconv.train import decay_mask, default_config, make_optimizer, make_schedule, TrainConfig
from sepconv.train.config import check_resumable


def test_linear_scaling_rule():
  assert TrainConfig(base_lr=0.1, batch_size=256).lr == pytest.approx(0.1)
  assert TrainConfig(base_lr=0.1, batch_size=64).lr == pytest.approx(0.025)


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="lamb"), r"optimizer \(='lamb'\) must be one of"),
    (dict(schedule="poly"), "schedule"),
    (dict(dtype="float16"), "dtype"),
    (dict(batch_size=0), r"batch_size \(=0\) must be >= 1"),
    (dict(epochs=0), "epochs"),
    (dict(base_lr=0.0), "base_lr"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(step_milestones=(0.5, 1.5)), "step_milestones"),
    (dict(folds=1), r"^folds \(=1\) must be 0 \(the data set's own train/test split\) or >= 2$"),
    (dict(folds=-1), r"^folds \(=-1\) must be a non-negative int$"),
    (dict(fold=2), r"^fold \(=2\) must be 0 when folds is 0 \(the data set's own split\)$"),
    (dict(folds=5, fold=5), r"^fold \(=5\) must be in \[0, folds\) \(folds = 5\)$"),
])
def test_config_rejects_bad_values(kwargs, match):
  with pytest.raises(ValueError, match=match):
    TrainConfig(**kwargs)


def test_presets_and_json_round_trip():
  config = default_config("cifar10", seed=3)
  assert config.dataset == "cifar10" and config.seed == 3 and config.epochs == 100
  assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
  with pytest.raises(ValueError, match="dataset"):
    default_config("imagenet")
  with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['colour'\]"):
    TrainConfig.from_json({"colour": 1})


def test_check_resumable(tmp_path):
  config = default_config("digits")
  check_resumable(config, tmp_path)
  check_resumable(config, tmp_path)
  check_resumable(TrainConfig(**{**config.to_json(), "data_dir": "/moved"}), tmp_path)
  with pytest.raises(ValueError, match=r"different run: seed \(=1, saved 0\)"):
    check_resumable(default_config("digits", seed=1), tmp_path)


def test_a_run_saved_before_folds_existed_resumes_on_the_fixed_split(tmp_path):
  config = default_config("digits")
  saved = {k: v for k, v in config.to_json().items() if k not in ("folds", "fold")}
  (tmp_path / "config.json").write_text(json.dumps(saved))
  check_resumable(config, tmp_path)  # absent fields were at their defaults
  with pytest.raises(ValueError, match=r"different run: folds \(=5, saved 0\)"):
    check_resumable(default_config("digits", folds=5), tmp_path)


def _lr(schedule, step):
  return float(schedule(jnp.asarray(step)))


def test_cosine_with_warmup():
  config = TrainConfig(epochs=10, batch_size=256, base_lr=0.8, warmup_epochs=2)
  s = make_schedule(config, steps_per_epoch=10)  # 100 steps, warm-up 20
  assert _lr(s, 0) == pytest.approx(0.8 / 20)
  assert _lr(s, 9) == pytest.approx(0.8 * 10 / 20)
  assert _lr(s, 19) == pytest.approx(0.8)
  assert _lr(s, 20) == pytest.approx(0.8)
  assert _lr(s, 60) == pytest.approx(0.8 * 0.5 * (1 + math.cos(math.pi * 0.5)))
  assert _lr(s, 100) == pytest.approx(0.0, abs=1e-7)


def test_step_and_constant_schedules():
  config = TrainConfig(epochs=4, batch_size=256, base_lr=1.0, warmup_epochs=0, schedule="step",
                       step_milestones=(0.5, 0.75), step_factor=0.1)
  s = make_schedule(config, steps_per_epoch=25)  # milestones at 50 and 75
  assert [_lr(s, t) for t in (0, 49, 50, 74, 75, 99)] == pytest.approx(
      [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
  c = make_schedule(TrainConfig(batch_size=256, base_lr=0.5, warmup_epochs=1, schedule="constant"),
                    steps_per_epoch=4)
  assert [_lr(c, t) for t in (0, 3, 50)] == pytest.approx([0.125, 0.5, 0.5])


PARAMS = {
    "stem": {"kernel": jnp.ones((3, 3, 3, 8))},
    "gray_stem": {"kernel": jnp.ones((3, 3, 1, 8))},
    "block": {"depthwise": {"kernel": jnp.ones((3, 3, 1, 8))},
              "pointwise": {"kernel": jnp.ones((1, 1, 8, 16))},
              "grouped": {"kernel": jnp.ones((3, 3, 4, 8))},
              "BatchNorm_0": {"scale": jnp.ones(8), "bias": jnp.zeros(8)},
              "dw_norm": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}},
    "classifier": {"kernel": jnp.ones((16, 10)), "bias": jnp.zeros(10)},
}


def test_decay_mask_excludes_depthwise_and_norm_and_bias():
  mask = decay_mask(PARAMS)
  assert mask["stem"]["kernel"] and mask["block"]["pointwise"]["kernel"]
  assert mask["block"]["grouped"]["kernel"] and mask["classifier"]["kernel"]
  assert not mask["block"]["depthwise"]["kernel"]
  assert not mask["gray_stem"]["kernel"]  # one input channel: dense and depthwise at once
  for norm in ("BatchNorm_0", "dw_norm"):
    assert not mask["block"][norm]["scale"] and not mask["block"][norm]["bias"]
  assert not mask["classifier"]["bias"]
  everything = decay_mask(PARAMS, exclude_depthwise=False, exclude_norm_and_bias=False)
  assert all(jax.tree.leaves(everything))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_weight_decay_touches_only_masked_params(optimizer):
  # Zero gradients: only weight decay moves a parameter.
  config = TrainConfig(optimizer=optimizer, weight_decay=0.1, batch_size=256, base_lr=0.5,
                       warmup_epochs=0, schedule="constant", nesterov=False)
  tx = make_optimizer(config, steps_per_epoch=10)
  state = tx.init(PARAMS)
  zeros = jax.tree.map(jnp.zeros_like, PARAMS)
  updates, _ = tx.update(zeros, state, PARAMS)
  mask = decay_mask(PARAMS)
  new = optax.apply_updates(PARAMS, updates)
  for m, p, q in zip(jax.tree.leaves(mask), jax.tree.leaves(PARAMS), jax.tree.leaves(new)):
    if m:
      # SGD: p - lr * wd * p; AdamW (decoupled): p - lr * wd * p as well, Adam's term is 0.
      np.testing.assert_allclose(q, p * (1 - 0.5 * 0.1), rtol=1e-6)
    else:
      np.testing.assert_array_equal(q, p)

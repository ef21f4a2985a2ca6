"""Training-step benchmark with a tiny local model and the model lookup."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.bench.train_step import TrainStepConfig, bench_train_step
from sepconv.conv import grouped_conv


class TinyNet(nn.Module):
  """Depthwise conv, BatchNorm, pooled features, classifier: the model protocol in miniature."""
  impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool = False):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, 1, 3))
    x = grouped_conv(x, kernel, feature_group_count=3, impl=self.impl)
    x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    features = jnp.mean(x, axis=(1, 2))
    return nn.Dense(4)(features), {"pool": features}


CONFIG = TrainStepConfig(model="tiny", batch=2, image_size=8, num_classes=4)


def test_train_step_records():
  records = bench_train_step(TinyNet, CONFIG, ["xla"], warmup=1, repeats=3)
  (r,) = records
  assert r["kind"] == "train_step" and r["status"] == "ok" and r["impl"] == "xla"
  assert r["repeats"] == 3 and r["median_ms"] > 0 and r["compile_ms"] > 0
  assert r["images_per_s"] == pytest.approx(2 / (r["median_ms"] / 1e3))
  assert r["param_count"] == 27 + 3 * 2 + 3 * 4 + 4  # Kernel, BN scale/bias, dense.
  assert np.isfinite(r["final_loss"]) and r["config"]["model"] == "tiny"
  assert r["provenance"]["device_kind"]
  # The test process never asked for it (``sepconv.hostmem``); the record says so.
  assert r["keep_freed_host_memory"] is False


def test_train_step_rejects_unknown_impl_and_records_unsupported():
  with pytest.raises(ValueError, match="impl \\(='nosuch'\\)"):
    bench_train_step(TinyNet, CONFIG, ["nosuch"])

  def refuses(impl):
    raise ValueError(f"impl (={impl!r}) is not supported by this model")
  (r,) = bench_train_step(refuses, CONFIG, ["xla"], warmup=0, repeats=1)
  assert r["status"] == "unsupported" and "not supported" in r["reason"]
  with pytest.raises(ValueError, match="batch"):
    TrainStepConfig(batch=0)

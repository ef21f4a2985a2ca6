"""The PyTorch twin of the project's models: the same function, and a peer in the step benchmark."""

from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sepconv.bench.torch_models import load_flax_variables, torch_twin  # noqa: E402
from sepconv.bench.train_step import (TrainStepConfig, bench_train_step,  # noqa: E402
                                      model_factory, torch_peer_factory)
from sepconv.models import build_model, model_architecture  # noqa: E402

# Both MobileNets end to end (asymmetric SAME padding at every stride 2, the v2 shortcut),
# and the spectrum's other orders: grouped pointwise with shuffle, pointwise first.
CASES = [("mobilenet_v1", "dws", 32, 0.25), ("mobilenet_v2", "dws", 32, 0.25),
         ("mobilenet_v1_shallow", "shufflenet:pg=4", 8, 0.5),
         ("mobilenet_v1_shallow", "bsconv", 8, 0.5)]


@pytest.mark.parametrize("name,conv,size,width", CASES)
def test_the_twin_computes_the_flax_model(name, conv, size, width):
  kw = dict(num_classes=10, conv=conv, width_multiplier=width, input_size=size)
  model = build_model(name, impl="xla", **kw)
  x = np.random.default_rng(0).standard_normal((4, size, size, 3)).astype(np.float32)

  @jax.jit  # one compilation: the variables, then the logits in both modes
  def flax_side():
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    (train_logits, _), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    eval_logits, _ = model.apply(variables, x, train=False)
    return variables, train_logits, eval_logits
  variables, train_logits, eval_logits = flax_side()
  twin = torch_twin(model_architecture(name, **kw), (size, size, 3))
  load_flax_variables(twin, variables)
  images = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  with torch.no_grad():  # eval first: a train-mode forward updates the running statistics
    got_eval = twin.eval()(images).numpy()
    got_train = twin.train()(images).numpy()
  scale = float(np.abs(np.asarray(train_logits)).max())
  np.testing.assert_allclose(got_train, np.asarray(train_logits), atol=1e-4 * scale)
  np.testing.assert_allclose(got_eval, np.asarray(eval_logits), atol=1e-4 * scale, rtol=1e-4)
  n_params = sum(np.size(p) for p in jax.tree.leaves(variables["params"]))
  assert sum(p.numel() for p in twin.parameters()) == n_params


def test_the_step_benchmark_times_the_twin_in_both_layouts():
  config = TrainStepConfig(model="mobilenet_v1_shallow", width_multiplier=0.25, image_size=8,
                           batch=4)
  records = bench_train_step(model_factory(config), config, [], warmup=1, repeats=2,
                             torch_peer=torch_peer_factory(config))
  assert [r["impl"] for r in records] == ["torch_nchw", "torch_channels_last"]
  x = np.zeros((config.batch, config.image_size, config.image_size, 3), np.float32)
  shapes = jax.eval_shape(lambda: model_factory(config)("xla").init(jax.random.PRNGKey(0), x,
                                                                          train=False))
  n_params = sum(np.prod(p.shape) for p in jax.tree.leaves(shapes["params"]))
  for r in records:
    assert r["status"] == "ok" and r["framework"] == "torch" and r["median_ms"] > 0
    assert r["param_count"] == n_params
    assert np.isfinite(r["final_loss"]) and r["compile_ms"] is None
    assert r["images_per_s"] == pytest.approx(4 / (r["median_ms"] / 1e3))
  with pytest.raises(ValueError, match="float32"):
    torch_peer_factory(TrainStepConfig(dtype="bfloat16"))

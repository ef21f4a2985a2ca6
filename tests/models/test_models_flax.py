"""The Flax MobileNets: parameter trees equal the cost walk, every spectrum point runs.

Parameter shapes come from ``jax.eval_shape`` of ``init`` (no compute); forward passes
fill those shapes from numpy, because compiling random initialisers dominates CPU time.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from sepconv import models

IMPL = "xla"  # the implementation every CI machine has
V1_POINTS = ["dws", "standard", "grouped:g=4", "dws:g=4", "dws:m=2", "dws:pg=4,shuffle=1", "bsconv",
             "shufflenet:pg=4"]
# v2's projection narrows the expanded channels, so grouped pointwise stages rarely divide
# both sides (see test_group_size_rule); these points fit at width 0.25.
V2_POINTS = ["dws", "standard", "dws:g=8", "dws:m=2", "bsconv"]


def _build(name, conv="dws", size=32, alpha=0.25, **kw):
  return models.build_model(name, num_classes=10, conv=conv, width_multiplier=alpha,
                            input_size=size, impl=IMPL, **kw)


def _shapes(model, size):
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def _fill(shapes, seed=0):
  rng = np.random.default_rng(seed)
  variables = jax.tree.map(lambda s: (0.2 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
  variables["batch_stats"] = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), shapes["batch_stats"])
  return variables


def _flat(tree):
  return {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(tree).items()}


def _size(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,params,stats", [("mobilenet_v1", 4_231_976, 21_888),
                                               ("mobilenet_v2", 3_504_872, 34_112)])
def test_keras_parameter_counts_at_224(name, params, stats):
  shapes = _shapes(models.build_model(name, num_classes=1000, impl=IMPL), 224)
  assert _size(shapes["params"]) == params  # Keras: trainable
  assert _size(shapes["batch_stats"]) == stats  # Keras: non-trainable


def _assert_tree_matches_cost(shapes, layers):
  params, stats = _flat(shapes["params"]), _flat(shapes["batch_stats"])
  seen = set()
  for l in layers:
    if l.kind == "norm":
      keys, stat_keys = [f"{l.name}/scale", f"{l.name}/bias"], [f"{l.name}/mean", f"{l.name}/var"]
      assert sum(np.prod(params[k]) for k in keys) == l.norm_params, l.name
      assert sum(np.prod(stats[k]) for k in stat_keys) == l.norm_stats, l.name
    else:
      keys = [f"{l.name}/kernel"] + ([f"{l.name}/bias"] if l.biases else [])
      assert np.prod(params[keys[0]]) == l.weights, l.name
      if l.kind == "conv":
        assert params[keys[0]][2] * l.groups == l.in_shape[-1], l.name
      if l.biases:
        assert np.prod(params[keys[1]]) == l.biases, l.name
    seen.update(keys)
  assert seen == set(params), set(params) ^ seen


@pytest.mark.parametrize("name,conv", [("mobilenet_v1", c) for c in V1_POINTS]
                         + [("mobilenet_v2", c) for c in V2_POINTS])
def test_parameter_tree_equals_cost_walk(name, conv):
  model = _build(name, conv)
  layers = models.model_cost(name, num_classes=10, conv=conv, width_multiplier=0.25, input_size=32)
  _assert_tree_matches_cost(_shapes(model, 32), layers)


def test_one_knob_switches_every_block():
  trees = {c: _shapes(_build("mobilenet_v1", c), 32)["params"] for c in ("dws", "standard", "grouped:g=4")}
  for i in range(1, 14):
    dws, std, grp = (trees[c][f"block{i}"] for c in ("dws", "standard", "grouped:g=4"))
    assert set(dws) == {"spatial", "mid_norm", "pointwise", "norm"}
    assert set(std) == set(grp) == {"spatial", "norm"}
    cin, cout = dws["pointwise"]["kernel"].shape[2:]
    assert dws["spatial"]["kernel"].shape == (3, 3, 1, cin)
    assert std["spatial"]["kernel"].shape == (3, 3, cin, cout)
    assert grp["spatial"]["kernel"].shape == (3, 3, 4, cout)
  assert trees["dws"]["stem"] == trees["standard"]["stem"]  # the stem is not on the knob
  v2 = {c: _shapes(_build("mobilenet_v2", c), 32)["params"] for c in ("dws", "standard")}
  for i in range(1, 18):
    hidden, cout = v2["dws"][f"block{i}"]["conv"]["pointwise"]["kernel"].shape[2:]
    assert v2["dws"][f"block{i}"]["conv"]["spatial"]["kernel"].shape == (3, 3, 1, hidden)
    assert v2["standard"][f"block{i}"]["conv"]["spatial"]["kernel"].shape == (3, 3, hidden, cout)
    assert "pointwise" not in v2["standard"][f"block{i}"]["conv"]


@pytest.mark.parametrize("name,conv", [("mobilenet_v1", c) for c in V1_POINTS]
                         + [("mobilenet_v2", c) for c in V2_POINTS])
def test_forward_every_point_8x8(name, conv):
  model = _build(name, conv, size=8)
  variables = _fill(_shapes(model, 8))
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 3)), jnp.float32)
  logits, features = model.apply(variables, x, train=False)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  arch = models.model_architecture(name, conv=conv, width_multiplier=0.25, input_size=8)
  assert list(features) == [u.name for u in arch.units] + ["penultimate"]
  assert features["penultimate"].shape == (2, arch.features)
  np.testing.assert_allclose(features["penultimate"], features[arch.units[-1].name].mean(axis=(1, 2)),
                             rtol=1e-6, atol=1e-6)
  # the feature maps have the shapes the cost walk predicts
  for l in models.model_cost(name, num_classes=10, conv=conv, width_multiplier=0.25, input_size=8):
    unit = l.name.split("/")[0]
    if l.name.endswith("/norm") and l.name.count("/") == 1 or l.name == f"{unit}/conv/norm":
      assert features[unit].shape[1:] == l.out_shape, l.name


@pytest.mark.parametrize("name,size", [("mobilenet_v1", 32), ("mobilenet_v2", 8)])
def test_train_step_updates_batch_stats(name, size):
  model = _build(name, size=size, dropout_rate=0.1)
  variables = _fill(_shapes(model, size))
  x = jnp.asarray(np.random.default_rng(2).standard_normal((4, size, size, 3)), jnp.float32)

  @jax.jit
  def loss_and_grad(variables, x):
    def loss(params):
      (logits, _), updates = model.apply({**variables, "params": params}, x, train=True,
                                         mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)})
      return jnp.mean(logits ** 2), updates
    return jax.value_and_grad(loss, has_aux=True)(variables["params"])

  (value, updates), grads = loss_and_grad(variables, x)
  assert np.isfinite(float(value))
  assert jax.tree.structure(grads) == jax.tree.structure(variables["params"])
  old = variables["batch_stats"]["stem"]["norm"]["mean"]
  assert not np.allclose(updates["batch_stats"]["stem"]["norm"]["mean"], old)


def test_real_init_and_bfloat16():
  model = _build("mobilenet_v1", size=8, alpha=0.25, dtype=jnp.bfloat16)
  x = jnp.ones((2, 8, 8, 3), jnp.float32)

  @jax.jit
  def init_and_apply(x):
    # unsafe_rbg: threefry's unrolled rounds per parameter dominate CPU compile time
    variables = model.init(jax.random.key(0, impl="unsafe_rbg"), x, train=False)
    return variables, model.apply(variables, x, train=False)

  variables, (logits, features) = init_and_apply(x)
  assert jax.tree.leaves(variables["params"])[0].dtype == jnp.float32
  assert logits.dtype == jnp.float32 and features["block13"].dtype == jnp.bfloat16


def test_v2_residual_blocks_pass_input_through_when_zeroed():
  model = _build("mobilenet_v2", size=8)
  variables = _fill(_shapes(model, 8))
  arch = model.arch
  for unit in arch.units[1:-1]:
    norm = variables["params"][unit.name]["conv"]["norm"]
    norm["scale"], norm["bias"] = np.zeros_like(norm["scale"]), np.zeros_like(norm["bias"])
  x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 8, 8, 3)), jnp.float32)
  _, features = model.apply(variables, x, train=False)
  names = [u.name for u in arch.units]
  paper = models.model_architecture("mobilenet_v2").units
  assert [u.name for u in paper[1:-1] if u.residual] == [
      "block3", "block5", "block6", "block8", "block9", "block10", "block12", "block13", "block15",
      "block16"]
  assert sum(u.residual for u in arch.units[1:-1]) == 12  # width 0.25 at 8x8: also blocks 1, 2
  for i, unit in enumerate(arch.units[1:-1], start=1):
    if unit.residual:
      np.testing.assert_array_equal(features[unit.name], features[names[i - 1]])
    else:
      assert not np.any(features[unit.name])


def test_build_model_bad_values():
  with pytest.raises(ValueError, match=r"impl \(='nope'\) must be one of"):
    models.build_model("mobilenet_v1", num_classes=10, impl="nope")
  with pytest.raises(ValueError, match=r"model name \(='vgg'\) must be one of"):
    models.build_model("vgg", num_classes=10, impl=IMPL)
  with pytest.raises(ValueError, match=r"dropout_rate \(=1.5\)"):
    models.build_model("mobilenet_v1", num_classes=10, impl=IMPL, dropout_rate=1.5)
  model = _build("mobilenet_v1")
  with pytest.raises(ValueError, match=r"input shape \(=\(8, 8, 3\)\) must be NHWC"):
    model.init(jax.random.key(0), jnp.zeros((8, 8, 3)), train=False)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_grayscale_input_adapts_the_stem(name):
  model = _build(name, size=8)
  x = jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  assert shapes["params"]["stem"]["spatial"]["kernel"].shape[2] == 1
  layers = models.model_cost(name, num_classes=10, width_multiplier=0.25, input_size=8, in_channels=1)
  _assert_tree_matches_cost(shapes, layers)


@pytest.mark.parametrize("name,conv", [("mobilenet_v1", "dws"), ("mobilenet_v1", "grouped:g=4"),
                                       ("mobilenet_v1", "shufflenet:pg=4")])
def test_default_impl_agrees_with_xla(name, conv):
  reference = _build(name, conv, size=8)
  model = models.build_model(name, num_classes=10, conv=conv, width_multiplier=0.25, input_size=8)
  assert model.impl == "auto"
  variables = _fill(_shapes(reference, 8))
  x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 8, 8, 3)), jnp.float32)
  expected, _ = reference.apply(variables, x, train=False)
  got, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)

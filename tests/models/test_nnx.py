"""NNX modules equal the Linen ones from the same parameters; Flax convs take the drop-in."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import sepconv
from sepconv import layers, models, spectrum
from sepconv import nnx as snnx

MODEL = {"num_classes": 5, "width_multiplier": 0.25, "input_size": 16}


def _images(shape=(2, 16, 16, 3), seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_mobilenets_identical_logits_both_ways(name):
  x = _images()
  linen = models.build_model(name, **MODEL)
  variables = linen.init(jax.random.key(0), x, train=False)
  model = snnx.build_model(name, rngs=nnx.Rngs(1), **MODEL)
  snnx.linen_to_nnx(variables, model)
  want, want_features = linen.apply(variables, x, train=False)
  got, got_features = model(x, train=False)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert set(got_features) == set(want_features)

  # Training mode: batch statistics and their running averages agree as well.
  (want, _), updates = linen.apply(variables, x, train=True, mutable=["batch_stats"])
  got, _ = model(x, train=True)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
  back = snnx.nnx_to_linen(model)
  for a, b in zip(jax.tree.leaves(back["batch_stats"]), jax.tree.leaves(updates["batch_stats"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)

  # NNX -> Linen: a fresh NNX model's parameters run in the Linen model.
  fresh = snnx.build_model(name, rngs=nnx.Rngs(7), **MODEL)
  converted = snnx.nnx_to_linen(fresh)
  assert jax.tree.structure(converted) == jax.tree.structure(dict(variables))
  np.testing.assert_array_equal(np.asarray(linen.apply(converted, x, train=False)[0]),
                                np.asarray(fresh(x, train=False)[0]))


def test_checkpoint_mismatch_names_the_path():
  linen = models.build_model("mobilenet_v1", **MODEL)
  variables = linen.init(jax.random.key(0), _images(), train=False)
  wider = snnx.build_model("mobilenet_v1", rngs=nnx.Rngs(0), **{**MODEL, "width_multiplier": 0.5})
  with pytest.raises(ValueError, match=r"params/stem/spatial/kernel: shape"):
    snnx.linen_to_nnx(variables, wider)
  v2 = snnx.build_model("mobilenet_v2", rngs=nnx.Rngs(0), **MODEL)
  with pytest.raises(ValueError, match="paths must match"):
    snnx.linen_to_nnx(variables, v2)
  with pytest.raises(ValueError, match=r"collections \(=\['cache'\]\)"):
    snnx.linen_to_nnx({**variables, "cache": {}}, v2)


@pytest.mark.parametrize("spec", [
    spectrum.depthwise_separable(8, 12, 3),
    spectrum.grouped(8, 16, 3, group_size=4, stride=2),
    spectrum.shufflenet(8, 12, 3, pointwise_group_size=4),
])
def test_spectrum_conv_matches_linen(spec):
  x = _images((2, 6, 6, 8))
  linen = layers.SpectrumConv(spec, norm=True, use_bias=True)
  variables = linen.init(jax.random.key(0), x)
  module = snnx.linen_to_nnx(variables, snnx.SpectrumConv(spec, norm=True, use_bias=True,
                                                          rngs=nnx.Rngs(0)))
  np.testing.assert_array_equal(np.asarray(module(x)), np.asarray(linen.apply(variables, x)))


def test_grouped_conv_matches_linen_and_nnx_conv():
  x = _images((2, 6, 6, 8))
  linen = layers.GroupedConv(16, (3, 3), feature_group_count=4, strides=2)
  variables = linen.init(jax.random.key(0), x)
  module = snnx.linen_to_nnx(variables, snnx.GroupedConv(8, 16, (3, 3), feature_group_count=4,
                                                         strides=2, rngs=nnx.Rngs(0)))
  np.testing.assert_allclose(np.asarray(module(x)), np.asarray(linen.apply(variables, x)),
                             rtol=1e-6, atol=1e-6)
  plain = nnx.Conv(8, 16, (3, 3), feature_group_count=4, strides=2, rngs=nnx.Rngs(0))
  assert plain.kernel[...].shape == module.kernel[...].shape


class _Block(nn.Module):
  """A plain Flax block written the usual way, with an optional conv function."""
  conv_fn: object = None

  @nn.compact
  def __call__(self, x):
    kwargs = {} if self.conv_fn is None else {"conv_general_dilated": self.conv_fn}
    x = nn.Conv(8, (3, 3), feature_group_count=8, **kwargs)(x)
    x = nn.Conv(8, (1, 1), **kwargs)(nn.relu(x))
    return jnp.mean(x, axis=(1, 2))


def _sgd_step(loss_fn, params):
  grads = jax.grad(loss_fn)(params)
  updates, _ = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(params), params)
  return optax.apply_updates(params, updates), grads


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linen_conv_takes_the_dropin_in_a_jitted_training_step(dtype):
  x, y = _images((2, 6, 6, 8)).astype(dtype), jnp.ones((2, 8), jnp.float32)
  params = _Block().init(jax.random.key(0), x)
  results = []
  for fn in (None, sepconv.conv_general_dilated):
    def loss(p, fn=fn):
      return jnp.mean((_Block(fn).apply(p, x).astype(jnp.float32) - y) ** 2)
    results.append(jax.jit(lambda p, loss=loss: _sgd_step(loss, p))(params))
  tol = 1e-5 if dtype == jnp.float32 else 5e-2
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               rtol=tol, atol=tol)


def test_nnx_conv_takes_the_dropin_in_a_jitted_training_step():
  x, y = _images((2, 6, 6, 8)), jnp.ones((2, 6, 6, 8), jnp.float32)
  grads = []
  for fn in (jax.lax.conv_general_dilated, sepconv.conv_general_dilated):
    conv = nnx.Conv(8, 8, (3, 3), feature_group_count=4, rngs=nnx.Rngs(0),
                    conv_general_dilated=fn)

    @nnx.jit
    def step(conv):
      return nnx.grad(lambda c: jnp.mean((c(x) - y) ** 2))(conv)

    grads.append(step(conv))
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

"""``sepconv.conv_general_dilated`` equals ``lax.conv_general_dilated``, values and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import sepconv
from sepconv.conv import dropin

# (lhs, rhs, out) layouts; the arrays are built NHWC x HWIO and transposed into them.
LAYOUTS = [("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NCHW"), ("NHWC", "OIHW", "NCHW"),
           ("NCHW", "HWIO", "NHWC")]
# float32: both paths sum in float32 in a different order. bfloat16: inputs, kernels and
# outputs are rounded to 8 significant bits, so results differ by a few bf16 ulps.
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def _to_layout(array, src: str, dst: str):
  return jnp.transpose(array, tuple(src.index(a) for a in dst))


def _arrays(batch, h, w, groups, group_in, group_out, kh, kw, dtype, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, h, w, groups * group_in)).astype(np.float32)
  k = rng.standard_normal((kh, kw, group_in, groups * group_out)).astype(np.float32)
  return jnp.asarray(x, dtype), jnp.asarray(k / np.sqrt(group_in * kh * kw), dtype)


def _loss_and_grads(conv, x, k, kwargs, dy):
  def loss(x_, k_):
    y = conv(x_, k_, **kwargs)
    return jnp.sum(y.astype(jnp.float32) * dy), y
  (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x, k)
  return y, grads


def _compare(x, k, kwargs, dtype):
  out_shape = jax.eval_shape(lambda a, b: lax.conv_general_dilated(a, b, **kwargs), x, k).shape
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(out_shape), jnp.float32)
  got = _loss_and_grads(sepconv.conv_general_dilated, x, k, kwargs, dy)
  want = _loss_and_grads(lax.conv_general_dilated, x, k, kwargs, dy)
  tol = TOLERANCE[dtype]
  for name, g, w in zip(("output", "d lhs", "d rhs"), (got[0], *got[1]), (want[0], *want[1])):
    assert g.shape == w.shape and g.dtype == w.dtype, name
    g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
    scale = max(1.0, float(np.abs(w).max()))
    np.testing.assert_allclose(g, w, atol=tol * scale, rtol=tol, err_msg=name)


@st.composite
def _calls(draw):
  """Arguments of one call, over the whole range lax takes (some run on sepconv, some on lax)."""
  groups = draw(st.sampled_from([1, 2, 4]))
  group_in = draw(st.sampled_from([1, 2, 3]))
  group_out = draw(st.sampled_from([1, 2]))
  kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]))
  h, w = draw(st.integers(5, 9)), draw(st.integers(5, 9))
  batch_groups = draw(st.sampled_from([1, 1, 1, 2]))
  batch = 2 * batch_groups
  if batch_groups > 1:  # lax: batch and feature groups cannot both be above 1
    groups, group_out = 1, 2
  strides = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
  rhs_dilation = draw(st.sampled_from([None, (1, 1), (2, 1), (2, 2)]))
  lhs_dilation = draw(st.sampled_from([None, None, None, (2, 2), (1, 2)]))
  padding = draw(st.sampled_from(["SAME", "VALID", "SAME_LOWER", ((1, 1), (1, 1)),
                                  ((2, 0), (0, 1)), ((1, -1), (0, 2))]))
  if lhs_dilation is not None and isinstance(padding, str):
    padding = ((1, 0), (0, 1))  # lax takes only explicit padding with input dilation
  layout = draw(st.sampled_from(LAYOUTS))
  dtype = draw(st.sampled_from(["float32", "float32", "bfloat16"]))
  effective = [(k - 1) * d + 1 for k, d in zip((kh, kw), rhs_dilation or (1, 1))]
  if min(h - effective[0], w - effective[1]) < 0:
    h, w = effective[0] + 3, effective[1] + 3
  x, k = _arrays(batch, h, w, groups, group_in, group_out, kh, kw, dtype, seed=draw(st.integers(0, 9)))
  x, k = _to_layout(x, "NHWC", layout[0]), _to_layout(k, "HWIO", layout[1])
  kwargs = dict(window_strides=strides, padding=padding, lhs_dilation=lhs_dilation,
                rhs_dilation=rhs_dilation, dimension_numbers=layout,
                feature_group_count=groups, batch_group_count=batch_groups)
  return x, k, kwargs, dtype


@settings(max_examples=30, deadline=None, derandomize=True)
@given(_calls())
def test_equals_lax_values_and_gradients(call):
  x, k, kwargs, dtype = call
  _compare(x, k, kwargs, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grouped_layouts_run_on_sepconv(layout, dtype):
  x, k = _arrays(2, 8, 8, 4, 2, 1, 3, 3, dtype)
  x, k = _to_layout(x, "NHWC", layout[0]), _to_layout(k, "HWIO", layout[1])
  kwargs = dict(window_strides=(2, 1), padding="SAME", rhs_dilation=(1, 2),
                dimension_numbers=layout, feature_group_count=4)
  assert dropin.route(x, k, **kwargs) == ("sepconv", "")
  _compare(x, k, kwargs, dtype)


def test_depthwise_flax_dimension_numbers_and_extra_kwargs():
  x, k = _arrays(2, 7, 7, 6, 1, 2, 3, 3, "float32")
  dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
  kwargs = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), dimension_numbers=dn,
                feature_group_count=6, precision=None, preferred_element_type=None)
  assert dropin.route(x, k, out_sharding=None, **kwargs) == ("sepconv", "")
  np.testing.assert_allclose(sepconv.conv_general_dilated(x, k, out_sharding=None, **kwargs),
                             lax.conv_general_dilated(x, k, **kwargs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change, why", [
    (dict(lhs_dilation=(2, 2), padding=((0, 0), (0, 0))), "lhs_dilation"),
    (dict(batch_group_count=2, feature_group_count=1), "batch_group_count"),
    (dict(precision=lax.Precision.HIGHEST), "precision"),
    (dict(preferred_element_type=jnp.float64), "preferred_element_type"),
    (dict(dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=1), "dense"),
])
def test_what_goes_to_lax(change, why):
  x, k = _arrays(2, 6, 6, 1, 4, 4, 3, 3, "float32")
  kwargs = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=1)
  kwargs.update(change)
  if kwargs["dimension_numbers"][0] == "NCHW":
    x, k = _to_layout(x, "NHWC", "NCHW"), _to_layout(k, "HWIO", "OIHW")
  path, reason = dropin.route(x, k, **kwargs)
  assert path == "lax" and why in reason


def test_vmap_over_the_dropin():
  x, k = _arrays(3, 6, 6, 4, 1, 1, 3, 3, "float32")
  kwargs = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=4)
  per_example = lambda conv: jax.vmap(lambda xi: conv(xi[None], k, **kwargs)[0])(x)  # noqa: E731
  np.testing.assert_allclose(per_example(sepconv.conv_general_dilated),
                             per_example(lax.conv_general_dilated), atol=1e-5, rtol=1e-5)


def test_errors_are_lax_errors():
  x, k = _arrays(1, 5, 5, 2, 2, 1, 3, 3, "float32")
  with pytest.raises((TypeError, ValueError)):
    sepconv.conv_general_dilated(x, k, (1, 1), "SAME", feature_group_count=3)

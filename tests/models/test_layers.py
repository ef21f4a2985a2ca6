"""Flax spectrum modules: parameter counts, closed forms, and PyTorch as an independent reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax import lax

from sepconv import cost, spectrum
from sepconv.layers import GroupedConv, SpectrumConv, channel_shuffle

IMPL = "xla"


def _param_count(module, in_shape) -> tuple[int, int]:
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(in_shape)))
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
  return count(variables.get("params", {})), count(variables.get("batch_stats", {}))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("norm", [False, True])
def test_named_points_param_counts_equal_cost_model(bias, norm):
  points = spectrum.named_points(16, 32, 3, between="norm_act") | spectrum.named_points(16, 32, 5)
  points |= {"standard": spectrum.standard(16, 32, 3), "grouped_2": spectrum.grouped(16, 32, 3, groups=2),
             "depthwise_m2": spectrum.depthwise(16, 3, depth_multiplier=2)}
  assert len(points) >= 8
  for name, spec in points.items():
    params, stats = _param_count(SpectrumConv(spec, use_bias=bias, norm=norm, impl=IMPL), (1, 9, 9, 16))
    summary = cost.summarize(cost.spec_cost(spec, 9, bias=bias, norm=norm))
    assert params == summary.params_with_bn, name
    assert stats == summary.norm_stats, name


@st.composite
def _specs(draw):
  in_ch = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12, 16]))
  pointwise = draw(st.booleans())
  g = draw(st.sampled_from([d for d in range(1, in_ch + 1) if in_ch % d == 0]))
  m = draw(st.integers(1, 3))
  out_ch = draw(st.integers(1, 4)) * (in_ch // g) if not pointwise else draw(st.integers(1, 12))
  if not pointwise:
    m = 1
  kw = dict(kernel_size=draw(st.sampled_from([1, 3, (3, 5)])), stride=draw(st.sampled_from([1, 2])),
            dilation=draw(st.sampled_from([1, 2])), padding=draw(st.sampled_from(["SAME", "VALID", 1])))
  if pointwise:
    order = draw(st.sampled_from(spectrum.ORDERS))
    between = draw(st.sampled_from(spectrum.BETWEENS))
    if order == "pointwise_first":
      out_ch *= m
      mid = out_ch // m
      g = draw(st.sampled_from([d for d in range(1, mid + 1) if mid % d == 0]))
    return spectrum.ConvSpec(in_ch, out_ch, group_size=g, depth_multiplier=m, pointwise=True,
                             order=order, between=between, **kw)
  return spectrum.ConvSpec(in_ch, out_ch, group_size=g, **kw)


@settings(max_examples=30, deadline=None)
@given(spec=_specs(), bias=st.booleans())
def test_random_specs_param_counts_equal_cost_model(spec, bias):
  params, stats = _param_count(SpectrumConv(spec, use_bias=bias, impl=IMPL), (1, 11, 11, spec.in_channels))
  summary = cost.summarize(cost.spec_cost(spec, 11, bias=bias))
  assert (params, stats) == (summary.params_with_bn, summary.norm_stats)


def test_parameter_names_are_cost_model_layer_names():
  spec = spectrum.depthwise_separable(8, 16, 3, between="norm_act")
  variables = SpectrumConv(spec, norm=True, impl=IMPL).init(jax.random.key(0), jnp.zeros((1, 6, 6, 8)))
  names = [l.name for l in cost.spec_cost(spec, 6, norm=True)]
  assert sorted(variables["params"]) == sorted(names)
  assert variables["params"]["spatial"]["kernel"].shape == (3, 3, 1, 8)
  assert variables["params"]["pointwise"]["kernel"].shape == (1, 1, 8, 16)


def test_grouped_conv_equals_per_group_dense_convs_concatenated():
  groups, cin, cout = 4, 12, 8
  module = GroupedConv(cout, (3, 3), feature_group_count=groups, use_bias=False, impl=IMPL)
  x = jax.random.normal(jax.random.key(1), (2, 7, 7, cin))
  variables = module.init(jax.random.key(2), x)
  kernel = variables["params"]["kernel"]
  y = module.apply(variables, x)
  per_group = []
  for i in range(groups):
    xi = x[..., i * cin // groups:(i + 1) * cin // groups]
    ki = kernel[..., i * cout // groups:(i + 1) * cout // groups]
    per_group.append(lax.conv_general_dilated(xi, ki, (1, 1), "SAME",
                                              dimension_numbers=("NHWC", "HWIO", "NHWC")))
  np.testing.assert_allclose(y, jnp.concatenate(per_group, axis=-1), rtol=1e-5, atol=1e-5)


def test_all_ones_kernels_give_hand_computed_outputs():
  # 4x4 input of ones, 3x3 all-ones kernel, SAME: each output sums its in-bounds taps over
  # the g channels of its group: corners 4 taps, edges 6, interior 9, times g.
  g, cin = 3, 6
  spec = spectrum.grouped(cin, cin, 3, group_size=g)
  module = SpectrumConv(spec, impl=IMPL, kernel_init=nn_ones())
  y = module.apply(module.init(jax.random.key(0), jnp.ones((1, 4, 4, cin))), jnp.ones((1, 4, 4, cin)))
  taps = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], np.float32)
  np.testing.assert_array_equal(y[0], np.broadcast_to(g * taps[..., None], (4, 4, cin)))
  # Depthwise then all-ones pointwise to 2 outputs: every output is cin * taps.
  spec = spectrum.depthwise_separable(cin, 2, 3)
  module = SpectrumConv(spec, impl=IMPL, kernel_init=nn_ones())
  y = module.apply(module.init(jax.random.key(0), jnp.ones((1, 4, 4, cin))), jnp.ones((1, 4, 4, cin)))
  np.testing.assert_array_equal(y[0], np.broadcast_to(cin * taps[..., None], (4, 4, 2)))


def nn_ones():
  return lambda key, shape, dtype=jnp.float32: jnp.ones(shape, dtype)


def test_channel_shuffle_is_shufflenets_transpose():
  x = jnp.arange(6.0).reshape(1, 1, 1, 6)
  np.testing.assert_array_equal(channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])
  with pytest.raises(ValueError, match=r"channels \(=6\) must be divisible by groups \(=4\)"):
    channel_shuffle(x, 4)


def test_input_channel_mismatch_raises():
  module = SpectrumConv(spectrum.depthwise(8), impl=IMPL)
  with pytest.raises(ValueError, match=r"must be NHWC with 8 channels"):
    module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 6)))
  with pytest.raises(ValueError, match=r"input channels \(=6\) must be divisible by feature_group_count \(=4\)"):
    GroupedConv(8, feature_group_count=4, impl=IMPL).init(jax.random.key(0), jnp.zeros((1, 4, 4, 6)))


def test_between_norm_act_uses_batch_statistics_in_training():
  spec = spectrum.depthwise_separable(4, 4, 3, between="norm_act")
  module = SpectrumConv(spec, impl=IMPL)
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4))
  variables = module.init(jax.random.key(1), x)
  _, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(updates["batch_stats"]["mid_norm"]["mean"], 0.0)


# PyTorch as an independent reference.

def _torch_layer(spec: spectrum.ConvSpec, x: np.ndarray, kernels: dict) -> np.ndarray:
  torch = pytest.importorskip("torch", reason="PyTorch is the independent reference; not installed")
  import torch.nn.functional as F
  t = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
  for stage in spec.stages():
    w = torch.from_numpy(np.array(kernels[stage.name])).permute(3, 2, 0, 1)  # HWIO -> OIHW
    if isinstance(stage.padding, str):
      pad_h = pad_w = None
      if stage.padding == "SAME":
        pads = []
        for size, k, s, d in zip(t.shape[2:], stage.kernel_size, stage.stride, stage.dilation):
          total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
          pads.append((total // 2, total - total // 2))
        pad_h, pad_w = pads
    else:
      pad_h, pad_w = stage.padding
    if pad_h is not None:
      t = F.pad(t, (pad_w[0], pad_w[1], pad_h[0], pad_h[1]))
    t = F.conv2d(t, w, stride=stage.stride, dilation=stage.dilation, groups=stage.feature_group_count)
    if stage.name == "pointwise" and spec.shuffle:
      n, c, h, w_ = t.shape
      g = stage.feature_group_count
      t = t.reshape(n, g, c // g, h, w_).transpose(1, 2).reshape(n, c, h, w_)
  return t.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("spec", [
    spectrum.standard(8, 6, 3),
    spectrum.grouped(8, 12, 3, group_size=2),
    spectrum.grouped(8, 8, 3, groups=2, stride=2, padding="VALID"),
    spectrum.depthwise(6, 3, depth_multiplier=3),
    spectrum.depthwise(6, 5, dilation=2, stride=2),
    spectrum.depthwise(6, (3, 5), padding=((2, 0), (1, 3))),
    spectrum.depthwise_separable(8, 10, 3, depth_multiplier=2),
    spectrum.grouped_separable(8, 10, 3, group_size=4, stride=2),
    spectrum.bsconv(6, 10, 3, stride=2, padding=1),
    spectrum.shufflenet(8, 12, 3, pointwise_group_size=4),
], ids=lambda s: f"g{s.group_size}m{s.depth_multiplier}pw{int(s.pointwise)}{s.order[:2]}")
def test_matches_pytorch_conv2d(spec):
  x = np.asarray(jax.random.normal(jax.random.key(0), (2, 11, 10, spec.in_channels)))
  module = SpectrumConv(spec, impl=IMPL)
  variables = module.init(jax.random.key(1), jnp.asarray(x))
  kernels = {name: p["kernel"] for name, p in variables["params"].items()}
  with jax.default_matmul_precision("highest"):
    y = np.asarray(module.apply(variables, jnp.asarray(x)))
  np.testing.assert_allclose(y, _torch_layer(spec, x, kernels), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", [
    spectrum.depthwise_separable(8, 12, 3),
    spectrum.grouped_separable(8, 12, 3, group_size=2, stride=2),
    spectrum.depthwise_separable(8, 12, 3, depth_multiplier=2, padding="VALID"),
], ids=["dws", "grouped-stride2", "m2-valid"])
def test_default_path_equals_the_native_stages(spec):
  x = jax.random.normal(jax.random.key(0), (2, 9, 9, 8))
  variables = SpectrumConv(spec, impl="xla").init(jax.random.key(1), x)
  with jax.default_matmul_precision("highest"):
    default = SpectrumConv(spec).apply(variables, x)  # impl='auto' for each stage
    staged = SpectrumConv(spec, impl="xla").apply(variables, x)
  np.testing.assert_allclose(default, staged, rtol=1e-4, atol=1e-4)

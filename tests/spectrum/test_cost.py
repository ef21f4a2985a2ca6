"""The cost model against the worked example, closed forms and XLA's own count."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from sepconv import cost, spectrum, window, worked_example


def test_worked_example_exact():
  rows = {r["name"]: r for r in worked_example.rows()}
  std = rows["standard conv"]
  assert std["params"] == 153_600
  assert std["mult_adds"] == 120_422_400
  assert rows["naive split (depth multiplier 32) + pointwise"]["stage_params"] == {
      "spatial": 153_600, "pointwise": 196_608}
  expected = {
      "naive split (depth multiplier 32) + pointwise": (153_600, 196_608),
      "depthwise + pointwise": (4_800, 6_144),
      "depthwise (multiplier 4) + pointwise": (19_200, 24_576),
      "grouped spatial (group size 4) + pointwise": (19_200, 6_144),
  }
  for name, (spatial, pointwise) in expected.items():
    assert tuple(rows[name]["stage_params"].values()) == (spatial, pointwise)
    assert rows[name]["params"] == spatial + pointwise
    # Stride 1, SAME: mult-adds = weights x 28 x 28, padded taps counted.
    assert rows[name]["mult_adds"] == (spatial + pointwise) * 28 * 28
  assert [rows[n]["params"] for n in expected] == [350_208, 10_944, 43_776, 25_344]
  assert rows["grouped conv (group size 6, 32 groups)"]["params"] == 5 * 5 * 6 * 32


@pytest.mark.parametrize("n", [1, 16, 32, 64, 1000])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_separable_ratio_is_one_over_n_plus_one_over_k_squared(n, k):
  c, hw = 24, 10
  dws = cost.layer_summary(spectrum.depthwise_separable(c, n, k), hw).mult_adds
  std = cost.layer_summary(spectrum.standard(c, n, k), hw).mult_adds
  expected = Fraction(1, n) + Fraction(1, k * k)
  assert Fraction(dws, std) == expected
  assert Fraction(*cost.separable_ratio(n, k)) == expected


@pytest.mark.parametrize("size,kernel,stride,dilation,padding,expected", [
    (28, 5, 1, 1, "SAME", (28, 2, 2)),
    (224, 3, 2, 1, "SAME", (112, 0, 1)),  # XLA puts the odd pad at the end
    (15, 3, 2, 1, "VALID", (7, 0, 0)),
    (10, 3, 1, 2, "SAME", (10, 2, 2)),
    (10, 3, 3, 1, (2, 1), (4, 2, 1)),
])
def test_conv_output_size(size, kernel, stride, dilation, padding, expected):
  assert window.output_size(size, kernel, stride, dilation, padding) == expected


def test_valid_taps_closed_form():
  # 14x14 SAME 3x3 stride 1: per axis 14*3 - 2 valid taps, so ~0.907 of the padded count.
  assert window.valid_taps(14, 3, 1, 1, 1, 14) == 40
  s = cost.layer_summary(spectrum.depthwise(32, 3), 14)
  assert s.mult_adds_valid * 42 * 42 == s.mult_adds * 40 * 40
  assert abs(s.mult_adds_valid / s.mult_adds - 0.907) < 1e-3


def _xla_flops(spec: spectrum.ConvSpec, hw: int, batch: int = 1) -> float:
  x = jnp.zeros((batch, hw, hw, spec.in_channels), jnp.float32)
  kernels = [jnp.zeros(st.kernel_shape, jnp.float32) for st in spec.stages()]

  def f(x, kernels):
    for st, k in zip(spec.stages(), kernels):
      x = lax.conv_general_dilated(x, k, st.stride, st.padding, rhs_dilation=st.dilation,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   feature_group_count=st.feature_group_count)
    return x

  analysis = jax.jit(f).lower(x, kernels).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jaxlibs return one dict per device
    analysis = analysis[0]
  return analysis["flops"]


@pytest.mark.parametrize("spec,hw", [
    (spectrum.standard(16, 32, 3), 14),
    (spectrum.standard(16, 32, 3, padding="VALID"), 14),
    (spectrum.depthwise(32, 3), 14),
    (spectrum.depthwise(32, 3, stride=2), 15),
    (spectrum.depthwise(8, 5, depth_multiplier=3, padding="VALID"), 11),
    (spectrum.grouped(32, 64, 3, group_size=4, stride=2), 14),
    (spectrum.grouped(32, 32, 3, groups=2, dilation=2), 13),
    (spectrum.grouped(12, 12, 3, group_size=3, padding=((2, 0), (1, 1))), 9),
    (spectrum.depthwise_separable(32, 64, 3), 14),
    (spectrum.grouped_separable(32, 48, 5, group_size=8, depth_multiplier=2), 12),
    (spectrum.shufflenet(32, 64, 3, pointwise_group_size=8), 10),
])
def test_xla_cost_analysis_matches_converted_count(spec, hw):
  batch = 2
  summary = cost.layer_summary(spec, hw)
  assert _xla_flops(spec, hw, batch) == batch * summary.xla_flops
  assert summary.flops == 2 * summary.mult_adds


def test_bytes_and_intensity_closed_form():
  spec = spectrum.depthwise(128, 3)
  (layer,) = cost.spec_cost(spec, 56, dtype_bytes=4)
  assert layer.bytes == 4 * (2 * 56 * 56 * 128 + 9 * 128)
  # PERF.md's roofline: depthwise 3x3 in float32 is ~ g k^2 / b = 2.25 FLOP/byte.
  assert abs(layer.intensity - 2.25) < 0.01
  (bf16,) = cost.spec_cost(spec, 56, dtype_bytes=2)
  assert abs(bf16.intensity - 4.5) < 0.02


def test_two_stage_fused_bytes_skip_the_intermediate():
  spec = spectrum.depthwise_separable(64, 64, 3)
  s = cost.layer_summary(spec, 8)
  inter = 8 * 8 * 64
  assert s.bytes - s.bytes_fused == 4 * 2 * inter


def test_bias_and_norm_counts():
  spec = spectrum.depthwise_separable(8, 16, 3, between="norm_act")
  layers = cost.spec_cost(spec, 5, bias=True, norm=True)
  assert [l.name for l in layers] == ["spatial", "mid_norm", "pointwise", "norm"]
  s = cost.summarize(layers)
  assert s.params == 9 * 8 + 8 + 8 * 16 + 16
  assert s.params_with_bn == s.params + 2 * 8 + 2 * 16
  assert s.norm_stats == 2 * 8 + 2 * 16


def test_dense_cost():
  fc = cost.dense_cost("fc", 1024, 1000)
  assert (fc.weights, fc.biases, fc.mult_adds) == (1_024_000, 1000, 1_024_000)


def test_no_output_raises():
  with pytest.raises(ValueError, match=r"input size \(=2\)"):
    window.output_size(2, 5, 1, 1, "VALID")
  with pytest.raises(ValueError, match="at least one layer"):
    cost.summarize([])

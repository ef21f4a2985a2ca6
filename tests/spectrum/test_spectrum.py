"""The spectrum vocabulary: channel bookkeeping, validation, the point grammar."""

import pytest

from sepconv import spectrum
from sepconv.spectrum import ConvSpec, SpectrumPoint, parse_point


def test_named_points_stage_shapes():
  c, n = 192, 32
  assert [s.kernel_shape for s in spectrum.standard(c, n, 5).stages()] == [(5, 5, 192, 32)]
  assert [s.kernel_shape for s in spectrum.depthwise_separable(c, n, 5, depth_multiplier=4).stages()] == [
      (5, 5, 1, 768), (1, 1, 768, 32)]
  gs = spectrum.grouped_separable(c, n, 5, group_size=4)
  assert gs.groups == 48 and [s.kernel_shape for s in gs.stages()] == [(5, 5, 4, 192), (1, 1, 192, 32)]
  assert spectrum.depthwise(8, 3, depth_multiplier=2).stages()[0].kernel_shape == (3, 3, 1, 16)
  assert spectrum.grouped(64, 64, groups=2).group_size == 32
  bs = spectrum.bsconv(16, 32, 3, stride=2)
  assert [(s.name, s.kernel_shape, s.stride) for s in bs.stages()] == [
      ("pointwise", (1, 1, 16, 32), (1, 1)), ("spatial", (3, 3, 1, 32), (2, 2))]
  sh = spectrum.shufflenet(32, 64, 3, pointwise_group_size=8)
  assert sh.pointwise_groups == 4 and sh.shuffle and sh.stages()[0].kernel_shape == (1, 1, 8, 64)


def test_dense_group_size_is_normalised():
  spec = spectrum.standard(24, 8)
  assert spec.group_size == 24 and spec.groups == 1 and spec.kernel_size == (3, 3)


@pytest.mark.parametrize("kwargs,message", [
    (dict(in_channels=30, out_channels=32, group_size=4), r"\(=30\) must be divisible by group_size \(=4\)"),
    (dict(in_channels=32, out_channels=30, group_size=4), r"\(=30\) must be divisible by the number of groups"),
    (dict(in_channels=0, out_channels=3), r"in_channels \(=0\) must be a positive int"),
    (dict(in_channels=8, out_channels=8, kernel_size=0), r"kernel_size \(=0\)"),
    (dict(in_channels=8, out_channels=8, padding="FULL"), r"padding \(='FULL'\)"),
    (dict(in_channels=8, out_channels=8, depth_multiplier=2), r"depth_multiplier \(=2\) must equal out_channels"),
    (dict(in_channels=8, out_channels=16, depth_multiplier=2, group_size=2), r"needs group_size 1, got 2"),
    (dict(in_channels=8, out_channels=8, shuffle=True), r"shuffle \(=True\) needs pointwise=True"),
    (dict(in_channels=8, out_channels=8, pointwise=True, shuffle=True), r"shuffle=True needs a grouped"),
    (dict(in_channels=8, out_channels=12, pointwise=True, pointwise_group_size=3), r"\(=8\) must be divisible by pointwise_group_size \(=3\)"),
    (dict(in_channels=8, out_channels=9, pointwise=True, order="pointwise_first", depth_multiplier=2), r"out_channels \(=9\) must be divisible by depth_multiplier"),
    (dict(in_channels=8, out_channels=8, pointwise=True, order="sideways"), r"order \(='sideways'\)"),
    (dict(in_channels=8, out_channels=8, pointwise=True, between="dropout"), r"between \(='dropout'\)"),
])
def test_invalid_specs_name_the_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    ConvSpec(**kwargs)


def test_grouped_needs_exactly_one_of_size_and_count():
  with pytest.raises(ValueError, match=r"exactly one of group_size \(=None\) and groups \(=None\)"):
    spectrum.grouped(8, 8)
  with pytest.raises(ValueError, match=r"in_channels \(=9\) must be divisible by groups \(=2\)"):
    spectrum.grouped(9, 8, groups=2)


@pytest.mark.parametrize("text,expected", [
    ("standard", SpectrumPoint("standard")),
    ("grouped:g=4", SpectrumPoint("grouped", group_size=4)),
    ("dws", SpectrumPoint("dws")),
    ("depthwise_separable", SpectrumPoint("dws")),
    ("dws:g=8,m=2", SpectrumPoint("dws", group_size=8, depth_multiplier=2)),
    ("dws:between=none", SpectrumPoint("dws", between="none")),
    ("bsconv", SpectrumPoint("bsconv")),
    ("shufflenet:pg=4", SpectrumPoint("shufflenet", pointwise_group_size=4)),
    ("dws:pg=4,shuffle=1", SpectrumPoint("dws", pointwise_group_size=4, shuffle=True)),
])
def test_point_grammar_round_trips(text, expected):
  point = parse_point(text)
  assert point == expected
  assert parse_point(str(point)) == point


@pytest.mark.parametrize("text,message", [
    ("", "must be a string like"),
    ("separable", r"name \(='separable'\) must be one of"),
    ("grouped", r"'grouped' needs g=..."),
    ("standard:g=4", r"'standard' takes no 'g'"),
    ("dws:g=0", r"g \(='0'\) must be a positive int"),
    ("dws:x=1", r"'x=1' is not KEY=VALUE"),
    ("dws:g=2,g=4", "given twice"),
    ("dws:shuffle=yes", r"shuffle \(='yes'\) must be 0 or 1"),
    ("dws:between=dropout", r"between \(='dropout'\)"),
    ("grouped:g=4,m=2", r"'grouped' takes no 'm'"),
])
def test_point_grammar_is_strict(text, message):
  with pytest.raises(ValueError, match=message):
    parse_point(text)


def test_point_makes_specs_for_any_channels():
  point = parse_point("dws:g=4,m=2")
  spec = point.spec(16, 32, 3, stride=2, default_between="norm_act")
  assert (spec.group_size, spec.depth_multiplier, spec.pointwise, spec.between) == (4, 2, True, "norm_act")
  assert parse_point("dws:between=act").spec(16, 32, default_between="norm_act").between == "act"
  assert parse_point("standard").spec(16, 32).groups == 1
  assert parse_point("grouped:g=8").spec(16, 32).groups == 2
  bs = parse_point("shufflenet:pg=4").spec(16, 32)
  assert bs.order == "pointwise_first" and bs.shuffle and bs.pointwise_groups == 4
  with pytest.raises(ValueError, match=r"\(=6\) must be divisible by group_size \(=4\)"):
    point.spec(6, 8)

"""Adding a spectrum point is one registry entry: the grammar, the cost model, the Flax layers
and networks, the plots and the worked example all pick it up."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sepconv import cost, models, spectrum, worked_example
from sepconv import nnx as snnx
from sepconv.ablation import Variant
from sepconv.layers import SpectrumConv
from sepconv.report import plots


def _pointwise_first_grouped(in_channels, out_channels, kernel_size=3, **kw):
  """Pointwise 1x1 first, then a spatial stage whose filters each see 2 channels."""
  return spectrum.ConvSpec(in_channels, out_channels, kernel_size, group_size=2, pointwise=True,
                           order="pointwise_first", **kw)


KIND = spectrum.PointKind(
    "pwgrouped", ("g", "m", "between"), "pointwise-first grouped",
    "pointwise first, then grouped spatial (g=2 by default)", _pointwise_first_grouped,
    "pw-first grouped", pointwise=True, order="pointwise_first", default_group_size=2,
    label_suffix=" pw-first", multiplier_legend="pw-first multiplier", models=("mobilenet_v1",))
SCHEME = "pointwise first, grouped spatial (group size 2)"


@pytest.fixture
def registered():
  spectrum.register_point(KIND, {SCHEME: spectrum.Example("pwgrouped", "pw-first (g=2)")})
  try:
    yield KIND
  finally:
    spectrum.unregister_point(KIND.name)


def test_grammar_parses_and_prints_a_registered_point(registered):
  point = spectrum.parse_point("pwgrouped:g=4,m=2")
  assert point.kind is registered and str(point) == "pwgrouped:g=4,m=2"
  assert point.label == "g=4 m=2 pw-first" and point.family == "pointwise-first grouped"
  assert spectrum.parse_point("pwgrouped").explicit() == spectrum.parse_point("pwgrouped:g=2")
  assert "pwgrouped: pointwise first" in spectrum.grammar_help()
  with pytest.raises(ValueError, match=r"spectrum point 'pwgrouped' takes no 'pg'"):
    spectrum.parse_point("pwgrouped:pg=2")


def test_unregistered_point_is_unknown_and_names_cannot_repeat(registered):
  with pytest.raises(ValueError, match=r"name \(='pwgrouped'\) is already registered"):
    spectrum.register_point(KIND)
  with pytest.raises(ValueError, match=r"name \(='dws'\) is already registered"):
    spectrum.register_point(spectrum.POINT_KINDS["dws"])
  spectrum.unregister_point(KIND.name)
  with pytest.raises(ValueError, match=r"spectrum point name \(='pwgrouped'\) must be one of"):
    spectrum.parse_point("pwgrouped")
  assert SCHEME not in spectrum.WORKED_EXAMPLE
  spectrum.register_point(KIND, {SCHEME: spectrum.Example("pwgrouped", "pw-first (g=2)")})


def test_every_kind_makes_its_constructors_layer(registered):
  fields = {"g": "group_size", "pg": "pointwise_group_size"}
  for kind in spectrum.POINT_KINDS.values():
    text = kind.name + "".join(f"{':' if i == 0 else ','}{k}=4" for i, k in enumerate(kind.required))
    want = kind.constructor(16, 32, 3, **{fields[k]: 4 for k in kind.required})
    assert spectrum.parse_point(text).spec(16, 32, 3) == want, kind.name


def test_cost_model_and_flax_layers_take_a_registered_point(registered):
  spec = spectrum.parse_point("pwgrouped").spec(16, 32, 3)
  # Closed form: pointwise 16 x 32, then 3x3 filters over 2 channels each, 32 of them.
  summary = cost.summarize(cost.spec_cost(spec, 8))
  assert summary.params == 16 * 32 + 9 * 2 * 32 and summary.mult_adds == summary.params * 64
  variables = SpectrumConv(spec, impl="xla").init(jax.random.key(0), jnp.zeros((1, 8, 8, 16)))
  assert variables["params"]["spatial"]["kernel"].shape == (3, 3, 2, 32)
  assert variables["params"]["pointwise"]["kernel"].shape == (1, 1, 16, 32)


def test_networks_take_a_registered_point_in_the_models_it_names(registered):
  kw = {"num_classes": 10, "conv": "pwgrouped", "width_multiplier": 0.25, "input_size": 16}
  summary = models.model_summary("mobilenet_v1", **kw)
  linen = models.build_model("mobilenet_v1", **kw)
  shapes = jax.eval_shape(lambda: linen.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                             train=False))
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
  assert count(shapes["params"]) == summary.params_with_bn
  model = snnx.build_model("mobilenet_v1", rngs=nnx.Rngs(0), **kw)
  assert count(snnx.nnx_to_linen(model)["params"]) == summary.params_with_bn
  assert models.model_architecture("mobilenet_v1", conv="pwgrouped").units[1].spec.group_size == 2
  with pytest.raises(ValueError, match=r"model name \(='mobilenet_v2'\) must be one of "
                                       r"\('mobilenet_v1',\)"):
    models.model_summary("mobilenet_v2", **kw)


def test_plots_name_a_registered_points_family(registered):
  assert plots.family_of(Variant("pwgrouped").fields()) == "pw-first grouped"
  assert plots.family_of(Variant("pwgrouped:m=2").fields()) == "pw-first multiplier"
  # A family without a fixed colour takes the next free one, the same in every plot.
  assert plots.colour_of("pw-first grouped", ["pw-first grouped"]) == plots.OTHER_COLOURS[0]


def test_worked_example_and_seed_experiment_list_a_registered_scheme(registered):
  rows = {row["name"]: row for row in worked_example.rows()}
  assert rows[SCHEME]["params"] == 192 * 32 + 25 * 2 * 32
  assert list(rows)[-1] == SCHEME and len(rows) == 7
  import sepconv.experiments.seed_example as seed_example
  try:
    seed = importlib.reload(seed_example)
    assert ("pwgrouped", "pw-first (g=2)") in [(v.conv, v.label) for v in seed.EXPERIMENT.schemes]
  finally:
    spectrum.unregister_point(KIND.name)
    importlib.reload(seed_example)
    spectrum.register_point(KIND, {SCHEME: spectrum.Example("pwgrouped", "pw-first (g=2)")})
  assert "pwgrouped" not in [v.conv for v in seed_example.EXPERIMENT.schemes]

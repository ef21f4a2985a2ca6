"""Linen and NNX run one definition: the layer program names both parameter trees, and the
network's ``unit_layers`` names the layers both networks and the cost walk hold."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from sepconv import layers, models, spectrum
from sepconv import nnx as snnx
from sepconv.models.arch import layer_specs, unit_layers
from sepconv.nnx.checkpoint import variables_by_path


def _program_paths(ops) -> dict[str, set[tuple]]:
  params = {(op.name, "kernel") for op in ops if isinstance(op, spectrum.Stage)}
  params |= {(op.name, "bias") for op in ops if isinstance(op, spectrum.Stage)}
  params |= {(op.name, leaf) for op in ops if isinstance(op, spectrum.Norm) for leaf in ("scale", "bias")}
  stats = {(op.name, leaf) for op in ops if isinstance(op, spectrum.Norm) for leaf in ("mean", "var")}
  return {"params": params, "batch_stats": stats}


def _flat(tree, prefix=()):
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, prefix + (key,)) if hasattr(value, "items") else {prefix + (key,): value})
  return out


@pytest.mark.parametrize("spec", [
    spectrum.depthwise_separable(8, 12, 3, between="norm_act"),
    spectrum.shufflenet(8, 12, 3, pointwise_group_size=4, between="norm"),
    spectrum.grouped(8, 16, 3, group_size=4),
], ids=["dws", "shufflenet", "grouped"])
def test_layer_program_names_both_parameter_trees(spec):
  ops = spec.ops(norm=True)
  want = _program_paths(ops)
  linen = jax.eval_shape(lambda: layers.SpectrumConv(spec, norm=True, use_bias=True, impl="xla").init(
      jax.random.key(0), jnp.zeros((1, 6, 6, 8))))
  module = snnx.SpectrumConv(spec, norm=True, use_bias=True, impl="xla", rngs=nnx.Rngs(0))
  by_path = variables_by_path(module)
  for collection in ("params", "batch_stats"):
    got_linen = {p: v.shape for p, v in _flat(linen[collection]).items()}
    got_nnx = {p: v.shape for p, v in by_path[collection].items()}
    assert set(got_linen) == want[collection] and got_nnx == got_linen


def test_program_runs_stages_shuffle_norms_and_activation_in_order():
  spec = spectrum.shufflenet(8, 12, 3, pointwise_group_size=4, between="norm_act")
  kinds = [type(op).__name__ if not isinstance(op, spectrum.Stage) else op.name
           for op in spec.ops(norm=True)]
  assert kinds == ["pointwise", "Shuffle", "Norm", "Act", "spatial", "Norm"]
  assert [op.name for op in spec.ops(norm=True) if isinstance(op, spectrum.Norm)] == ["mid_norm", "norm"]


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_unit_layers_name_the_networks_and_the_cost_walk(name):
  kw = {"num_classes": 5, "width_multiplier": 0.25, "input_size": 16}
  arch = models.model_architecture(name, **kw)
  paths = [path for path, _ in layer_specs(arch)]
  assert paths == [u.name if l.role is None else f"{u.name}/{l.role}"
                   for u in arch.units for l in unit_layers(u)]
  shapes = jax.eval_shape(lambda: models.build_model(name, impl="xla", **kw).init(
      jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False))
  model = snnx.build_model(name, impl="xla", rngs=nnx.Rngs(0), **kw)
  nnx_params = variables_by_path(model)["params"]
  linen_params = _flat(shapes["params"])
  assert {p: v.shape for p, v in nnx_params.items()} == {p: v.shape for p, v in linen_params.items()}
  layer_paths = {"/".join(p[:-2]) for p in linen_params if p[-2] in ("spatial", "pointwise")}
  assert layer_paths == set(paths)

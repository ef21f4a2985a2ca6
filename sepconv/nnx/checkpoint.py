"""Moving a checkpoint between the Linen and NNX modules of sepconv, both ways.

The Linen and NNX modules create the variables one definition names (the layer program
``ConvSpec.ops``, the network's ``unit_layers``), so the mapping between them is the
identity on paths: a Linen model's ``{"params": tree, "batch_stats": tree}`` holds the
leaves that the NNX model holds as ``nnx.Param`` and ``nnx.BatchStat`` variables, at the
same paths. Both directions below read the model's variables through one flat view
(``variables_by_path``):

* ``linen_to_nnx(variables, model)`` writes Linen variables into an NNX model in place
  (every leaf must be present, with its shape and dtype; extra ones raise);
* ``nnx_to_linen(model)`` gives the Linen ``variables`` dict, ready for
  ``linen_model.apply(variables, ...)``.

Works for ``sepconv.nnx.SpectrumNet``/``SpectrumConv``/``GroupedConv`` and the Linen
``SpectrumNet``/``SpectrumConv``/``GroupedConv`` built from the same data; and, as it
maps names only, for any pair of modules whose names agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Linen collection <-> NNX variable type.
COLLECTIONS = {"params": nnx.Param, "batch_stats": nnx.BatchStat}


def _prune(tree):
  """A nested dict without empty sub-dicts (NNX keeps an entry for parameterless modules)."""
  if not isinstance(tree, Mapping):
    return tree
  out = {}
  for key, value in tree.items():
    value = _prune(value)
    if not (isinstance(value, Mapping) and not value) and value is not None:
      out[str(key) if not isinstance(key, int) else key] = value
  return out


def _flat(tree, prefix=()):
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flat(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _nest(flat: Mapping[tuple, object]) -> dict:
  out: dict = {}
  for path, value in flat.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


def variables_by_path(model: nnx.Module) -> dict[str, dict[tuple, jax.Array]]:
  """The model's variables as Linen collections, each ``{path: array}`` (the Linen paths)."""
  return {collection: _flat(_prune(nnx.to_pure_dict(nnx.state(model, kind))))
          for collection, kind in COLLECTIONS.items()}


def nnx_to_linen(model: nnx.Module) -> dict:
  """The Linen variables (``{"params": ..., "batch_stats": ...}``) of an NNX model.

  Collections the model has no variables of are left out (a network without BatchNorm
  has no "batch_stats").
  """
  return {collection: _nest({path: jnp.asarray(v) for path, v in flat.items()})
          for collection, flat in variables_by_path(model).items() if flat}


def linen_to_nnx(variables: Mapping, model: nnx.Module) -> nnx.Module:
  """Writes Linen ``variables`` into ``model`` (in place) and returns it.

  Raises:
    ValueError: a collection other than 'params' and 'batch_stats', a leaf that one side
      has and the other lacks, or a shape or dtype that differs (each names the path).
  """
  unknown = sorted(set(variables) - set(COLLECTIONS))
  if unknown:
    raise ValueError(f"variables collections (={unknown}) must be among {tuple(COLLECTIONS)}")
  name = lambda path: "/".join(map(str, path))  # noqa: E731
  for collection, want in variables_by_path(model).items():
    got = _flat(_prune(dict(variables.get(collection, {}))))
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
      raise ValueError(f"{collection} paths must match the model's: missing "
                       f"{[name(p) for p in missing]}, unexpected {[name(p) for p in extra]}")
    for path, value in got.items():
      if np.shape(value) != np.shape(want[path]) or jnp.asarray(value).dtype != want[path].dtype:
        raise ValueError(f"{collection}/{name(path)}: shape and dtype "
                         f"(={np.shape(value)}, {jnp.asarray(value).dtype}) must equal the "
                         f"model's (={np.shape(want[path])}, {want[path].dtype})")
    state = nnx.state(model, COLLECTIONS[collection])
    pure = nnx.to_pure_dict(state)
    for path, value in got.items():
      node = pure
      for key in path[:-1]:
        node = node[key]
      node[path[-1]] = jnp.asarray(value)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
  return model

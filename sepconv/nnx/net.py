"""One NNX network that runs any ``Architecture``: a thin shell over ``sepconv.models.net``.

It creates the layers ``sepconv.models.arch.unit_layers`` names ("stem", "block1", ...,
"head", "classifier"; "expand" and "conv" inside an inverted residual), each a
``sepconv.nnx.SpectrumConv``, and runs the forward pass written once in
``sepconv.models.net`` (``run_network``, ``run_unit``), so its parameters, batch
statistics and logits are those of the Linen ``SpectrumNet`` (``sepconv.nnx.checkpoint``
moves the variables either way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sepconv import conv as conv_ops
from sepconv import validate
from sepconv.models import model_architecture
from sepconv.models.arch import Architecture, Unit, UnitLayer, unit_layers
from sepconv.models.net import ACTIVATION_FNS, check_images, run_network, run_unit
from sepconv.nnx.layers import SpectrumConv


class _Unit(nnx.Module):
  """A unit whose layers have names of their own (MobileNet v2's "expand" and "conv")."""

  def __init__(self, unit: Unit, make: Callable[[UnitLayer], SpectrumConv]):
    self.unit = unit
    for layer in unit_layers(unit):
      setattr(self, layer.role, make(layer))

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return run_unit(self.unit, x, lambda layer, y: getattr(self, layer.role)(y, train))


class SpectrumNet(nnx.Module):
  """A classifier built from an ``Architecture``, as ``sepconv.models.SpectrumNet`` in NNX.

  ``__call__(x, *, train)`` returns ``(logits, features)`` as the Linen network does.
  With ``train=True`` BatchNorms use batch statistics and update their running averages
  (NNX modules are updated in place), and dropout draws from ``rngs``' 'dropout' stream.

  Args:
    arch: the architecture.
    in_channels: channels of the input images (the stem's kernel depends on them).
    impl, dtype, dropout_rate, norm_momentum, norm_epsilon: as the Linen network.
    rngs: parameter initialisation (and dropout) keys.
  """

  def __init__(self, arch: Architecture, *, in_channels: int = 3, impl: str = "auto",
               dtype: Any = jnp.float32, dropout_rate: float = 0.0, norm_momentum: float = 0.9,
               norm_epsilon: float = 1e-3, rngs: nnx.Rngs):
    if impl not in conv_ops.IMPLS:
      raise ValueError(f"impl (={impl!r}) must be one of {conv_ops.IMPLS}")
    arch = arch.with_in_channels(validate.positive_int(in_channels, "in_channels"))
    self.arch, self.dtype = arch, dtype

    def make(layer: UnitLayer) -> SpectrumConv:
      return SpectrumConv(layer.spec, norm=True, activation=ACTIVATION_FNS[layer.activation],
                          impl=impl, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
                          dtype=dtype, rngs=rngs)

    for unit in arch.units:
      layers = unit_layers(unit)
      # A unit that is its one layer holds it under the unit's own name.
      setattr(self, unit.name, make(layers[-1]) if layers[-1].role is None else _Unit(unit, make))
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs) if dropout_rate else None
    self.classifier = nnx.Linear(arch.features, arch.num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    check_images(x)
    if x.shape[-1] != self.arch.in_channels:
      raise ValueError(f"input channels (={x.shape[-1]}) must equal in_channels "
                       f"(={self.arch.in_channels}) the network was built for")

    def unit(u: Unit, y: jax.Array) -> jax.Array:
      module = getattr(self, u.name)
      if isinstance(module, _Unit):
        return module(y, train)
      return run_unit(u, y, lambda layer, z: module(z, train))

    def head(pooled: jax.Array) -> jax.Array:
      if self.dropout is not None:
        pooled = self.dropout(pooled, deterministic=not train)
      return self.classifier(pooled)

    return run_network(self.arch, x, unit=unit, head=head, dtype=self.dtype)


def build_model(name: str, *, num_classes: int, rngs: nnx.Rngs, conv="dws",
                width_multiplier: float = 1.0, input_size: int = 224, in_channels: int = 3,
                impl: str = "auto", dtype: Any = jnp.float32, small_input: bool | None = None,
                dropout_rate: float = 0.0) -> SpectrumNet:
  """The NNX classifier ``sepconv.models.build_model`` builds in Linen (same arguments,
  plus ``in_channels`` and ``rngs``): ``model(x, train=...)`` gives ``(logits, features)``."""
  if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not (
      0 <= dropout_rate < 1):
    raise ValueError(f"dropout_rate (={dropout_rate!r}) must be in [0, 1)")
  arch = model_architecture(name, num_classes=num_classes, conv=conv,
                            width_multiplier=width_multiplier, input_size=input_size,
                            small_input=small_input, in_channels=in_channels)
  return SpectrumNet(arch, in_channels=in_channels, impl=impl, dtype=dtype,
                     dropout_rate=float(dropout_rate), rngs=rngs)

"""One NNX network that runs any ``Architecture``: the NNX counterpart of ``sepconv.models.net``.

Built from the same architecture data (``sepconv.models.model_architecture``), with the
same unit names ("stem", "block1", ..., "head", "classifier") and, inside each unit, the
same layers as ``sepconv.nnx.SpectrumConv``, so its parameters and batch statistics are
those of the Linen ``SpectrumNet`` (``sepconv.nnx.checkpoint`` moves them either way).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sepconv import conv as conv_ops
from sepconv import validate
from sepconv.models import model_architecture
from sepconv.models.arch import Architecture, ConvUnit, InvertedResidual
from sepconv.models.net import ACTIVATION_FNS
from sepconv.nnx.layers import SpectrumConv


class _InvertedResidual(nnx.Module):
  """Expansion ("expand"), the knob's layer ("conv", linear output), optional shortcut."""

  def __init__(self, unit: InvertedResidual, *, rngs: nnx.Rngs, **layer_kwargs):
    self.unit, self.act = unit, ACTIVATION_FNS[unit.activation]
    layer = lambda spec: SpectrumConv(spec, norm=True, activation=self.act, rngs=rngs,  # noqa: E731
                                      **layer_kwargs)
    self.expand = layer(unit.expand) if unit.expand is not None else None
    self.conv = layer(unit.conv)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = x
    if self.expand is not None:
      y = self.act(self.expand(y, train))
    y = self.conv(y, train)
    return x + y if self.unit.residual else y


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
    kwargs = {"impl": impl, "norm_momentum": norm_momentum, "norm_epsilon": norm_epsilon,
              "dtype": dtype}
    for unit in arch.units:
      if isinstance(unit, ConvUnit):
        module = SpectrumConv(unit.spec, norm=True, activation=ACTIVATION_FNS[unit.inner_activation],
                              rngs=rngs, **kwargs)
      else:
        module = _InvertedResidual(unit, rngs=rngs, **kwargs)
      setattr(self, unit.name, module)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs) if dropout_rate else None
    self.classifier = nnx.Linear(arch.features, arch.num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    if x.ndim != 4:
      raise ValueError(f"input shape (={x.shape}) must be NHWC")
    if x.shape[-1] != self.arch.in_channels:
      raise ValueError(f"input channels (={x.shape[-1]}) must equal in_channels "
                       f"(={self.arch.in_channels}) the network was built for")
    x = jnp.asarray(x, self.dtype)
    features = {}
    for unit in self.arch.units:
      x = getattr(self, unit.name)(x, train)
      if isinstance(unit, ConvUnit):
        x = ACTIVATION_FNS[unit.activation](x)
      features[unit.name] = x
    pooled = jnp.mean(x, axis=(1, 2))
    features["penultimate"] = pooled
    if self.dropout is not None:
      pooled = self.dropout(pooled, deterministic=not train)
    logits = self.classifier(pooled)
    return jnp.asarray(logits, jnp.float32), features


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

"""Flax NNX modules for the spectrum: ``GroupedConv`` and ``SpectrumConv``.

The counterparts of ``sepconv.layers``: the same stages (``ConvSpec.stages``), the same
convolution (``sepconv.layers.apply_stage``, i.e. ``sepconv.conv.grouped_conv``), and the
same parameter names and shapes ("spatial"/"pointwise" with "kernel" and "bias",
"mid_norm"/"norm" BatchNorms with "scale", "bias", "mean", "var"), so a Linen checkpoint
loads into them (``sepconv.nnx.checkpoint``). NNX modules know their input channels at
construction (Linen reads them from the first input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sepconv.layers import apply_stage, channel_shuffle, default_kernel_init, group_size_of
from sepconv.spectrum import ConvSpec, Stage, mid_norm_name

Initializer = Callable[..., jax.Array]


def _value(variable):
  """The array a ``nnx.Variable`` holds (``variable[...]`` on flax 0.11 and 0.12)."""
  return None if variable is None else variable[...]


class _StageParams(nnx.Module):
  """The kernel (and bias) of one convolution stage, nothing else."""

  def __init__(self, stage: Stage, *, use_bias: bool, kernel_init: Initializer,
               bias_init: Initializer, param_dtype: Any, rngs: nnx.Rngs):
    self.kernel = nnx.Param(kernel_init(rngs.params(), stage.kernel_shape, param_dtype))
    self.bias = (nnx.Param(bias_init(rngs.params(), (stage.out_channels,), param_dtype))
                 if use_bias else None)


class GroupedConv(nnx.Module):
  """A drop-in for ``flax.nnx.Conv`` (NHWC, 2-D) that runs on ``sepconv.conv.grouped_conv``.

  Arguments as ``sepconv.layers.GroupedConv`` plus ``in_features`` and ``rngs``; the
  parameters are ``kernel`` (``kernel_size + (in_features // feature_group_count,
  features)``) and ``bias``, as ``nnx.Conv`` holds them.
  """

  def __init__(self, in_features: int, features: int, kernel_size: Sequence[int] = (3, 3), *,
               feature_group_count: int = 1, strides: int | Sequence[int] = 1, padding: Any = "SAME",
               kernel_dilation: int | Sequence[int] = 1, use_bias: bool = True, impl: str = "auto",
               dtype: Any = None, param_dtype: Any = jnp.float32,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = nnx.initializers.zeros_init(), rngs: nnx.Rngs):
    spec = ConvSpec(in_features, features, tuple(kernel_size), strides, kernel_dilation, padding,
                    group_size=group_size_of(in_features, feature_group_count))
    (self.stage,) = spec.stages()
    self.impl, self.dtype = impl, dtype
    self.kernel = nnx.Param(kernel_init(rngs.params(), self.stage.kernel_shape, param_dtype))
    self.bias = nnx.Param(bias_init(rngs.params(), (features,), param_dtype)) if use_bias else None

  def __call__(self, x: jax.Array) -> jax.Array:
    return apply_stage(x, self.stage, _value(self.kernel), _value(self.bias), self.impl,
                       self.dtype or x.dtype)


class SpectrumConv(nnx.Module):
  """Any layer of the spectrum as one NNX module (see ``sepconv.layers.SpectrumConv``).

  ``__call__(x, train=False)``: BatchNorms use batch statistics (and update their running
  averages) when ``train`` is True, as the Linen module with ``mutable=['batch_stats']``.
  """

  def __init__(self, spec: ConvSpec, *, use_bias: bool = False, norm: bool = False,
               impl: str = "auto", activation: Callable[[jax.Array], jax.Array] = nnx.relu,
               norm_momentum: float = 0.99, norm_epsilon: float = 1e-3, dtype: Any = None,
               param_dtype: Any = jnp.float32, kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = nnx.initializers.zeros_init(), rngs: nnx.Rngs):
    self.spec, self.impl, self.activation, self.dtype = spec, impl, activation, dtype
    self.stages = tuple(spec.stages())
    norm_names = []
    for i, stage in enumerate(self.stages):
      setattr(self, stage.name, _StageParams(stage, use_bias=use_bias, kernel_init=kernel_init,
                                             bias_init=bias_init, param_dtype=param_dtype,
                                             rngs=rngs))
      if i < len(self.stages) - 1 and spec.between in ("norm", "norm_act"):
        norm_names.append((mid_norm_name(i), stage.out_channels))
    if norm:
      norm_names.append(("norm", self.stages[-1].out_channels))
    for name, channels in norm_names:
      setattr(self, name, nnx.BatchNorm(channels, momentum=norm_momentum, epsilon=norm_epsilon,
                                        dtype=dtype, param_dtype=param_dtype, rngs=rngs))
    self.final_norm = norm

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    spec = self.spec
    if x.ndim != 4 or x.shape[-1] != spec.in_channels:
      raise ValueError(f"input shape (={x.shape}) must be NHWC with {spec.in_channels} channels")
    dtype = self.dtype or x.dtype
    for i, stage in enumerate(self.stages):
      params = getattr(self, stage.name)
      x = apply_stage(x, stage, _value(params.kernel), _value(params.bias), self.impl, dtype)
      if stage.name == "pointwise" and spec.shuffle:
        x = channel_shuffle(x, stage.feature_group_count)
      if i < len(self.stages) - 1:
        if spec.between in ("norm", "norm_act"):
          x = getattr(self, mid_norm_name(i))(x, use_running_average=not train)
        if spec.between in ("act", "norm_act"):
          x = self.activation(x)
    if self.final_norm:
      x = self.norm(x, use_running_average=not train)
    return x

"""Flax NNX modules for the spectrum: ``GroupedConv`` and ``SpectrumConv``.

Thin shells over the definition in ``sepconv.layers``: each creates the variables the
layer's program (``ConvSpec.ops``) names and runs it with ``sepconv.layers.run_layer``,
exactly as the Linen modules do, so both hold the same parameter names and shapes
("spatial"/"pointwise" with "kernel" and "bias", "mid_norm"/"norm" BatchNorms with
"scale", "bias", "mean", "var") and a Linen checkpoint loads into them
(``sepconv.nnx.checkpoint``). NNX modules know their input channels at construction
(Linen reads them from the first input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sepconv.layers import (NORM_EPSILON, NORM_MOMENTUM, apply_stage, check_input,
                            default_bias_init, default_kernel_init, grouped_stage, run_layer)
from sepconv.spectrum import ConvSpec, Norm, Stage

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
               bias_init: Initializer = default_bias_init, rngs: nnx.Rngs):
    self.stage = grouped_stage(in_features, features, kernel_size,
                               feature_group_count=feature_group_count, strides=strides,
                               padding=padding, kernel_dilation=kernel_dilation)
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
               norm_momentum: float = NORM_MOMENTUM, norm_epsilon: float = NORM_EPSILON,
               dtype: Any = None, param_dtype: Any = jnp.float32,
               kernel_init: Initializer = default_kernel_init,
               bias_init: Initializer = default_bias_init, rngs: nnx.Rngs):
    self.spec, self.impl, self.activation, self.dtype = spec, impl, activation, dtype
    self.ops = spec.ops(norm=norm)
    # Stage parameters first, then the norms: the order the parameter keys are drawn in.
    for stage in (op for op in self.ops if isinstance(op, Stage)):
      setattr(self, stage.name, _StageParams(stage, use_bias=use_bias, kernel_init=kernel_init,
                                             bias_init=bias_init, param_dtype=param_dtype,
                                             rngs=rngs))
    for op in (op for op in self.ops if isinstance(op, Norm)):
      setattr(self, op.name, nnx.BatchNorm(op.channels, momentum=norm_momentum,
                                           epsilon=norm_epsilon, dtype=dtype,
                                           param_dtype=param_dtype, rngs=rngs))

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_input(self.spec, x)
    dtype = self.dtype or x.dtype

    def conv(stage: Stage, y: jax.Array) -> jax.Array:
      params = getattr(self, stage.name)
      return apply_stage(y, stage, _value(params.kernel), _value(params.bias), self.impl, dtype)

    def norm(op: Norm, y: jax.Array) -> jax.Array:
      return getattr(self, op.name)(y, use_running_average=not train)

    return run_layer(self.ops, x, conv=conv, norm=norm, activation=self.activation)

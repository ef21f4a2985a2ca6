"""Flax modules for the spectrum: one definition, run by Linen here and by NNX in ``sepconv.nnx``.

A layer is the program ``ConvSpec.ops`` writes (stages, norms, shuffle, activation, each
with its name); ``run_layer`` runs it and ``apply_stage`` runs one stage on
``sepconv.conv``. The Linen modules below and the NNX modules of ``sepconv.nnx.layers``
only create the variables the program names and hand them to these functions, so both
APIs hold one parameter tree and compute one function.

Parameters follow ``flax.linen.Conv`` exactly: an HWIO kernel of shape
``kernel_size + (in_channels // feature_group_count, features)`` and an optional bias,
so checkpoints do not depend on which convolution implementation ran. The parameter
names of ``SpectrumConv`` ("spatial", "pointwise", "mid_norm", "norm") are the layer
names of ``sepconv.cost.spec_cost``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sepconv import conv as conv_ops, validate
from sepconv.spectrum import ConvSpec, Norm, Op, Shuffle, Stage

Initializer = Callable[..., jax.Array]
# Fan-in of a grouped kernel (kh, kw, C_in/G, C_out) is kh*kw*C_in/G: what each output sees.
default_kernel_init = nn.initializers.lecun_normal()
default_bias_init = nn.initializers.zeros_init()
# BatchNorm settings of a layer (Keras MobileNet: momentum 0.99, epsilon 1e-3).
NORM_MOMENTUM = 0.99
NORM_EPSILON = 1e-3


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet's shuffle: (..., G * n) -> transpose the (G, n) split -> (..., n * G)."""
  c = x.shape[-1]
  if c % groups:
    raise ValueError(f"channels (={c}) must be divisible by groups (={groups})")
  x = x.reshape(*x.shape[:-1], groups, c // groups)
  return jnp.swapaxes(x, -1, -2).reshape(*x.shape[:-2], c)


class _StageParams(nn.Module):
  """The kernel (and bias) of one convolution stage, nothing else."""
  kernel_shape: tuple[int, ...]
  use_bias: bool
  kernel_init: Initializer
  bias_init: Initializer
  param_dtype: Any

  @nn.compact
  def __call__(self):
    kernel = self.param("kernel", self.kernel_init, self.kernel_shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.kernel_shape[-1],), self.param_dtype)
            if self.use_bias else None)
    return kernel, bias


def apply_stage(x, stage: Stage, kernel, bias, impl: str, dtype):
  """One convolution stage on ``sepconv.conv.grouped_conv``, plus its bias."""
  x, kernel = jnp.asarray(x, dtype), jnp.asarray(kernel, dtype)
  y = conv_ops.grouped_conv(x, kernel, feature_group_count=stage.feature_group_count,
                            strides=stage.stride, padding=stage.padding,
                            dilation=stage.dilation, impl=impl)
  if bias is not None:
    y = y + jnp.asarray(bias, dtype).reshape(1, 1, 1, -1)
  return y


def check_input(spec: ConvSpec, x: jax.Array) -> None:
  if x.ndim != 4 or x.shape[-1] != spec.in_channels:
    raise ValueError(f"input shape (={x.shape}) must be NHWC with {spec.in_channels} channels")


def run_layer(ops: Sequence[Op], x: jax.Array, *, conv: Callable[[Stage, jax.Array], jax.Array],
              norm: Callable[[Norm, jax.Array], jax.Array],
              activation: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """Runs a layer's program (``ConvSpec.ops``); ``conv`` and ``norm`` hold the variables."""
  for op in ops:
    if isinstance(op, Stage):
      x = conv(op, x)
    elif isinstance(op, Norm):
      x = norm(op, x)
    elif isinstance(op, Shuffle):
      x = channel_shuffle(x, op.groups)
    else:
      x = activation(x)
  return x


def grouped_stage(in_channels: int, features: int, kernel_size: Sequence[int], *,
                  feature_group_count: int, strides, padding, kernel_dilation) -> Stage:
  """The one stage of a ``GroupedConv`` (the ``nn.Conv``/``nnx.Conv`` drop-in)."""
  spec = ConvSpec(in_channels, features, tuple(kernel_size), strides, kernel_dilation, padding,
                  group_size=group_size_of(in_channels, feature_group_count))
  (stage,) = spec.stages()
  return stage


class GroupedConv(nn.Module):
  """A drop-in for ``flax.linen.Conv`` (NHWC, 2-D) that runs on ``sepconv.conv.grouped_conv``.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    feature_group_count: groups G; input and output channels must divide by G.
    strides, padding, kernel_dilation: as ``lax.conv_general_dilated``.
    use_bias: add a bias.
    impl: convolution implementation (see ``sepconv.conv.IMPLS``).
    dtype: computation dtype (None: the input's); param_dtype: parameter dtype.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  feature_group_count: int = 1
  strides: int | Sequence[int] = 1
  padding: Any = "SAME"
  kernel_dilation: int | Sequence[int] = 1
  use_bias: bool = True
  impl: str = "auto"
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = default_bias_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    stage = grouped_stage(x.shape[-1], self.features, self.kernel_size,
                          feature_group_count=self.feature_group_count, strides=self.strides,
                          padding=self.padding, kernel_dilation=self.kernel_dilation)
    kernel = self.param("kernel", self.kernel_init, stage.kernel_shape, self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    return apply_stage(x, stage, kernel, bias, self.impl, self.dtype or x.dtype)


def group_size_of(channels: int, groups: int) -> int:
  if not validate.is_int(groups) or groups < 1 or channels % groups:
    raise ValueError(f"input channels (={channels}) must be divisible by feature_group_count (={groups})")
  return channels // groups


class SpectrumConv(nn.Module):
  """Any layer of the spectrum (``sepconv.spectrum.ConvSpec``) as one Flax module.

  Attributes:
    spec: the layer; ``spec.in_channels`` must match the input's last axis.
    use_bias: a bias on each conv stage (off by default: a norm usually follows).
    norm: end with a BatchNorm named "norm".
    impl: convolution implementation (see ``sepconv.conv.IMPLS``).
    activation: used where ``spec.between`` includes 'act'.
    norm_momentum, norm_epsilon: BatchNorm settings (Keras MobileNet: 0.99, 1e-3).
    dtype: computation dtype (None: the input's); param_dtype: parameter dtype.
    kernel_init, bias_init: initialisers; the default is fan-in correct per group.
  """
  spec: ConvSpec
  use_bias: bool = False
  norm: bool = False
  impl: str = "auto"
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  norm_momentum: float = NORM_MOMENTUM
  norm_epsilon: float = NORM_EPSILON
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = default_bias_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_input(self.spec, x)
    dtype = self.dtype or x.dtype

    def conv(stage: Stage, y: jax.Array) -> jax.Array:
      kernel, bias = _StageParams(stage.kernel_shape, self.use_bias, self.kernel_init,
                                  self.bias_init, self.param_dtype, name=stage.name)()
      return apply_stage(y, stage, kernel, bias, self.impl, dtype)

    def norm(op: Norm, y: jax.Array) -> jax.Array:
      return nn.BatchNorm(use_running_average=not train, momentum=self.norm_momentum,
                          epsilon=self.norm_epsilon, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=op.name)(y)

    return run_layer(self.spec.ops(norm=self.norm), x, conv=conv, norm=norm,
                     activation=self.activation)

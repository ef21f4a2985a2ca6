"""Other people's models: plain Flax blocks written the usual way, with ``nn.Conv(feature_group_count=...)``.

Each block takes ``conv``, the one argument that moves its convolutions onto sepconv:
None is Flax's default (``lax.conv_general_dilated``, XLA's grouped path);
``sepconv.conv_general_dilated`` is the drop-in. Nothing else about the blocks changes.

* ``ConvNeXtBlock`` (Liu et al. 2022, arXiv:2201.03545, Fig. 4): 7x7 depthwise conv,
  LayerNorm, 1x1 (Dense) to 4x channels, GELU, 1x1 back, residual (layer scale omitted).
* ``ResNeXtBottleneck`` (Xie et al. 2017, arXiv:1611.05431, Table 1, 32x4d): 1x1 to
  32 groups x 4 channels, BN, ReLU, grouped 3x3, BN, ReLU, 1x1 to 2x that, BN, residual, ReLU.
* ``InvertedResidual`` (Sandler et al. 2018, arXiv:1801.04381, Table 1): 1x1 expansion
  (t = 6), BN, ReLU6, 3x3 depthwise, BN, ReLU6, 1x1 projection, BN, residual.

``BLOCKS`` gives each block's reference input (56x56, the first stage of each network).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def _conv_kwargs(conv: Callable | None) -> dict:
  return {} if conv is None else {"conv_general_dilated": conv}


class ConvNeXtBlock(nn.Module):
  """ConvNeXt's block on ``dim`` channels."""
  dim: int
  conv: Callable | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no batch statistics
    y = nn.Conv(self.dim, (7, 7), padding=3, feature_group_count=self.dim,
                **_conv_kwargs(self.conv))(x)
    y = nn.LayerNorm(epsilon=1e-6)(y)
    y = nn.gelu(nn.Dense(4 * self.dim)(y))
    return x + nn.Dense(self.dim)(y)


class ResNeXtBottleneck(nn.Module):
  """ResNeXt's bottleneck: ``groups`` x ``group_width`` inner channels, 2x that out."""
  groups: int = 32
  group_width: int = 4
  conv: Callable | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    width, kwargs = self.groups * self.group_width, _conv_kwargs(self.conv)
    norm = lambda: nn.BatchNorm(use_running_average=not train)  # noqa: E731
    y = nn.relu(norm()(nn.Conv(width, (1, 1), use_bias=False, **kwargs)(x)))
    y = nn.Conv(width, (3, 3), padding=1, feature_group_count=self.groups, use_bias=False,
                **kwargs)(y)
    y = nn.relu(norm()(y))
    y = norm()(nn.Conv(x.shape[-1], (1, 1), use_bias=False, **kwargs)(y))
    return nn.relu(x + y)


class InvertedResidual(nn.Module):
  """MobileNet v2's inverted residual (stride 1, equal channels, so the shortcut applies)."""
  expansion: int = 6
  conv: Callable | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    hidden, kwargs = x.shape[-1] * self.expansion, _conv_kwargs(self.conv)
    norm = lambda: nn.BatchNorm(use_running_average=not train)  # noqa: E731
    y = jax.nn.relu6(norm()(nn.Conv(hidden, (1, 1), use_bias=False, **kwargs)(x)))
    y = nn.Conv(hidden, (3, 3), padding=1, feature_group_count=hidden, use_bias=False,
                **kwargs)(y)
    y = jax.nn.relu6(norm()(y))
    return x + norm()(nn.Conv(x.shape[-1], (1, 1), use_bias=False, **kwargs)(y))


@dataclasses.dataclass(frozen=True)
class Block:
  """A benchmarked block: its builder (given ``conv``) and reference input channels."""
  name: str
  build: Callable[[Callable | None], nn.Module]
  channels: int
  description: str


BLOCKS: dict[str, Block] = {b.name: b for b in (
    Block("convnext", lambda conv: ConvNeXtBlock(96, conv=conv), 96,
          "ConvNeXt-T block: 7x7 depthwise on 96 channels, MLP to 384"),
    Block("resnext", lambda conv: ResNeXtBottleneck(32, 4, conv=conv), 256,
          "ResNeXt-50 32x4d bottleneck: 256 -> 128 (3x3, 32 groups x 4) -> 256"),
    Block("mobilenet_v2", lambda conv: InvertedResidual(6, conv=conv), 24,
          "MobileNet v2 inverted residual: 24 -> 144 (3x3 depthwise) -> 24"),
)}


def block_input(block: Block, batch: int, size: int, dtype=jnp.float32) -> jax.Array:
  """A reproducible NHWC input of ``size`` x ``size`` x ``block.channels``."""
  shape = (batch, size, size, block.channels)
  return jax.random.normal(jax.random.key(0), shape, jnp.float32).astype(dtype)

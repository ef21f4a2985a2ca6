"""Exact analytic cost model: weights, mult-adds, FLOPs, memory traffic. Plain integers, no JAX.

Conventions (stated once, used everywhere):

* **mult-adds** follow the papers (MobileNet, the worked example): every kernel tap of
  every output position is counted, including taps that fall on zero padding.
  ``mult_adds = H_out * W_out * k_h * k_w * (C_in / G) * C_out`` for a conv with G groups.
* **FLOPs** = 2 x mult-adds (one multiply, one add).
* **XLA's convention** (``compiled.cost_analysis()["flops"]``) counts only taps that land
  inside the input, at 2 FLOPs each: ``xla_flops = 2 * mult_adds_valid``. The two differ
  only for padded layers; on a 14x14 SAME 3x3 layer the ratio is (14*3-2)^2/(14*3)^2 ~ 0.907.
  Bias adds and normalisation are not convolution FLOPs and are not in ``mult_adds``.
* **weights** are kernel (and dense) entries; biases, BN scale/offset (trainable) and
  BN statistics (running mean/variance, not trainable) are counted apart, so the paper's
  count (conv + FC weights + FC bias, no BN) and Keras's count both fall out.
* **bytes** are the minimum memory traffic of one example at ``dtype_bytes`` per element:
  read the input once, write the output once, read the weights once. For a two-stage
  layer the unfused figure includes the intermediate's round trip; ``bytes_fused`` does not.
* Costs are per example (batch 1); multiply mult-adds, FLOPs and activation bytes by N.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from sepconv import window
from sepconv.spectrum import ConvSpec, Stage, mid_norm_name

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8, "int8": 1}


class _Rates:
  """FLOPs in both conventions and arithmetic intensity, from mult-adds and bytes."""
  mult_adds: int
  mult_adds_valid: int
  bytes: int

  @property
  def flops(self) -> int:
    return 2 * self.mult_adds

  @property
  def xla_flops(self) -> int:
    """What XLA's ``cost_analysis()['flops']`` reports for these layers alone."""
    return 2 * self.mult_adds_valid

  @property
  def intensity(self) -> float:
    """Arithmetic intensity, FLOPs per byte of minimum traffic."""
    return self.flops / self.bytes if self.bytes else 0.0


@dataclasses.dataclass(frozen=True)
class LayerCost(_Rates):
  """The cost of one layer (a conv stage, a dense layer or a normalisation)."""
  name: str
  kind: str  # "conv", "dense" or "norm"
  in_shape: tuple[int, ...]  # (H, W, C) or (C,)
  out_shape: tuple[int, ...]
  weights: int = 0
  biases: int = 0
  norm_params: int = 0  # trainable BN scale and offset
  norm_stats: int = 0  # BN running mean and variance
  mult_adds: int = 0  # paper convention: padded taps counted
  mult_adds_valid: int = 0  # taps inside the input only
  groups: int = 1
  dtype_bytes: int = 4

  @property
  def bytes(self) -> int:
    """Minimum traffic: input + output + parameters, at ``dtype_bytes`` each."""
    elems = prod(self.in_shape) + prod(self.out_shape) + self.weights + self.biases + self.norm_params
    return self.dtype_bytes * elems


def prod(shape: Iterable[int]) -> int:
  """Number of elements of ``shape`` (1 for an empty shape)."""
  out = 1
  for s in shape:
    out *= s
  return out


def stage_cost(stage: Stage, in_hw: Sequence[int], *, name: str | None = None, bias: bool = False,
               dtype_bytes: int = 4) -> LayerCost:
  """Cost of one convolution stage on an (H, W) input."""
  (h, w), (kh, kw) = in_hw, stage.kernel_size
  (sh, sw), (dh, dw) = stage.stride, stage.dilation
  pad_h = pad_w = stage.padding
  if not isinstance(stage.padding, str):
    pad_h, pad_w = stage.padding
  ho, h_lo, _ = window.output_size(h, kh, sh, dh, pad_h)
  wo, w_lo, _ = window.output_size(w, kw, sw, dw, pad_w)
  cin_per_group = stage.in_channels // stage.feature_group_count
  per_tap = cin_per_group * stage.out_channels
  return LayerCost(
      name=name or stage.name, kind="conv",
      in_shape=(h, w, stage.in_channels), out_shape=(ho, wo, stage.out_channels),
      weights=kh * kw * per_tap, biases=stage.out_channels if bias else 0,
      mult_adds=ho * wo * kh * kw * per_tap,
      mult_adds_valid=(window.valid_taps(h, kh, sh, dh, h_lo, ho)
                       * window.valid_taps(w, kw, sw, dw, w_lo, wo) * per_tap),
      groups=stage.feature_group_count, dtype_bytes=dtype_bytes)


def norm_cost(name: str, shape: Sequence[int], *, dtype_bytes: int = 4) -> LayerCost:
  """BatchNorm over the last axis of ``shape``: 2C trainable, 2C statistics."""
  c = shape[-1]
  return LayerCost(name=name, kind="norm", in_shape=tuple(shape), out_shape=tuple(shape),
                   norm_params=2 * c, norm_stats=2 * c, dtype_bytes=dtype_bytes)


def dense_cost(name: str, in_features: int, out_features: int, *, bias: bool = True,
               dtype_bytes: int = 4) -> LayerCost:
  """A fully connected layer (the classifier)."""
  macs = in_features * out_features
  return LayerCost(name=name, kind="dense", in_shape=(in_features,), out_shape=(out_features,),
                   weights=macs, biases=out_features if bias else 0, mult_adds=macs,
                   mult_adds_valid=macs, dtype_bytes=dtype_bytes)


def spec_cost(spec: ConvSpec, in_hw: int | Sequence[int], *, prefix: str = "", bias: bool = False,
              norm: bool = False, dtype_bytes: int = 4) -> list[LayerCost]:
  """Per-stage costs of one spectrum layer, named as the Flax module names its parameters.

  Args:
    spec: the layer.
    in_hw: input spatial size, int or (H, W).
    prefix: prepended to each layer name with '/', e.g. the block name.
    bias: whether each conv stage has a bias.
    norm: whether the layer ends with a BatchNorm ("norm"); a norm between the stages
      ("mid_norm") follows ``spec.between``.
    dtype_bytes: bytes per element for the traffic figures.
  """
  hw = (in_hw, in_hw) if isinstance(in_hw, int) else tuple(in_hw)
  join = (lambda n: f"{prefix}/{n}") if prefix else (lambda n: n)
  layers = []
  stages = spec.stages()
  for i, stage in enumerate(stages):
    cost = stage_cost(stage, hw, name=join(stage.name), bias=bias, dtype_bytes=dtype_bytes)
    layers.append(cost)
    hw = cost.out_shape[:2]
    if i < len(stages) - 1 and spec.between in ("norm", "norm_act"):
      layers.append(norm_cost(join(mid_norm_name(i)), cost.out_shape, dtype_bytes=dtype_bytes))
  if norm:
    layers.append(norm_cost(join("norm"), layers[-1].out_shape, dtype_bytes=dtype_bytes))
  return layers


@dataclasses.dataclass(frozen=True)
class CostSummary(_Rates):
  """Totals over layers, in both conventions; see the module docstring."""
  params: int  # weights + biases: the papers' count (no BN)
  params_with_bn: int  # + BN scale and offset: what is trained
  norm_stats: int  # BN running statistics, not trained
  mult_adds: int
  mult_adds_valid: int
  bytes: int  # unfused: every layer's input and output round-trip memory
  bytes_fused: int  # first input + last output + all parameters

  @property
  def total_variables(self) -> int:
    """Every stored number: what a Flax ``params`` + ``batch_stats`` tree holds."""
    return self.params_with_bn + self.norm_stats

  def as_dict(self) -> dict:
    return {"params": self.params, "params_with_bn": self.params_with_bn,
            "norm_stats": self.norm_stats, "mult_adds": self.mult_adds,
            "mult_adds_valid": self.mult_adds_valid, "flops": self.flops,
            "xla_flops": self.xla_flops, "bytes": self.bytes, "bytes_fused": self.bytes_fused,
            "intensity": self.intensity}


def summarize(layers: Sequence[LayerCost]) -> CostSummary:
  """Totals of a list of layers (a spectrum layer's stages or a whole model)."""
  if not layers:
    raise ValueError("layers (=[]) must hold at least one layer")
  params = sum(l.weights + l.biases for l in layers)
  norm_params = sum(l.norm_params for l in layers)
  traffic = [l for l in layers if l.kind != "norm"]
  b = layers[0].dtype_bytes
  return CostSummary(
      params=params, params_with_bn=params + norm_params,
      norm_stats=sum(l.norm_stats for l in layers),
      mult_adds=sum(l.mult_adds for l in layers),
      mult_adds_valid=sum(l.mult_adds_valid for l in layers),
      bytes=sum(l.bytes for l in layers),
      bytes_fused=b * (prod(traffic[0].in_shape) + prod(traffic[-1].out_shape) + params + norm_params)
      if traffic else 0)


def layer_summary(spec: ConvSpec, in_hw: int | Sequence[int], **kw) -> CostSummary:
  """Totals of one spectrum layer."""
  return summarize(spec_cost(spec, in_hw, **kw))


def separable_ratio(out_channels: int, kernel_size: int) -> tuple[int, int]:
  """Depthwise-separable / standard mult-adds = 1/N + 1/k^2, as an exact fraction (num, den)."""
  num, den = kernel_size ** 2 + out_channels, out_channels * kernel_size ** 2
  g = math.gcd(num, den)
  return num // g, den // g

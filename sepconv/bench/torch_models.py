"""PyTorch twins of the project's models, for timing the training step side by side.

Optional: torch is imported inside functions, never by the library at import time.
``torch_twin(arch, image_shape)`` builds, from the same ``Architecture`` the Flax
``SpectrumNet`` runs, the network PyTorch code would write: ``nn.Conv2d(groups=...)``
without bias for every stage, ``nn.BatchNorm2d`` with the same epsilon and momentum
(PyTorch's momentum is 1 - Flax's), the channel shuffle, the activations, the shortcut,
global average pooling and a linear classifier. Asymmetric 'SAME' padding (stride 2 on
an even side) is an explicit ``F.pad``, as TensorFlow-ported PyTorch models do.
``load_flax_variables`` copies a Flax variable tree into it, so tests can check that the
twin computes the same function; ``time_torch_train_step`` times its SGD-with-momentum
step in either memory layout.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sepconv.conv.geometry import make_geometry
from sepconv.models.arch import Architecture, unit_layers
from sepconv.spectrum import Norm, Shuffle, Stage
from sepconv.timing import Timing, measure

LAYOUTS = {"torch_nchw": "contiguous_format", "torch_channels_last": "channels_last"}


def _stage_pads(stage: Stage, in_hw: tuple[int, int]) -> tuple[tuple[int, int], ...]:
  geom = make_geometry((1, *in_hw, stage.in_channels), (*stage.kernel_size,
                       stage.in_channels // stage.feature_group_count, stage.out_channels),
                       np.float32, feature_group_count=stage.feature_group_count,
                       strides=stage.stride, padding=stage.padding, dilation=stage.dilation)
  return geom.pads, geom.out_shape[1:3]


def torch_twin(arch: Architecture, image_shape: tuple[int, int, int], *,
               norm_momentum: float = 0.9, norm_epsilon: float = 1e-3):
  """The ``torch.nn.Module`` computing ``SpectrumNet(arch)`` on NCHW images of ``image_shape``
  (H, W, C). Its ``forward`` returns the logits; parameters are named by the Flax paths
  ('block3/spatial' -> ``convs['block3/spatial']``) so ``load_flax_variables`` can fill them.
  """
  import torch
  import torch.nn.functional as F
  from torch import nn

  acts = {"relu": F.relu, "relu6": F.relu6, "linear": lambda x: x}
  h, w, channels = image_shape
  arch = arch.with_in_channels(channels)

  class Twin(nn.Module):
    def __init__(self):
      super().__init__()
      self.convs, self.norms = nn.ModuleDict(), nn.ModuleDict()
      self.program = []  # (unit, [(path, ops, activation)]) in execution order
      hw = (h, w)
      for unit in arch.units:
        layers = []
        for layer in unit_layers(unit):
          path = unit.name if layer.role is None else f"{unit.name}/{layer.role}"
          ops = []
          for op in layer.spec.ops(norm=True):
            if isinstance(op, Stage):
              pads, hw = _stage_pads(op, hw)
              key = f"{path}/{op.name}".replace("/", ":")
              self.convs[key] = nn.Conv2d(op.in_channels, op.out_channels, op.kernel_size,
                                          stride=op.stride, dilation=op.dilation,
                                          groups=op.feature_group_count, bias=False)
              ops.append(("conv", key, pads))
            elif isinstance(op, Norm):
              key = f"{path}/{op.name}".replace("/", ":")
              self.norms[key] = nn.BatchNorm2d(op.channels, eps=norm_epsilon,
                                               momentum=1 - norm_momentum)
              ops.append(("norm", key, None))
            elif isinstance(op, Shuffle):
              ops.append(("shuffle", op.groups, None))
            else:
              ops.append(("act", None, None))
          layers.append((ops, acts[layer.activation]))
        self.program.append((unit, layers))
      self.classifier = nn.Linear(arch.features, arch.num_classes)

    def _layer(self, ops, inner, x):
      for kind, key, pads in ops:
        if kind == "conv":
          conv = self.convs[key]
          (pt, pb), (pl, pr) = pads
          if pt == pb and pl == pr:
            x = F.conv2d(x, conv.weight, None, conv.stride, (pt, pl), conv.dilation, conv.groups)
          else:
            x = F.conv2d(F.pad(x, (pl, pr, pt, pb)), conv.weight, None, conv.stride, 0,
                         conv.dilation, conv.groups)
        elif kind == "norm":
          x = self.norms[key](x)
        elif kind == "shuffle":
          n, c, hh, ww = x.shape
          x = x.reshape(n, key, c // key, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)
        else:
          x = inner(x)
      return x

    def forward(self, x):
      for unit, layers in self.program:
        act = acts[unit.activation]
        *expand, (conv_ops, conv_inner) = layers
        if not expand and not hasattr(unit, "residual"):
          x = act(self._layer(conv_ops, conv_inner, x))
          continue
        y = x
        for ops, inner in expand:
          y = act(self._layer(ops, inner, y))
        y = self._layer(conv_ops, conv_inner, y)
        x = x + y if unit.residual else y
      return self.classifier(x.mean(dim=(2, 3)))

  return Twin()


def load_flax_variables(twin, variables: dict[str, Any]) -> None:
  """Copies a ``SpectrumNet``'s {'params', 'batch_stats'} into ``twin`` (HWIO -> OIHW)."""
  import torch

  def at(tree, key):
    for part in key.split(":"):
      tree = tree[part]
    return tree

  params, stats = variables["params"], variables.get("batch_stats", {})
  with torch.no_grad():
    for key, conv in twin.convs.items():
      conv.weight.copy_(torch.from_numpy(np.asarray(at(params, key)["kernel"]).transpose(3, 2, 0, 1)
                                         .copy()))
    for key, norm in twin.norms.items():
      norm.weight.copy_(torch.from_numpy(np.array(at(params, key)["scale"])))
      norm.bias.copy_(torch.from_numpy(np.array(at(params, key)["bias"])))
      norm.running_mean.copy_(torch.from_numpy(np.array(at(stats, key)["mean"])))
      norm.running_var.copy_(torch.from_numpy(np.array(at(stats, key)["var"])))
    twin.classifier.weight.copy_(torch.from_numpy(np.asarray(params["classifier"]["kernel"]).T
                                                  .copy()))
    twin.classifier.bias.copy_(torch.from_numpy(np.array(params["classifier"]["bias"])))


def time_torch_train_step(twin, x: np.ndarray, y: np.ndarray, layout: str, *, warmup: int,
                          repeats: int, budget_s: float | None = None, learning_rate: float = 0.1,
                          momentum: float = 0.9) -> tuple[Timing, dict]:
  """Times ``twin``'s SGD-with-momentum training step (train-mode BatchNorm) on CPU.

  Args:
    twin: a ``torch_twin`` module.
    x, y: the batch (NHWC float32 images, integer labels), as the JAX step gets it.
    layout: a key of ``LAYOUTS``; the model and the images both take it.
    warmup, repeats, budget_s: as ``sepconv.timing.measure``.

  Returns:
    (Timing, extra record fields: framework, version, threads, parameter count, final loss).
  """
  import torch
  import torch.nn.functional as F

  if layout not in LAYOUTS:
    raise ValueError(f"layout (={layout!r}) must be one of {tuple(LAYOUTS)}")
  memory_format = getattr(torch, LAYOUTS[layout])
  twin = twin.to(memory_format=memory_format).train()
  images = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
  images = images.contiguous(memory_format=memory_format)
  labels = torch.from_numpy(np.asarray(y).astype(np.int64))
  opt = torch.optim.SGD(twin.parameters(), lr=learning_rate, momentum=momentum)

  def call():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(twin(images), labels)
    loss.backward()
    opt.step()
    return loss

  threads = torch.get_num_threads()
  torch.set_num_threads(os.cpu_count() or 1)
  try:
    times, loss, kept = measure(call, warmup=warmup, repeats=repeats, budget_s=budget_s)
    used_threads = torch.get_num_threads()
  finally:
    torch.set_num_threads(threads)
  extra = {"framework": "torch", "torch_version": torch.__version__, "torch_threads": used_threads,
           "param_count": int(sum(p.numel() for p in twin.parameters())),
           "final_loss": float(loss.detach())}
  return Timing(tuple(times), None, kept), extra

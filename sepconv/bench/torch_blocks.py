"""PyTorch's equivalents of ``sepconv.bench.flax_blocks``, the way PyTorch code writes them.

Optional: torch is imported inside functions. Each block is the same computation as the
Flax one (``nn.Conv2d(groups=...)``, NCHW; ConvNeXt's LayerNorm and MLP run channels-last,
as the reference implementation does), timed forward (``no_grad``, eval mode) and as a
training step (forward, backward, SGD update, train-mode BatchNorm).
"""

from __future__ import annotations

import os

import numpy as np

from sepconv.timing import Timing, measure


def _module(name: str, channels: int):
  import torch
  from torch import nn

  class ConvNeXt(nn.Module):
    def __init__(self, dim):
      super().__init__()
      self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
      self.norm = nn.LayerNorm(dim, eps=1e-6)
      self.pwconv1, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
      y = self.dwconv(x).permute(0, 2, 3, 1)
      y = self.pwconv2(nn.functional.gelu(self.pwconv1(self.norm(y))))
      return x + y.permute(0, 3, 1, 2)

  def conv_bn(cin, cout, kernel, groups=1):
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]

  class Residual(nn.Module):
    def __init__(self, body, final=None):
      super().__init__()
      self.body, self.final = nn.Sequential(*body), final or nn.Identity()

    def forward(self, x):
      return self.final(x + self.body(x))

  if name == "convnext":
    return ConvNeXt(channels)
  if name == "resnext":
    width = 128
    return Residual([*conv_bn(channels, width, 1), nn.ReLU(), *conv_bn(width, width, 3, 32),
                     nn.ReLU(), *conv_bn(width, channels, 1)], nn.ReLU())
  if name == "mobilenet_v2":
    hidden = 6 * channels
    return Residual([*conv_bn(channels, hidden, 1), nn.ReLU6(),
                     *conv_bn(hidden, hidden, 3, hidden), nn.ReLU6(),
                     *conv_bn(hidden, channels, 1)])
  raise ValueError(f"block (={name!r}) has no torch equivalent")


def time_torch_block(name: str, x_nhwc: np.ndarray, mode: str, *, warmup: int, repeats: int,
                     budget_s: float | None = None, min_repeats: int = 3) -> tuple[Timing, dict]:
  """Times block ``name`` in PyTorch on CPU on ``x_nhwc`` (float32), 'forward' or 'train_step'.

  Returns:
    (Timing, extra record fields: torch version and threads).
  """
  import torch

  if mode not in ("forward", "train_step"):
    raise ValueError(f"mode (={mode!r}) must be 'forward' or 'train_step'")
  torch.manual_seed(0)
  model = _module(name, x_nhwc.shape[-1])
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2), dtype=np.float32))
  if mode == "forward":
    model.eval()

    def call():
      with torch.no_grad():
        return model(x)
  else:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def call():
      optimizer.zero_grad(set_to_none=True)
      loss = model(x).square().mean()
      loss.backward()
      optimizer.step()
      return loss.detach()

  threads = torch.get_num_threads()
  torch.set_num_threads(os.cpu_count() or 1)
  try:
    times, _, kept = measure(call, warmup=warmup, repeats=repeats, budget_s=budget_s,
                             min_repeats=min_repeats, sync=lambda out: out)
    used = torch.get_num_threads()
  finally:
    torch.set_num_threads(threads)
  return Timing(tuple(times), None, kept), {"torch_version": torch.__version__,
                                            "torch_threads": used}

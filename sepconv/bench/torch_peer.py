"""PyTorch as a peer: the same layer through ``torch.nn.functional.conv2d(groups=G)``.

Optional: torch is imported inside functions, never by the library at import time.
Both memory layouts are timed (NCHW and channels-last); the peer runs on the same
kind of device as JAX (CPU with JAX CPU, CUDA with JAX GPU) or not at all, and on
CPU with as many threads as JAX's CPU backend uses (one per core).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterator

import numpy as np

from sepconv.bench.config import LayerConfig

LAYOUTS = {"torch_nchw": "contiguous_format", "torch_channels_last": "channels_last"}


def torch_status(platform: str) -> tuple[bool, str]:
  """(whether the torch peer can run beside JAX on ``platform``, why not)."""
  if importlib.util.find_spec("torch") is None:
    return False, "torch is not installed"
  if platform == "cpu":
    return True, ""
  if platform == "gpu":
    import torch
    if torch.cuda.is_available():
      return True, ""
    return False, "torch has no CUDA device"
  return False, f"no torch peer on {platform}"


def torch_version() -> str | None:
  if importlib.util.find_spec("torch") is None:
    return None
  import torch
  return torch.__version__


def _pads(config: LayerConfig, size: int) -> tuple[int, int]:
  _, lo, hi = config.axis_window(size)
  return lo, hi


@dataclasses.dataclass(frozen=True)
class TorchLayer:
  """One layer in torch, ready to time.

  Attributes:
    call: runs the layer once and waits for it (the device synchronised); returns torch
      tensors.
    outputs: a ``call()`` result -> float32 numpy arrays, NHWC / HWIO, as JAX's.
    extra: record fields (framework, torch version, explicit padding).
  """
  call: Callable[[], tuple]
  outputs: Callable[[tuple], tuple[np.ndarray, ...]]
  extra: dict


def torch_layer(config: LayerConfig, mode: str, layout: str, arrays: dict, *,
                platform: str) -> TorchLayer:
  """The layer of ``config`` in torch, in ``layout``, on the device matching ``platform``.

  Args:
    config: the layer.
    mode: 'fwd' or 'fwdbwd' (gradients of x and the kernels for a fixed cotangent).
    layout: a key of ``LAYOUTS``.
    arrays: float32 numpy inputs as JAX gets them: 'x' (NHWC), 'kernels' (HWIO each),
      'cotangent' (NHWC).
    platform: JAX's platform ('cpu' or 'gpu'), which picks torch's device.
  """
  import torch
  import torch.nn.functional as F

  if layout not in LAYOUTS:
    raise ValueError(f"layout (={layout!r}) must be one of {tuple(LAYOUTS)}")
  device = torch.device("cuda" if platform == "gpu" else "cpu")
  dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[config.dtype]
  memory_format = getattr(torch, LAYOUTS[layout])

  def to_torch(a: np.ndarray, perm) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(perm))).to(device=device, dtype=dtype)
    return t.contiguous(memory_format=memory_format) if t.ndim == 4 else t

  x = to_torch(arrays["x"], (0, 3, 1, 2))
  kernels = [to_torch(k, (3, 2, 0, 1)) for k in arrays["kernels"]]  # HWIO -> OIHW.
  ct = to_torch(arrays["cotangent"], (0, 3, 1, 2))
  (hlo, hhi), (wlo, whi) = _pads(config, config.height), _pads(config, config.width)
  symmetric = hlo == hhi and wlo == whi

  def layer(x, kernels):
    if not symmetric:
      x = F.pad(x, (wlo, whi, hlo, hhi))
    pad = (hlo, wlo) if symmetric else 0
    y = F.conv2d(x, kernels[0], stride=config.stride, padding=pad, dilation=config.dilation,
                 groups=config.groups)
    if config.layer == "spatial_pointwise":
      y = F.conv2d(y, kernels[1])
    return y

  if mode == "fwd":
    def run():
      with torch.no_grad():
        return (layer(x, kernels),)
  else:
    x.requires_grad_(True)
    for k in kernels:
      k.requires_grad_(True)

    def run():
      y = layer(x, kernels)
      grads = torch.autograd.grad(y, (x, *kernels), ct)
      return (y.detach(), *grads)

  def call():
    out = run()
    if device.type == "cuda":
      torch.cuda.synchronize()
    return out

  perms = [(0, 2, 3, 1)] * 2 + [(2, 3, 1, 0)] * len(kernels)  # Back to NHWC / HWIO.

  def outputs(out):
    return tuple(t.detach().float().cpu().numpy().transpose(p) for t, p in zip(out, perms))

  extra = {"framework": "torch", "torch_version": torch.__version__,
           "torch_threads": None, "torch_explicit_pad": not symmetric}
  return TorchLayer(call, outputs, extra)


@contextlib.contextmanager
def cpu_threads(platform: str) -> Iterator[int | None]:
  """Inside: torch on CPU uses one thread per core, as JAX's CPU backend does; yields that
  thread count (None off CPU). Torch's own setting is restored after."""
  import torch
  if platform == "gpu":
    yield None
    return
  threads = torch.get_num_threads()
  torch.set_num_threads(os.cpu_count() or 1)
  try:
    yield torch.get_num_threads()
  finally:
    torch.set_num_threads(threads)


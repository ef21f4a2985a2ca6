"""What ``impl="auto"`` chooses when nothing is measured, and among what: pure functions.

``(geometry, computation, platform) -> implementation``: no state, no files, no JAX
computation, so a choice for a TPU or a GPU can be made (and tested) on any host.
``sepconv.conv.policy`` combines these with the on-disk cache (``tune_cache``) and with
measuring (``measure``).

Platforms are JAX's lowering platforms: 'cpu', 'cuda', 'rocm', 'tpu' (what
``jax.export`` and ``lax.platform_dependent`` name), never 'gpu'.
"""

from __future__ import annotations

from sepconv import validate
from sepconv.conv import shift
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.table import IMPL_TABLE, supported

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
REFERENCE = "xla"
# A candidate must beat the incumbent (the heuristic's choice where it was timed, else the
# native conv) by this fraction to be chosen over it, so noise in a few timed calls on a busy
# host cannot make auto leave a choice for one no faster.
MARGIN = 0.05
# Below this many multiply-adds a convolution takes microseconds whichever way it runs:
# auto takes the heuristic instead of spending seconds compiling candidates.
MIN_MEASURE_MACS = 1 << 22


def check_platform(platform: str) -> str:
  """``platform`` if it is one of ``PLATFORMS`` ('gpu' is ambiguous: 'cuda' or 'rocm')."""
  return validate.one_of(platform, "platform", PLATFORMS)


def eligible(geom: ConvGeometry, platform: str) -> list[str]:
  """Implementations that run ``geom`` and can be lowered for ``platform``, in table order."""
  check_platform(platform)
  return [name for name in supported(geom) if IMPL_TABLE[name].runs_on(platform)]


def heuristic(geom: ConvGeometry, computation: str, platform: str = "cpu") -> str:
  """The implementation for ``computation`` on ``platform`` when nothing is measured.

  CPU (measured on a 2-core x86 host, float32, 3x3 on 56x56x128 -> 128, batch 32):
    * ``shift`` wins every computation wherever it applies (depthwise, depth multipliers, up
      to 8 channels per group): 10-40x the native forward, and the native weight
      gradient of a grouped conv is expanded densely by XLA:CPU (minutes); except the
      weight gradient at 4-8 channels per group, where ``supergroup`` is 1.4-2.5x faster;
    * 1x1 kernels: the matmul path forward;
    * wider groups (G > 1): ``supergroup`` (dense convolutions over channel blocks) for
      all three stages, except the weight gradient from 64 channels per group on,
      where ``im2col`` (chunked ``patches^T @ dy``) is 1.4x faster, and 3.6x faster
      than native for dense convolutions;
    * dense (G = 1): native forward and input gradient.
  CPU with the C++ extension built (``ffi``), from 8 channels per group to dense, except
  the 1x1 forward: ``ffi`` for all three computations (1.1-2x PyTorch's oneDNN in forward +
  backward on the reference layer, forward at parity; 2.8x XLA's dense forward + backward).
  CPU, small convolutions (under ``MIN_MEASURE_MACS``, never measured; from whole
  training steps, side by side in one process, of the granularity grid's MobileNet on
  8x8 digits and of MobileNet v2 x0.5 on 64x64, batch 32): depthwise convs run ``ffi``
  where it is built (its depthwise kernels; the digits depthwise-separable step on one core
  5.6 to 4.2 ms and its compilation 9.5 to 4.7 s, with depth multiplier 4 13.7 to 10.8 ms,
  MobileNet v2's 64x64 step 61 to 58 ms and its compilation 17 to 6 s), else ``shift``, and
  native for the dense forward and input gradient; grouped convs run ``ffi`` where it is
  built, else ``supergroup`` (the unrolled shift sums took 2-6x longer to compile and
  ran slower from 2 channels per group on). No weight gradient goes to XLA:CPU's own
  convolution: without ``ffi``, 1x1 dense ones are a matrix product (``pointwise``), the
  others run ``im2col``. These small-conv choices were measured while each
  plan's platform conditional reached XLA unresolved (see ``sepconv.conv.plan``), which
  made XLA's own convolutions inside a step naive loops; the choices stay fast, but XLA's
  convolution is no longer the slow path it was then. Where ``ffi`` is built, every small
  convolution now runs it, dense ones too: MobileNet v2 x0.5's 64x64 step (batch 32) with
  XLA's dense forward and input gradient and the matrix product's weight gradient for its
  small 1x1 convs took 1.07x the time of ``impl="ffi"``, side by side; with ``ffi`` for
  them, 1.03x (and, measuring off, 1.23x and 1.14x).
  GPU and TPU: native everywhere (cuDNN / the TPU compiler handle grouped convs; no
  device measurement exists yet, and measuring decides there).
  """
  if check_platform(platform) != "cpu":
    return REFERENCE
  if geom.macs < MIN_MEASURE_MACS:
    return _small_cpu(geom, computation)
  if (geom.group_in >= 8 and not (geom.is_pointwise and computation == "forward")
      and IMPL_TABLE["ffi"].support(geom) is None):
    return "ffi"
  if geom.is_pointwise and computation == "forward":
    return "pointwise"
  if shift.support(geom) is None:
    # Its weight gradient unrolls ci*co products per tap: past 2 channels per group
    # (with G > 1) the dense blocks are faster.
    if computation == "kernel_grad" and geom.group_in >= 4 and geom.groups > 1:
      return "supergroup"
    return "shift"
  if computation == "kernel_grad" and geom.group_in >= 64:
    return "im2col"
  if geom.groups == 1:
    return "xla"
  return "supergroup"


def _small_cpu(geom: ConvGeometry, computation: str) -> str:
  """The heuristic's CPU choice under ``MIN_MEASURE_MACS`` (see ``heuristic``)."""
  depthwise = geom.groups > 1 and geom.group_in == 1 and shift.support(geom) is None
  ffi_built = IMPL_TABLE["ffi"].support(geom) is None
  if ffi_built:
    return "ffi"
  if depthwise:
    return "shift"
  if computation == "kernel_grad":
    if geom.groups == 1 and IMPL_TABLE["pointwise"].support(geom) is None:
      return "pointwise"
    if IMPL_TABLE["im2col"].support(geom) is None:
      return "im2col"
  return "xla" if geom.groups == 1 else "supergroup"


def candidates(geom: ConvGeometry, computation: str, platform: str = "cpu") -> list[str]:
  """Implementations worth measuring for ``computation`` on ``platform``.

  Those eligible for the platform, less those known hopeless. Left out on CPU, because
  one call can take minutes at training sizes: the native weight gradient of a grouped
  conv (G > 1), which XLA:CPU expands into a dense convolution with a mask (2 minutes for
  one 3x3, 56x56x128, 2-channel-group weight gradient at batch 32 on a 2-core host, where
  'shift' takes 0.1 s); the weight gradient of 'xla_noynn' (XLA's Eigen weight gradient:
  a minute even for G = 1); and ``dense`` past 8 groups for the weight gradient and past
  32 otherwise (G times the arithmetic). 'dense' and 'supergroup' are the native conv
  itself when G = 1. Elsewhere 'xla_noynn' (a CPU-only opt-out) is left out and 'xla',
  the reference, is always measured (if every candidate is left out, 'xla' is kept). The
  heuristic's choice comes first, so slow candidates are cut short early.
  """
  names = eligible(geom, platform)
  drop = set()
  if geom.groups == 1:
    drop.update(("dense", "supergroup"))  # the same dense conv as xla
  if geom.group_in < 16:
    drop.add("im2col")  # tiny matrix products: shift or supergroup always win
  if geom.groups > (8 if computation == "kernel_grad" else 32):
    drop.add("dense")
  if platform == "cpu" and computation == "kernel_grad":
    drop.add("xla_noynn")  # Eigen's weight gradient: a minute even when G = 1
    if geom.groups > 1:
      drop.add("xla")  # XLA:CPU's own weight gradient of a grouped conv: masked dense
  if platform != "cpu":
    drop.add("xla_noynn")  # the YNNPACK opt-out only means something on CPU
  kept = [n for n in names if n not in drop]
  names = kept or [n for n in names if n == REFERENCE]  # nothing else runs it: native
  first = heuristic(geom, computation, platform)
  return sorted(names, key=lambda n: n != first)


def pick(times: dict[str, float], valid: list[str], default: str) -> str:
  """The measured winner: the fastest, unless it is within ``MARGIN`` of the incumbent.

  The incumbent is ``default`` (the heuristic's choice) where it was timed, else the native
  convolution. Isolated, two candidates within a few percent of each other are a tie that the
  whole computation can break either way (the reference layer's dense forward + backward took
  1.06x all-``ffi``'s time with XLA's input gradient beside ``ffi``'s forward and weight
  gradient, the two input gradients isolated within 5%), and the heuristic is the choice
  measured on whole steps. If nothing ran: native where valid, else ``default``.
  """
  if not times:  # every candidate failed: the native convolution is always correct
    return REFERENCE if REFERENCE in valid else default
  fastest = min(times, key=times.get)
  incumbent = default if default in times else REFERENCE if REFERENCE in times else None
  if incumbent is not None and times[fastest] > (1 - MARGIN) * times[incumbent]:
    return incumbent  # within noise of the incumbent: keep it
  return fastest

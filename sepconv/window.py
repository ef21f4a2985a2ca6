"""Window arithmetic along one spatial axis: explicit pads and output size. Plain integers.

The one place the convolution output-size formula lives. 'SAME' and 'VALID' resolve
exactly as ``lax.padtype_to_pads`` resolves them (SAME: output ``ceil(size / stride)``,
the total padding split with the odd pixel at the end), so the cost model, the
benchmark configs and every convolution implementation agree on shapes and on which
kernel taps fall on padding.
"""

from __future__ import annotations

from collections.abc import Sequence


def effective_kernel(kernel: int, dilation: int = 1) -> int:
  """Span of a dilated kernel: ``(kernel - 1) * dilation + 1``."""
  return (kernel - 1) * dilation + 1


def axis_pads(size: int, kernel: int, stride: int = 1, dilation: int = 1,
              padding: str | Sequence[int] = "SAME") -> tuple[int, int]:
  """(low, high) padding of one axis for 'SAME', 'VALID' or explicit (low, high)."""
  if isinstance(padding, str):
    if padding == "VALID":
      return 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2
  lo, hi = padding
  return int(lo), int(hi)


def axis_output(size: int, kernel: int, stride: int, dilation: int, lo: int, hi: int) -> int:
  """Output length of one axis with explicit pads (zero or less: no output)."""
  span = size + lo + hi - effective_kernel(kernel, dilation)
  return span // stride + 1 if span >= 0 else 0


def output_size(size: int, kernel: int, stride: int = 1, dilation: int = 1,
                padding: str | Sequence[int] = "SAME") -> tuple[int, int, int]:
  """(output size, low pad, high pad) along one axis; ``ValueError`` if there is no output."""
  lo, hi = axis_pads(size, kernel, stride, dilation, padding)
  out = axis_output(size, kernel, stride, dilation, lo, hi)
  if out < 1:
    raise ValueError(
        f"input size (={size}) with kernel {kernel}, dilation {dilation}, stride {stride} and "
        f"padding {padding!r} gives no output")
  return out, lo, hi


def valid_taps(size: int, kernel: int, stride: int, dilation: int, pad_lo: int, out: int) -> int:
  """Kernel taps, summed over output positions, that land inside [0, size) along one axis."""
  return sum(1 for o in range(out) for t in range(kernel)
             if 0 <= o * stride - pad_lo + t * dilation < size)

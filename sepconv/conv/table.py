"""The implementation table: every way ``grouped_conv`` can compute a convolution.

An implementation supplies a forward function, a support check (in its own module: why
it cannot run a ``ConvGeometry``, or None), and optionally its own input and kernel
gradients; without them, the gradient is the VJP of its forward. The table is data:
``sepconv.conv.policy`` chooses among its entries and ``sepconv.conv.plan`` runs them.

Each entry states the platforms it can be lowered for (``platforms``, None for pure JAX)
and why not elsewhere (``platform_note``): ``cannot_lower`` lists them, ``impl="auto"``
never chooses an entry for a platform it does not claim, and the lowering check
(tests/conv/test_lowering.py) exports every entry for TPU and GPU against that list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from sepconv.conv import ffi, im2col, native, pointwise, shift
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.pallas import gpu as pallas_gpu
from sepconv.conv.pallas import tpu as pallas_tpu

Forward = Callable[[jax.Array, jax.Array, ConvGeometry], jax.Array]
# The three computations of a training step that a plan assigns implementations to.
COMPUTATIONS = ("forward", "input_grad", "kernel_grad")


@dataclasses.dataclass(frozen=True)
class Impl:
  """One way to compute a grouped convolution.

  Attributes:
    name: the ``impl`` string.
    forward: (x, kernel, geom) -> y.
    support: geom -> None if supported, else the reason it is not.
    input_grad: (dy, kernel, geom) -> dx, or None to differentiate ``forward``.
    kernel_grad: (x, dy, geom) -> dkernel, or None to differentiate ``forward``.
    platforms: the JAX platforms ('cpu', 'cuda', 'rocm', 'tpu') it can be lowered for, or
      None for every platform (pure JAX).
    platform_note: why it cannot be lowered for the other platforms.
    custom_call_targets: custom-call targets it emits that carry no compatibility
      guarantee where it runs (``jax.export`` must be told to accept them, e.g.
      ``__gpu$xla.gpu.triton``); its CPU-only targets need not be named.
  """
  name: str
  forward: Forward
  support: Callable[[ConvGeometry], str | None]
  input_grad: Callable | None = None
  kernel_grad: Callable | None = None
  platforms: tuple[str, ...] | None = None
  platform_note: str = ""
  custom_call_targets: tuple[str, ...] = ()

  def runs_on(self, platform: str) -> bool:
    """Whether it can be lowered for ``platform``."""
    return self.platforms is None or platform in self.platforms

  @property
  def custom_grads(self) -> bool:
    return self.input_grad is not None or self.kernel_grad is not None


IMPL_TABLE: dict[str, Impl] = {
    impl.name: impl for impl in (
        Impl("xla", native.xla_conv, native.always_supported),
        Impl("xla_noynn", native.xla_noynn_conv, native.always_supported),
        Impl("shift", shift.shift_forward, shift.support,
             input_grad=shift.shift_input_grad, kernel_grad=shift.shift_kernel_grad),
        Impl("dense", native.dense_conv, native.always_supported),
        Impl("supergroup", native.supergroup_conv, native.always_supported,
             input_grad=native.supergroup_input_grad,
             kernel_grad=native.supergroup_kernel_grad),
        Impl("pointwise", pointwise.pointwise_conv, pointwise.support),
        Impl("im2col", im2col.im2col_forward, native.always_supported,
             kernel_grad=im2col.im2col_kernel_grad),
        Impl("ffi", ffi.ffi_forward, ffi.ffi_support, input_grad=ffi.ffi_input_grad,
             kernel_grad=ffi.ffi_kernel_grad, platforms=("cpu",),
             platform_note="XLA:CPU FFI custom calls into sepconv's C++ kernels (CPU code)"),
        Impl("pallas_tpu", pallas_tpu.forward, pallas_tpu.support_geometry,
             input_grad=pallas_tpu.input_grad, kernel_grad=pallas_tpu.kernel_grad,
             platforms=("tpu",), platform_note="Pallas Mosaic kernels (TPU code)"),
        Impl("pallas_gpu", pallas_gpu.forward, pallas_gpu.support_geometry,
             input_grad=pallas_gpu.input_grad, kernel_grad=pallas_gpu.kernel_grad,
             platforms=("cuda",), platform_note="Pallas Triton kernels (CUDA GPU code)",
             custom_call_targets=(pallas_gpu.TRITON_TARGET,)),
    )
}

CONCRETE = tuple(IMPL_TABLE)


def supported(geom: ConvGeometry) -> list[str]:
  """Names of the implementations that can run ``geom``, in table order."""
  return [name for name, impl in IMPL_TABLE.items() if impl.support(geom) is None]


def cannot_lower(platform: str) -> dict[str, str]:
  """{name: why} for every implementation that cannot be lowered for ``platform``."""
  return {name: impl.platform_note or f"runs on {impl.platforms} only"
          for name, impl in IMPL_TABLE.items() if not impl.runs_on(platform)}


def check_supported(name: str, geom: ConvGeometry) -> Impl:
  """The implementation ``name``, or ValueError naming it and why it cannot run ``geom``."""
  impl = IMPL_TABLE.get(name)
  if impl is None:
    raise ValueError(f"impl (={name!r}) must be one of {('auto',) + CONCRETE}")
  reason = impl.support(geom)
  if reason is not None:
    raise ValueError(f"impl (={name!r}) does not support this convolution: {reason}")
  return impl


def input_grad(name: str, x, kernel, dy, geom: ConvGeometry):
  """dx by implementation ``name``: its own rule, or the VJP of its forward."""
  impl = IMPL_TABLE[name]
  if impl.input_grad is not None:
    return impl.input_grad(dy, kernel, geom)
  _, vjp = jax.vjp(lambda x_: impl.forward(x_, kernel, geom), x)
  return vjp(dy)[0]


def kernel_grad(name: str, x, kernel, dy, geom: ConvGeometry):
  """dkernel by implementation ``name``: its own rule, or the VJP of its forward."""
  impl = IMPL_TABLE[name]
  if impl.kernel_grad is not None:
    return impl.kernel_grad(x, dy, geom)
  _, vjp = jax.vjp(lambda k_: impl.forward(x, k_, geom), kernel)
  return vjp(dy)[0]


def computation_fn(name: str, computation: str, geom: ConvGeometry) -> Callable:
  """(x, kernel, dy) -> the ``computation`` of ``geom`` by implementation ``name``."""
  if computation == "forward":
    return lambda x, k, dy: IMPL_TABLE[name].forward(x, k, geom)
  if computation == "input_grad":
    return lambda x, k, dy: input_grad(name, x, k, dy, geom)
  if computation == "kernel_grad":
    return lambda x, k, dy: kernel_grad(name, x, k, dy, geom)
  raise ValueError(f"computation (={computation!r}) must be one of {COMPUTATIONS}")

"""The implementation table and the plans that combine them.

An implementation supplies a forward function and says which configurations it
supports; it may also supply its own input and kernel gradients. A ``Plan`` names the
implementation for each of the three computations of a training step (forward, input
gradient, kernel gradient), so ``impl="auto"`` can, say, run the forward on one kernel
and the weight gradient on another. A plan that mixes implementations, or uses custom
gradients, runs as a ``jax.custom_vjp``; a plan that is one implementation without
custom gradients is that implementation's plain function (so forward-mode autodiff and
higher derivatives keep working for ``xla``, ``xla_noynn``, ``dense`` and ``pointwise``).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable

import jax

from sepconv.conv import ffi, im2col, native, pointwise, shift
from sepconv.conv.spec import ConvSpec

Forward = Callable[[jax.Array, jax.Array, ConvSpec], jax.Array]

# Python-level traces of the planned convolution, by (spec, plan): a trace counter.
TRACE_COUNTS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class Impl:
  """One way to compute a grouped convolution.

  Attributes:
    name: the ``impl`` string.
    forward: (x, kernel, spec) -> y.
    support: spec -> None if supported, else the reason it is not.
    input_grad: (dy, kernel, spec) -> dx, or None to differentiate ``forward``.
    kernel_grad: (x, dy, spec) -> dkernel, or None to differentiate ``forward``.
  """
  name: str
  forward: Forward
  support: Callable[[ConvSpec], str | None]
  input_grad: Callable | None = None
  kernel_grad: Callable | None = None

  @property
  def custom_grads(self) -> bool:
    return self.input_grad is not None or self.kernel_grad is not None


def _always(spec: ConvSpec) -> None:
  return None


def _shift_support(spec: ConvSpec) -> str | None:
  if spec.group_in > shift.MAX_GROUP_IN:
    return (f"channels per group (={spec.group_in}) must be at most {shift.MAX_GROUP_IN} for "
            "the shift formulation, which unrolls them")
  terms = spec.group_in * spec.kernel_hw[0] * spec.kernel_hw[1]
  if spec.group_in > 1 and terms > shift.MAX_TERMS:
    return (f"channels per group x kernel taps (={terms}) must be at most {shift.MAX_TERMS} for "
            "the grouped shift formulation, which unrolls them")
  return None


IMPL_TABLE: dict[str, Impl] = {
    impl.name: impl for impl in (
        Impl("xla", native.xla_conv, _always),
        Impl("xla_noynn", native.xla_noynn_conv, _always),
        Impl("shift", shift.shift_forward, _shift_support,
             input_grad=shift.shift_input_grad, kernel_grad=shift.shift_kernel_grad),
        Impl("dense", native.dense_conv, _always),
        Impl("supergroup", native.supergroup_conv, _always,
             input_grad=native.supergroup_input_grad,
             kernel_grad=native.supergroup_kernel_grad),
        Impl("pointwise", pointwise.pointwise_conv, pointwise.pointwise_support),
        Impl("im2col", im2col.im2col_forward, _always, kernel_grad=im2col.im2col_kernel_grad),
        Impl("ffi", ffi.ffi_forward, ffi.ffi_support, input_grad=ffi.ffi_input_grad,
             kernel_grad=ffi.ffi_kernel_grad),
    )
}

CONCRETE = tuple(IMPL_TABLE)


def check_supported(name: str, spec: ConvSpec) -> Impl:
  """The implementation ``name``, or ValueError naming it and why it cannot run ``spec``."""
  impl = IMPL_TABLE.get(name)
  if impl is None:
    raise ValueError(f"impl (={name!r}) must be one of {('auto',) + CONCRETE}")
  reason = impl.support(spec)
  if reason is not None:
    raise ValueError(f"impl (={name!r}) does not support this convolution: {reason}")
  return impl


@dataclasses.dataclass(frozen=True)
class Plan:
  """Which implementation computes the forward, the input gradient and the kernel gradient.

  A gradient named 'auto' is chosen by ``autotune`` when the backward pass is traced.
  """
  forward: str
  input_grad: str
  kernel_grad: str

  @classmethod
  def single(cls, name: str) -> Plan:
    return cls(name, name, name)

  @property
  def is_plain(self) -> bool:
    """One implementation, differentiated by JAX: no custom_vjp needed."""
    return (self.forward == self.input_grad == self.kernel_grad
            and self.forward in IMPL_TABLE and not IMPL_TABLE[self.forward].custom_grads)


def input_grad(name: str, x, kernel, dy, spec: ConvSpec):
  """dx by implementation ``name``: its own rule, or the VJP of its forward."""
  impl = IMPL_TABLE[name]
  if impl.input_grad is not None:
    return impl.input_grad(dy, kernel, spec)
  _, vjp = jax.vjp(lambda x_: impl.forward(x_, kernel, spec), x)
  return vjp(dy)[0]


def kernel_grad(name: str, x, kernel, dy, spec: ConvSpec):
  """dkernel by implementation ``name``: its own rule, or the VJP of its forward."""
  impl = IMPL_TABLE[name]
  if impl.kernel_grad is not None:
    return impl.kernel_grad(x, dy, spec)
  _, vjp = jax.vjp(lambda k_: impl.forward(x, k_, spec), kernel)
  return vjp(dy)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _custom(x, kernel, spec: ConvSpec, plan: Plan):
  return IMPL_TABLE[plan.forward].forward(x, kernel, spec)


def _custom_fwd(x, kernel, spec, plan):
  return _custom(x, kernel, spec, plan), (x, kernel)


def _custom_bwd(spec, plan, residuals, dy):
  x, kernel = residuals
  dx_name, dk_name = plan.input_grad, plan.kernel_grad
  if "auto" in (dx_name, dk_name):
    from sepconv.conv import autotune  # noqa: PLC0415 (autotune imports this module)
    dx_name = autotune.choose_stage(spec, "input_grad") if dx_name == "auto" else dx_name
    dk_name = autotune.choose_stage(spec, "kernel_grad") if dk_name == "auto" else dk_name
  dx = input_grad(dx_name, x, kernel, dy, spec)
  dk = kernel_grad(dk_name, x, kernel, dy, spec)
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_custom.defvjp(_custom_fwd, _custom_bwd)


def run_plan(x: jax.Array, kernel: jax.Array, spec: ConvSpec, plan: Plan) -> jax.Array:
  """The convolution computed as ``plan`` says (traced inside the caller's jit)."""
  TRACE_COUNTS[(spec, plan)] += 1
  if plan.is_plain:
    return IMPL_TABLE[plan.forward].forward(x, kernel, spec)
  return _custom(x, kernel, spec, plan)


run_plan_jit = jax.jit(run_plan, static_argnums=(2, 3))

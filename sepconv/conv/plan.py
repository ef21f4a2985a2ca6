"""Plans: which implementation computes the forward, the input gradient and the kernel gradient.

A ``Plan`` names an implementation of ``sepconv.conv.table`` for each of the three
computations of a training step, so ``impl="auto"`` can run the forward on one kernel
and the weight gradient on another. A plan that mixes implementations, or uses custom
gradients, runs as a ``jax.custom_vjp``; a plan that is one implementation without
custom gradients is that implementation's plain function (so forward-mode autodiff and
higher derivatives keep working for ``xla``, ``xla_noynn``, ``dense`` and ``pointwise``).
A gradient named 'auto' is chosen by ``sepconv.conv.policy`` when the backward pass is
traced, so inference never pays for choosing backward implementations.

``impl="auto"`` has a plan per platform (``PlatformPlans``): ``run_platform_plans`` runs
them as one ``lax.platform_dependent``, so the function lowers, for each platform it is
exported or compiled for, the plan chosen for that platform (a CPU plan's C++ kernels
never reach a TPU module), and is no conditional at all where every platform's plan is
the same. The jitted entry points are inlined into the caller's trace: a nested call
would receive the platform index as an argument, and XLA:CPU resolves the conditional
over it only after it has put convolutions into the form its fast kernels take, so the
XLA convolutions of a plan would compile as naive loops (the digits standard conv's
training step took 24 ms instead of 6 ms on one core). Inlined, a single-platform
lowering has the index as a constant and reaches XLA without a conditional.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import jax

from jax import lax

from sepconv.conv import policy
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.table import IMPL_TABLE, input_grad, kernel_grad

# Python-level traces of the planned convolution, by (geometry, plan): a trace counter.
TRACE_COUNTS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class Plan:
  """Which implementation computes the forward, the input gradient and the kernel gradient.

  A gradient named 'auto' is chosen by ``sepconv.conv.policy`` for ``platform`` (None:
  the host's) when the backward pass is traced.
  """
  forward: str
  input_grad: str
  kernel_grad: str
  platform: str | None = None

  @classmethod
  def single(cls, name: str) -> Plan:
    return cls(name, name, name)

  @property
  def is_plain(self) -> bool:
    """One implementation, differentiated by JAX: no custom_vjp needed."""
    return (self.forward == self.input_grad == self.kernel_grad
            and self.forward in IMPL_TABLE and not IMPL_TABLE[self.forward].custom_grads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _custom(x, kernel, geom: ConvGeometry, plan: Plan):
  return IMPL_TABLE[plan.forward].forward(x, kernel, geom)


def _custom_fwd(x, kernel, geom, plan):
  return _custom(x, kernel, geom, plan), (x, kernel)


def _custom_bwd(geom, plan, residuals, dy):
  x, kernel = residuals
  dx_name, dk_name = plan.input_grad, plan.kernel_grad
  if dx_name == "auto":
    dx_name = policy.choose(geom, "input_grad", plan.platform)
  if dk_name == "auto":
    dk_name = policy.choose(geom, "kernel_grad", plan.platform)
  dx = input_grad(dx_name, x, kernel, dy, geom)
  dk = kernel_grad(dk_name, x, kernel, dy, geom)
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_custom.defvjp(_custom_fwd, _custom_bwd)


def run_plan(x: jax.Array, kernel: jax.Array, geom: ConvGeometry, plan: Plan) -> jax.Array:
  """The convolution computed as ``plan`` says (traced inside the caller's jit)."""
  TRACE_COUNTS[(geom, plan)] += 1
  if plan.is_plain:
    return IMPL_TABLE[plan.forward].forward(x, kernel, geom)
  return _custom(x, kernel, geom, plan)


# Inlined into a caller's trace (see the module docstring); a jit of their own when eager.
run_plan_jit = jax.jit(run_plan, static_argnums=(2, 3), inline=True)

# ((platform, plan), ...): the plan for each platform a computation may be lowered for.
PlatformPlans = tuple[tuple[str, Plan], ...]


def run_platform_plans(x: jax.Array, kernel: jax.Array, geom: ConvGeometry,
                       plans: PlatformPlans) -> jax.Array:
  """The convolution computed, on each platform it is lowered for, by that platform's plan."""
  distinct = list(dict.fromkeys(plan for _, plan in plans))
  if len(distinct) == 1:
    return run_plan(x, kernel, geom, distinct[0])
  # The plan most platforms share is the default branch; the others are named.
  common = max(distinct, key=lambda p: sum(plan == p for _, plan in plans))
  branches = {platform: functools.partial(_branch, geom=geom, plan=plan)
              for platform, plan in plans if plan != common}
  return lax.platform_dependent(x, kernel, default=functools.partial(_branch, geom=geom,
                                                                     plan=common), **branches)


def _branch(x, kernel, *, geom: ConvGeometry, plan: Plan) -> jax.Array:
  return run_plan(x, kernel, geom, plan)


run_platform_plans_jit = jax.jit(run_platform_plans, static_argnums=(2, 3), inline=True)

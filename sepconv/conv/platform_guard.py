"""A lowering-time check that an implementation is lowered only for the platforms it claims.

``impl="ffi"`` (CPU code) asked for by name inside a function exported or compiled for
TPU would otherwise fail deep in XLA, or in ``jax.export``'s custom-call check, with a
message that names neither the implementation nor the fix. ``guard(x, name, platforms)``
is the identity on ``x``; its lowering raises a ``ValueError`` naming the implementation,
the platforms it claims and the one being lowered for. Tracing is unaffected, so the
error comes exactly when, and only when, the computation is lowered for another platform.
"""

from __future__ import annotations

import functools

import jax
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from sepconv.conv.tune_cache import host_platform

_guard_p = Primitive("sepconv_platform_guard")
_guard_p.def_abstract_eval(lambda x, **_: x)
batching.primitive_batchers[_guard_p] = lambda args, dims, **params: (_guard_p.bind(*args, **params),
                                                                      dims[0])


def _refuse_others(name: str, platforms: tuple[str, ...], lowering_for) -> None:
  others = [p for p in lowering_for if p not in platforms]
  if others:
    raise ValueError(f"impl (={name!r}) can be lowered for {platforms} only, not for "
                     f"{others[0]!r}: use impl='auto' (it chooses per platform) or an "
                     f"implementation that runs on {others[0]!r}")


def _impl(x, *, name: str, platforms: tuple[str, ...]):
  """Run eagerly (outside jit): on this process's own platform."""
  _refuse_others(name, platforms, (host_platform(),))
  return x


def _lowering(ctx, x, *, name: str, platforms: tuple[str, ...]):
  _refuse_others(name, platforms, tuple(ctx.module_context.platforms))
  return [x]


_guard_p.def_impl(_impl)


mlir.register_lowering(_guard_p, _lowering)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def guard(x: jax.Array, name: str, platforms: tuple[str, ...]) -> jax.Array:
  """``x``, refusing to be lowered for a platform outside ``platforms`` (forward and backward)."""
  return _guard_p.bind(x, name=name, platforms=tuple(platforms))


def _guard_fwd(x, name, platforms):
  return guard(x, name, platforms), None


def _guard_bwd(name, platforms, _, ct):
  return (_guard_p.bind(ct, name=name, platforms=tuple(platforms)),)


guard.defvjp(_guard_fwd, _guard_bwd)

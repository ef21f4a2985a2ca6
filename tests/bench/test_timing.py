"""The one compile-then-time routine: compiled once and apart, warm calls timed, state fed back."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.timing import compile_ahead, side_by_side, time_jitted


def test_time_jitted_compiles_once_apart_and_times_the_asked_calls():
  traces = []

  def fn(x):
    traces.append(1)
    return x * 2.0

  x = jnp.arange(4.0)
  timing, out, compiled = time_jitted(fn, (x,), warmup=1, repeats=3)
  assert len(traces) == 1  # traced (and compiled) once, never again while timed
  assert len(timing.times_ms) == 3 and timing.compile_ms > 0 and not timing.warmup_kept
  np.testing.assert_array_equal(out, [0.0, 2.0, 4.0, 6.0])
  np.testing.assert_array_equal(compiled(x), out)


def test_an_already_jitted_function_keeps_its_donation_and_state_is_fed_back():
  step = jax.jit(lambda count, x: (count + 1, x), donate_argnums=0)
  state = [jnp.zeros((), jnp.int32)]

  def feed_back(compiled):
    def call():
      state[0], y = compiled(state[0], jnp.ones(2))
      return y
    return call

  timing, _, _ = time_jitted(step, (state[0], jnp.ones(2)), warmup=2, repeats=3, call=feed_back)
  assert int(state[0]) == 2 + 3  # every warm-up and timed call advanced the state once
  assert len(timing.times_ms) == 3


def test_compile_ahead_jits_a_plain_callable_and_bad_repeats_are_refused():
  compiled, ms = compile_ahead(functools.partial(jnp.add, 1.0), (jnp.ones(3),))
  assert ms > 0
  np.testing.assert_array_equal(compiled(jnp.ones(3)), [2.0, 2.0, 2.0])
  with pytest.raises(ValueError, match=r"repeats \(=0\)"):
    time_jitted(lambda x: x, (jnp.ones(1),), warmup=0, repeats=0)


def test_much_slower_calls_are_timed_apart_after_the_close_ones():
  log = []

  def sleeper(name, ms):
    def call():
      log.append(name)
      time.sleep(ms / 1e3)
      return name
    return call

  calls = {"slow": sleeper("slow", 100.0), "a": sleeper("a", 2.0), "b": sleeper("b", 3.0)}
  timed = side_by_side(calls, warmup=1, repeats=4, apart_factor=10.0, sync=lambda out: out)
  # warm-ups name by name, then rounds of a and b alone, then slow's own rounds
  assert log[:3] == ["slow", "a", "b"]
  assert all(sorted(log[i:i + 2]) == ["a", "b"] for i in range(3, 11, 2))
  assert log[11:] == ["slow"] * 4
  assert {n: len(t) for n, (t, _, _) in timed.items()} == {"slow": 4, "a": 4, "b": 4}
  # without it, every round holds all three
  log.clear()
  side_by_side(calls, warmup=1, repeats=2, sync=lambda out: out)
  assert all(sorted(log[i:i + 3]) == ["a", "b", "slow"] for i in (3, 6))

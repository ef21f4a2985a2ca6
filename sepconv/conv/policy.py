"""The policy behind ``impl="auto"``: a ``Tuner`` that chooses per platform, measures, remembers.

What is chosen: three implementations per convolution, one for the forward, one for the
input gradient and one for the kernel gradient, for each platform the computation may be
lowered for (``sepconv.conv.api`` dispatches with ``lax.platform_dependent``, so one
traced function exports for CPU, TPU and GPU). The forward is chosen when
``grouped_conv`` is called; the host platform's gradients only when a backward pass is
traced (the custom VJP rule asks for them then), so inference never pays for measuring
backward.

How, for one (geometry, computation, platform), first that applies:

1. a replayed plan (``replaying``) recorded on the same platform;
2. a choice already measured on this device kind and software (``tune_cache``);
3. for the host platform (the one this process's devices run), measured now, at trace
   time, outside every trace (``measure``), and kept in memory and on disk; unless
   measuring is off (``SEPCONV_AUTOTUNE=0``), the convolution is under
   ``MIN_MEASURE_MACS`` multiply-adds, or the measuring budget (``measure.Budget``) is
   spent. Every candidate failing leaves 'xla';
4. the heuristic (``choice.heuristic``): a fixed table, the only source for platforms
   this process cannot measure (a CPU host exporting for TPU).

Only implementations that can be lowered for the platform are ever chosen
(``Impl.platforms``): the CPU-only C++ kernels never for TPU or GPU.

The ``Tuner`` holds every piece of state (cache, budget, replayed plans); the process
has one (``tuner()``), and ``using`` puts another in its place, e.g. in tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from sepconv import validate
from sepconv.conv import choice, measure as measure_lib
from sepconv.conv.choice import (MARGIN, MIN_MEASURE_MACS, PLATFORMS, REFERENCE,  # noqa: F401
                                 candidates, heuristic)
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.table import COMPUTATIONS, IMPL_TABLE
from sepconv.conv.tune_cache import CACHE_VERSION, TuneCache, host_platform  # noqa: F401
from sepconv.conv import tune_cache


def measuring_enabled() -> bool:
  """False when ``SEPCONV_AUTOTUNE`` is '0' (or 'false'/'off')."""
  return os.environ.get("SEPCONV_AUTOTUNE", "1").strip().lower() not in ("0", "false", "off", "no")


def _module_heuristic(geom, computation, platform):
  return heuristic(geom, computation, platform)  # this module's name, so it can be replaced


def _module_measure(geom, computation, names):
  return measure_lib.measure(geom, computation, names)


def split_plan_key(key: str) -> tuple[str, str]:
  """(platform, geometry key) of a recorded plan's key; keys without one were recorded on CPU."""
  platform, sep, rest = key.partition("|")
  return (platform, rest) if sep and platform in PLATFORMS else ("cpu", key)


@dataclasses.dataclass
class Tuner:
  """Chooses implementations for ``impl="auto"``; every piece of the autotuner's state.

  Attributes:
    cache: measured choices (memory and file).
    budget: seconds of measuring left to this process (None: from the environment).
    min_measure_macs: convolutions smaller than this take the heuristic.
    heuristic: (geom, computation, platform) -> name, when nothing is measured.
    measure: (geom, computation, names) -> {name: median ms}.
    replay: {'platform|geometry key|computation': name}, run instead of choosing.
  """
  cache: TuneCache = dataclasses.field(default_factory=TuneCache)
  budget: measure_lib.Budget | None = None
  min_measure_macs: int = MIN_MEASURE_MACS
  heuristic: Callable[[ConvGeometry, str, str], str] = _module_heuristic
  measure: Callable[[ConvGeometry, str, list[str]], dict] = _module_measure
  replay: dict[str, str] = dataclasses.field(default_factory=dict)

  def spent(self) -> measure_lib.Budget:
    if self.budget is None:
      self.budget = measure_lib.Budget.from_env(host_platform())
    return self.budget

  def entry_key(self, geom: ConvGeometry, computation: str) -> str:
    return f"{tune_cache.device_key()}|{geom.key()}|{computation}"

  def choose(self, geom: ConvGeometry, computation: str, platform: str | None = None) -> str:
    """The implementation ``auto`` runs for ``computation`` of ``geom`` lowered for ``platform``
    (default: the host's)."""
    validate.one_of(computation, "computation", COMPUTATIONS)
    host = host_platform()
    platform = choice.check_platform(platform or host)
    valid = choice.eligible(geom, platform)
    replayed = self.replay.get(f"{platform}|{geom.key()}|{computation}")
    if replayed is not None:
      if replayed not in valid:
        reason = ("not an implementation" if replayed not in IMPL_TABLE else
                  IMPL_TABLE[replayed].support(geom) or f"it cannot be lowered for {platform}")
        raise ValueError(f"replayed plan (={replayed!r}) for {computation} of {geom.key()} "
                         f"cannot run here: {reason}")
      return replayed
    default = self.heuristic(geom, computation, platform)
    if platform != host:
      return default  # nothing here can measure it, nor knows that device's kind
    key = self.entry_key(geom, computation)
    entry = self.cache.get(key)
    if entry is not None and entry["choice"] in valid:
      return entry["choice"]
    if len(valid) == 1:
      return valid[0]
    if (not measuring_enabled() or geom.macs < self.min_measure_macs
        or not self.spent().allows()):
      return default
    start = datetime.datetime.now(datetime.timezone.utc)
    try:
      times = self.measure(geom, computation, candidates(geom, computation, platform))
    finally:
      elapsed = datetime.datetime.now(datetime.timezone.utc) - start
      self.spent().spend(elapsed.total_seconds())
    chosen = choice.pick(times, valid, default)
    entry = {"choice": chosen, "times_ms": times, "measured": start.isoformat(timespec="seconds")}
    if times:
      self.cache.put(key, entry)
    else:
      self.cache.remember(key, entry)  # not measured: the next process may try again
    return chosen

  def plan_record(self, geoms, platform: str | None = None) -> dict[str, dict[str, str]]:
    """What ``auto`` runs for each geometry: {'platform|geometry key': {computation: impl}}.

    Recorded after a run has traced (and so chosen) them: nothing is measured again.
    """
    platform = platform or host_platform()
    return {f"{platform}|{g.key()}": {c: self.choose(g, c, platform) for c in COMPUTATIONS}
            for g in geoms}

  @contextlib.contextmanager
  def replaying(self, plans: dict[str, dict[str, str]] | None) -> Iterator[None]:
    """Within this block, ``auto`` runs ``plans`` (``plan_record``'s form) where they apply.

    Replaying a reference's plans on the same software and CPU reproduces its numbers bit
    for bit: which implementation computes a sum decides its rounding. Plans apply only
    to the platform they were recorded on (a key without one was recorded on CPU), so a
    CPU plan replayed on a TPU is chosen afresh there. Geometries the plans do not name
    are chosen as usual.
    """
    saved = dict(self.replay)
    for key, choices in (plans or {}).items():
      platform, geom_key = split_plan_key(key)
      for computation, impl in choices.items():
        validate.one_of(computation, "computation", COMPUTATIONS)
        self.replay[f"{platform}|{geom_key}|{computation}"] = impl
    try:
      yield
    finally:
      self.replay.clear()
      self.replay.update(saved)


_TUNER = [Tuner()]


def tuner() -> Tuner:
  """The process's tuner."""
  return _TUNER[-1]


@contextlib.contextmanager
def using(replacement: Tuner) -> Iterator[Tuner]:
  """Within this block, ``impl="auto"`` chooses with ``replacement``."""
  _TUNER.append(replacement)
  try:
    yield replacement
  finally:
    _TUNER.remove(replacement)


def trace_key() -> tuple:
  """What a traced ``auto`` model depends on besides its shapes: the process's tuner and
  the plans it replays (a key of compiled executables)."""
  t = tuner()
  return id(t), tuple(sorted(t.replay.items()))


# The process tuner's operations, as functions.


def choose(geom: ConvGeometry, computation: str, platform: str | None = None) -> str:
  """The implementation ``auto`` uses for ``computation`` of ``geom`` (``Tuner.choose``)."""
  return tuner().choose(geom, computation, platform)


def plan_record(geoms, platform: str | None = None) -> dict[str, dict[str, str]]:
  """``Tuner.plan_record`` of the process's tuner."""
  return tuner().plan_record(geoms, platform)


def replaying(plans: dict[str, dict[str, str]] | None):
  """``Tuner.replaying`` of the process's tuner."""
  return tuner().replaying(plans)


def cache_path() -> Path:
  return tuner().cache.path


def device_key() -> str:
  return tune_cache.device_key()


def entry_key(geom: ConvGeometry, computation: str) -> str:
  return tuner().entry_key(geom, computation)


def lookup(geom: ConvGeometry, computation: str) -> dict | None:
  """The cached entry for ``geom`` and ``computation`` on this device, or None."""
  return tuner().cache.get(entry_key(geom, computation))


def cache_summary() -> dict:
  """Where the cache file is, how many choices it holds, and whether measuring is on."""
  return {**tuner().cache.summary(), "measuring": measuring_enabled()}


def clear_memory_cache() -> None:
  """Forgets in-memory choices (the file stays), as a new process would."""
  tuner().cache.forget()


def _write_entry(key: str, entry: dict) -> None:
  tune_cache.write_entry(cache_path(), key, entry)


def __getattr__(name: str):
  if name == "MEASURING":  # {'seconds', 'measurements'} this process spent measuring
    budget = tuner().spent()
    return {"seconds": budget.seconds, "measurements": budget.measurements}
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

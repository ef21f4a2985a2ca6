"""`sepconv env`: versions, devices and the autotune cache in one command."""

from __future__ import annotations

import json

import jax

from sepconv.cli.main import main
from sepconv.conv import policy


def test_env_reports_versions_devices_and_this_devices_cache(capsys, tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
  policy._write_entry(f"{policy.device_key()}|somegeometry|forward", {"choice": "xla"})
  policy._write_entry("gpu|NVIDIA H200|jax-0|jaxlib-0|other|forward", {"choice": "xla"})
  assert main(["env", "--json"]) == 0
  env = json.loads(capsys.readouterr().out)
  assert env["versions"]["jax"] == jax.__version__ and env["versions"]["sepconv"]
  assert {"flax", "optax", "orbax-checkpoint", "jaxlib"} <= set(env["versions"])
  assert env["platform"] == "cpu" and env["device_count"] == len(jax.devices())
  cache = env["autotune_cache"]
  assert cache["path"] == str(tmp_path / "autotune.json")
  assert cache["entries"] == 2 and cache["entries_for_this_device"] == 1
  assert main(["env"]) == 0
  text = capsys.readouterr().out
  assert "1 choices for this device" in text and f"jax {jax.__version__}" in text


def test_the_compilation_cache_goes_beside_the_autotune_cache_and_can_be_off(tmp_path, monkeypatch):
  from sepconv import compile_cache
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
  monkeypatch.setenv("SEPCONV_COMPILATION_CACHE", "0")
  assert compile_cache.enable() is None
  monkeypatch.delenv("SEPCONV_COMPILATION_CACHE")
  before = jax.config.jax_compilation_cache_dir
  try:
    jax.config.update("jax_compilation_cache_dir", None)
    assert compile_cache.enable() == tmp_path / "xla" and (tmp_path / "xla").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
  finally:
    jax.config.update("jax_compilation_cache_dir", before)

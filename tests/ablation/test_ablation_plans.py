"""Every training record carries its convolution plans; replaying them reproduces the run."""

from __future__ import annotations

import jax
import pytest

from sepconv.ablation import GranularityAblation, Variant, run
from sepconv.conv import policy
from sepconv.records import read_records

TINY = GranularityAblation(
    name="tiny", variants=(Variant("grouped:g=2"),),
    seeds=(0,), train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"epochs": 1, "batch_size": 128}},
    bench_impls=("auto",), bench_repeats=1, analysis_examples=64)


def _train_record(out):
  (record,) = [r for r in read_records(out / "records.jsonl") if r["kind"] == "train"]
  return record


def _fresh_process_state():
  jax.clear_caches()  # compiled steps would otherwise be reused across runs
  policy.clear_memory_cache()


@pytest.mark.slow
def test_replaying_a_references_plans_reproduces_its_numbers(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path / "cache"))
  heuristic = policy.heuristic
  # The reference chose differently (as another machine's measurements would).
  monkeypatch.setattr(policy, "heuristic", lambda geom, computation, backend=None: "dense")
  _fresh_process_state()
  run(TINY, tmp_path / "reference", work_dir=tmp_path / "w_ref", progress=False)
  reference = _train_record(tmp_path / "reference")
  assert reference["plans"] and all(
      set(c) == {"forward", "input_grad", "kernel_grad"} for c in reference["plans"].values())
  assert {i for c in reference["plans"].values() for i in c.values()} == {"dense"}

  monkeypatch.setattr(policy, "heuristic", heuristic)
  _fresh_process_state()
  run(TINY, tmp_path / "own", work_dir=tmp_path / "w_own", progress=False)
  own = _train_record(tmp_path / "own")
  assert own["plans"] != reference["plans"]  # this machine's choices

  _fresh_process_state()
  run(TINY, tmp_path / "replayed", work_dir=tmp_path / "w_rep", progress=False,
      replay=tmp_path / "reference")
  replayed = _train_record(tmp_path / "replayed")
  assert replayed["plans"] == reference["plans"]
  for key in ("test_accuracy", "test_loss", "train_accuracy", "probe_test_accuracy",
              "effective_rank"):
    assert replayed["metrics"][key] == reference["metrics"][key], key


def test_replay_refuses_what_cannot_run_and_a_folder_without_plans(tmp_path):
  from sepconv.conv import conv_geometry
  import jax.numpy as jnp
  x, k = jnp.zeros((1, 8, 8, 16)), jnp.zeros((3, 3, 16, 16))
  geom = conv_geometry(x, k)
  with policy.replaying({geom.key(): {"forward": "shift"}}):  # 16 channels per group
    with pytest.raises(ValueError, match=r"replayed plan \(='shift'\).*cannot run here"):
      policy.choose(geom, "forward")
  with pytest.raises(FileNotFoundError, match="no records.jsonl"):
    run(TINY, tmp_path / "o", work_dir=tmp_path / "w", replay=tmp_path / "nothing")

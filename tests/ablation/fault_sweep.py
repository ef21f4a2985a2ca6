"""A short training sweep for fault tests: the granularity runner's train jobs on a tiny CNN.

Driver processes import this module by name, so the tests put its folder (and the training
tests' folder, for the tiny model) on their path.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax

from sepconv.ablation.granularity import GranularityAblation, GranularityRunner
from sepconv.ablation.grid import Variant
from sepconv.ablation.jobs import Job
from sepconv.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from test_train_support import tiny_factory  # noqa: E402

# 2 variants x 2 seeds, 2 epochs of 22 steps, a checkpoint every 5 steps.
SWEEP = GranularityAblation(
    name="faults", variants=(Variant("standard"), Variant("dws")), seeds=(0, 1),
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"epochs": 2, "batch_size": 64, "checkpoint_every_steps": 5}})
METRICS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")


class TinyTrainRunner(GranularityRunner):
  """Only the train jobs, on the tiny CNN (one device), recording the final metrics."""
  exclusive_kinds = ()
  analysis_kinds = ()
  diverging_seeds: tuple[int, ...] = ()

  def jobs(self) -> list[Job]:
    return [j for j in super().jobs() if j.kind == "train"]

  def config(self, variant: Variant, seed: int):
    config = super().config(variant, seed)
    if seed in self.diverging_seeds:  # the parameters overflow within the first steps
      config = dataclasses.replace(config, base_lr=1e6)
    return config

  def _train(self, job: Job) -> dict:
    config = self.config(job.variant, job.seed)
    result = train(config, self.run_dir(job.variant, job.seed), dataset=self.dataset,
                   model_factory=tiny_factory, devices=jax.devices()[:1], progress=False)
    return {"config": self._config_fields(job.variant, config),
            "metrics": {k: result[k] for k in METRICS}}


class DivergingRunner(TinyTrainRunner):
  """Seed 1 of every variant diverges."""
  diverging_seeds = (1,)

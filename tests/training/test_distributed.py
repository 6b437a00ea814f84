"""MirroredStrategy over two logical CPU devices (isolated in a subprocess).

Checks that a 2-replica step equals the single-device step on the same global
batch (losses and weights, one and two optimizers, with clipping), that the
NaN guard works across replicas, and that checkpoints resume under the strategy.
"""
import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import dataclasses, json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfspeech.models import registry
from tfspeech.training import Trainer, fit

workdir = sys.argv[1]
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
default = tf.distribute.get_strategy()
report = {"replicas": mirrored.num_replicas_in_sync}


def make(model, strategy, **changes):
  task_class = registry.get(model)
  model_config = task_class.preset("tiny")
  if model == "toy":  # per-replica noise streams differ from single-device ones
    model_config = dataclasses.replace(model_config, noise_std=0.0)
  task = task_class(model_config)
  settings = dict(eval_every=0, summary_every=0)
  settings.update(changes)
  config = dataclasses.replace(task_class.default_train_config("tiny"), **settings)
  return task, config, Trainer(task, config, strategy)


def weights(trainer):
  return [v.numpy() for m in trainer.modules.values() for v in m.trainable_variables]


for model, precision in (("toy", "none"), ("toy_gan", "none"), ("toy", "mixed_float16")):
  runs = []
  for strategy in (default, mirrored):
    task, config, trainer = make(model, strategy, clip_norm=0.05, mixed_precision=precision)
    initial = weights(trainer)
    data = task.dataset("", "train", config)
    step = trainer.train_step_fn(data.element_spec)
    losses = []
    for batch in data.take(4):
      metrics = step(batch)
      losses.append({k: float(v) for k, v in metrics.items() if k.startswith(("losses/", "grad_norm/"))})
    final = weights(trainer)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, final))
    runs.append((losses, final, moved))
  (l1, w1, _), (l2, w2, moved) = runs
  report[model if precision == "none" else precision] = {
      "loss_diff": max(abs(a[k] - b[k]) for a, b in zip(l1, l2) for k in a),
      "weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2)),
      "weight_change": moved,
      "tags": sorted(l2[0]),
  }

# NaN guard across replicas: the poisoned batch is skipped on every replica.
task, config, trainer = make("toy", mirrored)
data = task.dataset("", "train", config)
step = trainer.train_step_fn(data.element_spec)
batches = list(data.take(2))
step(batches[0])
before = weights(trainer) + [v.numpy() for v in trainer.optimizers["main"].variables]
bad = dict(batches[1])
bad["inputs"] = tf.tensor_scatter_nd_update(bad["inputs"], [[7, 0, 0]], [np.nan])  # replica 1 only
metrics = step(bad)
after = weights(trainer) + [v.numpy() for v in trainer.optimizers["main"].variables]
report["nan_skipped"] = float(metrics["skipped/main"])
report["nan_unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, after))

# Checkpoint + resume under the strategy (iterator, RNG and optimizer slots).
def fit_toy(stop, directory):
  task, config, trainer = make("toy", mirrored, max_steps=6, checkpoint_every=3, log_every=1,
                               eval_every=3, summary_every=3, eval_batches=1)
  result = fit(trainer, task.dataset("", "train", config), directory, stop_at_step=stop,
               eval_dataset=task.dataset("", "eval", config), progress=False,
               handle_signals=False)
  report.setdefault("eval", []).append(result.eval_metrics)
  return result, weights(trainer)
fit_toy(3, workdir + "/split")
resumed, w_resumed = fit_toy(6, workdir + "/split")
_, w_straight = fit_toy(6, workdir + "/straight")
report["resume_start"] = resumed.start_step
report["resume_equal"] = all(np.array_equal(a, b) for a, b in zip(w_resumed, w_straight))
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("mirrored"))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, "-c", CHILD, workdir], capture_output=True, text=True,
                        env=env, timeout=300)
  lines = [l for l in done.stdout.splitlines() if l.startswith("REPORT ")]
  assert done.returncode == 0 and lines, done.stderr[-5000:]
  return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.parametrize("model,tolerance", [
    ("toy", 1e-5), ("toy_gan", 1e-5),
    ("mixed_float16", 2e-3),  # float16 activations; LossScaleOptimizer across replicas
])
def test_two_replicas_match_one_device(report, model, tolerance):
  assert report["replicas"] == 2
  result = report[model]
  assert result["weight_change"] > 10 * tolerance  # training moved the weights
  assert result["loss_diff"] < tolerance, result
  assert result["weight_diff"] < tolerance, result
  if model == "toy_gan":
    assert "grad_norm/discriminator" in result["tags"] and "grad_norm/generator" in result["tags"]


def test_nan_on_one_replica_skips_everywhere(report):
  assert report["nan_skipped"] == 1.0
  assert report["nan_unchanged"]


def test_resume_under_mirrored_strategy(report):
  assert report["resume_start"] == 3
  assert report["resume_equal"]


def test_eval_and_summaries_run_under_mirrored_strategy(report):
  assert all(set(metrics) == {"loss"} for metrics in report["eval"])

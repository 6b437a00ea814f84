"""NaN guard: non-finite steps are skipped and counted; non-finite weights are never saved."""
import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspeech.models.toy.regression import ToyTask
from tfspeech.training import (Checkpoints, NonFiniteWeightsError, Trainer,
                               TrainingDivergedError, fit)


def poisoned(dataset, bad_steps):
  """`dataset` with NaN in the inputs of the batches at 0-based positions `bad_steps`."""
  bad = tf.constant(sorted(bad_steps) or [-1], tf.int64)

  def poison(index, batch):
    is_bad = tf.reduce_any(tf.equal(bad, index))
    batch = dict(batch)
    batch["inputs"] = tf.where(is_bad, batch["inputs"] * np.nan, batch["inputs"])
    return batch
  return dataset.enumerate().map(poison)


def toy_trainer(task_class=ToyTask, **changes):
  task = task_class(ToyTask.preset("tiny"))
  config = dataclasses.replace(ToyTask.default_train_config("tiny"), eval_every=0,
                               summary_every=0, **changes)
  return task, config, Trainer(task, config)


def snapshot(trainer):
  values = [v.numpy() for m in trainer.modules.values() for v in m.variables]
  values += [v.numpy() for o in trainer.optimizers.values() for v in o.variables]
  return values


@pytest.mark.parametrize("mixed_precision", ["none", "mixed_float16"])
def test_nan_batch_skips_update_and_leaves_optimizer_untouched(mixed_precision):
  task, config, trainer = toy_trainer(mixed_precision=mixed_precision, clip_norm=1.0)
  batches = list(poisoned(task.dataset("", "train", config), {1}).take(3))
  step = trainer.train_step_fn(task.dataset("", "train", config).element_spec)
  first = step(batches[0])
  assert float(first["skipped/main"]) == 0.0
  before = snapshot(trainer)
  optimizer = trainer.optimizers["main"]
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  iterations = int(inner.iterations.numpy())

  bad = step(batches[1])
  assert not np.isfinite(float(bad["losses/loss"]))
  assert float(bad["skipped/main"]) == 1.0
  assert int(bad["skipped_steps"]) == 1 and int(bad["consecutive_skips"]) == 1
  assert int(trainer.step.numpy()) == 2  # the batch was consumed
  assert int(inner.iterations.numpy()) == iterations
  after = snapshot(trainer)
  if mixed_precision == "mixed_float16":
    # The loss scale halves (that is its job); nothing else moves.
    scale_before, scale_after = float(first["loss_scale/main"]), float(bad["loss_scale/main"])
    assert scale_after == scale_before / 2
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b)]
    assert len(changed) == 2  # step_counter and dynamic_scale
  else:
    for a, b in zip(before, after):
      np.testing.assert_array_equal(a, b)

  good = step(batches[2])
  assert float(good["skipped/main"]) == 0.0 and int(good["consecutive_skips"]) == 0
  assert int(good["skipped_steps"]) == 1
  assert int(inner.iterations.numpy()) == iterations + 1
  assert all(np.all(np.isfinite(v)) for v in snapshot(trainer))


def test_consecutive_skips_stop_training(tmp_path):
  task, config, trainer = toy_trainer(max_consecutive_skips=3, log_every=1)
  data = poisoned(task.dataset("", "train", config), set(range(2, 100)))
  with pytest.raises(TrainingDivergedError, match="3 consecutive steps up to step 5"):
    fit(trainer, data, str(tmp_path), progress=False, handle_signals=False)
  assert int(trainer.skipped_steps.numpy()) == 3


class BatchNormToy(ToyTask):
  """Toy with BatchNormalization: a NaN batch poisons its moving statistics in the
  forward pass even though the gradient update is skipped."""

  def build(self):
    inputs = keras.Input((None, self.config.in_channels))
    x = keras.layers.BatchNormalization(momentum=0.5)(inputs)
    outputs = keras.layers.Dense(self.config.out_channels)(x)
    return {"net": keras.Model(inputs, outputs)}


def test_nonfinite_weights_are_never_checkpointed(tmp_path, caplog):
  task, config, trainer = toy_trainer(BatchNormToy, checkpoint_every=2, log_every=1)
  data = poisoned(task.dataset("", "train", config), {2})
  workdir = str(tmp_path)
  with pytest.raises(NonFiniteWeightsError, match="NOT saving a checkpoint at step 4") as error:
    fit(trainer, data, workdir, progress=False, handle_signals=False)
  assert "moving_mean" in str(error.value) and "ckpt-2" in str(error.value)
  assert int(trainer.skipped_steps.numpy()) == 1
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-2")
  assert not tf.io.gfile.glob(os.path.join(workdir, "checkpoints", "ckpt-4*"))
  assert any("non-finite" in r.getMessage() for r in caplog.records)


def test_direct_save_refuses_nan_weight(tmp_path):
  _, _, trainer = toy_trainer()
  checkpoints = Checkpoints(trainer, str(tmp_path))
  checkpoints.save(1)
  kernel = trainer.modules["net"].trainable_variables[0]
  kernel.assign(tf.fill(kernel.shape, np.inf))
  with pytest.raises(NonFiniteWeightsError, match="kernel"):
    checkpoints.save(2)
  assert checkpoints.latest.endswith("ckpt-1")


def checkpoint_steps(workdir):
  return sorted(int(p.rsplit("-", 1)[1].split(".")[0])
                for p in tf.io.gfile.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index")))


def test_finite_blow_up_is_not_checkpointed_during_the_skip_streak(tmp_path):
  # Step 5's update is finite but throws the weights to ~1e25; every later loss is then
  # inf and skipped. The weights stay finite, so only the streak can keep them out of a
  # checkpoint, and the stop message must name the checkpoint from before the streak.
  workdir = str(tmp_path)
  settings = dict(checkpoint_every=2, log_every=1, max_consecutive_skips=4, keep_checkpoints=10)
  task, config, trainer = toy_trainer(**settings)
  fit(trainer, task.dataset("", "train", config), workdir, stop_at_step=4, progress=False,
      handle_signals=False)
  task, config, trainer = toy_trainer(learning_rate=1e25, **settings)
  with pytest.raises(TrainingDivergedError, match="4 consecutive steps up to step 9") as error:
    fit(trainer, task.dataset("", "train", config), workdir, progress=False,
        handle_signals=False)
  assert int(trainer.skipped_steps.numpy()) == 4
  weights = [np.abs(v.numpy()).max() for v in trainer.modules["net"].weights]
  assert all(np.isfinite(weights)) and max(weights) > 1e20  # finite, but blown up
  assert checkpoint_steps(workdir) == [2, 4]  # nothing at 6 or 8, inside the streak
  assert "before them is " + os.path.join(workdir, "checkpoints", "ckpt-4;") in str(error.value)


def test_postponed_checkpoint_and_stop_during_a_streak(tmp_path, caplog):
  workdir = str(tmp_path)
  task, config, trainer = toy_trainer(checkpoint_every=2, log_every=1, keep_checkpoints=10)
  data = poisoned(task.dataset("", "train", config), {3, 6})  # steps 4 and 7 are skipped
  # Stopping on a skipped step keeps the last good checkpoint instead of saving.
  result = fit(trainer, data, workdir, stop_at_step=4, progress=False, handle_signals=False)
  assert result.final_step == 4 and result.checkpoint.endswith("ckpt-2")
  assert checkpoint_steps(workdir) == [2]
  assert any("not saving a checkpoint at step 4 (stopping)" in r.getMessage()
             for r in caplog.records)
  # The checkpoint due at step 4 (resumed from 2, so step 4 is skipped again) is written at
  # step 5, the next applied one; the streak at step 7 postpones nothing.
  task, config, trainer = toy_trainer(checkpoint_every=2, log_every=1, keep_checkpoints=10,
                                      max_steps=8)
  data = poisoned(task.dataset("", "train", config), {3, 6})
  result = fit(trainer, data, workdir, progress=False, handle_signals=False)
  assert result.final_step == 8 and int(trainer.skipped_steps.numpy()) == 2
  assert checkpoint_steps(workdir) == [2, 5, 6, 8]

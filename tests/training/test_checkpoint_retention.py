"""Checkpoint retention for long runs: the newest K plus every N-th step kept for good, a kill at
any moment of a save loses at most one checkpoint interval, and weights-only release exports."""
import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint as checkpoint_lib
from tensorflow.python.checkpoint import checkpoint_management

from tfspeech import training
from tfspeech.models import registry
from tfspeech.training import Trainer, checkpoints, fit


def run_fit(workdir, stop, **train_changes):
  task_class = registry.get("toy")
  task = task_class(task_class.preset("tiny"))
  settings = dict(max_steps=stop, log_every=1, checkpoint_every=1, eval_every=0,
                  summary_every=0)
  settings.update(train_changes)
  config = dataclasses.replace(task_class.default_train_config("tiny"), **settings)
  trainer = Trainer(task, config)
  result = fit(trainer, task.dataset("", "train", config), workdir, stop_at_step=stop,
               progress=False, handle_signals=False)
  return trainer, result


def names(pattern):
  return sorted(os.path.basename(p) for p in glob.glob(pattern))


def saved_step(prefix):
  return int(tf.train.load_checkpoint(prefix).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def test_keeps_the_newest_k_and_every_nth_across_a_resume(tmp_path):
  workdir = str(tmp_path)
  run_fit(workdir, 7, keep_checkpoints=2, keep_every_steps=4)
  run_fit(workdir, 13, keep_checkpoints=2, keep_every_steps=4)  # resumed at 7
  assert names(f"{workdir}/checkpoints/*.index") == ["ckpt-12.index", "ckpt-13.index"]
  kept = checkpoints.kept_checkpoints(workdir)
  assert [os.path.basename(p) for p in kept] == ["ckpt-4", "ckpt-8", "ckpt-12"]
  assert [saved_step(p) for p in kept] == [4, 8, 12]  # complete, readable checkpoints
  # Kept while also among the newest: the same files (hard links), no second copy on disk.
  assert os.stat(f"{workdir}/kept/ckpt-12.index").st_ino == os.stat(
      f"{workdir}/checkpoints/ckpt-12.index").st_ino


def test_keep_every_steps_must_be_a_multiple_of_checkpoint_every():
  task_class = registry.get("toy")
  with pytest.raises(ValueError, match="keep_every_steps=5 must be a positive multiple of "
                                       "checkpoint_every=2"):
    dataclasses.replace(task_class.default_train_config("tiny"), checkpoint_every=2,
                        keep_every_steps=5)


class Killed(BaseException):
  """A kill: not an Exception, so nothing on the way out handles it or saves."""


class KillSwitch:
  """Counts the file-system steps of saving (the checkpoint write, the state-file updates, the
  deletion of old checkpoints, each kept file's rename) and raises `Killed` at the armed one."""

  def __init__(self, monkeypatch):
    self.calls, self.armed, self.killed_at = 0, None, None
    self.write_calls = {}  # checkpoint prefix -> the call that started writing it
    for owner, name in ((checkpoint_lib.Checkpoint, "_write"),
                        (checkpoint_management.CheckpointManager, "_record_state"),
                        (checkpoint_management.CheckpointManager, "_sweep")):
      monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name), name))
    monkeypatch.setattr(checkpoints.os, "replace", self._wrap(os.replace, "replace"))

  def _wrap(self, function, name):
    def wrapped(*args, **kwargs):
      self.calls += 1
      if name == "_write":
        self.write_calls[os.path.basename(args[1])] = self.calls
      if self.calls == self.armed:
        self.killed_at = name
        if name == "_write":  # a kill inside the write leaves partial files behind
          prefix = args[1]
          os.makedirs(os.path.dirname(prefix), exist_ok=True)
          with open(prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"partial")
        raise Killed(name)
      return function(*args, **kwargs)
    return wrapped


# Saves at 2 and 4; 4 is also kept for good: every kind of file-system step of a save.
INTERVAL, STOP = 2, 4


def test_a_kill_at_any_moment_of_saving_loses_at_most_one_interval(tmp_path, monkeypatch,
                                                                   fast_graphs):
  switch = KillSwitch(monkeypatch)
  settings = dict(checkpoint_every=INTERVAL, keep_checkpoints=1, keep_every_steps=2 * INTERVAL)
  run_fit(str(tmp_path / "count"), STOP, **settings)
  # Every moment of the last save, which has every kind of step: write, record state, sweep
  # (deleting ckpt-2: K = 1), record state, and the kept files' renames; and the first one.
  first = switch.write_calls["ckpt-4"]
  moments = [1] + list(range(first, switch.calls + 1))
  assert len(moments) >= 1 + 4 + 2
  for moment in moments:
    workdir = str(tmp_path / f"kill{moment}")
    switch.calls, switch.armed = 0, moment
    trainer = None
    with pytest.raises(Killed):
      trainer, _ = run_fit(workdir, STOP, **settings)
    killed_step = int(_live_step(workdir))
    switch.armed = None
    # The run resumes (no error from half-written files) from a checkpoint at most one
    # interval before the step whose save was cut, and finishes.
    _, result = run_fit(workdir, STOP, **settings)
    assert result.final_step == STOP, switch.killed_at
    assert result.start_step >= killed_step - INTERVAL, (moment, switch.killed_at)
    for prefix in checkpoints.kept_checkpoints(workdir):
      assert saved_step(prefix) == checkpoints.checkpoint_step(prefix), prefix
    assert [checkpoints.checkpoint_step(p)
            for p in checkpoints.kept_checkpoints(workdir)] == [4], (moment, switch.killed_at)
    del trainer


def _live_step(workdir):
  """The step a killed run had reached: the newest checkpoint file of any state (complete or
  not) names the save that was in progress; 0 when none was written."""
  steps = [checkpoints.checkpoint_step(p.split(".")[0])
           for p in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*"))]
  return max(steps, default=0)


def test_write_weights_is_a_release_checkpoint_load_run_reads(tmp_path):
  workdir = str(tmp_path / "run")
  training.train("toy", "tiny", workdir=workdir, overrides={"max_steps": 3, "eval_every": 0,
                                                          "summary_every": 0},
                 progress=False, handle_signals=False)
  run = training.load_run(workdir)
  path = checkpoints.write_weights(run.modules, str(tmp_path / "release" / "toy"), run.step)
  keys = {name for name, _ in tf.train.list_variables(path)}
  assert not any(k.startswith(("optimizers/", "rng/")) for k in keys)
  assert any(k.startswith("modules/") for k in keys)
  full = sum(os.path.getsize(p) for p in glob.glob(run.checkpoint + ".*"))
  weights = sum(os.path.getsize(p) for p in glob.glob(path + ".*"))
  assert weights < full
  again = training.load_run(workdir, checkpoint=path)
  assert again.step == run.step == 3
  assert sorted(again.modules) == sorted(run.modules)
  for name, module in run.modules.items():
    for a, b in zip(module.weights, again.modules[name].weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())

"""Resume exactness: 2N uninterrupted steps == N steps + restart + N steps."""
import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.models import registry
from tfspeech.training import Trainer, fit

N = 6


def read_scalars(logdir):
  """{tag: {step: value}} from every event file in `logdir`."""
  scalars = {}
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def run_fit(model, workdir, stop, **train_changes):
  task_class = registry.get(model)
  task = task_class(task_class.preset("tiny"))
  settings = dict(max_steps=2 * N, log_every=1, checkpoint_every=N, eval_every=0,
                  summary_every=0)
  settings.update(train_changes)
  config = dataclasses.replace(task_class.default_train_config("tiny"), **settings)
  trainer = Trainer(task, config)
  result = fit(trainer, task.dataset("", "train", config), workdir, stop_at_step=stop,
               progress=False, handle_signals=False)
  return trainer, result


def state(trainer):
  values = {f"module/{n}/{v.path}": v.numpy() for n, m in trainer.modules.items()
            for v in m.variables}
  for name, opt in trainer.optimizers.items():
    for v in opt.variables:
      values[f"optimizer/{name}/{v.path}"] = v.numpy()
  values["rng"] = trainer.rng.state.numpy()
  return values


@pytest.mark.parametrize("model,extra", [
    ("toy", {}),
    ("toy_gan", {"clip_norm": 0.5}),
    ("toy", {"mixed_precision": "mixed_float16"}),  # loss scale state restored too
])
def test_resume_matches_uninterrupted_run(tmp_path, model, extra):
  straight, result = run_fit(model, str(tmp_path / "straight"), 2 * N, **extra)
  assert result.final_step == 2 * N

  first, half = run_fit(model, str(tmp_path / "split"), N, **extra)
  assert (half.start_step, half.final_step) == (0, N)
  resumed, rest = run_fit(model, str(tmp_path / "split"), 2 * N, **extra)
  assert (rest.start_step, rest.final_step) == (N, 2 * N)

  # The restarted trainer really started from the restored state, not from scratch.
  assert int(resumed.step.numpy()) == 2 * N
  for name, opt in resumed.optimizers.items():
    assert int(opt.iterations.numpy()) == 2 * N, name

  want, got = state(straight), state(resumed)
  assert sorted(want) == sorted(got)
  assert len([k for k in want if k.startswith("optimizer/")]) > 4
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)

  curve_a = read_scalars(str(tmp_path / "straight" / "train"))
  curve_b = read_scalars(str(tmp_path / "split" / "train"))
  loss_tags = [t for t in curve_a if t.startswith("losses/")]
  assert loss_tags
  for tag in loss_tags + [t for t in curve_a if t.startswith("learning_rate/")]:
    assert sorted(curve_b[tag]) == list(range(1, 2 * N + 1)), tag
    assert curve_b[tag] == curve_a[tag], tag


def test_retention_keeps_newest_checkpoints(tmp_path):
  run_fit("toy", str(tmp_path), 5, checkpoint_every=1, keep_checkpoints=2)
  kept = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "checkpoints" / "*.index")))
  assert kept == ["ckpt-4.index", "ckpt-5.index"]


def test_allowed_learning_rate_change_takes_effect_on_resume(tmp_path):
  # A constant rate lives in an optimizer variable that the restore brings back;
  # the resumed run must use the newly allowed rate, not the checkpointed one.
  from tfspeech import training
  workdir = str(tmp_path / "run")
  common = dict(log_every=1, checkpoint_every=5, eval_every=0, summary_every=0)
  training.train("toy", "tiny", workdir=workdir, overrides=dict(common, max_steps=5,
                                                                 learning_rate=0.01),
                 progress=False, handle_signals=False)
  training.train("toy", workdir=workdir, overrides={"max_steps": 8, "learning_rate": 0.005},
                 allow_changes=("max_steps", "learning_rate"), progress=False,
                 handle_signals=False)
  rates = read_scalars(os.path.join(workdir, "train"))["learning_rate/main"]
  assert rates[5] == pytest.approx(0.01) and rates[6] == pytest.approx(0.005)

"""The "diffwave" task: tiny trains on the bundled corpus with finite, falling loss, its traced
steps are pure TF, a trained run serves as a vocoder, and a corpus that does not fit is refused."""
import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.models import serving
from tfspeech.models.diffwave.diffwave_task import DiffWaveTask
from tfspeech.testing import assert_no_python_ops, grappler_disabled
from tfspeech.training import Trainer

STEPS = 40


def read_scalars(logdir):
  scalars = {}
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "scalars":
          scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def summary_tags(logdir):
  tags = set()
  for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


@pytest.fixture(scope="module")
def trained(tiny_prepared, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("diffwave_run"))
  # Grappler would spend much of this fixture optimising steps that run a few dozen times.
  with grappler_disabled():
    result = training.train("diffwave", "tiny", data_dir=tiny_prepared, workdir=workdir,
                            overrides={"max_steps": STEPS, "log_every": 1, "eval_every": STEPS,
                                       "summary_every": STEPS, "checkpoint_every": STEPS},
                            progress=False, handle_signals=False)
  return workdir, result


def test_tiny_trains_with_finite_falling_loss(trained):
  workdir, result = trained
  assert result.final_step == STEPS and result.skipped_steps == 0
  losses = read_scalars(os.path.join(workdir, "train"))["losses/loss"]
  values = np.array([losses[s] for s in sorted(losses)])
  assert len(values) == STEPS and np.all(np.isfinite(values))
  # Zero output kernel at init: the first losses are E|N(0, 1)| ~ 0.8; learning the noise
  # of the noisiest steps (x_t ~ eps) brings the mean down quickly.
  assert values[:5].mean() > 0.6 and values[-10:].mean() < 0.8 * values[:5].mean()
  assert np.isfinite(result.eval_metrics["loss"])
  tags = summary_tags(os.path.join(workdir, "eval"))
  assert {"audio/real", "audio/generated", "images/mel_input", "losses/loss"} <= tags


def test_trained_run_serves_as_a_vocoder(trained):
  workdir, _ = trained
  run = training.load_run(workdir)
  vocoder = serving.build_serving(run.task, run.modules, run.config.data_info)
  assert vocoder.sample_rate == run.config.data_info["sample_rate"]
  assert vocoder.mel_config is not None
  mel = np.full((2, 4, 80), vocoder.mel_pad_value, np.float32)
  noise = np.random.default_rng(0).normal(size=(2, 4 * 256, 1)).astype(np.float32)
  out = tf.function(lambda m, l, n: vocoder.in_process().vocode(m, l, n, steps=6))(
      mel, tf.constant([4, 2]), noise)
  audio = out["audio"].numpy()
  assert audio.shape == (2, 1024) and np.all(np.isfinite(audio))
  assert np.all(audio[1, 512:] == 0) and np.abs(audio[1, :512]).max() > 0


def test_traced_train_and_eval_steps_have_no_python_ops(tiny_prepared):
  task = DiffWaveTask(DiffWaveTask.preset("tiny"))
  config = dataclasses.replace(DiffWaveTask.default_train_config("tiny"), eval_every=0)
  trainer = Trainer(task, config)
  train_data = task.dataset(tiny_prepared, "train", config)
  concrete = trainer.train_step_fn(train_data.element_spec).get_concrete_function()
  assert_no_python_ops(concrete)
  assert "losses/loss" in concrete.structured_outputs
  eval_data = task.dataset(tiny_prepared, "eval", config)
  assert_no_python_ops(trainer.eval_step_fn(eval_data.element_spec).get_concrete_function())


def test_corpus_with_another_hop_is_refused(tiny_prepared):
  task = DiffWaveTask(DiffWaveTask.preset("tiny").replace(upsample_stride=8))
  with pytest.raises(ValueError, match=r"hop length 256 .* upsample_stride\*\*2=64"):
    task.data_info(tiny_prepared)
  with pytest.raises(ValueError, match="needs prepared data: pass --data"):
    DiffWaveTask(DiffWaveTask.preset("tiny")).data_info("")

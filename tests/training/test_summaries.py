"""TensorBoard output of a short run, the matrix → image helpers, the progress bar."""
import dataclasses
import glob
import io
import os

import numpy as np
import tensorflow as tf

from tfspeech.models.toy.regression import ToyTask
from tfspeech.training import Trainer, fit, summaries
from tfspeech.training.progress import Progress


def tags_in(logdir):
  tags = {}
  for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, set()).add(event.step)
  return tags


def test_event_files_hold_expected_tags(tmp_path):
  task = ToyTask(ToyTask.preset("tiny"))
  config = dataclasses.replace(ToyTask.default_train_config("tiny"), max_steps=4, log_every=2,
                               eval_every=2, eval_batches=1, summary_every=4,
                               checkpoint_every=4, keep_best="loss")
  trainer = Trainer(task, config)
  workdir = str(tmp_path)
  result = fit(trainer, task.dataset("", "train", config), workdir,
               eval_dataset=task.dataset("", "eval", config), progress=False,
               handle_signals=False)
  train_tags = tags_in(os.path.join(workdir, "train"))
  for tag in ("losses/loss", "learning_rate/main", "grad_norm/main", "skipped/main",
              "skipped_steps", "throughput/steps_per_sec", "throughput/items_per_sec"):
    assert train_tags.get(tag) == {2, 4}, (tag, sorted(train_tags))
  eval_tags = tags_in(os.path.join(workdir, "eval"))
  assert eval_tags["losses/loss"] == {2, 4}
  for tag in ("images/prediction", "images/target", "audio/prediction"):
    assert eval_tags[tag] == {4}, (tag, sorted(eval_tags))
  assert set(result.eval_metrics) == {"loss"} and np.isfinite(result.eval_metrics["loss"])
  assert tf.train.latest_checkpoint(os.path.join(workdir, "best")) is not None
  assert np.isfinite(float(trainer.best_metric.numpy()))


def test_matrix_image_orientation_and_colormap():
  ramp = tf.reshape(tf.range(12, dtype=tf.float32), [3, 4])  # rows 0..2
  image = summaries.matrix_image(ramp).numpy()
  assert image.shape == (1, 3, 4, 3) and image.dtype == np.float32
  viridis = np.array(summaries.COLORMAPS["viridis"], np.float32)
  np.testing.assert_allclose(image[0, -1, 0], viridis[0], atol=1e-6)  # row 0 at the bottom
  np.testing.assert_allclose(image[0, 0, -1], viridis[-1], atol=1e-6)
  middle = summaries.apply_colormap(tf.constant(0.5)).numpy()
  np.testing.assert_allclose(middle, viridis[4], atol=1e-6)
  quarter_way = summaries.apply_colormap(tf.constant(1 / 16)).numpy()
  np.testing.assert_allclose(quarter_way, (viridis[0] + viridis[1]) / 2, atol=1e-6)


def test_mel_and_alignment_images():
  mel = np.zeros([5, 3], np.float32)  # [frames, mels]
  mel[:, 0] = 1.0  # lowest mel bin bright
  mel[2, 1] = np.nan
  image = summaries.mel_image(mel).numpy()
  assert image.shape == (1, 3, 5, 3)  # [k, mels, frames, rgb]
  bright = np.array(summaries.COLORMAPS["viridis"][-1], np.float32)
  np.testing.assert_allclose(image[0, -1], np.tile(bright, [5, 1]), atol=1e-6)
  assert np.all(np.isfinite(image))
  alignment = np.eye(4, 6, dtype=np.float32)[None].repeat(2, axis=0)  # [k, text, mel]
  image = summaries.alignment_image(alignment).numpy()
  assert image.shape == (2, 4, 6, 3)
  np.testing.assert_allclose(image[1, -1, 0], bright, atol=1e-6)  # token 0 at the bottom


class FakeTTY(io.StringIO):
  def isatty(self):
    return True


def test_progress_bar_only_on_tty():
  quiet = io.StringIO()
  bar = Progress(0, 10, stream=quiet)
  bar.update()
  bar.set_metrics({"loss": 1.5})
  bar.close()
  assert not bar.enabled and quiet.getvalue() == ""
  tty = FakeTTY()
  bar = Progress(3, 10, stream=tty)
  bar.update(2)
  bar.set_metrics({"loss": 0.25})
  bar.close()
  assert "5/10" in tty.getvalue() and "loss=0.25" in tty.getvalue()
  off = FakeTTY()
  Progress(0, 10, enabled=False, stream=off).update()
  assert off.getvalue() == ""

"""The "fastpitch" task: corpus checks, a short real training run, eval, summaries, serving."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tfspeech import training
from tfspeech.models import registry
from tfspeech.models import serving as serving_lib
from tfspeech.models.fastpitch import fastpitch_task
from tfspeech.testing import assert_no_python_ops
from tfspeech.training import trainer as trainer_lib


def _logged(workdir, tag):
  """step → value of a scalar the loop wrote to WORKDIR/train."""
  values = {}
  for path in glob.glob(os.path.join(workdir, "train", "events*")):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return dict(sorted(values.items()))


def test_corpus_without_pitch_fails_at_start_with_the_fix(tiny_prepared, tmp_path):
  task = fastpitch_task.FastPitchTask(fastpitch_task.PRESETS["tiny"])
  with pytest.raises(ValueError, match=r"dataset\.json.*no pitch.*tfspeech-prepare --pitch"):
    task.data_info(tiny_prepared)
  # Through the public entry point: refused before anything is built or traced.
  with pytest.raises(ValueError, match="tfspeech-prepare --pitch"):
    training.train("fastpitch", "tiny", data_dir=tiny_prepared, workdir=str(tmp_path / "run"),
                   overrides={"max_steps": 1}, progress=False, handle_signals=False)


def test_symbol_table_mismatch_names_the_override(tiny_prepared_pitch):
  task = fastpitch_task.FastPitchTask(fastpitch_task.PRESETS["ljspeech"])
  with pytest.raises(ValueError, match=r"n_symbols=148.*--override=n_symbols=64"):
    task.data_info(tiny_prepared_pitch)


def test_training_lowers_losses_in_a_pure_graph(tiny_fastpitch_run):
  result = tiny_fastpitch_run["result"]
  assert (result.start_step, result.final_step) == (0, 30)
  assert set(result.losses) == set(fastpitch_task.LOSS_NAMES)
  assert all(np.isfinite(v) for v in result.losses.values()), result.losses
  assert_no_python_ops(tiny_fastpitch_run["train_fn"].get_concrete_function())
  workdir = tiny_fastpitch_run["workdir"]
  # The binarization loss is -log of the soft alignment on the hard path: its fall is the
  # alignment sharpening. (The CTC loss needs more steps than this to fall steadily.)
  for tag in ("losses/loss", "losses/mel_loss", "losses/duration_loss",
              "losses/binarization_loss"):
    curve = list(_logged(workdir, tag).values())
    assert len(curve) == 6, curve  # 30 steps logged every 5.
    assert np.mean(curve[-2:]) < 0.9 * np.mean(curve[:2]), f"{tag} did not fall: {curve}"
  # The alignment measures (logged, not trained on) from the same traced step.
  diagonality = list(_logged(workdir, "losses/alignment_diagonality").values())
  sharpness = list(_logged(workdir, "losses/alignment_sharpness").values())
  assert len(diagonality) == len(sharpness) == 6
  assert all(0 < v <= 1 for v in diagonality + sharpness), (diagonality, sharpness)
  # The beta-binomial prior keeps the soft alignment near the diagonal from step 0 (~0.75 here;
  # a uniform one scores ~0.2), and the soft attention gathers onto the MAS path (~0.21 →
  # ~0.35 here), as the falling binarization loss says.
  assert min(diagonality) > 0.5, diagonality
  assert np.mean(sharpness[-2:]) > 1.2 * np.mean(sharpness[:2]), sharpness


def test_eval_step_and_summaries(tiny_prepared_pitch, fast_graphs):
  task = fastpitch_task.FastPitchTask(fastpitch_task.PRESETS["tiny"])
  config = training.TrainConfig(batch_size=2)
  trainer = trainer_lib.Trainer(task, config)
  info = task.data_info(tiny_prepared_pitch)
  assert info["pitch_stats"]["std"] > 0 and 60 < info["pitch_stats"]["mean"] < 400
  dataset = task.dataset(tiny_prepared_pitch, "eval", config)
  batch = next(iter(dataset))
  assert batch["pitch"].shape == batch["mel"].shape[:2]
  # Energy targets as the reference's: log(1 + mean over each token's frames of the log-mel
  # frame's L2 norm), not the records' STFT-magnitude energy (which the task does not read).
  assert "energy" not in batch
  _, out = task._forward(batch, training=False)  # pylint: disable=protected-access
  mel, durations = batch["mel"].numpy(), out["durations"].numpy()
  for item in range(mel.shape[0]):
    norms = np.linalg.norm(mel[item], axis=-1)
    ends = np.cumsum(durations[item])
    for token, (start, end) in enumerate(zip(ends - durations[item], ends)):
      expected = np.log1p(norms[start:end].mean()) if end > start else 0.0
      np.testing.assert_allclose(out["energy_target"][item, token], expected, rtol=1e-5,
                                 atol=1e-5, err_msg=(item, token))
  eval_fn = trainer.eval_step_fn(dataset.element_spec)
  assert_no_python_ops(eval_fn.get_concrete_function())
  metrics = {k: float(v) for k, v in eval_fn(batch).items()}
  assert set(metrics) == set(fastpitch_task.LOSS_NAMES)
  assert all(np.isfinite(v) and v >= 0 for v in metrics.values()), metrics
  assert metrics["mel_loss"] > 0 and metrics["attn_loss"] > 0

  outputs = tf.function(task.summaries)(batch)
  assert set(outputs) == {"images/alignment_soft", "images/alignment_hard",
                          "images/pitch_contour", "images/teacher_forced_mel",
                          "images/predicted_mel", "images/target_mel",
                          "audio/predicted_griffin_lim"}
  tokens, frames = int(batch["text_lengths"][0]), int(batch["mel_lengths"][0])
  assert outputs["images/alignment_hard"].shape == (1, tokens, frames, 3)
  assert outputs["images/pitch_contour"].shape == (1, 64, tokens, 3)
  assert outputs["images/target_mel"].shape == (1, 80, frames, 3)
  assert np.isfinite(outputs["audio/predicted_griffin_lim"].numpy()).all()


def test_trained_run_serves_batched_synthesis(tiny_fastpitch_run):
  run = training.load_run(tiny_fastpitch_run["workdir"])
  acoustic = serving_lib.build_serving(run.task, run.modules, run.config.data_info)
  assert isinstance(run.task, registry.get("fastpitch"))
  ids = tf.constant([[20, 21, 22, 23, 24, 0, 0], [30, 31, 32, 33, 34, 35, 36]])
  lengths = tf.constant([5, 7])
  out = tf.function(acoustic.synthesize)(ids, lengths, None, pace=1.0)
  np.testing.assert_array_equal(out["durations"].numpy().sum(1), out["mel_lengths"].numpy())
  alone = acoustic.synthesize(ids[:1, :5], lengths[:1], None)
  frames = int(alone["mel_lengths"][0])
  np.testing.assert_allclose(alone["mel"].numpy()[0], out["mel"].numpy()[0, :frames],
                             atol=1e-4)

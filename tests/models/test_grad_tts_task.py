"""The "grad_tts" task: vocabulary checks, input pipeline, a short real training run, resume."""

import glob
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tfspeech import text as text_lib
from tfspeech import training
from tfspeech.data import CorpusInfo, make_dataset
from tfspeech.models import registry
from tfspeech.models.grad_tts import grad_tts_task
from tfspeech.testing import assert_no_python_ops
from tfspeech.training import trainer as trainer_lib


@pytest.fixture(scope="module")
def prepared(tiny_prepared):
  """The bundled corpus prepared with the tfspeech-prepare defaults (english_characters):
  the session's copy, which these tests only read."""
  return tiny_prepared


def test_registered_with_presets():
  cls = registry.get("grad_tts")
  assert cls is grad_tts_task.GradTTSTask
  assert set(cls.presets) == {"tiny", "ljspeech", "libritts"}
  # Paper presets keep the reference vocabulary: english_arpabet + blank.
  assert cls.preset("ljspeech").n_vocab == len(text_lib.english_arpabet()) + 1 == 149
  assert cls.preset("tiny").n_vocab == len(text_lib.english_characters()) + 1
  assert cls.default_train_config("ljspeech").learning_rate == 1e-4
  # One preset table and one config class: the model's `tiny` is the task's `tiny`.
  from tfspeech.models import grad_tts
  assert cls.presets is grad_tts.grad_tts_presets.PRESETS
  assert cls.config_class is grad_tts.GradTTSConfig is grad_tts.GradTTSTaskConfig
  for name in cls.presets:
    assert grad_tts.preset(name) == getattr(grad_tts, name)() == cls.preset(name)
  assert grad_tts.tiny(add_blank=False).add_blank is False


def test_vocabulary_mismatch_names_the_fix(prepared):
  task = grad_tts_task.GradTTSTask(grad_tts_task.PRESETS["ljspeech"])
  with pytest.raises(ValueError) as error:
    task.data_info(prepared)
  message = str(error.value)
  assert "n_vocab=149" in message and "english_characters" in message
  assert "--override=n_vocab=65" in message
  assert "--symbols=english_arpabet" in message
  no_blank = grad_tts_task.PRESETS["tiny"].replace(add_blank=False)
  with pytest.raises(ValueError, match="--override=n_vocab=64"):
    grad_tts_task.GradTTSTask(no_blank).data_info(prepared)


def test_corpus_facts_are_read_and_recorded_through_corpus_info(prepared, tmp_path):
  task = grad_tts_task.GradTTSTask(grad_tts_task.PRESETS["tiny"])
  facts = task.data_info(prepared)
  raw = json.loads((pathlib.Path(prepared) / "dataset.json").read_text())
  for key in ("sample_rate", "hop_length", "n_mels", "mel_config", "symbols", "counts"):
    assert facts[key] == raw[key], key
  # The run records how its pipeline feeds the model: what inference reads back.
  recorded = CorpusInfo.from_dict(facts, require=("symbols", "mel_config"))
  assert recorded.carries_blanks and recorded.blank_id == 64
  assert recorded.symbols == CorpusInfo.load(prepared).symbols
  # A dataset.json without the symbol table is refused naming the file.
  broken = tmp_path / "broken"
  broken.mkdir()
  del raw["symbols"]
  (broken / "dataset.json").write_text(json.dumps(raw))
  with pytest.raises(ValueError, match=r"broken/dataset.json: does not record \['symbols'\]"):
    grad_tts_task.GradTTSTask(grad_tts_task.PRESETS["tiny"]).data_info(str(broken))


def test_vocabulary_plan_for_tables_with_and_without_blank():
  plain = text_lib.english_characters().to_dict()
  assert grad_tts_task.vocabulary_plan(plain, add_blank=True)["blank_id"] == 64
  # A SymbolTable (CorpusInfo.symbols) plans the same as its dataset.json dict.
  assert grad_tts_task.vocabulary_plan(text_lib.english_characters(), True) == \
      grad_tts_task.vocabulary_plan(plain, True)
  assert grad_tts_task.vocabulary_plan(plain, add_blank=False)["n_vocab"] == 64
  # A table that already has a blank: the records hold blanks, nothing is added.
  with_blank = grad_tts_task.vocabulary_plan(text_lib.english_arpabet(True).to_dict(), True)
  assert with_blank["blank_id"] is None and with_blank["n_vocab"] == 149
  assert with_blank["add_blank"]


def test_intersperse_blank_matches_python_intersperse():
  rows = [[5, 6, 7], [9], [3, 4]]
  ids = tf.constant([r + [0] * (3 - len(r)) for r in rows])
  lengths = tf.constant([len(r) for r in rows])
  traced = tf.function(lambda i, n: text_lib.intersperse_blank(i, n, 64, 0),
                       input_signature=[tf.TensorSpec([None, None], tf.int32),
                                        tf.TensorSpec([None], tf.int32)])
  assert_no_python_ops(traced.get_concrete_function())
  out, out_lengths = traced(ids, lengths)
  for row, item in enumerate(rows):
    expected = text_lib.intersperse(item, 64)
    assert out_lengths[row] == len(expected)
    np.testing.assert_array_equal(out[row, :len(expected)], expected)
    np.testing.assert_array_equal(out[row, len(expected):], 0)


def test_dataset_intersperses_blank_and_pads(prepared):
  task = grad_tts_task.GradTTSTask(grad_tts_task.PRESETS["tiny"])
  config = training.TrainConfig(batch_size=2)
  batch = next(iter(task.dataset(prepared, "eval", config)))
  raw = next(iter(make_dataset(prepared, "validation", 2, shuffle=False, repeat=False,
                               bucket_boundaries=False)))
  for row in range(2):
    n = int(raw["text_lengths"][row])
    assert int(batch["text_lengths"][row]) == 2 * n + 1
    expected = text_lib.intersperse(raw["text_ids"][row, :n].numpy().tolist(), 64)
    np.testing.assert_array_equal(batch["text_ids"][row, :2 * n + 1], expected)
  np.testing.assert_array_equal(batch["mel"], raw["mel"])
  train_batch = next(iter(task.dataset(prepared, "train", config)))
  assert train_batch["text_ids"].shape[0] == 2


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


def test_training_lowers_prior_and_duration_losses_and_resumes(prepared, tmp_path,
                                                               monkeypatch, fast_graphs):
  traced = []
  original = trainer_lib.Trainer.train_step_fn

  def capture(self, element_spec):
    fn = original(self, element_spec)
    initial = [v.numpy().copy() for v in self.modules["grad_tts"].trainable_variables]
    traced.append((self, fn, initial))
    return fn
  monkeypatch.setattr(trainer_lib.Trainer, "train_step_fn", capture)

  workdir = str(tmp_path / "run")
  overrides = {"batch_size": 8, "max_steps": 40, "log_every": 5, "checkpoint_every": 1000,
               "eval_every": 0, "summary_every": 0}
  first = training.train("grad_tts", "tiny", data_dir=prepared, workdir=workdir,
                         overrides=overrides, stop_at_step=30, progress=False,
                         handle_signals=False)
  assert (first.start_step, first.final_step) == (0, 30)
  assert set(first.losses) == {"duration_loss", "prior_loss", "diffusion_loss", "loss"}
  total = sum(first.losses[k] for k in ("duration_loss", "prior_loss", "diffusion_loss"))
  assert first.losses["loss"] == pytest.approx(total, rel=1e-5)
  for tag in ("losses/prior_loss", "losses/duration_loss"):
    curve = list(_logged(workdir, tag).values())
    assert len(curve) == 6, curve  # 30 steps logged every 5.
    early, late = np.mean(curve[:2]), np.mean(curve[-2:])
    assert late < 0.8 * early, f"{tag} did not fall: {curve}"
    if tag == "losses/prior_loss":
      early_prior = early
  trainer, train_fn, initial = traced[0]
  assert_no_python_ops(train_fn.get_concrete_function())
  # Adam moves every variable whose gradient was ever non-zero.
  unchanged = [v.path for v, before in zip(trainer.modules["grad_tts"].trainable_variables,
                                          initial) if np.array_equal(v.numpy(), before)]
  assert not unchanged, f"variables without gradient: {unchanged}"

  # Resume: the step count continues and the loss curve carries on from where it was
  # (the restored weights, not a fresh start: still below the first logged values).
  second = training.train("grad_tts", data_dir=prepared, workdir=workdir,
                          progress=False, handle_signals=False)
  assert (second.start_step, second.final_step) == (30, 40)
  resumed = _logged(workdir, "losses/prior_loss")
  assert len(resumed) == 8
  assert list(resumed.values())[-1] < 0.8 * early_prior


def test_eval_step_and_summaries(prepared, fast_graphs):
  task = grad_tts_task.GradTTSTask(grad_tts_task.PRESETS["tiny"])
  config = training.TrainConfig(batch_size=2)
  trainer = trainer_lib.Trainer(task, config)
  task.data_info(prepared)
  dataset = task.dataset(prepared, "eval", config)
  batch = next(iter(dataset))
  eval_fn = trainer.eval_step_fn(dataset.element_spec)
  assert_no_python_ops(eval_fn.get_concrete_function())
  metrics = {k: float(v) for k, v in eval_fn(batch).items()}
  assert set(metrics) == {"duration_loss", "prior_loss", "diffusion_loss", "loss"}
  assert all(np.isfinite(v) and v > 0 for v in metrics.values())
  # A fixed seed: evaluations are comparable from one to the next.
  assert float(eval_fn(batch)["diffusion_loss"]) == metrics["diffusion_loss"]

  outputs = tf.function(task.summaries)(batch)
  assert set(outputs) == {"images/prior_mel", "images/predicted_mel", "images/alignment",
                          "images/target_mel", "audio/predicted_griffin_lim"}
  frames = outputs["images/predicted_mel"].shape[2]
  for tag in ("images/prior_mel", "images/predicted_mel"):
    assert outputs[tag].shape == (1, 80, frames, 3)
  assert outputs["images/alignment"].shape == (1, int(batch["text_lengths"][0]), frames, 3)
  audio = outputs["audio/predicted_griffin_lim"].numpy()
  assert audio.shape == (1, frames * 256) and np.isfinite(audio).all()
  assert task.sample_rate == 22050

"""The "dctts" task: one short joint (Text2Mel + SSRN) run shared by the tests, checks, serving."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.data import CorpusInfo
from tfspeech.models import serving as serving_lib
from tfspeech.models.dctts import dctts_task
from tfspeech.testing import assert_no_python_ops, summary_events
from tfspeech.training import trainer as trainer_lib

STEPS = 12
LOG_EVERY = 3


@pytest.fixture(scope="module")
def run(tiny_prepared, tmp_path_factory):
  """Tiny DC-TTS trained jointly STEPS steps (summaries at the end), with its traced step."""
  previous = tf.config.optimizer.get_experimental_options()
  # Grappler would spend most of this fixture optimising a graph that runs a few times.
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  traced = []
  original = trainer_lib.Trainer.train_step_fn

  def capture(self, element_spec):
    fn = original(self, element_spec)
    initial = {name: [v.numpy().copy() for v in module.trainable_variables]
               for name, module in self.modules.items()}
    traced.append((self, fn, initial))
    return fn

  workdir = str(tmp_path_factory.mktemp("dctts_run"))
  try:
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(trainer_lib.Trainer, "train_step_fn", capture)
      result = training.train(
          "dctts", "tiny", data_dir=tiny_prepared, workdir=workdir,
          overrides={"stage": "joint", "batch_size": 4, "max_steps": STEPS,
                     "log_every": LOG_EVERY, "eval_every": 0, "summary_every": STEPS,
                     "checkpoint_every": 1000},
          progress=False, handle_signals=False)
  finally:
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)})
  return {"workdir": workdir, "result": result, "traced": traced}


def test_joint_training_losses_are_finite_and_fall(run):
  result = run["result"]
  assert result.final_step == STEPS and result.skipped_steps == 0
  parts = ("mel_l1", "mel_divergence", "attention_loss", "magnitude_l1", "magnitude_divergence")
  assert set(result.losses) == set(parts) | {"loss", "diagonality"}
  assert result.losses["loss"] == pytest.approx(sum(result.losses[p] for p in parts), rel=1e-5)
  scalars = summary_events(run["workdir"], "train")
  for tag in ("losses/mel_l1", "losses/magnitude_l1", "losses/loss"):
    curve = [float(v) for _, v in sorted(scalars[tag].items())]
    assert len(curve) == STEPS // LOG_EVERY and np.all(np.isfinite(curve)), curve
    assert curve[-1] < 0.9 * curve[0], f"{tag} did not fall: {curve}"
  diagonal = [float(v) for v in scalars["losses/diagonality"].values()]
  assert all(0.0 < d <= 1.0 for d in diagonal), diagonal


def test_train_step_graph_is_pure_and_updates_both_networks(run):
  trainer, fn, initial = run["traced"][0]
  assert_no_python_ops(fn.get_concrete_function())
  for name, before in initial.items():
    unchanged = [v.path for v, value in zip(trainer.modules[name].trainable_variables, before)
                 if np.array_equal(v.numpy(), value)]
    assert not unchanged, f"{name}: variables without gradient: {unchanged}"


def test_summaries_hold_attention_mels_and_griffin_lim_audio(run):
  media = summary_events(run["workdir"], "eval")
  for tag in ("images/alignment", "images/target_mel", "images/teacher_forced_mel",
              "images/inferred_alignment", "images/inferred_mel", "audio/inferred_griffin_lim"):
    assert STEPS in media.get(tag, {}), f"no {tag} at step {STEPS}: {sorted(media)}"


def test_stage_picks_the_trained_networks_and_their_data(tiny_prepared):
  for stage, modules, audio in (("text2mel", ("text2mel",), False), ("ssrn", ("ssrn",), True),
                                ("joint", ("text2mel", "ssrn"), True)):
    task = dctts_task.DCTTSTask(dctts_task.PRESETS["tiny"].replace(stage=stage))
    assert task.optimizers(None)["main"].modules == modules
    spec = task.dataset(tiny_prepared, "train", training.TrainConfig(batch_size=2)).element_spec
    assert ("audio" in spec) == audio, sorted(spec)


def test_corpus_mismatches_name_the_fix(tiny_prepared):
  def message(**changes):
    task = dctts_task.DCTTSTask(dctts_task.PRESETS["tiny"].replace(**changes))
    with pytest.raises(ValueError) as error:
      task.data_info(tiny_prepared)
    return str(error.value)
  assert "--override=n_symbols=64" in message(n_symbols=32)
  assert "--override=n_mels=80" in message(n_mels=40)
  assert "--override=sample_rate=22050" in message(sample_rate=16000)
  assert "--override=n_fft=1024" in message(n_fft=2048)
  assert "--override=hop_length=256" in message(hop_length=200)


def test_trained_run_serves_synthesis(run, tiny_prepared):
  loaded = training.load_run(run["workdir"])
  recorded = CorpusInfo.from_dict(loaded.config.data_info, require=("symbols", "mel_config"))
  acoustic = serving_lib.build_serving(loaded.task, loaded.modules, loaded.config.data_info)
  assert acoustic.noise_channels is None and acoustic.mel_config == recorded.mel_config
  assert acoustic.mel_config == CorpusInfo.load(tiny_prepared).mel_config
  controls = serving_lib.resolve_controls(acoustic.controls, {"max_decoder_steps": "10"})
  local = acoustic.in_process()
  ids = tf.constant([[5, 6, 7, 8, 9], [10, 11, 0, 0, 0]])
  lengths = tf.constant([5, 2])
  out = local.synthesize(ids, lengths, None, **controls)
  mel_lengths = out["mel_lengths"].numpy()
  assert out["mel"].shape[0] == 2 and out["mel"].shape[2] == 80
  assert out["mel"].shape[1] == mel_lengths.max() and np.all(mel_lengths <= 10 * 4)
  assert np.all(np.isfinite(out["mel"].numpy()))
  assert out["magnitudes"].shape[2] == recorded.mel_config.num_bins
  np.testing.assert_array_equal(out["durations"].numpy().sum(1), mel_lengths)
  assert np.all(out["durations"].numpy()[1, 2:] == 0)

"""The "tacotron2" task: one short real training run shared by the tests, checks, serving."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.data import CorpusInfo
from tfspeech.models import serving as serving_lib
from tfspeech.models.tacotron2 import tacotron2_task
from tfspeech.testing import assert_no_python_ops, summary_events
from tfspeech.training import trainer as trainer_lib

STEPS = 20


@pytest.fixture(scope="module")
def run(tiny_prepared, tmp_path_factory):
  """Tiny Tacotron 2 trained STEPS steps (summaries at the end), with its traced train step."""
  previous = tf.config.optimizer.get_experimental_options()
  # Grappler would spend most of this fixture optimising a graph that runs a few times.
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  traced = []
  original = trainer_lib.Trainer.train_step_fn

  def capture(self, element_spec):
    fn = original(self, element_spec)
    initial = [v.numpy().copy() for v in self.modules["tacotron2"].trainable_variables]
    traced.append((self, fn, initial))
    return fn

  workdir = str(tmp_path_factory.mktemp("tacotron2_run"))
  try:
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(trainer_lib.Trainer, "train_step_fn", capture)
      result = training.train(
          "tacotron2", "tiny", data_dir=tiny_prepared, workdir=workdir,
          overrides={"batch_size": 4, "max_steps": STEPS, "log_every": 5, "eval_every": 0,
                     "summary_every": STEPS, "checkpoint_every": 1000},
          progress=False, handle_signals=False)
  finally:
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)})
  return {"workdir": workdir, "result": result, "traced": traced}


def test_training_losses_are_finite_and_fall(run):
  result = run["result"]
  assert result.final_step == STEPS and result.skipped_steps == 0
  assert set(result.losses) == {"loss", "mel_loss", "gate_loss", "guided_attention_loss",
                                 "alignment_focus", "alignment_diagonality"}
  weight = tacotron2_task.PRESETS["tiny"].guided_attention_weight
  assert weight > 0
  assert result.losses["loss"] == pytest.approx(
      result.losses["mel_loss"] + result.losses["gate_loss"]
      + weight * result.losses["guided_attention_loss"], rel=1e-5)
  scalars = summary_events(run["workdir"], "train")
  for tag in ("losses/mel_loss", "losses/gate_loss"):
    curve = [float(v) for _, v in sorted(scalars[tag].items())]
    assert len(curve) == STEPS // 5 and np.all(np.isfinite(curve)), curve
    assert curve[-1] < 0.8 * curve[0], f"{tag} did not fall: {curve}"
  focus = [float(v) for v in scalars["losses/alignment_focus"].values()]
  assert all(0.0 < f <= 1.0 for f in focus), focus
  # The guided-attention loss pulls the attention off the first tokens towards the diagonal
  # (slowly at first: ~0.55 -> 0.51 in these 20 steps, ~0.13 after 200).
  guided = [float(v) for _, v in sorted(scalars["losses/guided_attention_loss"].items())]
  assert all(b < a for a, b in zip(guided, guided[1:])), guided
  diagonality = [float(v) for _, v in sorted(scalars["losses/alignment_diagonality"].items())]
  assert all(0.0 <= d <= 1.0 for d in diagonality), diagonality
  assert diagonality[-1] > diagonality[0], diagonality


def test_train_step_graph_is_pure_and_updates_every_variable(run):
  trainer, fn, initial = run["traced"][0]
  assert_no_python_ops(fn.get_concrete_function())
  unchanged = [v.path for v, before in zip(trainer.modules["tacotron2"].trainable_variables,
                                           initial) if np.array_equal(v.numpy(), before)]
  assert not unchanged, f"variables without gradient: {unchanged}"


def test_summaries_hold_alignment_mels_and_audio(run):
  media = summary_events(run["workdir"], "eval")
  for tag in ("images/alignment", "images/target_mel", "images/teacher_forced_mel",
              "images/inferred_alignment", "images/inferred_mel", "audio/inferred_griffin_lim"):
    assert STEPS in media.get(tag, {}), f"no {tag} at step {STEPS}: {sorted(media)}"


def test_symbol_table_mismatch_names_the_fix(tiny_prepared):
  task = tacotron2_task.Tacotron2Task(tacotron2_task.PRESETS["ljspeech"])
  with pytest.raises(ValueError) as error:
    task.data_info(tiny_prepared)
  message = str(error.value)
  assert "n_symbols=148" in message and "english_characters" in message
  assert "--override=n_symbols=64" in message and "--symbols=english_arpabet" in message
  with pytest.raises(ValueError, match="n_mel_channels=40"):
    tacotron2_task.Tacotron2Task(
        tacotron2_task.PRESETS["tiny"].replace(n_mel_channels=40)).data_info(tiny_prepared)


def test_trained_run_serves_synthesis_and_gta(run, tiny_prepared):
  loaded = training.load_run(run["workdir"])
  recorded = CorpusInfo.from_dict(loaded.config.data_info, require=("symbols", "mel_config"))
  assert not recorded.carries_blanks and recorded.symbols == CorpusInfo.load(
      tiny_prepared).symbols
  acoustic = serving_lib.build_serving(loaded.task, loaded.modules, loaded.config.data_info)
  assert acoustic.noise_channels == 2 * loaded.task.config.prenet_dim
  controls = serving_lib.resolve_controls(acoustic.controls, {"max_decoder_steps": "25"})
  local = acoustic.in_process()
  assert local is acoustic.in_process() and local.in_process() is local
  ids = tf.constant([[5, 6, 7, 8, 9], [10, 11, 0, 0, 0]])
  lengths = tf.constant([5, 2])
  frames = int(acoustic.frames_bound(ids, lengths, **controls))
  assert frames == 25
  noise = tf.random.stateless_normal([2, frames, acoustic.noise_channels], [0, 0])
  out = local.synthesize(ids, lengths, noise, **controls)
  mel_lengths = out["mel_lengths"].numpy()
  assert out["mel"].shape[0] == 2 and out["mel"].shape[2] == 80
  assert out["mel"].shape[1] == mel_lengths.max() and np.all(mel_lengths <= 25)
  np.testing.assert_array_equal(out["durations"].numpy().sum(1), mel_lengths)
  assert np.all(out["durations"].numpy()[1, 2:] == 0)
  mel = tf.random.stateless_normal([2, 9, 80], [0, 1]) - 6.0
  gta = local.ground_truth_aligned(ids, lengths, mel, tf.constant([9, 4]),
                                   noise[:, :acoustic.gta_noise_frames(9)], **controls)
  assert gta.shape == (2, 9, 80) and np.all(gta.numpy()[1, 4:] == 0)
  assert acoustic.has_ground_truth_aligned

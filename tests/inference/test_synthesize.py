"""tfspeech.inference: text → mel/wav files with a Grad-TTS run, and GTA mel records."""

import glob
import os

import numpy as np
import pytest
import scipy.io.wavfile

from tfspeech.data import load_dataset_info, make_dataset
from tfspeech.inference import synthesize_lib
from tfspeech.models import grad_tts  # noqa: F401  (registers "grad_tts")
from tfspeech.testing import assert_no_python_ops

TEXTS = ["Hi.", "A much longer sentence, so that the batch needs padding!", "Third one?"]


@pytest.fixture(scope="module")
def prepared(tiny_prepared):
  return tiny_prepared


@pytest.fixture(scope="module")
def loaded_run(tiny_grad_tts_run):
  return tiny_grad_tts_run


def test_padding_does_not_change_any_item(loaded_run, tmp_path):
  batched = synthesize_lib.synthesize_texts(loaded_run, TEXTS, n_timesteps=4, seed=3,
                                            batch_size=3, out_dir=str(tmp_path / "b"))
  alone = synthesize_lib.synthesize_texts(loaded_run, TEXTS, n_timesteps=4, seed=3,
                                          batch_size=1, out_dir=str(tmp_path / "a"))
  frames = [item.num_frames for item in batched.items]
  assert len(set(frames)) > 1, "test needs items of different lengths"
  sample_rate = loaded_run.config.data_info["sample_rate"]
  hop = loaded_run.config.data_info["hop_length"]
  for b, a in zip(batched.items, alone.items):
    mel_b, mel_a = np.load(b.mel_path), np.load(a.mel_path)
    assert mel_b.shape == mel_a.shape == (b.num_frames, 80)
    # Only float rounding differs between batch shapes (10 ODE steps of a U-Net).
    np.testing.assert_allclose(mel_a, mel_b, atol=2e-3)
    rate, wav = scipy.io.wavfile.read(b.wav_path)
    assert rate == sample_rate and wav.dtype == np.int16
    assert wav.shape == (b.num_frames * hop,)
    assert np.abs(wav).max() > 0
  assert batched.audio_seconds == pytest.approx(sum(frames) * hop / sample_rate)
  assert batched.real_time_factor == pytest.approx(
      batched.wall_seconds / batched.audio_seconds)
  assert batched.times_real_time == pytest.approx(1 / batched.real_time_factor)
  assert batched.first_call_seconds > 0 and batched.vocoder == "griffin_lim"
  # A different seed gives a different sample: the noise really comes from the seed.
  other = synthesize_lib.synthesize_texts(loaded_run, TEXTS[:1], n_timesteps=4, seed=4,
                                          out_dir=str(tmp_path / "c"))
  assert not np.allclose(np.load(other.items[0].mel_path), np.load(batched.items[0].mel_path))


def test_synthesis_graph_has_no_python_ops(loaded_run):
  fn = synthesize_lib.make_synthesis_fn(loaded_run.modules["grad_tts"])
  concrete = fn.get_concrete_function()
  assert concrete.inputs[0].shape.as_list() == [None, None]
  assert_no_python_ops(concrete)


def test_text_front_end_uses_the_run_symbols(loaded_run):
  front_end = synthesize_lib.text_front_end(loaded_run)
  ids = front_end.encode("Hi.")
  blank = front_end.symbols.blank_id
  assert blank == 64 and ids[::2] == [blank] * 4
  assert [front_end.symbols.symbol_of(i) for i in ids[1::2]] == list("hi.")


def test_bad_inputs_fail_clearly(loaded_run, tmp_path):
  with pytest.raises(ValueError, match="no texts"):
    synthesize_lib.synthesize_texts(loaded_run, [], out_dir=str(tmp_path))
  with pytest.raises(ValueError, match="no letter or phone"):
    synthesize_lib.synthesize_texts(loaded_run, ["<<< ###"], out_dir=str(tmp_path))
  with pytest.raises(ValueError, match="names must be unique"):
    synthesize_lib.synthesize_texts(loaded_run, ["a", "b"], names=["x", "x"],
                                    out_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="not a tfspeech run"):
    synthesize_lib.load_vocoder(str(tmp_path), None)


def test_read_text_file(tmp_path):
  path = tmp_path / "lines.txt"
  path.write_text("first|Hello there.\n\nSecond line without a name.\n", encoding="utf-8")
  names, texts = synthesize_lib.read_text_file(str(path))
  assert names == ["first", "0003"]
  assert texts == ["Hello there.", "Second line without a name."]
  path.write_text("a|one\na|two\n", encoding="utf-8")
  with pytest.raises(ValueError, match="unique"):
    synthesize_lib.read_text_file(str(path))


def test_gta_rewrites_mels_and_keeps_everything_else(loaded_run, prepared, tmp_path):
  out = str(tmp_path / "gta")
  result = synthesize_lib.generate_gta(loaded_run, prepared, out, n_timesteps=2,
                                       batch_size=16)
  info = load_dataset_info(prepared)
  assert result.counts == {"train": info["counts"]["train"],
                           "validation": info["counts"]["validation"]}
  assert sorted(map(os.path.basename, glob.glob(os.path.join(out, "*.tfrecord")))) == \
      sorted(map(os.path.basename, glob.glob(os.path.join(prepared, "*.tfrecord"))))
  assert load_dataset_info(out)["gta"]["n_timesteps"] == 2
  features = ("id", "text_ids", "audio", "mel")
  source = make_dataset(prepared, "validation", 8, features, shuffle=False, repeat=False,
                        bucket_boundaries=False)
  rewritten = make_dataset(out, "validation", 8, features, shuffle=False, repeat=False,
                           bucket_boundaries=False)
  for before, after in zip(source, rewritten):
    for name in ("id", "text_ids", "text_lengths", "audio", "mel_lengths"):
      np.testing.assert_array_equal(before[name], after[name])
    assert before["mel"].shape == after["mel"].shape
    assert not np.allclose(before["mel"], after["mel"])
    assert np.isfinite(after["mel"]).all()
  with pytest.raises(ValueError, match="must differ"):
    synthesize_lib.generate_gta(loaded_run, prepared, prepared)

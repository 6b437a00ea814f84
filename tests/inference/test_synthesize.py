"""tfspeech.inference: text → mel/wav files with a Grad-TTS run, and GTA mel records."""

import glob
import os
import re

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech import audio as audio_lib
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
    # Griffin-Lim previews peak at -1 dBFS, not clipped at full scale.
    assert np.abs(wav).max() == pytest.approx(32768 * 10 ** (-1 / 20), rel=1e-3)
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
  fn = synthesize_lib.make_synthesis_fn(synthesize_lib.acoustic_serving(loaded_run),
                                       {"n_timesteps": 2})
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
  # With nothing to say in any text there is nothing to do: one error for the call.
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
  assert load_dataset_info(out)["gta"]["controls"]["n_timesteps"] == 2
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


@pytest.mark.smoke
def test_every_text_is_written_down_to_one_frame_mels(loaded_run, tmp_path):
  # Regression: the warm-up on a one-token input gave a 1-frame mel and Griffin-Lim's
  # reflect padding failed, so nothing was written. length_scale 1e-3 makes every mel as
  # short as the model allows (1 frame); "a" is a one-character text.
  # (Texts of ordinary length are written in test_padding_does_not_change_any_item.)
  texts = ["a", "Hi.", "A longer one, to batch with the others."]
  result = synthesize_lib.synthesize_texts(loaded_run, texts, n_timesteps=2,
                                           length_scale=1e-3, out_dir=str(tmp_path))
  assert not result.failures and [item.text for item in result.items] == texts
  hop = loaded_run.config.data_info["hop_length"]
  for item in result.items:
    rate, wav = scipy.io.wavfile.read(item.wav_path)
    assert wav.shape == (item.num_frames * hop,) and 1 <= item.num_frames <= 3
    # Griffin-Lim previews peak at -1 dBFS, not clipped at full scale.
    assert np.abs(wav).max() == pytest.approx(32768 * 10 ** (-1 / 20), rel=1e-3)
    # However short, the ids' times add up to the WAV.
    assert item.timestamps.tokens[-1].end == pytest.approx(item.num_frames * hop / rate)


def test_one_bad_text_fails_alone_and_is_named(loaded_run, tmp_path, monkeypatch):
  vocoder = synthesize_lib.griffin_lim_vocoder
  calls = []

  def flaky_vocoder(mel_config, n_iter=32):
    real = vocoder(mel_config, n_iter)

    def vocode(mel):
      calls.append(int(mel.shape[1]))
      if len(calls) == 3:  # The warm-up is call 1: fail on the second text vocoded.
        raise tf.errors.InvalidArgumentError(None, None, "MirrorPad failed\nlong trace")
      return real(mel)
    return vocode

  monkeypatch.setattr(synthesize_lib, "griffin_lim_vocoder", flaky_vocoder)
  texts = ["One.", "<<< ###", "Two words.", "Three words here."]
  result = synthesize_lib.synthesize_texts(loaded_run, texts, n_timesteps=2,
                                           names=["one", "empty", "two", "three"],
                                           out_dir=str(tmp_path))
  assert len(calls) == 4  # warm-up + the 3 texts with something to say
  assert [f.name for f in result.failures] == ["empty", "two"]
  assert "no letter or phone" in result.failures[0].error
  assert result.failures[1].describe() == (
      "two: the vocoder failed on %d frames: InvalidArgumentError: MirrorPad failed" % calls[2])
  assert [item.name for item in result.items] == ["one", "three"]
  assert sorted(os.listdir(tmp_path)) == ["one.npy", "one.wav", "three.npy", "three.wav"]


def test_long_text_is_chunked_and_joined_into_one_wav(loaded_run, tmp_path):
  sentence = "The quick brown fox jumps over the lazy dog, and runs away. "
  long_text = sentence * 12 + "The end 😀."  # ~700 characters, ~1,400 ids with blanks.
  front_end = synthesize_lib.text_front_end(loaded_run)
  assert front_end.count_tokens(long_text) > 1000
  result = synthesize_lib.synthesize_texts(loaded_run, [long_text, "Short."], n_timesteps=2,
                                           max_tokens=150, chunk_pause=0.1, batch_size=4,
                                           out_dir=str(tmp_path))
  assert not result.failures
  item, short = result.items
  assert item.num_chunks >= 10 and short.num_chunks == 1
  assert item.notes() == ["dropped '😀'"]
  hop = loaded_run.config.data_info["hop_length"]
  rate = loaded_run.config.data_info["sample_rate"]
  mel = np.load(item.mel_path)
  _, wav = scipy.io.wavfile.read(item.wav_path)
  assert mel.shape == (item.num_frames, 80) and wav.shape == (item.num_frames * hop,)
  # The chunks are joined with pauses of silence: round(0.1 s / hop) frames each.
  pause = int(round(0.1 * rate / hop))
  mel_config = audio_lib.MelConfig(**loaded_run.config.data_info["mel_config"])
  silence = float(audio_lib.log_compress(tf.zeros([]), mel_config))
  silent_frames = np.all(mel == np.float32(silence), axis=1)
  assert silent_frames.sum() == pause * (item.num_chunks - 1)
  assert (wav == 0).sum() >= pause * hop * (item.num_chunks - 1)
  assert np.abs(wav[:hop * 2]).max() > 0  # Speech (noise) starts right away.
  # Every chunk was synthesized within the bound, and the ids add up to the whole text's.
  assert item.num_ids >= front_end.count_tokens(long_text) - item.num_chunks * 2
  # Word timestamps: each word of the input once, in order, at its characters; the ids'
  # durations and the pauses add up to the WAV; each pause lies between two words.
  stamps = item.timestamps
  assert [w.word for w in stamps.words] == re.findall(r"[A-Za-z]+", long_text)
  assert all(long_text[w.char_start:w.char_end] == w.word for w in stamps.words)
  assert len(stamps.tokens) == item.num_ids
  assert stamps.tokens[-1].end == pytest.approx(wav.shape[0] / rate)
  assert all(a.end <= b.start for a, b in zip(stamps.words, stamps.words[1:]))
  gaps = [b.start - a.end for a, b in zip(stamps.words, stamps.words[1:])]
  assert sum(gap >= pause * hop / rate - 1e-9 for gap in gaps) >= item.num_chunks - 1
  assert [(w.word, w.char_start, w.char_end) for w in short.timestamps.words] == [
      ("Short", 0, 5)]


def test_controls_are_checked_against_the_model_declaration(loaded_run, tmp_path):
  with pytest.raises(ValueError, match=r"unknown control nonsense; this model's controls: "
                                       r"n_timesteps .*temperature .*length_scale"):
    synthesize_lib.synthesize_texts(loaded_run, ["Hi."], out_dir=str(tmp_path), nonsense=1)
  with pytest.raises(ValueError, match=r"--temperature=0: must be > 0"):
    synthesize_lib.synthesize_texts(loaded_run, ["Hi."], out_dir=str(tmp_path), temperature=0,
                                    control_sources={"temperature": "--temperature"})
  with pytest.raises(ValueError, match=r"--control=n_timesteps=1.5: expected an integer"):
    synthesize_lib.synthesize_texts(loaded_run, ["Hi."], out_dir=str(tmp_path),
                                    n_timesteps="1.5")
  assert not os.listdir(tmp_path)


def test_synthesis_reports_durations_that_add_up_to_the_mel(loaded_run):
  acoustic = synthesize_lib.acoustic_serving(loaded_run)
  front_end = synthesize_lib.text_front_end(loaded_run)
  ids, lengths = synthesize_lib.pad_batch([front_end.encode(t) for t in TEXTS],
                                          front_end.symbols.pad_id)
  fn = synthesize_lib.make_synthesis_fn(acoustic, {"n_timesteps": 2})
  out = fn(tf.constant(ids), tf.constant(lengths), tf.constant([[0, 0], [0, 1], [0, 2]]),
           tf.zeros([3], tf.int32), tf.constant(1.5), tf.constant(1.3))
  durations = out["durations"].numpy()
  assert durations.shape == ids.shape and durations.dtype == np.int32
  np.testing.assert_array_equal(durations.sum(axis=1), out["mel_lengths"].numpy())
  for row, length in enumerate(lengths):
    # Padding tokens get no frame; a token may get none (a tiny predicted duration).
    assert (durations[row, length:] == 0).all() and (durations[row, :length] >= 0).all()
    assert durations[row, :length].sum() >= 1

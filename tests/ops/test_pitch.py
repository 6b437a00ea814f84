"""yin_pitch vs librosa.yin/pyin, and average_pitch_per_token vs FastPitch's average_pitch."""
import pathlib
import shutil
import subprocess

import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfspeech.ops import pitch
from tfspeech.testing import assert_no_python_ops

SR = 22050
HOP = 256
TINY_WAVS = pathlib.Path(__file__).resolve().parents[1] / "data" / "ljspeech_tiny" / "wavs"


def _harmonic_tone(f0, seconds=1.0, sr=SR):
  t = np.arange(int(seconds * sr)) / sr
  # Falling harmonic amplitudes and arbitrary phases, like a voiced sound.
  tone = sum(0.5 / k * np.sin(2 * np.pi * k * f0 * t + 0.7 * k) for k in range(1, 6))
  return (0.5 * tone / np.abs(tone).max()).astype(np.float32)


def _relative_errors(ours, reference, voiced):
  return np.abs(ours[voiced] - reference[voiced]) / reference[voiced]


def _speech():
  """A short utterance at 22050 Hz: the tiny corpus if present, else espeak-ng."""
  wavs = sorted(TINY_WAVS.glob("*.wav")) if TINY_WAVS.is_dir() else []
  if wavs:
    audio, sr = soundfile.read(wavs[0], dtype="float32")
    audio = audio[:3 * sr]
    if sr != SR:
      audio = librosa.resample(audio, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    return audio, f"tests/data/ljspeech_tiny/wavs/{wavs[0].name}"
  espeak = shutil.which("espeak-ng")
  if espeak is None:
    pytest.skip("no speech to test on: tests/data/ljspeech_tiny/wavs is empty and espeak-ng is "
                "not installed (apt-get install espeak-ng)")
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "speech.wav"
    subprocess.run([espeak, "-w", str(path), "Seven wise owls hummed a low tune all evening."],
                   check=True, capture_output=True)
    audio, sr = soundfile.read(path, dtype="float32")
  assert sr == SR, f"espeak-ng wrote {sr} Hz, expected {SR}"
  return audio, "espeak-ng"


def test_yin_matches_librosa_on_harmonic_tones():
  f0s = [70.0, 123.4, 200.0, 311.1, 440.0, 800.0]
  tones = np.stack([_harmonic_tone(f) for f in f0s])
  # A gliding tone exercises the parabolic refinement between integer periods.
  glide = librosa.chirp(fmin=110, fmax=420, sr=SR, duration=1.0).astype(np.float32) * 0.5
  audio = np.concatenate([tones, glide[np.newaxis, :tones.shape[1]]])
  params = dict(frame_length=2048, hop_length=HOP, fmin=65.0, fmax=1000.0)

  f0, voiced = pitch.yin_pitch(audio, SR, **params)
  f0, voiced = f0.numpy(), voiced.numpy()

  reference = librosa.yin(audio, sr=SR, fmin=params["fmin"], fmax=params["fmax"],
                          frame_length=params["frame_length"], hop_length=HOP)
  assert f0.shape == reference.shape == (len(audio), 1 + audio.shape[1] // HOP)
  assert voiced.mean() >= 0.95, f"only {voiced.mean():.3f} of tone frames voiced"
  errors = _relative_errors(f0, reference, voiced)
  within = (errors < 0.01).mean()
  print(f"tones: {voiced.sum()} voiced frames, {within:.4f} within 1% of librosa.yin, "
        f"median relative error {np.median(errors):.2e}, max {errors.max():.2e}")
  assert within >= 0.99
  assert np.median(errors) < 1e-4
  # And the estimate is the tone's pitch, away from the zero-padded edges.
  for row, true_f0 in enumerate(f0s):
    middle = f0[row, 8:-8]
    np.testing.assert_allclose(middle, true_f0, rtol=0.01, err_msg=f"{true_f0} Hz tone")
  assert np.all(f0[~voiced] == 0)


def test_yin_matches_librosa_on_speech():
  audio, source = _speech()
  params = dict(frame_length=1024, hop_length=HOP, fmin=65.0, fmax=600.0)
  f0, voiced = pitch.yin_pitch(audio, SR, **params)
  f0, voiced = f0.numpy(), voiced.numpy()

  reference = librosa.yin(audio, sr=SR, fmin=params["fmin"], fmax=params["fmax"],
                          frame_length=params["frame_length"], hop_length=HOP)
  _, pyin_voiced, _ = librosa.pyin(audio, sr=SR, fmin=params["fmin"], fmax=params["fmax"],
                                   frame_length=params["frame_length"], hop_length=HOP)
  assert f0.shape == reference.shape
  errors = _relative_errors(f0, reference, voiced)
  within = (errors < 0.01).mean()
  agreement = (voiced == pyin_voiced).mean()
  print(f"speech ({source}, {len(audio) / SR:.1f} s): {voiced.mean():.3f} of frames voiced "
        f"(pyin {pyin_voiced.mean():.3f}), voicing agreement with pyin {agreement:.3f}; "
        f"{within:.4f} of voiced frames within 1% of librosa.yin, median relative error "
        f"{np.median(errors):.2e}")
  assert voiced.sum() >= 50
  assert within >= 0.99
  assert agreement >= 0.8


def test_yin_silence_and_noise_are_unvoiced():
  rng = np.random.default_rng(0)
  audio = np.stack([np.zeros(SR // 2), 0.3 * rng.standard_normal(SR // 2)]).astype(np.float32)
  f0, voiced, periodicity = pitch.yin_pitch(audio, SR, 1024, HOP, 65.0, 600.0,
                                            return_periodicity=True)
  assert not voiced.numpy().any()
  assert np.all(f0.numpy() == 0)
  assert periodicity.numpy()[1].max() < 0.4


def test_yin_graph_mode_dynamic_length_and_frame_count():
  fn = tf.function(
      lambda audio: pitch.yin_pitch(audio, SR, 1024, HOP, 65.0, 600.0, return_periodicity=True),
      input_signature=[tf.TensorSpec([None, None], tf.float32)])
  concrete = fn.get_concrete_function()
  assert_no_python_ops(concrete)
  audio = _harmonic_tone(220.0, seconds=0.5)
  for num_samples in (SR // 4, SR // 4 + 1, SR // 4 + HOP - 1, 6000):
    f0, voiced, periodicity = concrete(tf.constant(np.stack([audio[:num_samples]] * 2)))
    assert f0.shape == voiced.shape == periodicity.shape == (2, 1 + num_samples // HOP)
  eager_f0, _ = pitch.yin_pitch(audio, SR, 1024, HOP, 65.0, 600.0)
  graph_f0 = concrete(tf.constant(audio[np.newaxis]))[0][0]
  np.testing.assert_allclose(graph_f0.numpy(), eager_f0.numpy(), rtol=1e-5)


def test_yin_float64_matches_float32():
  audio = _harmonic_tone(180.0, seconds=0.5)
  f32, _ = pitch.yin_pitch(audio, SR, 1024, HOP, 65.0, 600.0)
  f64, _ = pitch.yin_pitch(audio.astype(np.float64), SR, 1024, HOP, 65.0, 600.0)
  assert f64.dtype == tf.float64
  np.testing.assert_allclose(f32.numpy(), f64.numpy(), rtol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(fmin=65.0, fmax=12000.0), "Nyquist"),
    (dict(fmin=500.0, fmax=400.0), "less than fmax"),
    (dict(fmin=15.0, fmax=400.0), "does not fit in frame_length"),
    (dict(fmin=65.0, fmax=400.0, pad_mode="edge"), "pad_mode"),
])
def test_yin_rejects_bad_parameters(kwargs, message):
  with pytest.raises(ValueError, match=message):
    pitch.yin_pitch(np.zeros([1, 4096], np.float32), SR, 1024, HOP, **kwargs)
  with pytest.raises(ValueError, match="float tensor"):
    pitch.yin_pitch(np.zeros([1, 4096], np.int16), SR, 1024, HOP, 65.0, 400.0)


def _fastpitch_average_pitch(pitch_frames, durations):
  """NumPy transcription of FastPitch's average_pitch (one formant), for reference."""
  ends = np.cumsum(durations, axis=1).astype(np.int64)
  starts = np.pad(ends[:, :-1], [(0, 0), (1, 0)])
  nonzero_cums = np.pad(np.cumsum(pitch_frames != 0.0, axis=1), [(0, 0), (1, 0)])
  cums = np.pad(np.cumsum(pitch_frames.astype(np.float64), axis=1), [(0, 0), (1, 0)])
  sums = np.take_along_axis(cums, ends, 1) - np.take_along_axis(cums, starts, 1)
  counts = np.take_along_axis(nonzero_cums, ends, 1) - np.take_along_axis(nonzero_cums, starts, 1)
  return np.where(counts == 0, 0.0, sums / np.maximum(counts, 1))


def test_average_pitch_per_token_matches_fastpitch():
  rng = np.random.default_rng(1)
  batch, tokens = 3, 12
  durations = rng.integers(0, 7, size=[batch, tokens])
  durations[1, 8:] = 0  # padding tokens
  durations[2, 3] = 0   # a zero-length token mid-sequence
  frames = int(durations.sum(axis=1).max())
  f0 = rng.uniform(80, 300, size=[batch, frames]).astype(np.float32)
  f0[rng.random([batch, frames]) < 0.3] = 0.0  # unvoiced frames
  f0[0, :int(durations[0, 0]) + int(durations[0, 1])] = 0.0  # tokens with no voiced frame
  expected = _fastpitch_average_pitch(f0, durations)

  fn = tf.function(pitch.average_pitch_per_token,
                   input_signature=[tf.TensorSpec([None, None], tf.float32),
                                    tf.TensorSpec([None, None], tf.int32)])
  assert_no_python_ops(fn.get_concrete_function())
  ours = fn(tf.constant(f0), tf.constant(durations, tf.int32)).numpy()
  assert ours.shape == (batch, tokens)
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
  assert np.all(ours[0, :2] == 0) and np.all(ours[1, 8:] == 0)
  # Float durations are accumulated then truncated, as in FastPitch. Their spans
  # run past the last frame; FastPitch would need f0 padded with (unvoiced) zeros.
  float_durations = (durations + 0.25).astype(np.float32)
  padded_f0 = np.pad(f0, [(0, 0), (0, tokens)])
  np.testing.assert_allclose(pitch.average_pitch_per_token(f0, float_durations).numpy(),
                             _fastpitch_average_pitch(padded_f0, float_durations),
                             rtol=1e-5, atol=1e-4)

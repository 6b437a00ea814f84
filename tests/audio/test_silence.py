"""trim_silence against librosa.effects.trim; peak / rms_db against NumPy."""
import librosa
import numpy as np
import pytest
import tensorflow as tf

from tfspeech.audio import peak, rms_db, trim_silence
from tfspeech.testing import assert_no_python_ops


def _padded_with_quiet(audio, seed):
  rng = np.random.default_rng(seed)
  lead = (1e-4 * rng.standard_normal(7000)).astype(np.float32)
  tail = (3e-5 * rng.standard_normal(11000)).astype(np.float32)
  return np.concatenate([lead, audio, tail])


@pytest.mark.parametrize("top_db,frame_length,hop_length", [(60, 2048, 512), (30, 1024, 256),
                                                             (45, 2048, 300), (20, 512, 128)])
def test_trim_matches_librosa(speech, top_db, frame_length, hop_length):
  for i, utterance in enumerate(speech[:4]):
    audio = _padded_with_quiet(utterance, i)
    expected, expected_index = librosa.effects.trim(audio, top_db=top_db, frame_length=frame_length,
                                                    hop_length=hop_length)
    trimmed, index = trim_silence(audio, top_db, frame_length, hop_length)
    np.testing.assert_array_equal(index.numpy(), expected_index)
    np.testing.assert_array_equal(trimmed.numpy(), expected)
    assert expected_index[0] > 0 and expected_index[1] < len(audio)  # Something was cut.


def test_trim_edge_cases_match_librosa():
  for audio in (np.zeros(5000, np.float32),               # All silent: nothing above the max - 60 dB.
                np.full(3000, 0.5, np.float32),            # Constant: nothing is trimmed.
                np.r_[np.zeros(4000), np.ones(10), np.zeros(4000)].astype(np.float32)):
    expected, expected_index = librosa.effects.trim(audio)
    trimmed, index = trim_silence(audio)
    np.testing.assert_array_equal(index.numpy(), expected_index)
    np.testing.assert_array_equal(trimmed.numpy(), expected)


def test_trim_graph_mode(speech):
  trim = tf.function(lambda a: trim_silence(a, 40.0), input_signature=[tf.TensorSpec([None])])
  assert_no_python_ops(trim.get_concrete_function())
  audio = _padded_with_quiet(speech[0], 0)
  _, expected_index = librosa.effects.trim(audio, top_db=40)
  np.testing.assert_array_equal(trim(audio)[1].numpy(), expected_index)
  with pytest.raises(ValueError, match=r"trim_silence: audio must be \[samples\]"):
    trim_silence(np.zeros((2, 100), np.float32))


def test_peak_and_rms_db():
  rng = np.random.default_rng(0)
  audio = (0.2 * rng.standard_normal((3, 4000))).astype(np.float32)
  audio[1] *= 0.01
  audio[2] = 0.0
  np.testing.assert_allclose(peak(audio).numpy(), np.abs(audio).max(axis=1), rtol=1e-7)
  rms = np.sqrt(np.mean(audio.astype(np.float64)**2, axis=1))
  expected = 20 * np.log10(np.maximum(rms, 1e-5))
  np.testing.assert_allclose(rms_db(audio).numpy(), expected, atol=1e-4)
  assert rms_db(audio).numpy()[2] == pytest.approx(-100.0)
  concrete = tf.function(lambda a: (peak(a), rms_db(a))).get_concrete_function(
      tf.TensorSpec([None, None]))
  assert_no_python_ops(concrete)


def test_normalize_peak_scales_each_signal_and_leaves_silence():
  from tfspeech.audio import normalize_peak
  rng = np.random.default_rng(0)
  loud = rng.uniform(-3.0, 3.0, 1000).astype(np.float32)  # Would clip at full scale.
  quiet = 0.01 * rng.standard_normal(1000).astype(np.float32)
  batch = np.stack([loud, quiet, np.zeros(1000, np.float32)])
  out = normalize_peak(batch, peak_db=-1.0).numpy()
  target = 10 ** (-1 / 20)
  np.testing.assert_allclose(np.abs(out[:2]).max(axis=1), [target, target], rtol=1e-6)
  np.testing.assert_allclose(out[0] / loud, target / np.abs(loud).max(), rtol=1e-5)  # one gain
  assert not out[2].any()  # Silence stays silence (no division by zero).
  assert normalize_peak(np.zeros([2, 0], np.float32)).shape == (2, 0)

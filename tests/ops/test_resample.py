"""resample vs soxr and librosa (soxr_hq), the analytic resampled sine, and the graph contract."""
import fractions
import math

import librosa
import numpy as np
import pytest
import soxr
import tensorflow as tf

from tfspeech.ops import resample as resample_lib
from tfspeech.ops.resample import resample, resampled_length
from tfspeech.testing import assert_no_python_ops

RATE_PAIRS = [(44100, 22050), (48000, 22050), (16000, 22050), (22050, 24000), (8000, 16000),
              (22050, 16000)]
# soxr's filter is longer than ours, so where the tone starts and stops abruptly
# the two outputs differ for up to ~60 output samples (measured); compare past that.
EDGE = 128


def _sine(frequency, rate, num_samples, phase=0.3):
  return 0.5 * np.sin(2 * np.pi * frequency * np.arange(num_samples) / rate + phase)


@pytest.mark.parametrize("source_rate, target_rate", RATE_PAIRS)
def test_resample_matches_soxr_and_librosa_on_tones(source_rate, target_rate):
  nyquist = min(source_rate, target_rate) / 2
  frequencies = [0.02 * nyquist, 0.3 * nyquist, 0.7 * nyquist]
  num_samples = source_rate // 4 + 7
  tones = np.stack([_sine(f, source_rate, num_samples) for f in frequencies]).astype(np.float32)

  ours = resample(tones, source_rate, target_rate).numpy()

  expected_len = math.ceil(fractions.Fraction(num_samples * target_rate, source_rate))
  assert ours.shape == (len(frequencies), expected_len)
  for row, frequency in enumerate(frequencies):
    by_soxr = soxr.resample(tones[row], source_rate, target_rate, "HQ")
    by_librosa = librosa.resample(tones[row], orig_sr=source_rate, target_sr=target_rate,
                                  res_type="soxr_hq")
    ideal = _sine(frequency, target_rate, expected_len)
    for name, reference in (("soxr", by_soxr), ("librosa", by_librosa), ("ideal", ideal)):
      common = min(len(reference), expected_len)
      error = np.abs(ours[row, EDGE:common - EDGE] - reference[EDGE:common - EDGE]).max()
      print(f"{source_rate}->{target_rate} {frequency:.0f} Hz vs {name}: max abs {error:.1e}")
      assert error < 1e-3, f"{frequency:.0f} Hz vs {name}: {error}"
    # Steady state: our filter is flat to 1e-5 in this band, and so is soxr's.
    middle = slice(expected_len // 4, 3 * expected_len // 4)
    assert np.abs(ours[row, middle] - ideal[middle]).max() < 1e-4


def test_resample_removes_content_above_the_target_nyquist():
  source_rate, target_rate, num_samples = 44100, 22050, 22050
  # 12.1 kHz would fold to 9.95 kHz; the stopband starts at 11.025 kHz.
  tone = _sine(12100.0, source_rate, num_samples).astype(np.float32)
  out = resample(tone, source_rate, target_rate).numpy()
  assert np.abs(out[EDGE:-EDGE]).max() < 1e-4


@pytest.mark.parametrize("num_samples", [1, 2, 7, 441, 999, 1000, 1001])
def test_resampled_length_is_the_exact_ceiling(num_samples):
  for source_rate, target_rate in RATE_PAIRS:
    expected = math.ceil(fractions.Fraction(num_samples * target_rate, source_rate))
    assert resampled_length(num_samples, source_rate, target_rate) == expected
    out = resample(np.zeros(num_samples, np.float32), source_rate, target_rate)
    assert out.shape == (expected,)
    if (num_samples, source_rate) != (441, 22050):  # librosa's float ceil gives 481, not 480
      assert expected == len(librosa.resample(np.zeros(num_samples, np.float32),
                                              orig_sr=source_rate, target_sr=target_rate,
                                              res_type="soxr_hq"))


def test_resample_equal_rates_is_identity():
  audio = np.random.default_rng(0).standard_normal([2, 100]).astype(np.float32)
  np.testing.assert_array_equal(resample(audio, 22050, 22050).numpy(), audio)


@pytest.mark.parametrize("source_rate, target_rate", [(44100, 22050), (16000, 22050)])
def test_resample_item_alone_equals_item_in_padded_batch(source_rate, target_rate):
  rng = np.random.default_rng(0)
  lengths = [3000, 5000, 4111]
  batch = np.zeros([len(lengths), max(lengths)], np.float32)
  for row, length in enumerate(lengths):
    batch[row, :length] = rng.uniform(-0.5, 0.5, length)
  batched = resample(batch, source_rate, target_rate).numpy()
  for row, length in enumerate(lengths):
    alone = resample(batch[row, :length], source_rate, target_rate).numpy()
    # Zero padding is what the op assumes past the end anyway, so nothing differs.
    np.testing.assert_allclose(batched[row, :len(alone)], alone, atol=1e-6)


def test_resample_graph_mode_with_dynamic_shapes():
  fn = tf.function(lambda audio: resample(audio, 48000, 22050),
                   input_signature=[tf.TensorSpec([None, None], tf.float32)])
  concrete = fn.get_concrete_function()
  assert_no_python_ops(concrete)
  tone = _sine(440.0, 48000, 4801).astype(np.float32)
  for num_samples in (4801, 4000, 17):
    out = concrete(tf.constant(np.stack([tone[:num_samples]] * 2)))
    assert out.shape == (2, resampled_length(num_samples, 48000, 22050))
  np.testing.assert_allclose(concrete(tf.constant(tone[np.newaxis]))[0].numpy(),
                             resample(tone, 48000, 22050).numpy(), atol=1e-6)
  rank1 = tf.function(lambda audio: resample(audio, 8000, 16000),
                      input_signature=[tf.TensorSpec([None], tf.float32)])
  assert_no_python_ops(rank1.get_concrete_function())
  assert rank1(tf.zeros([10])).shape == (20,)


def test_resample_rejects_bad_input():
  with pytest.raises(ValueError, match="source_rate must be a positive Python int"):
    resample(np.zeros(10, np.float32), 44100.0, 22050)
  with pytest.raises(ValueError, match="target_rate"):
    resample(np.zeros(10, np.float32), 44100, 0)
  with pytest.raises(ValueError, match="float tensor"):
    resample(np.zeros(10, np.int16), 44100, 22050)
  with pytest.raises(ValueError, match=r"shape \[samples\] or \[batch, samples\]"):
    resample(np.zeros([1, 1, 10], np.float32), 44100, 22050)
  with pytest.raises(ValueError, match="larger common divisor"):
    resample(np.zeros(10, np.float32), 44100, 44101)
  assert resample_lib._MAX_KERNEL_COEFFICIENTS > 441 * 1000  # 16k <-> 22.05k stays allowed


def test_package_attribute_is_the_module():
  # `tfspeech.ops.resample` must stay the module (tests and callers import it as one).
  import tfspeech.ops
  assert tfspeech.ops.resample is resample_lib
  assert tfspeech.ops.resample.resample is resample

"""MelSpectrogram / mel_filterbank parity with librosa and NumPy transcriptions of the references.

Parity targets (per convention, on log mels): mean abs error < 1e-5 and max abs
error < 1e-4 on bins whose reference mel energy is above 1e-2; the overall max
(which near the log clamp is dominated by float32 FFT rounding) is reported and
only loosely bounded. Run with `-s` to see the numbers.
"""
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import librosa
import tensorflow as tf

from tfspeech.audio import MelConfig, MelSpectrogram, hann_window, log_compress, mel_filterbank
from tfspeech.testing import assert_no_python_ops

ENERGY_FLOOR = 1e-2
# Against the float32 transcriptions the CPU overall max is ~1e-6 (TF's CPU FFT and
# scipy's pocketfft round alike); other FFT libraries (cuFFT) round differently.
F32_OVERALL_BOUND = 5e-4


# --- NumPy transcriptions of the reference front ends -------------------------------------
# The references run in float32 (PyTorch); `dtype=np.float32` reproduces that
# (scipy's pocketfft in single precision, float32 window and filterbank), and
# float64 shows the distance to exact arithmetic. Near the log clamp the two
# differ by up to ~3e-3 on pure tones: the float32 rounding of the Hann window
# alone puts a leakage floor ~1e-7 below the peak into every bin.


def _windowed_rfft(padded, n_fft, hop, win_length, dtype):
  frames = librosa.util.frame(padded.astype(dtype), frame_length=n_fft, hop_length=hop, axis=0)
  # torch.hann_window(N) and scipy get_window('hann', N, fftbins=True) are both periodic.
  window = librosa.util.pad_center(scipy.signal.get_window("hann", win_length, fftbins=True),
                                   size=n_fft).astype(dtype)
  return scipy.fft.rfft(frames * window, axis=-1)  # [frames, bins], complex of dtype's width


def _librosa_mel_basis(sr, n_fft, n_mels, fmin, fmax, dtype):
  return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(dtype)


def hifigan_reference(y, sr=22050, n_fft=1024, hop=256, win=1024, n_mels=80, fmin=0, fmax=8000,
                      dtype=np.float32):
  """jik876/hifi-gan meldataset.py mel_spectrogram(center=False): returns (log mel, mel)."""
  pad = int((n_fft - hop) / 2)
  spec = _windowed_rfft(np.pad(y, (pad, pad), mode="reflect"), n_fft, hop, win, dtype)
  magnitude = np.sqrt(spec.real**2 + spec.imag**2 + dtype(1e-9))
  mel = magnitude @ _librosa_mel_basis(sr, n_fft, n_mels, fmin, fmax, dtype).T
  return np.log(np.clip(mel, dtype(1e-5), None)), mel


def tacotron2_reference(y, sr=22050, n_fft=1024, hop=256, win=1024, n_mels=80, fmin=0, fmax=8000,
                        dtype=np.float32):
  """NVIDIA FastPitch common/layers.py TacotronSTFT.mel_spectrogram (+ stft.py, audio_processing.py)."""
  spec = _windowed_rfft(np.pad(y, (n_fft // 2, n_fft // 2), mode="reflect"), n_fft, hop, win, dtype)
  magnitude = np.sqrt(spec.real**2 + spec.imag**2)
  mel = magnitude @ _librosa_mel_basis(sr, n_fft, n_mels, fmin, fmax, dtype).T
  return np.log(np.clip(mel, dtype(1e-5), None)), mel


def librosa_reference(y, config, pad_mode):
  mel = librosa.feature.melspectrogram(y=y, sr=config.sample_rate, n_fft=config.n_fft,
                                       hop_length=config.hop_length, n_mels=config.n_mels,
                                       pad_mode=pad_mode).T.astype(np.float64)
  return np.log(np.clip(mel, 1e-5, None)), mel


def _parity(module, signals, reference):
  """Runs the module in graph mode with None dims against `reference(audio) -> (log mel, mel)`.

  Returns:
    {"speech": numbers, "all": numbers}, numbers = (mean abs, max abs where the
    reference mel > ENERGY_FLOOR, overall max abs).
  """
  compute = tf.function(module.__call__, input_signature=[tf.TensorSpec([None, None], tf.float32)])
  errors, loud, is_speech = [], [], []
  for name, audio in signals.items():
    got = compute(audio[np.newaxis])[0].numpy()
    expected, energy = reference(audio)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    errors.append(np.abs(got - expected.astype(np.float64)).ravel())
    loud.append((energy > ENERGY_FLOOR).ravel())
    is_speech.append(np.full(got.size, name.startswith("speech")))
  errors, loud, is_speech = map(np.concatenate, (errors, loud, is_speech))
  assert loud.mean() > 0.1  # The bound on loud bins covers a real share of them.
  numbers = {}
  for subset, keep in (("speech", is_speech), ("all", np.ones_like(is_speech))):
    numbers[subset] = (errors[keep].mean(), errors[keep & loud].max(), errors[keep].max())
  return numbers


def _check(name, numbers, overall_bound):
  """Prints the three numbers per subset; asserts the targets and `overall_bound` on the max."""
  for subset, (mean_abs, max_loud, max_all) in numbers.items():
    print(f"\n{name} [{subset}]: mean abs {mean_abs:.3g}, max abs (mel > {ENERGY_FLOOR}) "
          f"{max_loud:.3g}, overall max {max_all:.3g}")
    assert mean_abs < 1e-5
    assert max_loud < 1e-4
    assert max_all < overall_bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["ref_f32", "ref_f64"])
def test_hifigan_parity(test_signals, dtype):
  module = MelSpectrogram(MelConfig.hifigan())
  _check(f"hifigan vs {dtype.__name__} ref",
         _parity(module, test_signals, lambda y: hifigan_reference(y, dtype=dtype)),
         F32_OVERALL_BOUND if dtype == np.float32 else 1e-2)


def test_hifigan_full_band_loss_mel_parity(test_signals):
  # HiFi-GAN's mel loss uses fmax_for_loss=None, i.e. sr / 2.
  module = MelSpectrogram(MelConfig.hifigan(fmax=None))
  _check("hifigan fmax=None vs float32 ref",
         _parity(module, test_signals, lambda y: hifigan_reference(y, fmax=11025)),
         F32_OVERALL_BOUND)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["ref_f32", "ref_f64"])
def test_tacotron2_parity(test_signals, dtype):
  module = MelSpectrogram(MelConfig.tacotron2())
  _check(f"tacotron2 vs {dtype.__name__} ref",
         _parity(module, test_signals, lambda y: tacotron2_reference(y, dtype=dtype)),
         F32_OVERALL_BOUND if dtype == np.float32 else 1e-2)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_librosa_parity(test_signals, pad_mode):
  # librosa's own STFT runs in float32 (complex64) on float32 input; the log is
  # taken with the same clamp on both sides.
  config = MelConfig.librosa(pad_mode=pad_mode, log="natural", clamp_min=1e-5)
  numbers = _parity(MelSpectrogram(config), test_signals,
                    lambda y: librosa_reference(y, config, pad_mode))
  _check(f"librosa pad_mode={pad_mode}", numbers, 1e-2)


def test_linear_matches_librosa_stft_with_short_window(speech):
  # win_length < n_fft: the window is centred in the frame, as librosa and torch.stft do.
  config = MelConfig.librosa(n_fft=1024, hop_length=200, pad_mode="constant", power=1.0).replace(
      win_length=800)
  expected = np.abs(librosa.stft(speech[1].astype(np.float64), n_fft=1024, hop_length=200,
                                 win_length=800, pad_mode="constant")).T
  got = MelSpectrogram(config).linear(speech[1]).numpy()
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, atol=2e-5 * expected.max())


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm", [
    (22050, 1024, 80, 0.0, 8000.0, False, "slaney"),
    (22050, 2048, 128, 0.0, None, False, "slaney"),
    (16000, 512, 40, 20.0, 7600.0, False, None),
    (24000, 1024, 100, 0.0, 12000.0, True, "slaney"),
    (44100, 2048, 128, 55.0, None, True, None),
])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
  config = MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, fmin=fmin,
                     fmax=fmax, mel_scale="htk" if htk else "slaney", mel_norm=norm,
                     padding="center_reflect")
  expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                                 norm=norm).T
  got = mel_filterbank(config).numpy()
  assert got.shape == (n_fft // 2 + 1, n_mels) and got.dtype == np.float32
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7 * max(1.0, expected.max()))


def test_window_is_periodic_hann_centred():
  config = MelConfig.tacotron2(win_length=600)
  expected = librosa.util.pad_center(scipy.signal.get_window("hann", 600, fftbins=True), size=1024)
  np.testing.assert_allclose(hann_window(config).numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("log", ["db", "log10"])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_log_compressions_match_librosa(log, power):
  config = MelConfig.librosa(power=power, log=log, clamp_min=1e-6)
  mel = np.abs(np.random.default_rng(0).standard_normal(1000)).astype(np.float32) ** 3
  if log == "db":
    to_db = librosa.power_to_db if power == 2 else librosa.amplitude_to_db
    expected = to_db(mel, ref=1.0, amin=1e-6, top_db=None)
  else:
    expected = np.log10(np.maximum(mel, 1e-6))
  np.testing.assert_allclose(log_compress(mel, config).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("preset", ["hifigan", "tacotron2", "librosa"])
def test_num_frames_and_graph_mode_batch(preset):
  config = getattr(MelConfig, preset)()
  module = MelSpectrogram(config)
  compute = tf.function(module.__call__, input_signature=[tf.TensorSpec([None, None], tf.float32)])
  concrete = compute.get_concrete_function()
  assert_no_python_ops(concrete)
  assert concrete.output_shapes.as_list() == [None, None, config.n_mels]
  rng = np.random.default_rng(0)
  for length in (4096, 4097, 5000, 6143):
    audio = (0.1 * rng.standard_normal((2, length))).astype(np.float32)
    out = compute(audio)
    assert out.shape[1] == module.num_frames(length)
    assert int(module.num_frames(tf.constant(length))) == module.num_frames(length)
    np.testing.assert_allclose(out.numpy(), module(audio).numpy(), atol=1e-6)  # graph == eager
  expected_frames = {"hifigan": 5000 // 256, "tacotron2": 5000 // 256 + 1, "librosa": 5000 // 512 + 1}
  assert module.num_frames(5000) == expected_frames[preset]


def test_padded_batch_matches_unpadded_inside_true_length(speech):
  module = MelSpectrogram(MelConfig.hifigan())
  short, long = speech[3][:20000], speech[0][:30000]
  batch = np.zeros((2, 30000), np.float32)
  batch[0, :20000], batch[1] = short, long
  out = module(batch).numpy()
  np.testing.assert_allclose(out[1], module(long).numpy(), atol=1e-5)
  # Frames whose window lies inside the true signal are unaffected by the zero padding.
  inside = (20000 + 384 - 1024) // 256 + 1
  np.testing.assert_allclose(out[0, :inside], module(short).numpy()[:inside], atol=1e-5)
  assert module(short).shape == (module.num_frames(20000), 80)  # [samples] -> [frames, mels]


def test_config_validation_names_the_field():
  with pytest.raises(ValueError, match=r"MelConfig.fmax=12000.0: exceeds the Nyquist"):
    MelConfig.hifigan(fmax=12000.0)
  with pytest.raises(ValueError, match=r"MelConfig.padding='same'"):
    MelConfig.hifigan(padding="same")
  with pytest.raises(ValueError, match=r"MelConfig.win_length=2048"):
    MelConfig.tacotron2(win_length=2048)
  with pytest.raises(ValueError, match=r"MelConfig.padding='hifigan': 'hifigan' needs"):
    MelConfig.hifigan(hop_length=255)
  with pytest.raises(ValueError, match=r"audio must be \[batch, samples\] or \[samples\]"):
    MelSpectrogram()(np.zeros((1, 2, 3000), np.float32))
  assert MelConfig.gradtts() == MelConfig.hifigan()

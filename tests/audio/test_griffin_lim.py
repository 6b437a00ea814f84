"""Griffin-Lim against librosa.griffinlim, plus convergence on real speech."""
import librosa
import numpy as np
import pytest
import tensorflow as tf

from tfspeech.audio import (MelConfig, MelSpectrogram, griffin_lim, griffin_lim_preview, istft,
                            mel_filterbank, mel_to_audio, mel_to_linear, spectral_convergence, stft)
from tfspeech.audio.mel import pad_for_stft
from tfspeech.testing import assert_no_python_ops


def _magnitude_config(config):
  return config.replace(power=1.0, magnitude_eps=0.0)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_matches_librosa_griffinlim(speech, pad_mode):
  # Zero initial phase makes both deterministic; momentum on as librosa's default.
  audio = speech[2][:16000]
  config = MelConfig.librosa(n_fft=1024, hop_length=256, pad_mode=pad_mode, power=1.0)
  magnitude = np.abs(librosa.stft(audio, n_fft=1024, hop_length=256, pad_mode=pad_mode))
  expected = librosa.griffinlim(magnitude, n_iter=5, hop_length=256, n_fft=1024, pad_mode=pad_mode,
                                init=None, momentum=0.99)
  got = griffin_lim(magnitude.T, config, n_iter=5, momentum=0.99, init=None).numpy()
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_istft_inverts_stft(speech):
  for config in (MelConfig.hifigan(), MelConfig.tacotron2(), MelConfig.librosa()):
    audio = speech[0][np.newaxis, :20480]
    rebuilt = istft(stft(audio, config), config).numpy()
    assert rebuilt.shape == audio.shape
    np.testing.assert_allclose(rebuilt, audio, atol=1e-5)


def test_spectral_convergence_improves_on_speech(speech):
  config = MelConfig.hifigan()
  magnitude = MelSpectrogram(_magnitude_config(config)).linear(speech[0][np.newaxis, :33075])
  convergence = {}
  for n_iter in (0, 4, 32):
    audio = griffin_lim(magnitude, config, n_iter=n_iter, power=1.0, seed=3)
    convergence[n_iter] = float(spectral_convergence(magnitude, audio, config)[0])
  print(f"\nGriffin-Lim spectral convergence by iterations: {convergence}")
  assert convergence[0] > convergence[4] > convergence[32]
  assert convergence[32] < 0.1


@pytest.mark.parametrize("preset,frames_to_samples", [("hifigan", lambda f: f * 256),
                                                      ("tacotron2", lambda f: (f - 1) * 256)])
def test_output_length_and_graph_mode(preset, frames_to_samples):
  config = getattr(MelConfig, preset)()
  run = tf.function(lambda s: griffin_lim(s, config, n_iter=3),
                    input_signature=[tf.TensorSpec([None, None, config.num_bins])])
  assert_no_python_ops(run.get_concrete_function())
  spectrogram = np.abs(np.random.default_rng(0).standard_normal((2, 37, config.num_bins)))
  audio = run(spectrogram.astype(np.float32))
  assert audio.shape == (2, frames_to_samples(37))
  assert MelSpectrogram(config).num_frames(audio.shape[1]) == 37
  np.testing.assert_allclose(audio.numpy(), griffin_lim(spectrogram, config, n_iter=3).numpy(),
                             atol=1e-5)  # graph == eager, same seed
  assert griffin_lim(spectrogram[0], config, n_iter=1, length=5000).shape == (5000,)


def test_seeded_initial_phase_is_deterministic():
  config = MelConfig.hifigan()
  spectrogram = np.abs(np.random.default_rng(1).standard_normal((1, 20, config.num_bins)))
  first = griffin_lim(spectrogram, config, n_iter=2, seed=7).numpy()
  np.testing.assert_array_equal(first, griffin_lim(spectrogram, config, n_iter=2, seed=7).numpy())
  assert np.abs(first - griffin_lim(spectrogram, config, n_iter=2, seed=8).numpy()).max() > 1e-3
  with pytest.raises(ValueError, match="init='noise'"):
    griffin_lim(spectrogram, config, init="noise")
  with pytest.raises(ValueError, match="has 80 bins, config n_fft=1024 needs 513"):
    griffin_lim(np.ones((1, 5, 80), np.float32), config)


def test_mel_to_linear_is_a_nonnegative_preimage(speech):
  config = MelConfig.hifigan()
  module = MelSpectrogram(config)
  audio = speech[1][np.newaxis, :22050]
  linear = mel_to_linear(module(audio), config).numpy()
  assert linear.shape == (1, module.num_frames(22050), config.num_bins)
  assert linear.min() >= 0.0
  mel = module.mel(audio).numpy()
  rebuilt = linear @ mel_filterbank(config).numpy()
  relative = np.linalg.norm(rebuilt - mel) / np.linalg.norm(mel)
  print(f"\nmel_to_linear relative mel error: {relative:.3g}")
  assert relative < 0.02


def test_mel_to_audio_graph_mode(speech):
  config = MelConfig.hifigan()
  module = MelSpectrogram(config)
  vocode = tf.function(lambda m: mel_to_audio(m, config, n_iter=16),
                       input_signature=[tf.TensorSpec([None, None, config.n_mels])])
  assert_no_python_ops(vocode.get_concrete_function())
  mel_log = module(speech[4][np.newaxis, :22016])
  audio = vocode(mel_log)
  assert audio.shape == (1, 22016)
  # The vocoded audio's log mels approach the input's (loud bins only: the log
  # exaggerates errors near the clamp).
  loud = mel_log.numpy() > np.log(1e-2)
  error = np.abs(module(audio).numpy() - mel_log.numpy())[loud].mean()
  print(f"\nmel_to_audio mean log-mel error on loud bins: {error:.3g}")
  assert error < 0.5


def test_griffin_lim_preview_is_finite_at_a_fixed_peak(speech):
  # What an untrained model predicts: log-mels far past exp's float32 range, inf and NaN.
  config = MelConfig.hifigan()
  mel_log = MelSpectrogram(config)(speech[4][np.newaxis, :8192]).numpy()
  wild = mel_log + 200.0
  broken = mel_log.copy()
  broken[0, ::3, ::2] = np.nan
  broken[0, 1::3] = np.inf
  silent = np.full_like(mel_log, np.log(1e-5))
  mels = np.concatenate([mel_log, wild, broken, silent]).astype(np.float32)
  assert not np.isfinite(mel_to_audio(wild, config, n_iter=2).numpy()).all()  # what it guards
  preview = tf.function(lambda m: griffin_lim_preview(m, config, n_iter=4, peak_db=-3.0),
                        input_signature=[tf.TensorSpec([None, None, config.n_mels])])
  assert_no_python_ops(preview.get_concrete_function())
  audio = preview(mels).numpy()
  assert audio.shape == (4, 8192)
  assert np.isfinite(audio).all()
  peaks = np.abs(audio).max(axis=1)
  np.testing.assert_allclose(peaks[:3], 10 ** (-3.0 / 20), rtol=1e-4)
  assert peaks[3] < 1e-4  # silence stays silence, not amplified noise


@pytest.mark.parametrize("preset", ["hifigan", "tacotron2", "librosa_reflect", "librosa_constant"])
def test_one_two_and_three_frame_mels_vocode_in_graph_mode(preset):
  # Regression: a 1-frame mel gave a 256-sample signal that MirrorPad could not reflect
  # by 384 ("paddings must be less than the dimension size"), in the first iteration.
  if preset.startswith("librosa"):
    config = MelConfig.librosa(n_fft=1024, hop_length=256, n_mels=80,
                               pad_mode=preset.split("_")[1])
  else:
    config = getattr(MelConfig, preset)()
  vocode = tf.function(lambda m: mel_to_audio(m, config, n_iter=4),
                       input_signature=[tf.TensorSpec([None, None, config.n_mels])])
  centred = config.padding != "hifigan"
  rng = np.random.default_rng(0)
  for frames in (0, 1, 2, 3):
    mel = rng.normal(-3.0, 1.0, (2, frames, config.n_mels)).astype(np.float32)
    for run in (vocode, lambda m: mel_to_audio(m, config, n_iter=4)):  # graph, eager
      audio = run(mel).numpy()
      samples = max(frames - 1, 0) * 256 if centred else frames * 256
      assert audio.shape == (2, samples) and np.isfinite(audio).all(), (frames, audio.shape)
      if frames > 1:
        # The STFT of the result has the frames Griffin-Lim was given.
        assert stft(audio, config).shape[1] == frames and np.abs(audio).max() > 0


@pytest.mark.parametrize("length", [0, 1, 2, 5, 383, 384, 385, 1000])
def test_reflect_padding_of_any_length_matches_numpy(length):
  config = MelConfig.hifigan()  # pads (1024 - 256) / 2 = 384 each side
  audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
  dynamic = tf.function(lambda a: pad_for_stft(a, config),
                        input_signature=[tf.TensorSpec([None, None])])
  got = dynamic(audio).numpy()
  assert got.shape == (2, length + 768)
  if length == 0:
    assert not got.any()  # An empty signal reflects silence.
  else:
    np.testing.assert_array_equal(got, np.pad(audio, [[0, 0], [384, 384]], mode="reflect"))
  np.testing.assert_array_equal(pad_for_stft(audio, config).numpy(), got)  # static == dynamic

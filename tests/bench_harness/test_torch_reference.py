"""The PyTorch reference transcriptions the train/infer benchmarks compare against.

Parameter counts must equal tfspeech's for every preset (same models), the tiny train step
and forward must run with the reference's output shapes, and with tfspeech's weights copied
in, the transcriptions must compute what tfspeech computes (a wrong transcription fails).
Skipped without torch.
"""
import importlib
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None:
  pytest.skip("torch is not installed (optional: the benchmarks' PyTorch baselines)",
              allow_module_level=True)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  # At the end, so the installed tfspeech still wins (see test_harness.py).
  sys.path.append(str(REPO_ROOT))
# Before torch: sets OMP_WAIT_POLICY=PASSIVE (spinning OpenMP threads crawl on a busy 2-core box).
importlib.import_module("benchmarks.torch_reference")
import torch  # noqa: E402  pylint: disable=wrong-import-position

torch_grad_tts = importlib.import_module("benchmarks.torch_reference.grad_tts")
torch_hifigan = importlib.import_module("benchmarks.torch_reference.hifigan")

# pylint: disable=wrong-import-position
from tfspeech.models import hifigan  # noqa: E402
from tfspeech.models import registry  # noqa: E402
from tfspeech.models.grad_tts import GradTTS, grad_tts_presets  # noqa: E402


def _grad_tts_torch(config):
  torch.manual_seed(0)
  return torch_grad_tts.GradTTS(torch_grad_tts.params_from_tfspeech(config))


# tiny has the 65-id table it trains with (english_characters + blank) since the model and task
# presets became one table; it had 149 ids, 1,344 parameters more.
@pytest.mark.parametrize("name,expected", [("tiny", 138_224), ("ljspeech", 14_835_032)])
def test_grad_tts_parameter_counts_match_tfspeech(name, expected):
  config = grad_tts_presets.preset(name)
  torch_count = torch_grad_tts.count_parameters(_grad_tts_torch(config))
  assert torch_count == GradTTS(config).count_params() == expected


def test_grad_tts_task_tiny_parameter_count_matches_tfspeech():
  # The benchmarked task preset embeds 65 ids (characters + blank), not the reference 149.
  config = registry.get("grad_tts").preset("tiny")
  assert torch_grad_tts.count_parameters(_grad_tts_torch(config)) == GradTTS(
      config).count_params() == 139_568 - (149 - 65) * config.n_enc_channels


@pytest.mark.parametrize("name,generator_count", [
    ("v1", 13_926_017), ("v2", 925_985), ("v3", 1_462_273), ("tiny", None)])
def test_hifigan_generator_parameter_counts_match_tfspeech(name, generator_count):
  config = hifigan.get_preset(name)
  params = torch_hifigan.params_from_tfspeech(config)
  tf_count = hifigan.HifiGanGenerator(config, weight_norm=False).count_params()
  assert torch_hifigan.count_parameters(torch_hifigan.inference_generator(params)) == tf_count
  if generator_count is not None:
    assert tf_count == generator_count
  if name in ("v3", "tiny"):  # With weight norm (training): g and v per conv, as kernel_g.
    assert torch_hifigan.count_parameters(torch_hifigan.Generator(params)) == (
        hifigan.HifiGanGenerator(config).count_params())


_DISCRIMINATOR_FIELDS = ("mpd_periods", "mpd_channels", "msd_channels", "msd_groups")


@pytest.mark.parametrize("name", ["v1", "tiny"])
def test_hifigan_discriminator_parameter_counts_match_tfspeech(name):
  config = hifigan.get_preset(name)
  if name == "v1":  # v2 and v3 share v1's discriminators: one build covers the three.
    for other in ("v2", "v3"):
      assert all(getattr(hifigan.get_preset(other), f) == getattr(config, f)
                 for f in _DISCRIMINATOR_FIELDS)
  mpd, msd = torch_hifigan.build_discriminators(torch_hifigan.params_from_tfspeech(config))
  tf_mpd, tf_msd = hifigan.build_discriminators(config)
  trainable = lambda model: sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  assert torch_hifigan.count_parameters(mpd) == trainable(tf_mpd)
  assert torch_hifigan.count_parameters(msd) == trainable(tf_msd)
  if name == "v1":
    assert (trainable(tf_mpd), trainable(tf_msd)) == (41_105_770, 29_618_821)


def _grad_tts_batch(config, text_lengths, frames_per_token=4, seed=0):
  rng = np.random.default_rng(seed)
  text_lengths = np.asarray(text_lengths, np.int32)
  mel_lengths = text_lengths * frames_per_token
  ids = rng.integers(1, config.n_vocab, size=[len(text_lengths), text_lengths.max()])
  ids[np.arange(text_lengths.max())[None] >= text_lengths[:, None]] = 0
  mel = rng.normal(-5.0, 2.0, size=[len(text_lengths), mel_lengths.max(), config.n_feats])
  return {"text_ids": ids.astype(np.int32), "text_lengths": text_lengths,
          "mel": mel.astype(np.float32), "mel_lengths": mel_lengths.astype(np.int32)}


def test_grad_tts_tiny_train_step_and_synthesis_shapes():
  config = registry.get("grad_tts").preset("tiny")
  model = _grad_tts_torch(config)
  batch = torch_grad_tts.torch_batch(_grad_tts_batch(config, [11, 7]))
  assert batch["y"].shape == (2, config.n_feats, 44)
  before = [p.detach().clone() for p in model.parameters()]
  step = torch_grad_tts.TrainStep(model, learning_rate=1e-3, seed=0)
  losses = [step(batch) for _ in range(2)]
  assert all(np.isfinite(losses))
  changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
  assert changed > len(before) // 2  # the Adam step reached encoder and decoder
  model.eval()
  with torch.inference_mode():
    encoded, decoded, attn = model(batch["x"], batch["x_lengths"], 2, temperature=1.5,
                                   length_scale=2.0)
  frames = encoded.shape[-1]
  assert encoded.shape == decoded.shape == (2, config.n_feats, frames)
  assert attn.shape == (2, 1, 11, frames)
  # Every token gets >= 1 frame; each frame belongs to at most one token.
  per_frame = attn.sum(dim=2)
  assert bool(((per_frame == 0) | (per_frame == 1)).all())
  assert int(attn.sum(dim=(1, 2, 3)).max()) == frames


def test_grad_tts_transcription_matches_tfspeech_with_copied_weights():
  config = grad_tts_presets.tiny()
  tf_model = GradTTS(config)
  rng = np.random.default_rng(3)
  # Non-zero Rezero gates, so the linear attention is part of the comparison.
  for variable in tf_model.decoder.estimator.weights:
    if "gate" in variable.path:
      variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  model = torch_grad_tts.load_tfspeech_weights(_grad_tts_torch(config), tf_model).eval()

  batch = _grad_tts_batch(config, [13, 9])  # the second item is padded
  mu, log_durations, _, _ = tf_model.encode(batch["text_ids"], batch["text_lengths"])
  torch_inputs = torch_grad_tts.torch_batch(batch)
  with torch.no_grad():
    torch_mu, torch_logw, _ = model.encoder(torch_inputs["x"], torch_inputs["x_lengths"])
  np.testing.assert_allclose(torch_mu.numpy().transpose(0, 2, 1), mu.numpy(), atol=1e-4)
  np.testing.assert_allclose(torch_logw.numpy()[:, 0], log_durations.numpy(), atol=1e-4)

  # The U-Net on unpadded frames (tfspeech masks GroupNorm/attention statistics to real frames,
  # the reference does not; with every frame real they agree).
  x = rng.normal(size=(2, 16, config.n_feats)).astype(np.float32)
  mu_y = rng.normal(size=(2, 16, config.n_feats)).astype(np.float32)
  t = np.array([0.3, 0.8], np.float32)
  mask = np.ones([2, 16], np.float32)
  score = tf_model.decoder.estimator(x, mask, mu_y, t).numpy()
  channels_first = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1)))
  with torch.no_grad():
    torch_score = model.decoder.estimator(channels_first(x), torch.from_numpy(mask[:, None]),
                                          channels_first(mu_y), torch.from_numpy(t)).numpy()
  np.testing.assert_allclose(torch_score.transpose(0, 2, 1), score,
                             atol=1e-4 * np.abs(score).max())


def test_hifigan_tiny_train_step_and_forward_shapes():
  config = hifigan.tiny()
  params = torch_hifigan.params_from_tfspeech(config)
  torch.manual_seed(0)
  step = torch_hifigan.TrainStep(params)
  audio = torch.rand(2, config.segment_size) - 0.5
  mel = torch_hifigan.mel_spectrogram(audio, 1024, 80, 22050, 256, 1024, 0, 8000)
  frames = config.segment_size // 256
  assert mel.shape == (2, 80, frames)
  loss_mel = step.loss_mel(audio)
  assert loss_mel.shape == (2, 80, frames)
  assert np.isfinite(step(mel, audio.unsqueeze(1), loss_mel))
  generator = torch_hifigan.inference_generator(params)
  with torch.inference_mode():
    out = generator(mel)
  assert out.shape == (2, 1, frames * 256)


def test_hifigan_generator_matches_tfspeech_with_copied_weights():
  config = hifigan.tiny().replace(resblock="1", resblock_kernel_sizes=(3, 5),
                                  resblock_dilation_sizes=((1, 3, 5), (1, 2, 3)))
  tf_generator = hifigan.HifiGanGenerator(config, weight_norm=False)
  rng = np.random.default_rng(4)
  for layer in tf_generator.conv_layers():
    # Larger weights than the N(0, 0.01) init, so the tanh output is not ~0.
    layer.kernel.assign(layer.kernel.numpy() * 10.0)
    layer.bias.assign(rng.normal(0, 0.1, size=layer.bias.shape).astype(np.float32))
  generator = torch_hifigan.load_tfspeech_generator(
      torch_hifigan.inference_generator(torch_hifigan.params_from_tfspeech(config)),
      tf_generator)
  mel = rng.normal(-5, 2, size=(2, 9, 80)).astype(np.float32)
  expected = tf_generator(mel).numpy()
  assert np.abs(expected).max() > 0.05
  with torch.inference_mode():
    actual = generator(torch.from_numpy(np.ascontiguousarray(mel.transpose(0, 2, 1)))).numpy()
  # float32 through ~20 convs: 1e-3; a wrong transcription is off by O(0.1) or more.
  np.testing.assert_allclose(actual[:, 0], expected, atol=1e-3)

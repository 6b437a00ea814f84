"""HiFi-GAN networks and losses against NumPy transcriptions of jik876/hifi-gan (torch layout)."""

import math

import librosa
import numpy as np
import pytest
import tensorflow as tf

from tfspeech.audio.mel import MelConfig
from tfspeech.models import hifigan
from tfspeech.testing import assert_no_python_ops

# --- NumPy transcription of the torch ops the reference uses (torch weight layouts). ---


def np_leaky_relu(x, slope):
  return np.where(x >= 0, x, slope * x)


def np_conv1d(x, w, b, stride=1, dilation=1, padding=0, groups=1):
  """torch Conv1d on channels-last x [B, T, Cin]; w [Cout, Cin / groups, K]."""
  x = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
  cout, cin_g, k = w.shape
  t_out = (x.shape[1] - dilation * (k - 1) - 1) // stride + 1
  cout_g = cout // groups
  y = np.zeros((x.shape[0], t_out, cout), np.float64)
  for g in range(groups):
    for tap in range(k):
      xs = x[:, tap * dilation:tap * dilation + stride * (t_out - 1) + 1:stride,
             g * cin_g:(g + 1) * cin_g]
      y[..., g * cout_g:(g + 1) * cout_g] += xs @ w[g * cout_g:(g + 1) * cout_g, :, tap].T
  return y + b


def np_conv_transpose1d(x, w, b, stride, padding):
  """torch ConvTranspose1d on channels-last x [B, T, Cin]; w [Cin, Cout, K]."""
  _, cout, k = w.shape
  full = (x.shape[1] - 1) * stride + k
  y = np.zeros((x.shape[0], full, cout), np.float64)
  for tap in range(k):
    y[:, tap:tap + stride * (x.shape[1] - 1) + 1:stride] += x @ w[:, :, tap]
  return y[:, padding:full - padding] + b


def np_weight_norm(v, g):
  """torch weight_norm(dim=0): g * v / ||v|| with the norm over every dim but 0."""
  norm = np.sqrt((v.astype(np.float64) ** 2).reshape(v.shape[0], -1).sum(1))
  return v * (g / norm).reshape((-1,) + (1,) * (v.ndim - 1))


def torch_weight(layer):
  """A conv layer's effective weight in torch layout, computed from its raw variables."""
  kernel = layer._kernel.numpy().astype(np.float64)
  if isinstance(layer, hifigan.NormalizedConv2D):
    v = kernel[:, 0].transpose(2, 1, 0)  # [kh, 1, in, out] -> [out, in, kh]
  else:
    v = kernel.transpose(2, 1, 0)  # Conv1D [k, in, out] / transpose [k, out, in] -> torch
  if layer.normalization == "weight":
    return np_weight_norm(v, layer.kernel_g.numpy())
  if layer.normalization == "spectral":
    cout, cin, k = v.shape
    # Our v vector flattens (k, in); torch's flattens (in, k).
    v_vec = layer.spectral_v.numpy().reshape(k, cin).T.reshape(-1)
    sigma = layer.spectral_u.numpy() @ v.reshape(cout, -1) @ v_vec
    return v / sigma
  return v


def np_generator(gen, mel):
  config = gen.config
  x = np_conv1d(mel, torch_weight(gen.conv_pre), gen.conv_pre.bias.numpy(), padding=3)
  for stage, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
    up = gen.upsamplers[stage]
    x = np_conv_transpose1d(np_leaky_relu(x, 0.1), torch_weight(up), up.bias.numpy(), rate,
                            (kernel - rate) // 2)
    total = 0
    for block, k, dilations in zip(gen.resblocks[stage], config.resblock_kernel_sizes,
                                   config.resblock_dilation_sizes):
      h = x
      for i, d in enumerate(dilations):
        c = block.dilated_convs[i]
        t = np_conv1d(np_leaky_relu(h, 0.1), torch_weight(c), c.bias.numpy(), dilation=d,
                      padding=d * (k - 1) // 2)
        if config.resblock == "1":
          c = block.plain_convs[i]
          t = np_conv1d(np_leaky_relu(t, 0.1), torch_weight(c), c.bias.numpy(),
                        padding=(k - 1) // 2)
        h = h + t
      total = total + h
    x = total / len(config.resblock_kernel_sizes)
  x = np_conv1d(np_leaky_relu(x, 0.01), torch_weight(gen.conv_post), gen.conv_post.bias.numpy(),
                padding=3)
  return np.tanh(x[..., 0])


def np_period_discriminator(d, audio):
  b, t = audio.shape
  if t % d.period:
    audio = np.pad(audio, ((0, 0), (0, d.period - t % d.period)), mode="reflect")
  x = audio.reshape(b, -1, d.period)  # torch .view(b, 1, t // p, p)
  # A (k, 1) Conv2d is a Conv1d along axis 1 applied to every column.
  x = x.transpose(0, 2, 1).reshape(b * d.period, -1, 1)
  maps = []
  for i, conv in enumerate(d.convs):
    stride = 3 if i < len(d.convs) - 1 else 1
    x = np_leaky_relu(np_conv1d(x, torch_weight(conv), conv.bias.numpy(), stride, padding=2), 0.1)
    maps.append(x)
  x = np_conv1d(x, torch_weight(d.conv_post), d.conv_post.bias.numpy(), padding=1)
  maps.append(x)
  to_nhwc = lambda m: m.reshape(b, d.period, m.shape[1], m.shape[2]).transpose(0, 2, 1, 3)
  maps = [to_nhwc(m) for m in maps]
  return maps[-1].reshape(b, -1), maps


MSD_LAYERS = [(15, 1, 7), (41, 2, 20), (41, 2, 20), (41, 4, 20), (41, 4, 20), (41, 1, 20),
              (5, 1, 2)]  # (kernel, stride, padding) from models.DiscriminatorS


def np_scale_discriminator(d, audio, groups):
  x = audio[..., None]
  maps = []
  for conv, (_, stride, padding), group in zip(d.convs, MSD_LAYERS, groups):
    x = np_leaky_relu(np_conv1d(x, torch_weight(conv), conv.bias.numpy(), stride,
                                padding=padding, groups=group), 0.1)
    maps.append(x)
  x = np_conv1d(x, torch_weight(d.conv_post), d.conv_post.bias.numpy(), padding=1)
  maps.append(x)
  return x[..., 0], maps


def np_avg_pool_4_2_pad_2(audio):
  """torch AvgPool1d(4, 2, padding=2), count_include_pad=True."""
  x = np.pad(audio, ((0, 0), (2, 2)))
  n = (x.shape[1] - 4) // 2 + 1
  return np.stack([x[:, 2 * i:2 * i + 4].mean(1) for i in range(n)], 1)


def np_hifigan_log_mel(audio, sr=22050, n_fft=1024, hop=256, n_mels=80, fmax=None):
  """meldataset.mel_spectrogram: reflect pad (n_fft - hop) / 2, stft(center=False), log clamp."""
  pad = (n_fft - hop) // 2
  audio = np.pad(audio.astype(np.float64), ((0, 0), (pad, pad)), mode="reflect")
  window = np.hanning(n_fft + 1)[:-1]  # torch.hann_window: periodic
  frames = 1 + (audio.shape[1] - n_fft) // hop
  idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]
  spec = np.fft.rfft(audio[:, idx] * window, axis=-1)
  mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
  basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=fmax)
  return np.log(np.maximum(mag @ basis.T, 1e-5))


# --- Reference parameter counts, from the layer shapes in models.py. ---


def reference_generator_params(config):
  """(plain, plain + weight-norm g) for models.Generator built from `config`."""
  plain = gains = 0

  def conv(cin, cout, k, transposed=False):
    nonlocal plain, gains
    plain += cin * cout * k + cout
    gains += cin if transposed else cout  # weight_norm dim=0 of [in, out, k] is `in`

  c = config.upsample_initial_channel
  conv(80, c, 7)
  for i, k in enumerate(config.upsample_kernel_sizes):
    conv(c // 2 ** i, c // 2 ** (i + 1), k, transposed=True)
  for i in range(len(config.upsample_rates)):
    ch = c // 2 ** (i + 1)
    for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
      for _ in range(len(dilations) * (2 if config.resblock == "1" else 1)):
        conv(ch, ch, k)
  conv(c // 2 ** len(config.upsample_rates), 1, 7)
  return plain, plain + gains


def reference_discriminator_params():
  """(MPD plain, MPD torch parameters(), MSD plain, MSD torch parameters())."""
  mpd = [(1, 32, 5), (32, 128, 5), (128, 512, 5), (512, 1024, 5), (1024, 1024, 5), (1024, 1, 3)]
  mpd_plain = sum(i * o * k + o for i, o, k in mpd)
  mpd_gains = sum(o for _, o, _ in mpd)
  msd = [(1, 128, 15, 1), (128, 128, 41, 4), (128, 256, 41, 16), (256, 512, 41, 16),
         (512, 1024, 41, 16), (1024, 1024, 41, 16), (1024, 1024, 5, 1), (1024, 1, 3, 1)]
  msd_plain = sum(i // g * o * k + o for i, o, k, g in msd)
  msd_gains = sum(o for _, o, _, _ in msd)
  # Scale 0 uses spectral_norm (weight_orig only, u/v are buffers); 1 and 2 weight_norm.
  return 5 * mpd_plain, 5 * (mpd_plain + mpd_gains), 3 * msd_plain, 3 * msd_plain + 2 * msd_gains


def trainable_count(model):
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def randomize_gains(model, rng):
  """Moves weight-norm gains away from ||v|| so a wrong fold cannot pass unnoticed."""
  for variable in model.trainable_variables:
    if "kernel_g" in variable.path:
      variable.assign(variable.numpy() * rng.uniform(0.5, 2.0, variable.shape))


def tiny_resblock1():
  return hifigan.tiny().replace(resblock="1", resblock_kernel_sizes=(3, 5),
                                resblock_dilation_sizes=((1, 3, 5), (1, 2, 3)))


# --- Configs. ---


def test_presets_are_the_published_configs():
  expected = {  # config_v1/v2/v3.json
      "v1": ("1", (8, 8, 2, 2), (16, 16, 4, 4), 512, (3, 7, 11), ((1, 3, 5),) * 3),
      "v2": ("1", (8, 8, 2, 2), (16, 16, 4, 4), 128, (3, 7, 11), ((1, 3, 5),) * 3),
      "v3": ("2", (8, 8, 4), (16, 16, 8), 256, (3, 5, 7), ((1, 2), (2, 6), (3, 12))),
  }
  for name, fields in expected.items():
    c = hifigan.get_preset(name)
    assert (c.resblock, c.upsample_rates, c.upsample_kernel_sizes, c.upsample_initial_channel,
            c.resblock_kernel_sizes, c.resblock_dilation_sizes) == fields
    assert (c.segment_size, c.num_mels, c.hop_length) == (8192, 80, 256)
    t = hifigan.hifigan_presets.train_config(name)
    assert (t.batch_size, t.learning_rate, t.beta_1, t.beta_2, t.decay_rate, t.seed) == (
        16, 0.0002, 0.8, 0.99, 0.999, 1234)
  assert hifigan.tiny().hop_length == 256


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match="resblock"):
    hifigan.v1().replace(resblock="3")
  with pytest.raises(ValueError, match="upsample kernel 15 with rate 8"):
    hifigan.v1().replace(upsample_kernel_sizes=(15, 16, 4, 4))
  with pytest.raises(ValueError, match="segment_size"):
    hifigan.v1().replace(segment_size=1000)
  with pytest.raises(ValueError, match="msd_groups"):
    hifigan.tiny().replace(msd_groups=(1, 3, 4, 4, 4, 4, 1))
  with pytest.raises(ValueError, match="unknown HiFi-GAN preset"):
    hifigan.get_preset("v4")


# --- Generator. ---


def assert_matches_paper(count, paper_millions, max_relative_error):
  """The paper prints counts truncated to 0.01M (V2: 925,985 -> "0.92M")."""
  assert math.floor(count / 1e4) / 100 == paper_millions
  assert abs(count / 1e6 - paper_millions) / paper_millions < max_relative_error


# Inference (weight norm removed) counts, which are what the paper reports. V2
# is 0.65% above its printed 0.92M because of the truncation; V1 and V3 are
# within 0.5%.
@pytest.mark.parametrize("name,paper_millions,max_relative_error",
                         [("v2", 0.92, 0.007), ("v3", 1.46, 0.005)])
def test_generator_parameter_counts(name, paper_millions, max_relative_error):
  config = hifigan.get_preset(name)
  generator = hifigan.HifiGanGenerator(config)
  inference = generator.remove_weight_norm()
  plain, with_gains = reference_generator_params(config)
  assert trainable_count(inference) == plain
  assert trainable_count(generator) == with_gains
  assert_matches_paper(plain, paper_millions, max_relative_error)


def test_generator_v1_parameter_count_and_run():
  config = hifigan.v1()
  generator = hifigan.HifiGanGenerator(config)
  inference = generator.remove_weight_norm()
  plain, with_gains = reference_generator_params(config)
  assert (trainable_count(inference), trainable_count(generator)) == (plain, with_gains)
  assert_matches_paper(plain, 13.92, 0.005)
  audio = inference(np.random.randn(1, 3, 80).astype(np.float32))
  assert audio.shape == (1, 3 * 256)
  assert np.all(np.isfinite(audio.numpy()))


@pytest.mark.parametrize("config", [hifigan.tiny(), tiny_resblock1()], ids=["type2", "type1"])
def test_generator_matches_numpy_reference(config):
  generator = hifigan.HifiGanGenerator(config)
  randomize_gains(generator, np.random.default_rng(1))
  mel = np.random.randn(2, 7, 80).astype(np.float32)
  expected = np_generator(generator, mel.astype(np.float64))
  actual = generator(mel).numpy()
  assert actual.shape == (2, 7 * 256)
  # The N(0, 0.01) init makes the raw output tiny; compare relative to its scale.
  np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def test_remove_weight_norm_keeps_outputs():
  generator = hifigan.HifiGanGenerator(tiny_resblock1())
  randomize_gains(generator, np.random.default_rng(2))
  inference = generator.remove_weight_norm()
  assert not any("kernel_g" in v.path for v in inference.variables)
  assert any("kernel_g" in v.path for v in generator.variables)
  mel = np.random.randn(2, 9, 80).astype(np.float32)
  reference = generator(mel).numpy()
  np.testing.assert_allclose(inference(mel).numpy(), reference, rtol=1e-5,
                             atol=1e-6 * np.abs(reference).max())


def test_generator_rejects_wrong_mel_shape():
  generator = hifigan.HifiGanGenerator(hifigan.tiny())
  with pytest.raises(ValueError, match=r"\[batch, frames, 80\]"):
    generator(np.zeros((1, 5, 60), np.float32))


def _right_context_frames(config):
  """Mel frames to the right that can influence a sample (from the reference layer shapes)."""
  frames = 3.0  # conv_pre, kernel 7
  rate = 1
  for u, k in zip(config.upsample_rates, config.upsample_kernel_sizes):
    rate *= u
    frames += ((k - u) // 2) / rate  # transposed conv: output n sees inputs up to (n + pad) / u
    spans = []
    for kernel, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
      half = (kernel - 1) // 2
      spans.append(sum(d * half + (half if config.resblock == "1" else 0) for d in dilations))
    frames += max(spans) / rate
  return frames + 3 / rate  # conv_post, kernel 7


def test_generator_graph_mode_and_batch_padding():
  generator = hifigan.HifiGanGenerator(hifigan.tiny()).remove_weight_norm()
  infer = tf.function(generator.call,
                      input_signature=[tf.TensorSpec([None, None, 80], tf.float32)])
  concrete = infer.get_concrete_function()
  assert_no_python_ops(concrete)
  frames, padded_frames = 20, 32
  item = np.random.randn(1, frames, 80).astype(np.float32)
  alone = infer(item).numpy()
  assert alone.shape == (1, frames * 256)
  np.testing.assert_allclose(alone, generator(item).numpy(), rtol=1e-5, atol=1e-7)

  other = np.random.randn(1, padded_frames, 80).astype(np.float32)
  padded = np.concatenate([other, np.pad(item, ((0, 0), (0, padded_frames - frames), (0, 0)))])
  batch = infer(padded).numpy()
  assert batch.shape == (2, padded_frames * 256)
  valid = (frames - math.ceil(_right_context_frames(generator.config))) * 256
  assert valid > frames * 256 // 2
  np.testing.assert_allclose(batch[1, :valid], alone[0, :valid], rtol=1e-5,
                             atol=1e-5 * np.abs(alone).max())
  # The padding does reach the last samples, so the comparison region is not trivially safe.
  assert not np.allclose(batch[1, frames * 256 - 1], alone[0, -1], rtol=1e-3, atol=0)


# --- Discriminators. ---


def test_discriminator_parameter_counts():
  mpd = hifigan.MultiPeriodDiscriminator()
  msd = hifigan.MultiScaleDiscriminator()
  mpd_plain, mpd_torch, msd_plain, msd_torch = reference_discriminator_params()
  assert trainable_count(mpd) == mpd_torch == 41_105_770
  assert trainable_count(msd) == msd_torch == 29_618_821
  # Folded (no g) counts: sum of the effective kernels and biases.
  folded = lambda model: sum(int(np.prod(layer.kernel.shape)) + int(np.prod(layer.bias.shape))
                             for d in model.discriminators for layer in d.convs + [d.conv_post])
  assert (folded(mpd), folded(msd)) == (mpd_plain, msd_plain)


@pytest.mark.parametrize("length", [1001, 997, 1024])
def test_period_discriminator_matches_numpy_reference(length):
  config = hifigan.tiny()
  mpd, _ = hifigan.build_discriminators(config)
  randomize_gains(mpd, np.random.default_rng(3))
  audio = np.random.uniform(-1, 1, (2, length)).astype(np.float32)
  logits, maps = mpd(audio)
  assert len(logits) == len(config.mpd_periods) == 5
  for d, d_logits, d_maps in zip(mpd.discriminators, logits, maps):
    expected_logits, expected_maps = np_period_discriminator(d, audio.astype(np.float64))
    assert d_maps[0].shape[1:3] == (math.ceil(math.ceil(length / d.period) / 3), d.period)
    np.testing.assert_allclose(d_logits.numpy(), expected_logits, rtol=1e-4, atol=1e-5)
    for actual, expected in zip(d_maps, expected_maps):
      np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-4, atol=1e-5)
  # Unknown length at trace time: the reflect-pad amount is computed in the graph.
  graph = tf.function(mpd.call, input_signature=[tf.TensorSpec([None, None], tf.float32)])
  for eager_logits, graph_logits in zip(logits, graph(audio)[0]):
    np.testing.assert_allclose(graph_logits.numpy(), eager_logits.numpy(), rtol=1e-5, atol=1e-6)


def test_scale_discriminator_matches_numpy_reference():
  config = hifigan.tiny()
  _, msd = hifigan.build_discriminators(config)
  randomize_gains(msd, np.random.default_rng(4))
  audio = np.random.uniform(-1, 1, (2, 999)).astype(np.float32)
  logits, maps = msd(audio)
  assert [d.convs[0].normalization for d in msd.discriminators] == ["spectral", "weight", "weight"]
  x = audio.astype(np.float64)
  for i, (d, d_logits, d_maps) in enumerate(zip(msd.discriminators, logits, maps)):
    if i:
      x = np_avg_pool_4_2_pad_2(x)
    expected_logits, expected_maps = np_scale_discriminator(d, x, config.msd_groups)
    np.testing.assert_allclose(d_logits.numpy(), expected_logits, rtol=1e-4, atol=1e-5)
    assert [m.shape for m in d_maps] == [m.shape for m in expected_maps]
    np.testing.assert_allclose(d_maps[-2].numpy(), expected_maps[-2], rtol=1e-4, atol=1e-5)


def test_spectral_norm_power_iteration_finds_largest_singular_value():
  layer = hifigan.NormalizedConv1D(6, 5, groups=2, normalization="spectral")
  layer.build((None, None, 4))
  x = np.random.randn(1, 16, 4).astype(np.float32)
  u_before = layer.spectral_u.numpy().copy()
  layer(x, training=False)
  np.testing.assert_array_equal(layer.spectral_u.numpy(), u_before)
  for _ in range(30):
    layer(x, training=True)
  assert not np.array_equal(layer.spectral_u.numpy(), u_before)
  w = layer._kernel.numpy().transpose(2, 1, 0).reshape(6, -1)  # torch [out, in * k]
  top_singular = np.linalg.svd(w, compute_uv=False)[0]
  np.testing.assert_allclose(np.linalg.svd(layer.folded_kernel().numpy().transpose(2, 1, 0)
                                           .reshape(6, -1), compute_uv=False)[0], 1.0, rtol=1e-4)
  np.testing.assert_allclose(layer.folded_kernel().numpy(), layer._kernel.numpy() / top_singular,
                             rtol=1e-4)


# --- Losses. ---


def test_adversarial_and_feature_losses_match_reference_formulas():
  rng = np.random.default_rng(5)
  real = [rng.normal(size=(2, n)).astype(np.float32) for n in (3, 5)]
  fake = [rng.normal(size=(2, n)).astype(np.float32) for n in (3, 5)]
  loss, real_losses, fake_losses = hifigan.discriminator_loss(real, fake)
  expected_r = [np.mean((1 - r) ** 2) for r in real]
  expected_f = [np.mean(f ** 2) for f in fake]
  np.testing.assert_allclose(loss.numpy(), sum(expected_r) + sum(expected_f), rtol=1e-6)
  np.testing.assert_allclose([x.numpy() for x in real_losses], expected_r, rtol=1e-6)
  np.testing.assert_allclose([x.numpy() for x in fake_losses], expected_f, rtol=1e-6)
  g_loss, _ = hifigan.generator_loss(fake)
  np.testing.assert_allclose(g_loss.numpy(), sum(np.mean((1 - f) ** 2) for f in fake), rtol=1e-6)

  maps_r = [[rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 2, 1))], [rng.normal(size=(2, 6))]]
  maps_g = [[rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 2, 1))], [rng.normal(size=(2, 6))]]
  expected = 2 * sum(np.mean(np.abs(a - b)) for ra, ga in zip(maps_r, maps_g)
                     for a, b in zip(ra, ga))
  np.testing.assert_allclose(hifigan.feature_matching_loss(maps_r, maps_g).numpy(), expected,
                             rtol=1e-6)


def test_mel_loss_matches_reference_mel_convention():
  rng = np.random.default_rng(6)
  real = rng.uniform(-0.5, 0.5, (2, 2048)).astype(np.float32)
  fake = rng.uniform(-0.5, 0.5, (2, 2048)).astype(np.float32)
  loss = hifigan.MelReconstructionLoss()(real, fake).numpy()
  expected = 45 * np.mean(np.abs(np_hifigan_log_mel(real) - np_hifigan_log_mel(fake)))
  np.testing.assert_allclose(loss, expected, rtol=1e-3)
  fmax_8k = hifigan.MelReconstructionLoss(MelConfig.hifigan())(real, fake).numpy()
  assert not np.isclose(fmax_8k, loss, rtol=1e-3)  # fmax_for_loss=None is not the input fmax


def _tiny_gan():
  config = hifigan.tiny()
  mpd, msd = hifigan.build_discriminators(config)
  return hifigan.HifiGanGenerator(config), mpd, msd, hifigan.MelReconstructionLoss()


def test_training_losses_in_graph_mode(fast_graphs):
  generator, mpd, msd, mel_loss = _tiny_gan()

  @tf.function(input_signature=[tf.TensorSpec([None, None, 80], tf.float32),
                                tf.TensorSpec([None, None], tf.float32)])
  def losses(mel, real_audio):
    fake_audio = generator(mel, training=True)
    return (hifigan.generator_losses(mpd, msd, mel_loss, real_audio, fake_audio),
            hifigan.discriminator_losses(mpd, msd, real_audio, fake_audio))

  assert_no_python_ops(losses.get_concrete_function())
  mel = np.random.randn(2, 6, 80).astype(np.float32)
  real = np.random.uniform(-0.5, 0.5, (2, 6 * 256)).astype(np.float32)
  g_losses, d_losses = losses(mel, real)
  # The MPD part equals eager execution (the MSD's spectral-norm u, v moved on
  # with every training call, so its value differs by design).
  eager_d = hifigan.discriminator_losses(mpd, msd, real, generator(mel))
  np.testing.assert_allclose(d_losses["mpd"].numpy(), eager_d["mpd"].numpy(), rtol=1e-4)
  np.testing.assert_allclose(
      g_losses["total"].numpy(),
      sum(g_losses[k].numpy() for k in ("adversarial", "feature_matching", "mel")), rtol=1e-5)
  for value in list(g_losses.values()) + list(d_losses.values()):
    assert np.isfinite(value.numpy())


def test_gradients_reach_every_trainable_variable():
  generator, mpd, msd, mel_loss = _tiny_gan()
  mel = np.random.randn(2, 6, 80).astype(np.float32)
  real = np.random.uniform(-0.5, 0.5, (2, 6 * 256)).astype(np.float32)
  with tf.GradientTape(persistent=True) as tape:
    fake = generator(mel, training=True)
    d_loss = hifigan.discriminator_losses(mpd, msd, real, fake)["total"]
    g_loss = hifigan.generator_losses(mpd, msd, mel_loss, real, fake)["total"]
  d_variables = mpd.trainable_variables + msd.trainable_variables
  for loss, variables in ((g_loss, generator.trainable_variables), (d_loss, d_variables)):
    grads = tape.gradient(loss, variables)
    assert len(grads) == len(variables) > 0
    for grad, variable in zip(grads, variables):
      assert grad is not None, variable.path
      assert np.any(grad.numpy() != 0), variable.path
  # The D loss sees detached generator output.
  assert all(g is None for g in tape.gradient(d_loss, generator.trainable_variables))


def test_tf_checkpoint_holds_every_variable(tmp_path):
  config = hifigan.tiny()
  generator = hifigan.HifiGanGenerator(config)
  mpd, msd = hifigan.build_discriminators(config)
  randomize_gains(generator, np.random.default_rng(7))
  audio = np.random.uniform(-1, 1, (1, 999)).astype(np.float32)
  msd(audio, training=True)  # move the spectral-norm u, v off their initial values
  path = tf.train.Checkpoint(g=generator, mpd=mpd, msd=msd).save(str(tmp_path / "ckpt"))
  stored = [name for name, _ in tf.train.list_variables(path) if name.startswith(("g/", "mpd/",
                                                                                  "msd/"))]
  assert len(stored) == len(generator.variables) + len(mpd.variables) + len(msd.variables)

  generator2 = hifigan.HifiGanGenerator(config)
  mpd2, msd2 = hifigan.build_discriminators(config)
  tf.train.Checkpoint(g=generator2, mpd=mpd2, msd=msd2).restore(path).assert_consumed()
  mel = np.random.randn(1, 4, 80).astype(np.float32)
  np.testing.assert_array_equal(generator2(mel).numpy(), generator(mel).numpy())
  for model, restored in ((mpd, mpd2), (msd, msd2)):
    for a, b in zip(model(audio)[0], restored(audio)[0]):
      np.testing.assert_array_equal(a.numpy(), b.numpy())

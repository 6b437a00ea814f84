"""HiFi-GAN in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources (jik876/hifi-gan):
  models.py       ResBlock1, ResBlock2, Generator, DiscriminatorP, MultiPeriodDiscriminator,
                  DiscriminatorS, MultiScaleDiscriminator, feature_loss, discriminator_loss,
                  generator_loss
  utils.py        init_weights (N(0, 0.01)), get_padding
  meldataset.py   mel_spectrogram (reflect pad (n_fft - hop) / 2, stft center=False,
                  sqrt(|X|^2 + 1e-9), Slaney mel basis, log(clamp(x, 1e-5)))
  train.py        the step: G forward, mel of G's audio (fmax_for_loss), D update on the detached
                  fake (MPD + MSD, AdamW), G update (LS-GAN + 2 x feature matching + 45 x mel L1)
                  through the updated discriminators
  config_v1/v2/v3.json  hyperparameters; here taken from tfspeech's `HifiGanConfig` presets

Layouts are the reference's: mels `[batch, num_mels, frames]`, audio `[batch, 1, samples]`.

Differences from the reference, all cost-neutral:
- Discriminator widths/groups are constructor arguments (the reference hard-codes the published
  ones, which are the defaults) so that tfspeech's `tiny` preset has a transcription.
- `torch.stft(..., return_complex=True)` and |X| from its real and imaginary parts: current
  torch refuses the reference's real-valued stft output; the arithmetic is the same.
- The reference's `apply_mask(valid_lengths)` path of its newest Generator is off by default
  (valid_lengths=None) and left out.
"""

import dataclasses
import warnings
from typing import Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1
MPD_PERIODS = (2, 3, 5, 7, 11)
MSD_KERNELS = (15, 41, 41, 41, 41, 41, 5)
MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)


@dataclasses.dataclass(frozen=True)
class HifiGanParams:
  """The reference's config (`h`, config_v*.json names) plus the discriminator widths."""
  resblock: str
  upsample_rates: Tuple[int, ...]
  upsample_kernel_sizes: Tuple[int, ...]
  upsample_initial_channel: int
  resblock_kernel_sizes: Tuple[int, ...]
  resblock_dilation_sizes: Tuple[Tuple[int, ...], ...]
  num_mels: int = 80
  segment_size: int = 8192
  learning_rate: float = 0.0002
  adam_b1: float = 0.8
  adam_b2: float = 0.99
  mpd_periods: Tuple[int, ...] = MPD_PERIODS
  mpd_channels: Tuple[int, ...] = (32, 128, 512, 1024, 1024)
  msd_channels: Tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
  msd_groups: Tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)
  # config_v1.json audio settings (the mel loss).
  sampling_rate: int = 22050
  n_fft: int = 1024
  hop_size: int = 256
  win_size: int = 1024
  fmin: float = 0.0
  fmax: float = 8000.0
  fmax_for_loss: float = None


def params_from_tfspeech(config) -> HifiGanParams:
  """The `HifiGanParams` of a tfspeech `HifiGanConfig` or `HifiGanTaskConfig`."""
  names = {f.name for f in dataclasses.fields(HifiGanParams)}
  return HifiGanParams(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                          if f.name in names})


def count_parameters(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def _weight_norm(module):
  with warnings.catch_warnings():  # torch deprecates the hook-based version the reference uses
    warnings.simplefilter("ignore")
    return torch.nn.utils.weight_norm(module)


def _remove_weight_norm(module):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.nn.utils.remove_weight_norm(module)


def init_weights(m, mean=0.0, std=0.01):
  if "Conv" in m.__class__.__name__:
    m.weight.data.normal_(mean, std)


def get_padding(kernel_size, dilation=1):
  return int((kernel_size * dilation - dilation) / 2)


# --- models.py: generator --------------------------------------------------------------------


class ResBlock1(nn.Module):

  def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5)):
    super().__init__()
    conv = lambda d: _weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                            padding=get_padding(kernel_size, d)))
    self.convs1 = nn.ModuleList([conv(d) for d in dilation])
    self.convs1.apply(init_weights)
    self.convs2 = nn.ModuleList([conv(1) for _ in dilation])
    self.convs2.apply(init_weights)

  def forward(self, x):
    for c1, c2 in zip(self.convs1, self.convs2):
      xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
      x = xt + x
    return x

  def remove_weight_norm(self):
    for layer in list(self.convs1) + list(self.convs2):
      _remove_weight_norm(layer)


class ResBlock2(nn.Module):

  def __init__(self, channels, kernel_size=3, dilation=(1, 3)):
    super().__init__()
    self.convs = nn.ModuleList([
        _weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                               padding=get_padding(kernel_size, d))) for d in dilation])
    self.convs.apply(init_weights)

  def forward(self, x):
    for c in self.convs:
      x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
    return x

  def remove_weight_norm(self):
    for layer in self.convs:
      _remove_weight_norm(layer)


class Generator(nn.Module):
  """mel `[b, num_mels, frames]` -> audio `[b, 1, frames * prod(upsample_rates)]`."""

  def __init__(self, h: HifiGanParams):
    super().__init__()
    self.num_kernels = len(h.resblock_kernel_sizes)
    self.num_upsamples = len(h.upsample_rates)
    self.conv_pre = _weight_norm(nn.Conv1d(h.num_mels, h.upsample_initial_channel, 7, 1,
                                           padding=3))
    resblock = ResBlock1 if h.resblock == "1" else ResBlock2
    self.ups = nn.ModuleList()
    for i, (u, k) in enumerate(zip(h.upsample_rates, h.upsample_kernel_sizes)):
      self.ups.append(_weight_norm(nn.ConvTranspose1d(
          h.upsample_initial_channel // (2 ** i), h.upsample_initial_channel // (2 ** (i + 1)),
          k, u, padding=(k - u) // 2)))
    self.resblocks = nn.ModuleList()
    for i in range(len(self.ups)):
      ch = h.upsample_initial_channel // (2 ** (i + 1))
      for k, d in zip(h.resblock_kernel_sizes, h.resblock_dilation_sizes):
        self.resblocks.append(resblock(ch, k, d))
    self.conv_post = _weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3))
    self.ups.apply(init_weights)
    self.conv_post.apply(init_weights)

  def forward(self, x):
    x = self.conv_pre(x)
    for i in range(self.num_upsamples):
      x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
      xs = None
      for j in range(self.num_kernels):
        out = self.resblocks[i * self.num_kernels + j](x)
        xs = out if xs is None else xs + out
      x = xs / self.num_kernels
    x = self.conv_post(F.leaky_relu(x))
    return torch.tanh(x)

  def remove_weight_norm(self):
    for layer in self.ups:
      _remove_weight_norm(layer)
    for block in self.resblocks:
      block.remove_weight_norm()
    _remove_weight_norm(self.conv_pre)
    _remove_weight_norm(self.conv_post)


# --- models.py: discriminators ---------------------------------------------------------------


class DiscriminatorP(nn.Module):

  def __init__(self, period, channels=(32, 128, 512, 1024, 1024), kernel_size=5, stride=3,
               use_spectral_norm=False):
    super().__init__()
    self.period = period
    norm_f = torch.nn.utils.spectral_norm if use_spectral_norm else _weight_norm
    in_channels = (1,) + tuple(channels[:-1])
    self.convs = nn.ModuleList([
        norm_f(nn.Conv2d(c_in, c_out, (kernel_size, 1),
                         (stride, 1) if i < len(channels) - 1 else 1,
                         padding=(get_padding(5, 1), 0) if i < len(channels) - 1 else (2, 0)))
        for i, (c_in, c_out) in enumerate(zip(in_channels, channels))])
    self.conv_post = norm_f(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

  def forward(self, x):
    fmap = []
    b, c, t = x.shape
    if t % self.period != 0:
      n_pad = self.period - (t % self.period)
      x = F.pad(x, (0, n_pad), "reflect")
      t = t + n_pad
    x = x.view(b, c, t // self.period, self.period)
    for layer in self.convs:
      x = F.leaky_relu(layer(x), LRELU_SLOPE)
      fmap.append(x)
    x = self.conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):

  def __init__(self, periods=MPD_PERIODS, channels=(32, 128, 512, 1024, 1024)):
    super().__init__()
    self.discriminators = nn.ModuleList([DiscriminatorP(p, channels) for p in periods])

  def forward(self, y, y_hat):
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
    for d in self.discriminators:
      y_d_r, fmap_r = d(y)
      y_d_g, fmap_g = d(y_hat)
      y_d_rs.append(y_d_r)
      fmap_rs.append(fmap_r)
      y_d_gs.append(y_d_g)
      fmap_gs.append(fmap_g)
    return y_d_rs, y_d_gs, fmap_rs, fmap_gs


class DiscriminatorS(nn.Module):

  def __init__(self, channels=(128, 128, 256, 512, 1024, 1024, 1024),
               groups=(1, 4, 16, 16, 16, 16, 1), use_spectral_norm=False):
    super().__init__()
    norm_f = torch.nn.utils.spectral_norm if use_spectral_norm else _weight_norm
    in_channels = (1,) + tuple(channels[:-1])
    self.convs = nn.ModuleList([
        norm_f(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2))
        for c_in, c_out, k, s, g in zip(in_channels, channels, MSD_KERNELS, MSD_STRIDES,
                                        groups)])
    self.conv_post = norm_f(nn.Conv1d(channels[-1], 1, 3, 1, padding=1))

  def forward(self, x):
    fmap = []
    for layer in self.convs:
      x = F.leaky_relu(layer(x), LRELU_SLOPE)
      fmap.append(x)
    x = self.conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class MultiScaleDiscriminator(nn.Module):

  def __init__(self, channels=(128, 128, 256, 512, 1024, 1024, 1024),
               groups=(1, 4, 16, 16, 16, 16, 1)):
    super().__init__()
    self.discriminators = nn.ModuleList([
        DiscriminatorS(channels, groups, use_spectral_norm=True),
        DiscriminatorS(channels, groups),
        DiscriminatorS(channels, groups)])
    self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

  def forward(self, y, y_hat):
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
    for i, d in enumerate(self.discriminators):
      if i != 0:
        y = self.meanpools[i - 1](y)
        y_hat = self.meanpools[i - 1](y_hat)
      y_d_r, fmap_r = d(y)
      y_d_g, fmap_g = d(y_hat)
      y_d_rs.append(y_d_r)
      fmap_rs.append(fmap_r)
      y_d_gs.append(y_d_g)
      fmap_gs.append(fmap_g)
    return y_d_rs, y_d_gs, fmap_rs, fmap_gs


def build_discriminators(h: HifiGanParams):
  return (MultiPeriodDiscriminator(h.mpd_periods, h.mpd_channels),
          MultiScaleDiscriminator(h.msd_channels, h.msd_groups))


# --- models.py: losses -----------------------------------------------------------------------


def feature_loss(fmap_r, fmap_g):
  loss = 0
  for dr, dg in zip(fmap_r, fmap_g):
    for rl, gl in zip(dr, dg):
      loss += torch.mean(torch.abs(rl - gl))
  return loss * 2


def discriminator_loss(disc_real_outputs, disc_generated_outputs):
  loss = 0
  r_losses, g_losses = [], []
  for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
    r_loss = torch.mean((1 - dr) ** 2)
    g_loss = torch.mean(dg ** 2)
    loss += r_loss + g_loss
    # The reference calls .item() on each (a host sync per sub-discriminator); kept.
    r_losses.append(r_loss.item())
    g_losses.append(g_loss.item())
  return loss, r_losses, g_losses


def generator_loss(disc_outputs):
  loss = 0
  gen_losses = []
  for dg in disc_outputs:
    l = torch.mean((1 - dg) ** 2)
    gen_losses.append(l)
    loss += l
  return loss, gen_losses


# --- meldataset.py ---------------------------------------------------------------------------

_MEL_BASIS = {}
_HANN_WINDOW = {}


def mel_spectrogram(y, n_fft, num_mels, sampling_rate, hop_size, win_size, fmin, fmax,
                    center=False):
  """audio `[b, samples]` -> log mel `[b, num_mels, samples // hop]` (reference conventions)."""
  key = f"{fmax}_{y.device}"
  if key not in _MEL_BASIS:
    from librosa.filters import mel as librosa_mel_fn  # pylint: disable=import-outside-toplevel
    mel = librosa_mel_fn(sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
    _MEL_BASIS[key] = torch.from_numpy(mel).float().to(y.device)
    _HANN_WINDOW[str(y.device)] = torch.hann_window(win_size).to(y.device)
  pad = int((n_fft - hop_size) / 2)
  y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
  spec = torch.stft(y, n_fft, hop_length=hop_size, win_length=win_size,
                    window=_HANN_WINDOW[str(y.device)], center=center, pad_mode="reflect",
                    normalized=False, onesided=True, return_complex=True)
  spec = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
  spec = torch.matmul(_MEL_BASIS[key], spec)
  return torch.log(torch.clamp(spec, min=1e-5))


# --- train.py ----------------------------------------------------------------------------------


class TrainStep:
  """One reference training iteration (D then G) on a batch; returns the generator's loss.

  Call with `x` mel `[b, num_mels, frames]`, `y` audio `[b, 1, samples]` and `y_mel` the
  loss mel of `y` `[b, num_mels, frames]` (the reference's data loader computes it, with
  fmax_for_loss, outside the step).
  """

  def __init__(self, h: HifiGanParams, learning_rate=None):
    self.h = h
    self.generator = Generator(h)
    self.mpd, self.msd = build_discriminators(h)
    lr = h.learning_rate if learning_rate is None else learning_rate
    betas = [h.adam_b1, h.adam_b2]
    self.optim_g = torch.optim.AdamW(self.generator.parameters(), lr, betas=betas)
    self.optim_d = torch.optim.AdamW(
        list(self.msd.parameters()) + list(self.mpd.parameters()), lr, betas=betas)

  def loss_mel(self, audio):
    """The reference's y_mel (data loader): `[b, samples]` -> `[b, num_mels, frames]`."""
    h = self.h
    with torch.no_grad():
      return mel_spectrogram(audio, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size,
                             h.win_size, h.fmin, h.fmax_for_loss)

  def __call__(self, x, y, y_mel):
    h = self.h
    for module in (self.generator, self.mpd, self.msd):
      module.train()
    y_g_hat = self.generator(x)
    y_g_hat_mel = mel_spectrogram(y_g_hat.squeeze(1), h.n_fft, h.num_mels, h.sampling_rate,
                                  h.hop_size, h.win_size, h.fmin, h.fmax_for_loss)
    self.optim_d.zero_grad()
    y_df_hat_r, y_df_hat_g, _, _ = self.mpd(y, y_g_hat.detach())
    loss_disc_f, _, _ = discriminator_loss(y_df_hat_r, y_df_hat_g)
    y_ds_hat_r, y_ds_hat_g, _, _ = self.msd(y, y_g_hat.detach())
    loss_disc_s, _, _ = discriminator_loss(y_ds_hat_r, y_ds_hat_g)
    loss_disc_all = loss_disc_s + loss_disc_f
    loss_disc_all.backward()
    self.optim_d.step()

    self.optim_g.zero_grad()
    loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
    _, y_df_hat_g, fmap_f_r, fmap_f_g = self.mpd(y, y_g_hat)
    _, y_ds_hat_g, fmap_s_r, fmap_s_g = self.msd(y, y_g_hat)
    loss_fm_f = feature_loss(fmap_f_r, fmap_f_g)
    loss_fm_s = feature_loss(fmap_s_r, fmap_s_g)
    loss_gen_f, _ = generator_loss(y_df_hat_g)
    loss_gen_s, _ = generator_loss(y_ds_hat_g)
    loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
    loss_gen_all.backward()
    self.optim_g.step()
    return float(loss_gen_all.item())


def inference_generator(h: HifiGanParams) -> Generator:
  """The reference's inference generator: weight norm removed, eval mode."""
  generator = Generator(h)
  generator.remove_weight_norm()
  return generator.eval()


def load_tfspeech_generator(generator: Generator, tf_generator) -> Generator:
  """Copies a tfspeech `HifiGanGenerator(weight_norm=False)`'s kernels into a generator whose
  weight norm was removed; returns it. Keras Conv1D `[k, in, out]` -> `[out, in, k]`,
  Conv1DTranspose `[k, out, in]` -> `[in, out, k]`: both reverse the axes."""
  if tf_generator.weight_norm:
    tf_generator = tf_generator.remove_weight_norm()
  torch_convs = [generator.conv_pre]
  for i, up in enumerate(generator.ups):
    torch_convs.append(up)
    for block in generator.resblocks[i * generator.num_kernels:(i + 1) * generator.num_kernels]:
      if isinstance(block, ResBlock1):
        torch_convs.extend(list(block.convs1) + list(block.convs2))
      else:
        torch_convs.extend(block.convs)
  torch_convs.append(generator.conv_post)
  tf_convs = tf_generator.conv_layers()
  if len(torch_convs) != len(tf_convs):
    raise ValueError(f"{len(tf_convs)} tfspeech convs for {len(torch_convs)} torch convs")
  with torch.no_grad():
    for conv, tf_conv in zip(torch_convs, tf_convs):
      kernel = tf_conv.kernel.numpy()
      conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0))))
      conv.bias.copy_(torch.from_numpy(tf_conv.bias.numpy()))
  return generator

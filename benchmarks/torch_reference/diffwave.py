"""DiffWave in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources (lmnt-com/diffwave, src/diffwave/):
  model.py      DiffusionEmbedding (sin/cos table, two Linear + SiLU), SpectrogramUpsampler
                (two ConvTranspose2d [3, 32], stride [1, 16], padding [1, 8], leaky ReLU 0.4),
                ResidualBlock, DiffWave (Kaiming-normal Conv1d, zero-initialised output kernel)
  learner.py    the step: random t, x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise, L1 on the noise
  inference.py  predict(): the reverse process, the fast schedule's alignment T to training steps
  params.py     hyperparameters; here taken from tfspeech's `DiffWaveConfig` presets

Layouts are the reference's: mels `[batch, n_mels, frames]`, audio `[batch, samples]`.

Differences from the reference, all cost-neutral:
- Hyperparameters come from a `Params` built from tfspeech's config (`params_from_tfspeech`).
- `predict` takes its starting noise and step noises as arguments (optional), so a test can
  feed the same noise to both implementations; the reference draws them with torch.randn.
"""

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class Params:
  residual_layers: int = 30
  residual_channels: int = 64
  dilation_cycle_length: int = 10
  n_mels: int = 80
  hop_samples: int = 256
  unconditional: bool = False
  noise_schedule: tuple = tuple(np.linspace(1e-4, 0.05, 50).tolist())
  inference_noise_schedule: tuple = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)


def params_from_tfspeech(config) -> Params:
  """The reference params of a tfspeech `DiffWaveConfig`."""
  if config.upsample_stride != 16:
    raise ValueError("the reference upsampler has stride 16 (hop 256)")
  return Params(config.residual_layers, config.residual_channels, config.dilation_cycle_length,
                config.n_mels, config.hop_length, config.unconditional,
                tuple(config.noise_schedule), tuple(config.inference_noise_schedule))


def Conv1d(*args, **kwargs):  # pylint: disable=invalid-name
  layer = nn.Conv1d(*args, **kwargs)
  nn.init.kaiming_normal_(layer.weight)
  return layer


def silu(x):
  return x * torch.sigmoid(x)


class DiffusionEmbedding(nn.Module):

  def __init__(self, max_steps):
    super().__init__()
    self.register_buffer("embedding", self._build_embedding(max_steps), persistent=False)
    self.projection1 = nn.Linear(128, 512)
    self.projection2 = nn.Linear(512, 512)

  def forward(self, diffusion_step):
    if diffusion_step.dtype in [torch.int32, torch.int64]:
      x = self.embedding[diffusion_step]
    else:
      x = self._lerp_embedding(diffusion_step)
    x = silu(self.projection1(x))
    return silu(self.projection2(x))

  def _lerp_embedding(self, t):
    low_idx = torch.floor(t).long()
    high_idx = torch.ceil(t).long()
    low = self.embedding[low_idx]
    high = self.embedding[high_idx]
    return low + (high - low) * (t - low_idx).unsqueeze(-1)

  @staticmethod
  def _build_embedding(max_steps):
    steps = torch.arange(max_steps).unsqueeze(1)
    dims = torch.arange(64).unsqueeze(0)
    table = steps * 10.0 ** (dims * 4.0 / 63.0)
    return torch.cat([torch.sin(table), torch.cos(table)], dim=1)


class SpectrogramUpsampler(nn.Module):

  def __init__(self):
    super().__init__()
    self.conv1 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])
    self.conv2 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])

  def forward(self, x):
    x = torch.unsqueeze(x, 1)
    x = F.leaky_relu(self.conv1(x), 0.4)
    x = F.leaky_relu(self.conv2(x), 0.4)
    return torch.squeeze(x, 1)


class ResidualBlock(nn.Module):

  def __init__(self, n_mels, residual_channels, dilation, uncond=False):
    super().__init__()
    self.dilated_conv = Conv1d(residual_channels, 2 * residual_channels, 3, padding=dilation,
                               dilation=dilation)
    self.diffusion_projection = nn.Linear(512, residual_channels)
    self.conditioner_projection = None if uncond else Conv1d(n_mels, 2 * residual_channels, 1)
    self.output_projection = Conv1d(residual_channels, 2 * residual_channels, 1)

  def forward(self, x, diffusion_step, conditioner=None):
    diffusion_step = self.diffusion_projection(diffusion_step).unsqueeze(-1)
    y = x + diffusion_step
    y = self.dilated_conv(y)
    if self.conditioner_projection is not None:
      y = y + self.conditioner_projection(conditioner)
    gate, filter_ = torch.chunk(y, 2, dim=1)
    y = torch.sigmoid(gate) * torch.tanh(filter_)
    y = self.output_projection(y)
    residual, skip = torch.chunk(y, 2, dim=1)
    return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):

  def __init__(self, params: Params):
    super().__init__()
    self.params = params
    self.input_projection = Conv1d(1, params.residual_channels, 1)
    self.diffusion_embedding = DiffusionEmbedding(len(params.noise_schedule))
    self.spectrogram_upsampler = None if params.unconditional else SpectrogramUpsampler()
    self.residual_layers = nn.ModuleList([
        ResidualBlock(params.n_mels, params.residual_channels,
                      2 ** (i % params.dilation_cycle_length), uncond=params.unconditional)
        for i in range(params.residual_layers)])
    self.skip_projection = Conv1d(params.residual_channels, params.residual_channels, 1)
    self.output_projection = Conv1d(params.residual_channels, 1, 1)
    nn.init.zeros_(self.output_projection.weight)

  def forward(self, audio, diffusion_step, spectrogram=None):
    x = F.relu(self.input_projection(audio.unsqueeze(1)))
    diffusion_step = self.diffusion_embedding(diffusion_step)
    if self.spectrogram_upsampler is not None:
      spectrogram = self.spectrogram_upsampler(spectrogram)
    skip = None
    for layer in self.residual_layers:
      x, skip_connection = layer(x, diffusion_step, spectrogram)
      skip = skip_connection if skip is None else skip_connection + skip
    x = skip / math.sqrt(len(self.residual_layers))
    x = F.relu(self.skip_projection(x))
    return self.output_projection(x)


def count_parameters(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


class TrainStep:
  """learner.py's step: Adam (lr 2e-4), L1 between the noise and the prediction."""

  def __init__(self, params: Params, learning_rate: float = 2e-4):
    self.model = DiffWave(params)
    self.params = params
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
    beta = np.array(params.noise_schedule)
    self.noise_level = torch.tensor(np.cumprod(1 - beta).astype(np.float32))

  def __call__(self, audio, spectrogram):
    self.optimizer.zero_grad(set_to_none=True)
    t = torch.randint(0, len(self.params.noise_schedule), [audio.shape[0]])
    noise_scale = self.noise_level[t].unsqueeze(1)
    noise = torch.randn_like(audio)
    noisy_audio = noise_scale ** 0.5 * audio + (1.0 - noise_scale) ** 0.5 * noise
    predicted = self.model(noisy_audio, t, spectrogram)
    loss = F.l1_loss(predicted.squeeze(1), noise)
    loss.backward()
    self.optimizer.step()
    return float(loss)


def aligned_steps(training_noise_schedule: Sequence[float],
                  inference_noise_schedule: Sequence[float]) -> np.ndarray:
  """inference.py's T: each reverse step's fractional training step (float32, as there)."""
  talpha_cum = np.cumprod(1 - np.array(training_noise_schedule))
  alpha_cum = np.cumprod(1 - np.array(inference_noise_schedule))
  steps = []
  for s in range(len(inference_noise_schedule)):
    for t in range(len(training_noise_schedule) - 1):
      if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
        twiddle = ((talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5)
                   / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5))
        steps.append(t + twiddle)
        break
  return np.array(steps, dtype=np.float32)


@torch.no_grad()
def predict(model: DiffWave, spectrogram, fast_sampling: bool = False,
            audio: Optional[torch.Tensor] = None, noises: Optional[Sequence] = None):
  """inference.py's predict: the reverse process, batched over `spectrogram` `[b, n_mels, f]`.

  `audio` (the starting noise) and `noises` (`noises[n]` for steps n > 0) default to
  torch.randn draws as in the reference.
  """
  training = np.array(model.params.noise_schedule)
  schedule = np.array(model.params.inference_noise_schedule) if fast_sampling else training
  alpha = 1 - schedule
  alpha_cum = np.cumprod(alpha)
  steps = aligned_steps(training, schedule)
  if audio is None:
    audio = torch.randn(spectrogram.shape[0], model.params.hop_samples * spectrogram.shape[-1])
  for n in range(len(alpha) - 1, -1, -1):
    c1 = 1 / alpha[n] ** 0.5
    c2 = schedule[n] / (1 - alpha_cum[n]) ** 0.5
    predicted = model(audio, torch.tensor([steps[n]]), spectrogram).squeeze(1)
    audio = c1 * (audio - c2 * predicted)
    if n > 0:
      noise = torch.randn_like(audio) if noises is None else noises[n]
      sigma = ((1.0 - alpha_cum[n - 1]) / (1.0 - alpha_cum[n]) * schedule[n]) ** 0.5
      audio = audio + sigma * noise
    audio = torch.clamp(audio, -1.0, 1.0)
  return audio


def load_tfspeech_weights(model: DiffWave, tf_model) -> DiffWave:
  """Copies a tfspeech `DiffWave`'s weights into `model` (channels-last -> channels-first)."""

  def conv1d(torch_conv, keras_conv):  # keras [k, in, out] -> torch [out, in, k]
    torch_conv.weight.copy_(torch.from_numpy(keras_conv.kernel.numpy().transpose(2, 1, 0)))
    torch_conv.bias.copy_(torch.from_numpy(keras_conv.bias.numpy()))

  def linear(torch_linear, dense):  # keras [in, out] -> torch [out, in]
    torch_linear.weight.copy_(torch.from_numpy(dense.kernel.numpy().T))
    torch_linear.bias.copy_(torch.from_numpy(dense.bias.numpy()))

  with torch.no_grad():
    # The step table too: torch's float32 10 ** x differs from numpy's by an ulp for some
    # columns, which at t * 10^4 moves those angles by up to 0.06 rad (see `step_table`).
    model.diffusion_embedding.embedding.copy_(
        torch.from_numpy(tf_model.diffusion_embedding.table.numpy()))
    conv1d(model.input_projection, tf_model.input_projection)
    linear(model.diffusion_embedding.projection1, tf_model.diffusion_embedding.projection1)
    linear(model.diffusion_embedding.projection2, tf_model.diffusion_embedding.projection2)
    if model.spectrogram_upsampler is not None:
      for torch_conv, keras_conv in zip(
          (model.spectrogram_upsampler.conv1, model.spectrogram_upsampler.conv2),
          tf_model.spectrogram_upsampler.convs):
        # keras [time, mel, out, in] -> torch [in, out, mel, time]
        kernel = keras_conv.kernel.numpy().transpose(3, 2, 1, 0)
        torch_conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
        torch_conv.bias.copy_(torch.from_numpy(keras_conv.bias.numpy()))
    for block, keras_block in zip(model.residual_layers, tf_model.residual_layers):
      conv1d(block.dilated_conv, keras_block.dilated_conv)
      linear(block.diffusion_projection, keras_block.diffusion_projection)
      if block.conditioner_projection is not None:
        conv1d(block.conditioner_projection, keras_block.conditioner_projection)
      conv1d(block.output_projection, keras_block.output_projection)
    conv1d(model.skip_projection, tf_model.skip_projection)
    conv1d(model.output_projection, tf_model.output_projection)
  return model

"""Grad-TTS in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources (huawei-noah/Speech-Backbones):
  Grad-TTS/model/text_encoder.py  LayerNorm, ConvReluNorm, DurationPredictor, relative-position
                                  MultiHeadAttention, FFN, Encoder, TextEncoder (from glow-tts)
  Grad-TTS/model/diffusion.py     Mish, Up/Downsample, Rezero, Block, ResnetBlock,
                                  LinearAttention, Residual, SinusoidalPosEmb,
                                  GradLogPEstimator2d, Diffusion (VP-SDE loss, Euler sampler)
  Grad-TTS/model/tts.py           GradTTS.forward (synthesis) and compute_loss
  Grad-TTS/model/utils.py         sequence_mask, generate_path, duration_loss,
                                  fix_len_compatibility
  Grad-TTS/model/base.py          BaseModule (nparams; relocate_input is a CPU no-op here)
  Grad-TTS/model/monotonic_align  maximum_path: the glow-tts Cython core, here the compiled
                                  `monotonic-alignment-search` core loaded as benchmarks/mas.py
  Grad-TTS/params.py              the LJSpeech hyperparameters (`GradTTSParams` defaults)
  Grad-TTS/train.py               the step: compute_loss -> dur + prior + diff, backward,
                                  clip_grad_norm_(encoder, 1), clip_grad_norm_(decoder, 1), Adam

Layouts are the reference's: ids `[batch, tokens]`, mels `[batch, n_feats, frames]`.

Differences from the stored reference, all cost-neutral:
- `Diffusion.reverse_diffusion` is the paper's Euler probability-flow loop (the reference's
  original loop, which tfspeech implements); the stored diffusion.py returns early into an
  experimental `fast_maximum_likelihood_reverse_diffusion` (same estimator calls per step).
- The reference hard-codes what tfspeech's tiny preset changes (prenet kernel/layers, U-Net
  dim_mults, GroupNorm groups, linear-attention heads/width); they are constructor arguments
  here with the reference values as defaults.
- `h += ...` / `*=` in-place updates are written out of place.
"""

import dataclasses
import math
import random
from typing import Optional, Tuple

import numpy as np
import torch
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class GradTTSParams:
  """Reference hyperparameters (Grad-TTS/params.py names; defaults = the LJSpeech recipe).

  The last block of fields are values the reference hard-codes (see the module docstring).
  """
  n_vocab: int = 149
  n_spks: int = 1
  spk_emb_dim: int = 64
  n_enc_channels: int = 192
  filter_channels: int = 768
  filter_channels_dp: int = 256
  n_heads: int = 2
  n_enc_layers: int = 6
  enc_kernel: int = 3
  enc_dropout: float = 0.1
  window_size: int = 4
  n_feats: int = 80
  dec_dim: int = 64
  beta_min: float = 0.05
  beta_max: float = 20.0
  pe_scale: float = 1000.0
  out_size: Optional[int] = 172
  prenet_kernel: int = 5
  prenet_layers: int = 3
  prenet_dropout: float = 0.5
  dim_mults: Tuple[int, ...] = (1, 2, 4)
  groups: int = 8
  attn_heads: int = 4
  attn_dim_head: int = 32


def params_from_tfspeech(config) -> GradTTSParams:
  """The `GradTTSParams` of a tfspeech `GradTTSConfig` (or task config): same fields, same model."""
  names = {f.name for f in dataclasses.fields(GradTTSParams)}
  return GradTTSParams(**{name: getattr(config, name) for name in names})


def count_parameters(module: torch.nn.Module) -> int:
  """The reference's BaseModule.nparams: every parameter, trainable or not."""
  return sum(p.numel() for p in module.parameters())


# --- model/utils.py ------------------------------------------------------------------------


def sequence_mask(length, max_length=None):
  if max_length is None:
    max_length = length.max()
  x = torch.arange(int(max_length), dtype=length.dtype, device=length.device)
  return x.unsqueeze(0) < length.unsqueeze(1)


def fix_len_compatibility(length, num_downsamplings_in_unet=2):
  multiple = 2 ** num_downsamplings_in_unet
  return -(-int(length) // multiple) * multiple


def convert_pad_shape(pad_shape):
  return [item for sublist in pad_shape[::-1] for item in sublist]


def generate_path(duration, mask):
  """duration `[b, t_x]` (float), mask `[b, t_x, t_y]` -> 0/1 path `[b, t_x, t_y]`."""
  b, t_x, t_y = mask.shape
  cum_duration = torch.cumsum(duration, 1)
  path = sequence_mask(cum_duration.view(b * t_x), t_y).to(mask.dtype).view(b, t_x, t_y)
  path = path - F.pad(path, convert_pad_shape([[0, 0], [1, 0], [0, 0]]))[:, :-1]
  return path * mask


def duration_loss(logw, logw_, lengths):
  return torch.sum((logw - logw_) ** 2) / torch.sum(lengths)


# --- model/monotonic_align ------------------------------------------------------------------

_CYTHON = []


def maximum_path(value, mask):
  """The reference's Cython MAS wrapper: value, mask `[b, t_x, t_y]` -> 0/1 path (value's dtype).

  Runs on NumPy copies, as the reference does (`value.data.cpu().numpy()`).
  """
  if not _CYTHON:
    from benchmarks import mas  # pylint: disable=import-outside-toplevel
    core = mas._load_cython()  # pylint: disable=protected-access
    if core is None:
      raise RuntimeError("the Grad-TTS reference needs the Cython MAS: pip install "
                         "monotonic-alignment-search")
    _CYTHON.append(core)
  value = value * mask
  device, dtype = value.device, value.dtype
  value = value.data.cpu().numpy().astype(np.float32)
  mask = mask.data.cpu().numpy()
  t_x_max = mask.sum(1)[:, 0].astype(np.int32)
  t_y_max = mask.sum(2)[:, 0].astype(np.int32)
  path = _CYTHON[0](value, t_x_max, t_y_max)
  return torch.from_numpy(path).to(device=device, dtype=dtype)


# --- model/text_encoder.py -------------------------------------------------------------------


class LayerNorm(torch.nn.Module):
  """Normalises over channels (dim 1) with eps 1e-4."""

  def __init__(self, channels, eps=1e-4):
    super().__init__()
    self.eps = eps
    self.gamma = torch.nn.Parameter(torch.ones(channels))
    self.beta = torch.nn.Parameter(torch.zeros(channels))

  def forward(self, x):
    mean = torch.mean(x, 1, keepdim=True)
    variance = torch.mean((x - mean) ** 2, 1, keepdim=True)
    x = (x - mean) * torch.rsqrt(variance + self.eps)
    shape = [1, -1] + [1] * (x.dim() - 2)
    return x * self.gamma.view(*shape) + self.beta.view(*shape)


class ConvReluNorm(torch.nn.Module):

  def __init__(self, in_channels, hidden_channels, out_channels, kernel_size, n_layers,
               p_dropout):
    super().__init__()
    self.conv_layers = torch.nn.ModuleList()
    self.norm_layers = torch.nn.ModuleList()
    for i in range(n_layers):
      self.conv_layers.append(torch.nn.Conv1d(in_channels if i == 0 else hidden_channels,
                                              hidden_channels, kernel_size,
                                              padding=kernel_size // 2))
      self.norm_layers.append(LayerNorm(hidden_channels))
    self.relu_drop = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(p_dropout))
    self.proj = torch.nn.Conv1d(hidden_channels, out_channels, 1)
    self.proj.weight.data.zero_()
    self.proj.bias.data.zero_()

  def forward(self, x, x_mask):
    x_org = x
    for conv, norm in zip(self.conv_layers, self.norm_layers):
      x = self.relu_drop(norm(conv(x * x_mask)))
    return (x_org + self.proj(x)) * x_mask


class DurationPredictor(torch.nn.Module):

  def __init__(self, in_channels, filter_channels, kernel_size, p_dropout):
    super().__init__()
    self.drop = torch.nn.Dropout(p_dropout)
    self.conv_1 = torch.nn.Conv1d(in_channels, filter_channels, kernel_size,
                                  padding=kernel_size // 2)
    self.norm_1 = LayerNorm(filter_channels)
    self.conv_2 = torch.nn.Conv1d(filter_channels, filter_channels, kernel_size,
                                  padding=kernel_size // 2)
    self.norm_2 = LayerNorm(filter_channels)
    self.proj = torch.nn.Conv1d(filter_channels, 1, 1)

  def forward(self, x, x_mask):
    x = self.drop(self.norm_1(torch.relu(self.conv_1(x * x_mask))))
    x = self.drop(self.norm_2(torch.relu(self.conv_2(x * x_mask))))
    return self.proj(x * x_mask) * x_mask


class MultiHeadAttention(torch.nn.Module):
  """glow-tts self-attention with shared relative-position keys/values (no proximal bias)."""

  def __init__(self, channels, out_channels, n_heads, window_size=None, p_dropout=0.0):
    super().__init__()
    assert channels % n_heads == 0
    self.n_heads = n_heads
    self.window_size = window_size
    self.k_channels = channels // n_heads
    self.conv_q = torch.nn.Conv1d(channels, channels, 1)
    self.conv_k = torch.nn.Conv1d(channels, channels, 1)
    self.conv_v = torch.nn.Conv1d(channels, channels, 1)
    if window_size is not None:
      rel_stddev = self.k_channels ** -0.5
      self.emb_rel_k = torch.nn.Parameter(
          torch.randn(1, window_size * 2 + 1, self.k_channels) * rel_stddev)
      self.emb_rel_v = torch.nn.Parameter(
          torch.randn(1, window_size * 2 + 1, self.k_channels) * rel_stddev)
    self.conv_o = torch.nn.Conv1d(channels, out_channels, 1)
    self.drop = torch.nn.Dropout(p_dropout)
    for conv in (self.conv_q, self.conv_k, self.conv_v):
      torch.nn.init.xavier_uniform_(conv.weight)

  def forward(self, x, c, attn_mask=None):
    q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
    return self.conv_o(self.attention(q, k, v, mask=attn_mask))

  def attention(self, query, key, value, mask=None):
    b, d, t_s, t_t = (*key.size(), query.size(2))
    query = query.view(b, self.n_heads, self.k_channels, t_t).transpose(2, 3)
    key = key.view(b, self.n_heads, self.k_channels, t_s).transpose(2, 3)
    value = value.view(b, self.n_heads, self.k_channels, t_s).transpose(2, 3)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.k_channels)
    if self.window_size is not None:
      key_rel = self._get_relative_embeddings(self.emb_rel_k, t_s)
      rel_logits = torch.matmul(query, key_rel.unsqueeze(0).transpose(-2, -1))
      scores = scores + self._relative_to_absolute(rel_logits) / math.sqrt(self.k_channels)
    if mask is not None:
      scores = scores.masked_fill(mask == 0, -1e4)
    p_attn = self.drop(F.softmax(scores, dim=-1))
    output = torch.matmul(p_attn, value)
    if self.window_size is not None:
      value_rel = self._get_relative_embeddings(self.emb_rel_v, t_s)
      output = output + torch.matmul(self._absolute_to_relative(p_attn), value_rel.unsqueeze(0))
    return output.transpose(2, 3).contiguous().view(b, d, t_t)

  def _get_relative_embeddings(self, relative_embeddings, length):
    pad_length = max(length - (self.window_size + 1), 0)
    start = max((self.window_size + 1) - length, 0)
    if pad_length > 0:
      relative_embeddings = F.pad(relative_embeddings, convert_pad_shape(
          [[0, 0], [pad_length, pad_length], [0, 0]]))
    return relative_embeddings[:, start:start + 2 * length - 1]

  @staticmethod
  def _relative_to_absolute(x):
    batch, heads, length, _ = x.size()
    x = F.pad(x, convert_pad_shape([[0, 0], [0, 0], [0, 0], [0, 1]]))
    x_flat = F.pad(x.view([batch, heads, length * 2 * length]),
                   convert_pad_shape([[0, 0], [0, 0], [0, length - 1]]))
    return x_flat.view([batch, heads, length + 1, 2 * length - 1])[:, :, :length, length - 1:]

  @staticmethod
  def _absolute_to_relative(x):
    batch, heads, length, _ = x.size()
    x = F.pad(x, convert_pad_shape([[0, 0], [0, 0], [0, 0], [0, length - 1]]))
    x_flat = F.pad(x.view([batch, heads, length ** 2 + length * (length - 1)]),
                   convert_pad_shape([[0, 0], [0, 0], [length, 0]]))
    return x_flat.view([batch, heads, length, 2 * length])[:, :, :, 1:]


class FFN(torch.nn.Module):

  def __init__(self, in_channels, out_channels, filter_channels, kernel_size, p_dropout=0.0):
    super().__init__()
    self.conv_1 = torch.nn.Conv1d(in_channels, filter_channels, kernel_size,
                                  padding=kernel_size // 2)
    self.conv_2 = torch.nn.Conv1d(filter_channels, out_channels, kernel_size,
                                  padding=kernel_size // 2)
    self.drop = torch.nn.Dropout(p_dropout)

  def forward(self, x, x_mask):
    x = self.drop(torch.relu(self.conv_1(x * x_mask)))
    return self.conv_2(x * x_mask) * x_mask


class Encoder(torch.nn.Module):

  def __init__(self, hidden_channels, filter_channels, n_heads, n_layers, kernel_size=1,
               p_dropout=0.0, window_size=None):
    super().__init__()
    self.drop = torch.nn.Dropout(p_dropout)
    self.attn_layers = torch.nn.ModuleList()
    self.norm_layers_1 = torch.nn.ModuleList()
    self.ffn_layers = torch.nn.ModuleList()
    self.norm_layers_2 = torch.nn.ModuleList()
    for _ in range(n_layers):
      self.attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads,
                                                 window_size=window_size, p_dropout=p_dropout))
      self.norm_layers_1.append(LayerNorm(hidden_channels))
      self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size,
                                 p_dropout=p_dropout))
      self.norm_layers_2.append(LayerNorm(hidden_channels))

  def forward(self, x, x_mask):
    attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
    for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1,
                                         self.ffn_layers, self.norm_layers_2):
      x = x * x_mask
      x = norm_1(x + self.drop(attn(x, x, attn_mask)))
      x = norm_2(x + self.drop(ffn(x, x_mask)))
    return x * x_mask


class TextEncoder(torch.nn.Module):
  """ids `[b, t]` -> (mu `[b, n_feats, t]`, logw `[b, 1, t]`, x_mask `[b, 1, t]`)."""

  def __init__(self, p: GradTTSParams):
    super().__init__()
    self.n_channels = p.n_enc_channels
    self.n_spks = p.n_spks
    channels = p.n_enc_channels + (p.spk_emb_dim if p.n_spks > 1 else 0)
    self.emb = torch.nn.Embedding(p.n_vocab, p.n_enc_channels)
    torch.nn.init.normal_(self.emb.weight, 0.0, p.n_enc_channels ** -0.5)
    self.prenet = ConvReluNorm(p.n_enc_channels, p.n_enc_channels, p.n_enc_channels,
                               kernel_size=p.prenet_kernel, n_layers=p.prenet_layers,
                               p_dropout=p.prenet_dropout)
    self.encoder = Encoder(channels, p.filter_channels, p.n_heads, p.n_enc_layers, p.enc_kernel,
                           p.enc_dropout, window_size=p.window_size)
    self.proj_m = torch.nn.Conv1d(channels, p.n_feats, 1)
    self.proj_w = DurationPredictor(channels, p.filter_channels_dp, p.enc_kernel, p.enc_dropout)

  def forward(self, x, x_lengths, spk=None):
    x = torch.transpose(self.emb(x) * math.sqrt(self.n_channels), 1, -1)
    x_mask = torch.unsqueeze(sequence_mask(x_lengths, x.size(2)), 1).to(x.dtype)
    x = self.prenet(x, x_mask)
    if self.n_spks > 1:
      x = torch.cat([x, spk.unsqueeze(-1).repeat(1, 1, x.shape[-1])], dim=1)
    x = self.encoder(x, x_mask)
    mu = self.proj_m(x) * x_mask
    logw = self.proj_w(torch.detach(x), x_mask)
    return mu, logw, x_mask


# --- model/diffusion.py ----------------------------------------------------------------------


class Mish(torch.nn.Module):

  def forward(self, x):
    return x * torch.tanh(F.softplus(x))


class Upsample(torch.nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.conv = torch.nn.ConvTranspose2d(dim, dim, 4, 2, 1)

  def forward(self, x):
    return self.conv(x)


class Downsample(torch.nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.conv = torch.nn.Conv2d(dim, dim, 3, 2, 1)

  def forward(self, x):
    return self.conv(x)


class Rezero(torch.nn.Module):

  def __init__(self, fn):
    super().__init__()
    self.fn = fn
    self.g = torch.nn.Parameter(torch.zeros(1))

  def forward(self, x):
    return self.fn(x) * self.g


class Block(torch.nn.Module):

  def __init__(self, dim, dim_out, groups=8):
    super().__init__()
    self.block = torch.nn.Sequential(torch.nn.Conv2d(dim, dim_out, 3, padding=1),
                                     torch.nn.GroupNorm(groups, dim_out), Mish())

  def forward(self, x, mask):
    return self.block(x * mask) * mask


class ResnetBlock(torch.nn.Module):

  def __init__(self, dim, dim_out, time_emb_dim, groups=8):
    super().__init__()
    self.mlp = torch.nn.Sequential(Mish(), torch.nn.Linear(time_emb_dim, dim_out))
    self.block1 = Block(dim, dim_out, groups=groups)
    self.block2 = Block(dim_out, dim_out, groups=groups)
    self.res_conv = (torch.nn.Conv2d(dim, dim_out, 1) if dim != dim_out
                     else torch.nn.Identity())

  def forward(self, x, mask, time_emb):
    h = self.block1(x, mask)
    h = h + self.mlp(time_emb).unsqueeze(-1).unsqueeze(-1)
    h = self.block2(h, mask)
    return h + self.res_conv(x * mask)


class LinearAttention(torch.nn.Module):

  def __init__(self, dim, heads=4, dim_head=32):
    super().__init__()
    self.heads = heads
    hidden_dim = dim_head * heads
    self.to_qkv = torch.nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
    self.to_out = torch.nn.Conv2d(hidden_dim, dim, 1)

  def forward(self, x):
    b, _, h, w = x.shape
    # einops 'b (qkv heads c) h w -> qkv b heads c (h w)'
    q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
    k = k.softmax(dim=-1)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    out = torch.einsum("bhde,bhdn->bhen", context, q)
    return self.to_out(out.reshape(b, -1, h, w))


class Residual(torch.nn.Module):

  def __init__(self, fn):
    super().__init__()
    self.fn = fn

  def forward(self, x, *args, **kwargs):
    return self.fn(x, *args, **kwargs) + x


class SinusoidalPosEmb(torch.nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.dim = dim

  def forward(self, x, scale=1000):
    half_dim = self.dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, device=x.device).float() * -emb)
    emb = scale * x.unsqueeze(1) * emb.unsqueeze(0)
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


class GradLogPEstimator2d(torch.nn.Module):
  """U-Net on `[b, 2 (+1), n_feats, frames]`: (x, mask, mu, t) -> score `[b, n_feats, frames]`."""

  def __init__(self, dim, dim_mults=(1, 2, 4), groups=8, n_spks=None, spk_emb_dim=64,
               n_feats=80, pe_scale=1000, attn_heads=4, attn_dim_head=32):
    super().__init__()
    self.n_spks = n_spks if n_spks is not None else 1
    self.pe_scale = pe_scale
    if self.n_spks > 1:
      self.spk_mlp = torch.nn.Sequential(torch.nn.Linear(spk_emb_dim, spk_emb_dim * 4), Mish(),
                                         torch.nn.Linear(spk_emb_dim * 4, n_feats))
    self.time_pos_emb = SinusoidalPosEmb(dim)
    self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, dim * 4), Mish(),
                                   torch.nn.Linear(dim * 4, dim))
    dims = [2 + (1 if self.n_spks > 1 else 0), *[dim * m for m in dim_mults]]
    in_out = list(zip(dims[:-1], dims[1:]))
    resnet = lambda d_in, d_out: ResnetBlock(d_in, d_out, time_emb_dim=dim, groups=groups)
    attention = lambda d: Residual(Rezero(LinearAttention(d, attn_heads, attn_dim_head)))
    self.downs = torch.nn.ModuleList([])
    self.ups = torch.nn.ModuleList([])
    for ind, (dim_in, dim_out) in enumerate(in_out):
      is_last = ind >= len(in_out) - 1
      self.downs.append(torch.nn.ModuleList([
          resnet(dim_in, dim_out), resnet(dim_out, dim_out), attention(dim_out),
          Downsample(dim_out) if not is_last else torch.nn.Identity()]))
    mid_dim = dims[-1]
    self.mid_block1 = resnet(mid_dim, mid_dim)
    self.mid_attn = attention(mid_dim)
    self.mid_block2 = resnet(mid_dim, mid_dim)
    for dim_in, dim_out in reversed(in_out[1:]):
      self.ups.append(torch.nn.ModuleList([
          resnet(dim_out * 2, dim_in), resnet(dim_in, dim_in), attention(dim_in),
          Upsample(dim_in)]))
    self.final_block = Block(dim, dim, groups=groups)
    self.final_conv = torch.nn.Conv2d(dim, 1, 1)

  def forward(self, x, mask, mu, t, spk=None):
    if spk is not None:
      s = self.spk_mlp(spk)
    t = self.mlp(self.time_pos_emb(t, scale=self.pe_scale))
    if self.n_spks < 2:
      x = torch.stack([mu, x], 1)
    else:
      x = torch.stack([mu, x, s.unsqueeze(-1).repeat(1, 1, x.shape[-1])], 1)
    mask = mask.unsqueeze(1)
    hiddens = []
    masks = [mask]
    for resnet1, resnet2, attn, downsample in self.downs:
      mask_down = masks[-1]
      x = resnet1(x, mask_down, t)
      x = resnet2(x, mask_down, t)
      x = attn(x)
      hiddens.append(x)
      x = downsample(x * mask_down)
      masks.append(mask_down[:, :, :, ::2])
    masks = masks[:-1]
    mask_mid = masks[-1]
    x = self.mid_block1(x, mask_mid, t)
    x = self.mid_attn(x)
    x = self.mid_block2(x, mask_mid, t)
    for resnet1, resnet2, attn, upsample in self.ups:
      mask_up = masks.pop()
      x = torch.cat((x, hiddens.pop()), dim=1)
      x = resnet1(x, mask_up, t)
      x = resnet2(x, mask_up, t)
      x = attn(x)
      x = upsample(x * mask_up)
    x = self.final_block(x, mask)
    return (self.final_conv(x * mask) * mask).squeeze(1)


def get_noise(t, beta_init, beta_term, cumulative=False):
  if cumulative:
    return beta_init * t + 0.5 * (beta_term - beta_init) * (t ** 2)
  return beta_init + (beta_term - beta_init) * t


class Diffusion(torch.nn.Module):
  """VP-SDE decoder: `compute_loss` (training) and the Euler `reverse_diffusion` (synthesis)."""

  def __init__(self, p: GradTTSParams):
    super().__init__()
    self.n_feats = p.n_feats
    self.beta_min, self.beta_max = p.beta_min, p.beta_max
    self.estimator = GradLogPEstimator2d(p.dec_dim, p.dim_mults, p.groups, n_spks=p.n_spks,
                                         spk_emb_dim=p.spk_emb_dim, n_feats=p.n_feats,
                                         pe_scale=p.pe_scale, attn_heads=p.attn_heads,
                                         attn_dim_head=p.attn_dim_head)

  def forward_diffusion(self, x0, mask, mu, t):
    time = t.unsqueeze(-1).unsqueeze(-1)
    cum_noise = get_noise(time, self.beta_min, self.beta_max, cumulative=True)
    mean = x0 * torch.exp(-0.5 * cum_noise) + mu * (1.0 - torch.exp(-0.5 * cum_noise))
    variance = 1.0 - torch.exp(-cum_noise)
    z = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, requires_grad=False)
    xt = mean + z * torch.sqrt(variance)
    return xt * mask, z * mask

  @torch.no_grad()
  def reverse_diffusion(self, z, mask, mu, n_timesteps, stoc=False, spk=None):
    h = 1.0 / n_timesteps
    xt = z * mask
    for i in range(n_timesteps):
      t = (1.0 - (i + 0.5) * h) * torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
      noise_t = get_noise(t.unsqueeze(-1).unsqueeze(-1), self.beta_min, self.beta_max)
      if stoc:
        dxt_det = (0.5 * (mu - xt) - self.estimator(xt, mask, mu, t, spk)) * noise_t * h
        dxt_stoc = torch.randn(z.shape, dtype=z.dtype, device=z.device) * torch.sqrt(
            noise_t * h)
        dxt = dxt_det + dxt_stoc
      else:
        dxt = 0.5 * (mu - xt - self.estimator(xt, mask, mu, t, spk)) * noise_t * h
      xt = (xt - dxt) * mask
    return xt

  @torch.no_grad()
  def forward(self, z, mask, mu, n_timesteps, stoc=False, spk=None):
    return self.reverse_diffusion(z, mask, mu, n_timesteps, stoc, spk)

  def loss_t(self, x0, mask, mu, t, spk=None):
    xt, z = self.forward_diffusion(x0, mask, mu, t)
    cum_noise = get_noise(t.unsqueeze(-1).unsqueeze(-1), self.beta_min, self.beta_max,
                          cumulative=True)
    noise_estimation = self.estimator(xt, mask, mu, t, spk) * torch.sqrt(
        1.0 - torch.exp(-cum_noise))
    loss = torch.sum((noise_estimation + z) ** 2) / (torch.sum(mask) * self.n_feats)
    return loss, xt

  def compute_loss(self, x0, mask, mu, spk=None, offset=1e-5):
    t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device, requires_grad=False)
    t = torch.clamp(t, offset, 1.0 - offset)
    return self.loss_t(x0, mask, mu, t, spk)


# --- model/tts.py ----------------------------------------------------------------------------


class GradTTS(torch.nn.Module):
  """The reference model: `forward` synthesises, `compute_loss` gives the three losses."""

  def __init__(self, p: GradTTSParams):
    super().__init__()
    self.params = p
    self.n_spks = p.n_spks
    self.n_feats = p.n_feats
    self.num_downsamplings = len(p.dim_mults) - 1
    if p.n_spks > 1:
      self.spk_emb = torch.nn.Embedding(p.n_spks, p.spk_emb_dim)
    self.encoder = TextEncoder(p)
    self.decoder = Diffusion(p)

  @torch.no_grad()
  def forward(self, x, x_lengths, n_timesteps, temperature=1.0, stoc=False, spk=None,
              length_scale=1.0):
    """ids `[b, t]` -> (encoder mel, decoded mel, both `[b, n_feats, frames]`; attn
    `[b, 1, t, frames]`)."""
    if self.n_spks > 1:
      spk = self.spk_emb(spk)
    mu_x, logw, x_mask = self.encoder(x, x_lengths, spk)
    w = torch.exp(logw) * x_mask
    w_ceil = torch.ceil(w) * length_scale
    y_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
    y_max_length = int(y_lengths.max())
    y_max_length_ = fix_len_compatibility(y_max_length, self.num_downsamplings)
    y_mask = sequence_mask(y_lengths, y_max_length_).unsqueeze(1).to(x_mask.dtype)
    attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
    attn = generate_path(w_ceil.squeeze(1), attn_mask.squeeze(1)).unsqueeze(1)
    mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
    encoder_outputs = mu_y[:, :, :y_max_length]
    z = mu_y + torch.randn_like(mu_y, device=mu_y.device) / temperature
    decoder_outputs = self.decoder(z, y_mask, mu_y, n_timesteps, stoc, spk)
    return encoder_outputs, decoder_outputs[:, :, :y_max_length], attn[:, :, :, :y_max_length]

  def compute_loss(self, x, x_lengths, y, y_lengths, spk=None, out_size=None, rng=random):
    """(dur_loss, prior_loss, diff_loss); `y` `[b, n_feats, frames]`; `rng` draws the offsets."""
    if self.n_spks > 1:
      spk = self.spk_emb(spk)
    mu_x, logw, x_mask = self.encoder(x, x_lengths, spk)
    y_max_length = y.shape[-1]
    y_mask = sequence_mask(y_lengths, y_max_length).unsqueeze(1).to(x_mask)
    attn_mask = x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)
    with torch.no_grad():
      const = -0.5 * math.log(2 * math.pi) * self.n_feats
      factor = -0.5 * torch.ones(mu_x.shape, dtype=mu_x.dtype, device=mu_x.device)
      y_square = torch.matmul(factor.transpose(1, 2), y ** 2)
      y_mu_double = torch.matmul(2.0 * (factor * mu_x).transpose(1, 2), y)
      mu_square = torch.sum(factor * (mu_x ** 2), 1).unsqueeze(-1)
      log_prior = y_square - y_mu_double + mu_square + const
      attn = maximum_path(log_prior, attn_mask.squeeze(1)).detach()
    logw_ = torch.log(1e-8 + torch.sum(attn.unsqueeze(1), -1)) * x_mask
    dur_loss = duration_loss(logw, logw_, x_lengths)

    if out_size is not None:
      max_offset = (y_lengths - out_size).clamp(0)
      out_offset = [rng.choice(range(0, end)) if end > 0 else 0
                    for end in max_offset.cpu().numpy()]
      attn_cut = torch.zeros(attn.shape[0], attn.shape[1], out_size, dtype=attn.dtype,
                             device=attn.device)
      y_cut = torch.zeros(y.shape[0], self.n_feats, out_size, dtype=y.dtype, device=y.device)
      y_cut_lengths = []
      for i, (y_, offset) in enumerate(zip(y, out_offset)):
        y_cut_length = int(out_size + (y_lengths[i] - out_size).clamp(None, 0))
        y_cut_lengths.append(y_cut_length)
        y_cut[i, :, :y_cut_length] = y_[:, offset:offset + y_cut_length]
        attn_cut[i, :, :y_cut_length] = attn[i, :, offset:offset + y_cut_length]
      # The reference masks to max(y_cut_lengths), which is out_size whenever one item is
      # at least out_size frames long; pass it so shorter batches still broadcast.
      y_mask = sequence_mask(torch.LongTensor(y_cut_lengths), out_size).unsqueeze(1).to(y_mask)
      attn, y = attn_cut, y_cut

    mu_y = torch.matmul(attn.squeeze(1).transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
    diff_loss, _ = self.decoder.compute_loss(y, y_mask, mu_y, spk)
    prior_loss = torch.sum(0.5 * ((y - mu_y) ** 2 + math.log(2 * math.pi)) * y_mask)
    prior_loss = prior_loss / (torch.sum(y_mask) * self.n_feats)
    return dur_loss, prior_loss, diff_loss


# --- train.py ---------------------------------------------------------------------------------


class TrainStep:
  """The reference's training iteration on one batch, as a callable returning the float loss.

  zero_grad -> compute_loss(out_size) -> loss.backward() -> clip the encoder's and the
  decoder's gradient norms to 1 separately -> Adam step.
  """

  def __init__(self, model: GradTTS, learning_rate=1e-4, out_size="params", seed=0):
    self.model = model
    self.optimizer = torch.optim.Adam(params=model.parameters(), lr=learning_rate)
    self.out_size = model.params.out_size if out_size == "params" else out_size
    self.rng = random.Random(seed)

  def __call__(self, batch):
    model = self.model
    model.train()
    model.zero_grad()
    dur_loss, prior_loss, diff_loss = model.compute_loss(
        batch["x"], batch["x_lengths"], batch["y"], batch["y_lengths"], out_size=self.out_size,
        rng=self.rng)
    loss = sum([dur_loss, prior_loss, diff_loss])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), max_norm=1)
    torch.nn.utils.clip_grad_norm_(model.decoder.parameters(), max_norm=1)
    self.optimizer.step()
    return float(loss.item())


def torch_batch(batch) -> dict:
  """The benchmarks' channels-last Grad-TTS batch (NumPy or TF) in the reference layout.

  Args:
    batch: dict with `text_ids` `[b, t]`, `text_lengths` `[b]`, `mel` `[b, frames, n_feats]`,
      `mel_lengths` `[b]`.

  Returns:
    dict `x` `[b, t]` int64, `x_lengths` `[b]` int64, `y` `[b, n_feats, frames]` float32,
    `y_lengths` `[b]` int64.
  """
  as_np = lambda v: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
  return {"x": torch.from_numpy(as_np(batch["text_ids"]).astype(np.int64)),
          "x_lengths": torch.from_numpy(as_np(batch["text_lengths"]).astype(np.int64)),
          "y": torch.from_numpy(np.ascontiguousarray(
              as_np(batch["mel"]).astype(np.float32).transpose(0, 2, 1))),
          "y_lengths": torch.from_numpy(as_np(batch["mel_lengths"]).astype(np.int64))}


# --- weights from tfspeech --------------------------------------------------------------------


def _set(parameter, value):
  value = torch.from_numpy(np.asarray(value, np.float32))
  if tuple(value.shape) != tuple(parameter.shape):
    raise ValueError(f"shape {tuple(value.shape)} does not fit {tuple(parameter.shape)}")
  with torch.no_grad():
    parameter.copy_(value)


def _dense_to_conv1x1(torch_conv, dense):
  # Keras Dense [in, out] -> Conv1d/Conv2d [out, in, 1(, 1)].
  kernel = dense.kernel.numpy().T
  _set(torch_conv.weight, kernel.reshape(tuple(torch_conv.weight.shape)))
  if dense.bias is not None and torch_conv.bias is not None:
    _set(torch_conv.bias, dense.bias.numpy())


def _conv(torch_conv, keras_conv):
  # Conv1D [k, in, out] -> [out, in, k]; Conv2D [kT, kF, in, out] -> [out, in, kF, kT];
  # Conv2DTranspose [kT, kF, out, in] -> [in, out, kF, kT]: every case reverses the axes.
  kernel = keras_conv.kernel.numpy()
  _set(torch_conv.weight, kernel.transpose(tuple(reversed(range(kernel.ndim)))))
  _set(torch_conv.bias, keras_conv.bias.numpy())


def _linear(torch_linear, dense):
  _set(torch_linear.weight, dense.kernel.numpy().T)
  _set(torch_linear.bias, dense.bias.numpy())


def _norm(torch_norm, keras_norm):
  weight, bias = (("gamma", "beta") if isinstance(torch_norm, LayerNorm)
                  else ("weight", "bias"))
  _set(getattr(torch_norm, weight), keras_norm.gamma.numpy())
  _set(getattr(torch_norm, bias), keras_norm.beta.numpy())


def _resnet(torch_block, keras_block):
  _linear(torch_block.mlp[1], keras_block.time_proj)
  for torch_b, keras_b in ((torch_block.block1, keras_block.block_1),
                           (torch_block.block2, keras_block.block_2)):
    _conv(torch_b.block[0], keras_b.conv)
    _norm(torch_b.block[1], keras_b.norm)
  if keras_block.shortcut is not None:
    _conv(torch_block.res_conv, keras_block.shortcut)


def _attention(torch_residual, keras_attention):
  attention = torch_residual.fn.fn
  _dense_to_conv1x1(attention.to_qkv, keras_attention.to_qkv)
  _dense_to_conv1x1(attention.to_out, keras_attention.to_out)
  _set(torch_residual.fn.g, keras_attention.gate.numpy())


def load_tfspeech_weights(model: GradTTS, tf_model) -> GradTTS:
  """Copies a tfspeech `GradTTS`'s weights into `model` (same config); returns `model`.

  Single-speaker models only. With equal weights both give the same encoder outputs and
  durations, so a synthesis benchmark decodes mels of the same lengths.
  """
  if model.n_spks > 1:
    raise NotImplementedError("load_tfspeech_weights: single-speaker models only")
  enc, tf_enc = model.encoder, tf_model.encoder
  _set(enc.emb.weight, tf_enc.embedding.embeddings.numpy())
  for conv, norm, tf_conv, tf_norm in zip(enc.prenet.conv_layers, enc.prenet.norm_layers,
                                          tf_enc.prenet.convs, tf_enc.prenet.norms):
    _conv(conv, tf_conv)
    _norm(norm, tf_norm)
  _conv(enc.prenet.proj, tf_enc.prenet.proj)
  layers = zip(enc.encoder.attn_layers, enc.encoder.norm_layers_1, enc.encoder.ffn_layers,
               enc.encoder.norm_layers_2, tf_enc.transformer_layers)
  for attn, norm_1, ffn, norm_2, tf_layer in layers:
    tf_attn = tf_layer.attention
    for conv, dense in ((attn.conv_q, tf_attn.query), (attn.conv_k, tf_attn.key),
                        (attn.conv_v, tf_attn.value), (attn.conv_o, tf_attn.output_proj)):
      _dense_to_conv1x1(conv, dense)
    _set(attn.emb_rel_k, tf_attn.relative_keys.numpy()[None])
    _set(attn.emb_rel_v, tf_attn.relative_values.numpy()[None])
    _norm(norm_1, tf_layer.norm_1)
    _conv(ffn.conv_1, tf_layer.ffn.conv_1)
    _conv(ffn.conv_2, tf_layer.ffn.conv_2)
    _norm(norm_2, tf_layer.norm_2)
  _dense_to_conv1x1(enc.proj_m, tf_enc.proj_mu)
  dp, tf_dp = enc.proj_w, tf_enc.duration_predictor
  _conv(dp.conv_1, tf_dp.conv_1)
  _norm(dp.norm_1, tf_dp.norm_1)
  _conv(dp.conv_2, tf_dp.conv_2)
  _norm(dp.norm_2, tf_dp.norm_2)
  _conv(dp.proj, tf_dp.proj)

  est, tf_est = model.decoder.estimator, tf_model.decoder.estimator
  _linear(est.mlp[0], tf_est.time_mlp_1)
  _linear(est.mlp[2], tf_est.time_mlp_2)
  for stage, tf_stage in zip(list(est.downs) + list(est.ups), tf_est.downs + tf_est.ups):
    _resnet(stage[0], tf_stage[0])
    _resnet(stage[1], tf_stage[1])
    _attention(stage[2], tf_stage[2])
    if tf_stage[3] is not None:
      _conv(stage[3].conv, tf_stage[3].conv)
  _resnet(est.mid_block1, tf_est.mid_resnet_1)
  _attention(est.mid_attn, tf_est.mid_attention)
  _resnet(est.mid_block2, tf_est.mid_resnet_2)
  _conv(est.final_block.block[0], tf_est.final_block.conv)
  _norm(est.final_block.block[1], tf_est.final_block.norm)
  _conv(est.final_conv, tf_est.final_conv)
  return model

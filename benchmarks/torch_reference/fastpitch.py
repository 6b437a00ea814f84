"""FastPitch 1.1 in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources (NVIDIA/DeepLearningExamples, PyTorch/SpeechSynthesis/FastPitch):
  fastpitch/transformer.py        PositionalEmbedding, PositionwiseConvFF, MultiHeadAttn,
                                  TransformerLayer, FFTransformer
  common/layers.py                ConvReLUNorm, ConvNorm
  fastpitch/attention.py          ConvAttention ("3xconv" queries), with its unused attn_proj
  fastpitch/alignment.py          mas_width1 (numba there; a NumPy loop here)
  fastpitch/model.py              regulate_len, average_pitch, TemporalPredictor, FastPitch
                                  (forward with learned alignment, infer)
  fastpitch/loss_function.py      FastPitchLoss; attn_loss_function.py AttentionCTCLoss,
                                  AttentionBinarizationLoss
  fastpitch/arg_parser.py         the LJSpeech hyperparameters (`FastPitchParams` defaults)

Layouts are the reference's: ids `[batch, tokens]`, mels `[batch, n_mels, frames]`.

Differences from the stored reference, all cost-neutral:
- `ConvAttention` builds only the "3xconv" query encoder it uses (the reference first builds
  an `Invertible1x1ConvLUS` and then replaces it, so it has no parameters in the model).
- Speaker embedding, pitch formants > 1, AMP casts and the LSTM helpers of ConvAttention
  (never called) are left out or fixed to what LJSpeech uses.
"""

import dataclasses
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass
class FastPitchParams:
  """The constructor arguments of the reference `FastPitch` (arg_parser.py defaults)."""
  n_mel_channels: int = 80
  n_symbols: int = 148
  padding_idx: int = 0
  symbols_embedding_dim: int = 384
  in_fft_n_layers: int = 6
  in_fft_n_heads: int = 1
  in_fft_d_head: int = 64
  in_fft_conv1d_kernel_size: int = 3
  in_fft_conv1d_filter_size: int = 1536
  in_fft_output_size: int = 384
  p_in_fft_dropout: float = 0.1
  p_in_fft_dropatt: float = 0.1
  p_in_fft_dropemb: float = 0.0
  out_fft_n_layers: int = 6
  out_fft_n_heads: int = 1
  out_fft_d_head: int = 64
  out_fft_conv1d_kernel_size: int = 3
  out_fft_conv1d_filter_size: int = 1536
  out_fft_output_size: int = 384
  p_out_fft_dropout: float = 0.1
  p_out_fft_dropatt: float = 0.1
  p_out_fft_dropemb: float = 0.0
  dur_predictor_kernel_size: int = 3
  dur_predictor_filter_size: int = 256
  p_dur_predictor_dropout: float = 0.1
  dur_predictor_n_layers: int = 2
  pitch_predictor_kernel_size: int = 3
  pitch_predictor_filter_size: int = 256
  p_pitch_predictor_dropout: float = 0.1
  pitch_predictor_n_layers: int = 2
  pitch_embedding_kernel_size: int = 3
  energy_conditioning: bool = True
  energy_predictor_kernel_size: int = 3
  energy_predictor_filter_size: int = 256
  p_energy_predictor_dropout: float = 0.1
  energy_predictor_n_layers: int = 2
  energy_embedding_kernel_size: int = 3
  n_speakers: int = 1
  speaker_emb_weight: float = 1.0
  n_att_channels: int = 80


def params_from_tfspeech(config) -> FastPitchParams:
  """The reference arguments of a `tfspeech.models.fastpitch.FastPitchConfig`."""
  names = {f.name for f in dataclasses.fields(FastPitchParams)}
  values = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
  values["in_fft_output_size"] = values["out_fft_output_size"] = config.symbols_embedding_dim
  return FastPitchParams(**values)


def count_parameters(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def mask_from_lens(lens, max_len: Optional[int] = None):
  if max_len is None:
    max_len = int(lens.max())
  ids = torch.arange(0, max_len, device=lens.device, dtype=lens.dtype)
  return torch.lt(ids, lens.unsqueeze(1))


# --------------------------------------------------------------------------- transformer
class PositionalEmbedding(nn.Module):
  def __init__(self, demb):
    super().__init__()
    self.register_buffer("inv_freq", 1 / (10000 ** (torch.arange(0.0, demb, 2.0) / demb)))

  def forward(self, pos_seq):
    sinusoid = torch.matmul(pos_seq.unsqueeze(-1), self.inv_freq.unsqueeze(0))
    return torch.cat([sinusoid.sin(), sinusoid.cos()], dim=1)[None]


class PositionwiseConvFF(nn.Module):
  def __init__(self, d_model, d_inner, kernel_size, dropout):
    super().__init__()
    self.CoreNet = nn.Sequential(
        nn.Conv1d(d_model, d_inner, kernel_size, 1, kernel_size // 2), nn.ReLU(),
        nn.Conv1d(d_inner, d_model, kernel_size, 1, kernel_size // 2), nn.Dropout(dropout))
    self.layer_norm = nn.LayerNorm(d_model)

  def forward(self, inp):
    core = self.CoreNet(inp.transpose(1, 2)).transpose(1, 2)
    return self.layer_norm(inp + core)


class MultiHeadAttn(nn.Module):
  def __init__(self, n_head, d_model, d_head, dropout, dropatt):
    super().__init__()
    self.n_head, self.d_head, self.scale = n_head, d_head, 1 / (d_head ** 0.5)
    self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head)
    self.drop = nn.Dropout(dropout)
    self.dropatt = nn.Dropout(dropatt)
    self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
    self.layer_norm = nn.LayerNorm(d_model)

  def forward(self, inp, attn_mask):
    n_head, d_head = self.n_head, self.d_head
    bsz, length = inp.size(0), inp.size(1)
    q, k, v = torch.chunk(self.qkv_net(inp), 3, dim=2)
    q, k, v = (x.view(bsz, length, n_head, d_head).permute(2, 0, 1, 3)
               .reshape(-1, length, d_head) for x in (q, k, v))
    score = torch.bmm(q, k.transpose(1, 2)) * self.scale
    mask = attn_mask.unsqueeze(1).to(score.dtype).repeat(n_head, length, 1)
    score = score.masked_fill(mask.to(torch.bool), -float("inf"))
    prob = self.dropatt(F.softmax(score, dim=2))
    vec = torch.bmm(prob, v).view(n_head, bsz, length, d_head)
    vec = vec.permute(1, 2, 0, 3).contiguous().view(bsz, length, n_head * d_head)
    return self.layer_norm(inp + self.drop(self.o_net(vec)))


class TransformerLayer(nn.Module):
  def __init__(self, n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt):
    super().__init__()
    self.dec_attn = MultiHeadAttn(n_head, d_model, d_head, dropout, dropatt)
    self.pos_ff = PositionwiseConvFF(d_model, d_inner, kernel_size, dropout)

  def forward(self, inp, mask):
    out = self.dec_attn(inp, attn_mask=~mask.squeeze(2)) * mask
    return self.pos_ff(out) * mask


class FFTransformer(nn.Module):
  def __init__(self, n_layer, n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt,
               dropemb=0.0, embed_input=True, n_embed=None, padding_idx=0):
    super().__init__()
    self.padding_idx = padding_idx
    self.word_emb = (nn.Embedding(n_embed, d_model, padding_idx=padding_idx)
                     if embed_input else None)
    self.pos_emb = PositionalEmbedding(d_model)
    self.drop = nn.Dropout(dropemb)
    self.layers = nn.ModuleList([
        TransformerLayer(n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt)
        for _ in range(n_layer)])

  def forward(self, dec_inp, seq_lens=None, conditioning=0):
    if self.word_emb is None:
      inp, mask = dec_inp, mask_from_lens(seq_lens).unsqueeze(2)
    else:
      inp, mask = self.word_emb(dec_inp), (dec_inp != self.padding_idx).unsqueeze(2)
    pos_seq = torch.arange(inp.size(1), device=inp.device).to(inp.dtype)
    out = self.drop(inp + self.pos_emb(pos_seq) * mask + conditioning)
    for layer in self.layers:
      out = layer(out, mask=mask)
    return out, mask


# --------------------------------------------------------------------------- predictors
class ConvReLUNorm(nn.Module):
  def __init__(self, in_channels, out_channels, kernel_size=1, dropout=0.0):
    super().__init__()
    self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    self.norm = nn.LayerNorm(out_channels)
    self.dropout = nn.Dropout(dropout)

  def forward(self, signal):
    out = F.relu(self.conv(signal))
    return self.dropout(self.norm(out.transpose(1, 2)).transpose(1, 2))


class TemporalPredictor(nn.Module):
  def __init__(self, input_size, filter_size, kernel_size, dropout, n_layers=2):
    super().__init__()
    self.layers = nn.Sequential(*[
        ConvReLUNorm(input_size if i == 0 else filter_size, filter_size, kernel_size, dropout)
        for i in range(n_layers)])
    self.fc = nn.Linear(filter_size, 1, bias=True)

  def forward(self, enc_out, enc_out_mask):
    out = self.layers((enc_out * enc_out_mask).transpose(1, 2)).transpose(1, 2)
    return self.fc(out) * enc_out_mask


def conv_norm(in_channels, out_channels, kernel_size=1):
  return nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)


class ConvAttention(nn.Module):
  def __init__(self, n_mel_channels=80, n_text_channels=512, n_att_channels=80):
    super().__init__()
    self.attn_proj = nn.Conv2d(n_att_channels, 1, kernel_size=1)  # Unused by the reference.
    self.key_proj = nn.Sequential(
        conv_norm(n_text_channels, n_text_channels * 2, 3), nn.ReLU(),
        conv_norm(n_text_channels * 2, n_att_channels, 1))
    self.query_proj = nn.Sequential(
        conv_norm(n_mel_channels, n_mel_channels * 2, 3), nn.ReLU(),
        conv_norm(n_mel_channels * 2, n_mel_channels, 1), nn.ReLU(),
        conv_norm(n_mel_channels, n_att_channels, 1))

  def forward(self, queries, keys, mask=None, attn_prior=None):
    keys_enc = self.key_proj(keys)
    queries_enc = self.query_proj(queries)
    attn = (queries_enc[:, :, :, None] - keys_enc[:, :, None]) ** 2
    attn = -0.0005 * attn.sum(1, keepdim=True)
    if attn_prior is not None:
      attn = F.log_softmax(attn, dim=3) + torch.log(attn_prior[:, None] + 1e-8)
    attn_logprob = attn.clone()
    if mask is not None:
      attn = attn.masked_fill(mask.permute(0, 2, 1).unsqueeze(2), -float("inf"))
    return F.softmax(attn, dim=3), attn_logprob


# --------------------------------------------------------------------------- alignment
def mas_width1(log_attn_map):
  """The reference's numba `mas_width1` as a NumPy loop; `[mel, text]` in and out."""
  neg_inf = log_attn_map.dtype.type(-np.inf)
  log_p = log_attn_map.copy()
  log_p[0, 1:] = neg_inf
  for i in range(1, log_p.shape[0]):
    prev_log1 = neg_inf
    for j in range(log_p.shape[1]):
      prev_log2 = log_p[i - 1, j]
      log_p[i, j] += max(prev_log1, prev_log2)
      prev_log1 = prev_log2
  opt = np.zeros_like(log_p)
  j = log_p.shape[1] - 1
  for i in range(log_p.shape[0] - 1, 0, -1):
    opt[i, j] = 1
    if log_p[i - 1, j - 1] >= log_p[i - 1, j]:
      j -= 1
      if j == 0:
        opt[1:i, j] = 1
        break
  opt[0, j] = 1
  return opt


def regulate_len(durations, enc_out, pace: float = 1.0, mel_max_len: Optional[int] = None):
  reps = (durations.float() / pace + 0.5).long()
  dec_lens = reps.sum(dim=1)
  max_len = dec_lens.max()
  reps_cumsum = torch.cumsum(F.pad(reps, (1, 0, 0, 0), value=0.0), dim=1)[:, None, :]
  reps_cumsum = reps_cumsum.to(enc_out.dtype)
  range_ = torch.arange(max_len, device=enc_out.device)[None, :, None]
  mult = ((reps_cumsum[:, :, :-1] <= range_) & (reps_cumsum[:, :, 1:] > range_))
  enc_rep = torch.matmul(mult.to(enc_out.dtype), enc_out)
  if mel_max_len is not None:
    enc_rep = enc_rep[:, :mel_max_len]
    dec_lens = torch.clamp_max(dec_lens, mel_max_len)
  return enc_rep, dec_lens


def average_pitch(pitch, durs):
  ends = torch.cumsum(durs, dim=1).long()
  starts = F.pad(ends[:, :-1], (1, 0))
  nonzero_cums = F.pad(torch.cumsum(pitch != 0.0, dim=2), (1, 0))
  cums = F.pad(torch.cumsum(pitch, dim=2), (1, 0))
  bs, length = ends.size()
  dcs = starts[:, None, :].expand(bs, pitch.size(1), length)
  dce = ends[:, None, :].expand(bs, pitch.size(1), length)
  sums = (torch.gather(cums, 2, dce) - torch.gather(cums, 2, dcs)).float()
  counts = (torch.gather(nonzero_cums, 2, dce) - torch.gather(nonzero_cums, 2, dcs)).float()
  return torch.where(counts == 0.0, counts, sums / counts)


# --------------------------------------------------------------------------- model
class FastPitch(nn.Module):
  def __init__(self, p: FastPitchParams):
    super().__init__()
    d = p.symbols_embedding_dim
    self.encoder = FFTransformer(
        p.in_fft_n_layers, p.in_fft_n_heads, d, p.in_fft_d_head, p.in_fft_conv1d_filter_size,
        p.in_fft_conv1d_kernel_size, p.p_in_fft_dropout, p.p_in_fft_dropatt,
        p.p_in_fft_dropemb, embed_input=True, n_embed=p.n_symbols, padding_idx=p.padding_idx)
    self.speaker_emb = nn.Embedding(p.n_speakers, d) if p.n_speakers > 1 else None
    self.speaker_emb_weight = p.speaker_emb_weight
    self.duration_predictor = TemporalPredictor(
        p.in_fft_output_size, p.dur_predictor_filter_size, p.dur_predictor_kernel_size,
        p.p_dur_predictor_dropout, p.dur_predictor_n_layers)
    self.decoder = FFTransformer(
        p.out_fft_n_layers, p.out_fft_n_heads, d, p.out_fft_d_head,
        p.out_fft_conv1d_filter_size, p.out_fft_conv1d_kernel_size, p.p_out_fft_dropout,
        p.p_out_fft_dropatt, p.p_out_fft_dropemb, embed_input=False)
    self.pitch_predictor = TemporalPredictor(
        p.in_fft_output_size, p.pitch_predictor_filter_size, p.pitch_predictor_kernel_size,
        p.p_pitch_predictor_dropout, p.pitch_predictor_n_layers)
    self.pitch_emb = nn.Conv1d(1, d, p.pitch_embedding_kernel_size,
                               padding=(p.pitch_embedding_kernel_size - 1) // 2)
    self.register_buffer("pitch_mean", torch.zeros(1))
    self.register_buffer("pitch_std", torch.zeros(1))
    self.energy_conditioning = p.energy_conditioning
    if p.energy_conditioning:
      self.energy_predictor = TemporalPredictor(
          p.in_fft_output_size, p.energy_predictor_filter_size,
          p.energy_predictor_kernel_size, p.p_energy_predictor_dropout,
          p.energy_predictor_n_layers)
      self.energy_emb = nn.Conv1d(1, d, p.energy_embedding_kernel_size,
                                  padding=(p.energy_embedding_kernel_size - 1) // 2)
    self.proj = nn.Linear(p.out_fft_output_size, p.n_mel_channels, bias=True)
    self.attention = ConvAttention(p.n_mel_channels, d, p.n_att_channels)

  def binarize_attention(self, attn, in_lens, out_lens):
    with torch.no_grad():
      log_attn = torch.log(attn.data).cpu().numpy()
      out = np.zeros(attn.shape, dtype=np.float32)
      for b in range(attn.shape[0]):
        t, m = int(in_lens[b]), int(out_lens[b])
        out[b, 0, :m, :t] = mas_width1(log_attn[b, 0, :m, :t])
    return torch.from_numpy(out)

  def _speaker(self, speaker):
    if self.speaker_emb is None:
      return 0
    return self.speaker_emb(speaker).unsqueeze(1) * self.speaker_emb_weight

  def forward(self, inputs, input_lens, mel_tgt, mel_lens, pitch_dense, energy_dense,
              attn_prior, speaker=None, pace=1.0, max_duration=75):
    """The training pass (`use_gt_pitch=True`); pitch_dense `[batch, 1, frames]` normalised."""
    mel_max_len = mel_tgt.size(2)
    enc_out, enc_mask = self.encoder(inputs, conditioning=self._speaker(speaker))
    log_dur_pred = self.duration_predictor(enc_out, enc_mask).squeeze(-1)
    dur_pred = torch.clamp(torch.exp(log_dur_pred) - 1, 0, max_duration)
    pitch_pred = self.pitch_predictor(enc_out, enc_mask).permute(0, 2, 1)
    text_emb = self.encoder.word_emb(inputs)
    attn_mask = mask_from_lens(input_lens, max_len=inputs.size(1))[..., None] == 0
    attn_soft, attn_logprob = self.attention(mel_tgt, text_emb.permute(0, 2, 1), attn_mask,
                                             attn_prior=attn_prior)
    attn_hard = self.binarize_attention(attn_soft, input_lens, mel_lens)
    dur_tgt = attn_hard.sum(2)[:, 0, :]
    pitch_tgt = average_pitch(pitch_dense, dur_tgt)
    enc_out = enc_out + self.pitch_emb(pitch_tgt).transpose(1, 2)
    energy_pred = energy_tgt = None
    if self.energy_conditioning:
      energy_pred = self.energy_predictor(enc_out, enc_mask).squeeze(-1)
      energy_tgt = torch.log(1.0 + average_pitch(energy_dense.unsqueeze(1), dur_tgt))
      enc_out = enc_out + self.energy_emb(energy_tgt).transpose(1, 2)
      energy_tgt = energy_tgt.squeeze(1)
    len_regulated, dec_lens = regulate_len(dur_tgt, enc_out, pace, mel_max_len)
    dec_out, dec_mask = self.decoder(len_regulated, dec_lens)
    mel_out = self.proj(dec_out)
    return (mel_out, dec_mask, dur_pred, log_dur_pred, pitch_pred, pitch_tgt, energy_pred,
            energy_tgt, attn_soft, attn_hard, dur_tgt, attn_logprob)

  def infer(self, inputs, pace=1.0, max_duration=75, speaker=None):
    enc_out, enc_mask = self.encoder(inputs, conditioning=self._speaker(speaker))
    log_dur_pred = self.duration_predictor(enc_out, enc_mask).squeeze(-1)
    dur_pred = torch.clamp(torch.exp(log_dur_pred) - 1, 0, max_duration)
    pitch_pred = self.pitch_predictor(enc_out, enc_mask).permute(0, 2, 1)
    enc_out = enc_out + self.pitch_emb(pitch_pred).transpose(1, 2)
    energy_pred = None
    if self.energy_conditioning:
      energy_pred = self.energy_predictor(enc_out, enc_mask).squeeze(-1)
      enc_out = enc_out + self.energy_emb(energy_pred.unsqueeze(1)).transpose(1, 2)
    len_regulated, dec_lens = regulate_len(dur_pred, enc_out, pace, mel_max_len=None)
    dec_out, _ = self.decoder(len_regulated, dec_lens)
    return self.proj(dec_out).permute(0, 2, 1), dec_lens, dur_pred, pitch_pred, energy_pred


# --------------------------------------------------------------------------- losses
def attention_ctc_loss(attn_logprob, in_lens, out_lens, blank_logprob=-1.0):
  max_key_len = attn_logprob.size(-1)
  logprob = attn_logprob.squeeze(1).permute(1, 0, 2)
  logprob = F.pad(logprob, (1, 0, 0, 0, 0, 0), value=blank_logprob)
  key_inds = torch.arange(max_key_len + 1, dtype=torch.long)
  logprob = logprob.masked_fill(key_inds.view(1, 1, -1) > in_lens.view(1, -1, 1),
                                -float("inf"))
  logprob = F.log_softmax(logprob, dim=-1)
  targets = key_inds[1:].unsqueeze(0).repeat(in_lens.numel(), 1)
  return F.ctc_loss(logprob, targets, input_lengths=out_lens, target_lengths=in_lens,
                    zero_infinity=True)


def fastpitch_loss(model_out, mel_tgt, in_lens, out_lens, dur_scale=0.1, pitch_scale=0.1,
                   energy_scale=0.1, attn_scale=1.0):
  """The reference `FastPitchLoss` with scripts/train.sh's scales; returns (loss, meta)."""
  (mel_out, _, _, log_dur_pred, pitch_pred, pitch_tgt, energy_pred, energy_tgt, _, _,
   dur_tgt, attn_logprob) = model_out
  mel_tgt = mel_tgt.transpose(1, 2)
  dur_mask = mask_from_lens(in_lens, max_len=dur_tgt.size(1))
  dur_loss = (F.mse_loss(log_dur_pred, torch.log(dur_tgt.float() + 1), reduction="none")
              * dur_mask).sum() / dur_mask.sum()
  mel_out = F.pad(mel_out, (0, 0, 0, mel_tgt.size(1) - mel_out.size(1), 0, 0), value=0.0)
  mel_mask = mel_tgt.ne(0).float()
  mel_loss = (F.mse_loss(mel_out, mel_tgt, reduction="none") * mel_mask).sum() / mel_mask.sum()
  pitch_loss = (F.mse_loss(pitch_tgt, pitch_pred, reduction="none")
                * dur_mask.unsqueeze(1)).sum() / dur_mask.sum()
  energy_loss = 0.0
  if energy_pred is not None:
    energy_loss = (F.mse_loss(energy_tgt, energy_pred, reduction="none")
                   * dur_mask).sum() / dur_mask.sum()
  attn_loss = attention_ctc_loss(attn_logprob, in_lens, out_lens)
  loss = (mel_loss + dur_loss * dur_scale + pitch_loss * pitch_scale
          + energy_loss * energy_scale + attn_loss * attn_scale)
  return loss, {"mel_loss": mel_loss, "duration_loss": dur_loss, "pitch_loss": pitch_loss,
                "energy_loss": energy_loss, "attn_loss": attn_loss}


def binarization_loss(hard_attention, soft_attention, eps=1e-12):
  log_sum = torch.log(torch.clamp(soft_attention[hard_attention == 1], min=eps)).sum()
  return -log_sum / hard_attention.sum()

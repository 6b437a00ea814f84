"""DC-TTS in PyTorch: a compact transcription of the reference, the benchmarks' baseline.

Sources: Tachibana et al. 2017 (arXiv 1710.08969) and Kyubyong/dc_tts:
  modules.py     conv1d (conv → layer norm → activation → dropout), hc (highway conv: one
                 conv to 2 x channels, split, both halves normalised, sigmoid gate),
                 conv1d_transpose (SSRN's 2x upsampling)
  networks.py    TextEnc, AudioEnc, Attention, AudioDec, SSRN (layer lists, dilations)
  train.py       the losses (L1 + binary divergence of the mels / magnitudes, guided
                 attention) and the step: Adam(lr, beta1 0.5, beta2 0.9, eps 1e-6), gradients
                 clipped to [-1, 1] per value
  synthesize.py  decoding with forcibly incremental attention (window of 3 from the previous
                 frame's argmax)

Built from tfspeech's `DCTTSConfig`, so the options of the original project's exploration are
here too: `conv_type` ("separable": depthwise `Conv1d(groups=in)` + pointwise 1x1;
"grouped": `Conv1d(groups=conv_groups)`), `alpha` (channel thinning of d and c), `norm`
("layer" / "batch" / "none"), `chunk_size`. Layouts are PyTorch's: ids `[batch, tokens]`,
spectra `[batch, channels, frames]`.

Differences from the stored reference, all cost-neutral or named:
- The shapes tfspeech chose where the paper and Kyubyong differ: SSRN's upsampling is a
  kernel-2 stride-2 transposed convolution (the paper's; Kyubyong: kernel 3); the output 1x1
  projections (AudioDec's mel logits, SSRN's magnitude logits) have no norm or dropout.
- Text padding: each text encoder layer's input and its output are zeroed past each length
  (tfspeech's centred layers do this, so an item in a padded batch computes what it computes
  alone) and the attention masks padded tokens (Kyubyong has neither; a multiply per layer
  and a `masked_fill`). SSRN is not masked (its frames past a length are ignored by the loss).
- Decoding (`Text2Mel.inference`) encodes the text once and, per step, runs the causal audio
  encoder and decoder over the frames decoded so far, as tfspeech does. Kyubyong's
  synthesize.py instead re-runs the whole graph (text encoder included) over all `max_T`
  frames at every step, which is the same result at several times the cost; the baseline
  does the work tfspeech does, so the ratio compares libraries, not algorithms. Items end
  as tfspeech's (`end_frames` frames on the last token; Kyubyong always runs `max_T`).
- Losses are masked to each item's frames as tfspeech's (Kyubyong: means over padding).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

_BLOCKED = -1e9


def count_parameters(module: nn.Module) -> int:
  """Every parameter (BatchNorm running statistics are buffers, not parameters)."""
  return sum(p.numel() for p in module.parameters())


# --- modules.py -----------------------------------------------------------------------------


class ChannelNorm(nn.Module):
  """Layer norm over the channels of each frame (Kyubyong's `normalize`), `[b, c, t]`."""

  def __init__(self, channels, eps=1e-5):
    super().__init__()
    self.norm = nn.LayerNorm(channels, eps=eps)

  def forward(self, x):
    return self.norm(x.transpose(1, 2)).transpose(1, 2)


def _norm(kind, channels):
  if kind == "layer":
    return ChannelNorm(channels)
  if kind == "batch":
    # Keras' BatchNormalization defaults (epsilon 1e-3, moving average 0.99).
    return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
  return nn.Identity()


class Conv(nn.Module):
  """`conv1d`: conv → norm → activation → dropout (`[b, in, t]` → `[b, out, t]`)."""

  def __init__(self, config, cin, cout, k=1, dilation=1, causal=False, activation=None,
               output=False):
    super().__init__()
    kind = config.conv_type
    if kind == "separable" and k == 1:
      kind = "plain"
    if kind == "grouped" and (cin % config.conv_groups or cout % config.conv_groups):
      kind = "plain"
    self.kind, self.causal = kind, causal
    self.width = (k - 1) * dilation
    if kind == "separable":
      self.depthwise = nn.Conv1d(cin, cin, k, dilation=dilation, groups=cin, bias=False)
      self.conv = nn.Conv1d(cin, cout, 1)
    else:
      self.conv = nn.Conv1d(cin, cout, k, dilation=dilation,
                            groups=config.conv_groups if kind == "grouped" else 1)
    self.norm = nn.Identity() if output else _norm(config.norm, cout)
    self.activation = activation
    self.dropout = 0.0 if output else config.dropout

  def forward(self, x):
    left = self.width if self.causal else self.width // 2
    if self.width:
      x = F.pad(x, (left, self.width - left))
    if self.kind == "separable":
      x = self.depthwise(x)
    y = self.norm(self.conv(x))
    if self.activation == "relu":
      y = F.relu(y)
    return F.dropout(y, self.dropout, self.training)


class HighwayConv(nn.Module):
  """`hc`: H1, H2 = split(conv(x)); gate = sigmoid(norm(H1)); gate * norm(H2) + (1 - gate) x."""

  def __init__(self, config, channels, k, dilation, causal=False):
    super().__init__()
    self.conv = Conv(config, channels, 2 * channels, k, dilation, causal, output=True)
    self.norm_gate = _norm(config.norm, channels)
    self.norm_value = _norm(config.norm, channels)
    self.dropout = config.dropout

  def forward(self, x):
    gate, value = self.conv(x).chunk(2, dim=1)
    gate = torch.sigmoid(self.norm_gate(gate))
    y = gate * self.norm_value(value) + (1.0 - gate) * x
    return F.dropout(y, self.dropout, self.training)


class Upsample(nn.Module):
  """SSRN's "D": transposed conv, kernel 2, stride 2 → norm → dropout (`t` → `2t` frames)."""

  def __init__(self, config, cin, cout):
    super().__init__()
    self.conv = nn.ConvTranspose1d(cin, cout, 2, stride=2)
    self.norm = _norm(config.norm, cout)
    self.dropout = config.dropout

  def forward(self, x):
    return F.dropout(self.norm(self.conv(x)), self.dropout, self.training)


# --- networks.py ----------------------------------------------------------------------------


def text_encoder(config):
  """TextEnc after the embedding: e → 2d, 2d → 2d, 12 highway convs."""
  d = config.d
  layers = [Conv(config, config.embedding_dim, 2 * d, activation="relu"),
            Conv(config, 2 * d, 2 * d)]
  layers += [HighwayConv(config, 2 * d, 3, 3 ** j) for _ in range(2) for j in range(4)]
  layers += [HighwayConv(config, 2 * d, 3, 1) for _ in range(2)]
  layers += [HighwayConv(config, 2 * d, 1, 1) for _ in range(2)]
  return nn.Sequential(*layers)


def audio_encoder(config):
  """AudioEnc: three causal 1x1 convs F → d, 10 causal highway convs."""
  d = config.d
  layers = [Conv(config, config.n_mels, d, causal=True, activation="relu"),
            Conv(config, d, d, causal=True, activation="relu"), Conv(config, d, d, causal=True)]
  layers += [HighwayConv(config, d, 3, 3 ** j, causal=True) for _ in range(2) for j in range(4)]
  layers += [HighwayConv(config, d, 3, 3, causal=True) for _ in range(2)]
  return nn.Sequential(*layers)


def audio_decoder(config):
  """AudioDec: [R, Q] 2d → d, 6 causal highway convs, three ReLU 1x1 convs, the mel logits."""
  d = config.d
  layers = [Conv(config, 2 * d, d, causal=True)]
  layers += [HighwayConv(config, d, 3, 3 ** j, causal=True) for j in range(4)]
  layers += [HighwayConv(config, d, 3, 1, causal=True) for _ in range(2)]
  layers += [Conv(config, d, d, causal=True, activation="relu") for _ in range(3)]
  layers += [Conv(config, d, config.n_mels, causal=True, output=True)]
  return nn.Sequential(*layers)


class Text2Mel(nn.Module):
  """Characters → coarse normalised mels `[b, F, T]` (logits; sigmoid = mels)."""

  def __init__(self, config):
    super().__init__()
    self.config = config
    self.embedding = nn.Embedding(config.n_symbols, config.embedding_dim)
    self.text_encoder = text_encoder(config)
    self.audio_encoder = audio_encoder(config)
    self.audio_decoder = audio_decoder(config)
    self.scale = 1.0 / math.sqrt(config.d)

  def encode_text(self, text, text_lengths):
    """→ keys, values `[b, d, N]`, token mask `[b, N]` bool."""
    mask = torch.arange(text.size(1), device=text.device)[None] < text_lengths[:, None]
    frame_mask = mask[:, None].float()
    x = self.embedding(text).transpose(1, 2)
    for layer in self.text_encoder:  # Zero padding past each text, as tfspeech's centred layers.
      x = layer(x * frame_mask)
    x = x * frame_mask
    keys, values = x.chunk(2, dim=1)
    return keys, values, mask

  def shifted(self, mels):
    """The audio encoder's input: mels `[b, F, T]` delayed by `chunk_size` frames."""
    return F.pad(mels, (self.config.chunk_size, 0))[:, :, :mels.size(2)]

  def attend(self, queries, keys, values, mask):
    """Attention: → (R `[b, d, T]`, A `[b, T, N]`)."""
    scores = torch.bmm(queries.transpose(1, 2), keys) * self.scale
    alignments = torch.softmax(scores.masked_fill(~mask[:, None], _BLOCKED), dim=-1)
    return torch.bmm(values, alignments.transpose(1, 2)), alignments

  def forward(self, text, text_lengths, mels):
    """Teacher forcing on true coarse mels `[b, F, T]` → (logits `[b, F, T]`, A `[b, T, N]`)."""
    keys, values, mask = self.encode_text(text, text_lengths)
    queries = self.audio_encoder(self.shifted(mels))
    context, alignments = self.attend(queries, keys, values, mask)
    return self.audio_decoder(torch.cat([context, queries], 1)), alignments

  def inference(self, text, text_lengths, max_decoder_steps=None):
    """Batched decoding, `chunk_size` frames per step, forcibly incremental attention.

    Returns (mels `[b, F, T]`, lengths `[b]`, alignments `[b, T, N]`), T = the longest item;
    frames past an item's length are zeroed.
    """
    config = self.config
    chunk, window = config.chunk_size, config.attention_window
    steps = max_decoder_steps or config.max_decoder_steps
    keys, values, mask = self.encode_text(text, text_lengths)
    batch, tokens = text.size(0), text.size(1)
    token_index = torch.arange(tokens, device=text.device)[None]
    last_token = (text_lengths - 1).clamp(min=0)
    position = text_lengths.new_zeros(batch)
    at_end = text_lengths.new_zeros(batch)
    done = torch.zeros(batch, dtype=torch.bool, device=text.device)
    lengths = text_lengths.new_zeros(batch)
    mels = keys.new_zeros(batch, config.n_mels, steps * chunk)
    weights = []
    for step in range(steps):
      start, end = step * chunk, (step + 1) * chunk
      queries = self.audio_encoder(self.shifted(mels[:, :, :end]))
      for j in range(chunk):
        scores = torch.bmm(queries[:, :, start + j][:, None], keys)[:, 0] * self.scale
        allowed = (token_index >= position[:, None]) & (token_index < position[:, None] + window)
        scores = scores.masked_fill(~(allowed & mask), _BLOCKED)
        weights.append(torch.softmax(scores, dim=-1))
        position = scores.argmax(dim=-1)
        lengths = torch.where(done, lengths, torch.full_like(lengths, start + j + 1))
        at_end = at_end + ((position >= last_token) & ~done).long()
        done = done | (at_end >= config.end_frames)
      alignments = torch.stack(weights, 1)
      context = torch.bmm(values, alignments.transpose(1, 2))
      logits = self.audio_decoder(torch.cat([context, queries], 1))
      mels[:, :, start:end] = torch.sigmoid(logits[:, :, start:end])
      if bool(done.all()):
        break
    frames = int(lengths.max())
    frame_mask = (torch.arange(frames, device=text.device)[None] < lengths[:, None]).float()
    return (mels[:, :, :frames] * frame_mask[:, None], lengths,
            alignments[:, :frames] * frame_mask[:, :, None])


class SSRN(nn.Module):
  """Coarse mels `[b, F, T]` → magnitude logits `[b, n_fft/2 + 1, T * r]`."""

  def __init__(self, config):
    super().__init__()
    c, bins = config.c, config.n_linear
    layers = [Conv(config, config.n_mels, c)] + [HighwayConv(config, c, 3, 3 ** j)
                                                 for j in range(2)]
    for _ in range(int(round(math.log2(config.reduction)))):
      layers += [Upsample(config, c, c)] + [HighwayConv(config, c, 3, 3 ** j) for j in range(2)]
    layers += [Conv(config, c, 2 * c)] + [HighwayConv(config, 2 * c, 3, 1) for _ in range(2)]
    layers += [Conv(config, 2 * c, bins)]
    layers += [Conv(config, bins, bins, activation="relu") for _ in range(2)]
    layers += [Conv(config, bins, bins, output=True)]
    self.layers = nn.Sequential(*layers)

  def forward(self, mels):
    return self.layers(mels)


# --- train.py -------------------------------------------------------------------------------


def _frame_mask(lengths, frames):
  return (torch.arange(frames, device=lengths.device)[None] < lengths[:, None]).float()


def spectral_loss(logits, targets, lengths):
  """L1 of sigmoid(logits) + binary divergence, means over each item's frames `[b, bins, t]`."""
  mask = _frame_mask(lengths, logits.size(2))[:, None]
  count = mask.sum() * logits.size(1)
  l1 = (torch.abs(torch.sigmoid(logits) - targets) * mask).sum() / count
  divergence = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
                * mask).sum() / count
  return l1 + divergence


def guided_attention_loss(alignments, text_lengths, frame_lengths, g):
  """Mean of A * W over valid (frame, token) pairs; W = 1 - exp(-(n/N - t/T)^2 / 2g^2)."""
  frames, tokens = alignments.size(1), alignments.size(2)
  n = torch.arange(tokens, device=alignments.device).float()[None, None]
  t = torch.arange(frames, device=alignments.device).float()[None, :, None]
  weights = 1.0 - torch.exp(-((n / text_lengths.float()[:, None, None]
                                - t / frame_lengths.float()[:, None, None]) ** 2) / (2 * g * g))
  mask = (_frame_mask(frame_lengths, frames)[:, :, None]
          * _frame_mask(text_lengths, tokens)[:, None, :])
  return (alignments * weights * mask).sum() / mask.sum()


class TrainStep:
  """train.py's step for one network: forward, losses, backward, clip per value, Adam.

  `stage` "text2mel": batches of (text, text_lengths, coarse mels `[b, F, T]`, coarse
  lengths); "ssrn": (coarse mels, magnitudes `[b, bins, T * r]`, full-rate lengths), both
  precomputed as Kyubyong's data loader does.
  """

  def __init__(self, config, stage="text2mel", learning_rate=1e-3):
    self.config, self.stage = config, stage
    self.model = Text2Mel(config) if stage == "text2mel" else SSRN(config)
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate,
                                      betas=(0.5, 0.9), eps=1e-6)

  def to(self, device):
    self.model.to(device)
    return self

  def __call__(self, **batch):
    self.model.train()
    self.optimizer.zero_grad()
    if self.stage == "text2mel":
      logits, alignments = self.model(batch["text"], batch["text_lengths"], batch["mels"])
      loss = (spectral_loss(logits, batch["mels"], batch["lengths"])
              + guided_attention_loss(alignments, batch["text_lengths"], batch["lengths"],
                                      self.config.guided_attention_g))
    else:
      logits = self.model(batch["mels"])
      loss = spectral_loss(logits, batch["magnitudes"], batch["lengths"])
    loss.backward()
    torch.nn.utils.clip_grad_value_(self.model.parameters(), 1.0)
    self.optimizer.step()
    return float(loss.detach())


# --- weights from tfspeech ------------------------------------------------------------------


def _set(parameter, value):
  with torch.no_grad():
    parameter.copy_(torch.as_tensor(value.numpy() if hasattr(value, "numpy") else value))


def _load_norm(torch_norm, keras_norm):
  if keras_norm is None:
    return
  if isinstance(torch_norm, ChannelNorm):
    _set(torch_norm.norm.weight, keras_norm.gamma)
    _set(torch_norm.norm.bias, keras_norm.beta)
  else:
    _set(torch_norm.weight, keras_norm.gamma)
    _set(torch_norm.bias, keras_norm.beta)
    _set(torch_norm.running_mean, keras_norm.moving_mean)
    _set(torch_norm.running_var, keras_norm.moving_variance)


def _load_conv(conv, layer):
  """A tfspeech `layers.Conv` into a `Conv` (kernel `[k, in/g, out]` → `[out, in/g, k]`)."""
  if conv.kind == "separable":
    _set(conv.depthwise.weight, layer.depthwise.numpy().T[:, None, :])
  _set(conv.conv.weight, layer.kernel.numpy().transpose(2, 1, 0))
  _set(conv.conv.bias, layer.bias)
  _load_norm(conv.norm, layer.norm)


def _load_layer(module, layer):
  if isinstance(module, HighwayConv):
    _load_conv(module.conv, layer.conv)
    _load_norm(module.norm_gate, layer.norm_gate)
    _load_norm(module.norm_value, layer.norm_value)
  elif isinstance(module, Upsample):
    cin, cout = layer.in_channels, layer.filters
    _set(module.conv.weight, layer.kernel.numpy().reshape(cin, 2, cout).transpose(0, 2, 1))
    _set(module.conv.bias, layer.bias)
    _load_norm(module.norm, layer.norm)
  else:
    _load_conv(module, layer)


def _load_stack(sequential, keras_layers):
  if len(keras_layers) != len(sequential):
    raise ValueError(f"{len(keras_layers)} tfspeech layers for {len(sequential)} modules")
  for module, layer in zip(sequential, keras_layers):
    _load_layer(module, layer)


def load_text2mel_weights(model: Text2Mel, tf_model) -> Text2Mel:
  """Copies a tfspeech `Text2Mel`'s weights into `model`."""
  _set(model.embedding.weight, tf_model.embedding.embeddings)
  _load_stack(model.text_encoder, tf_model.text_encoder.stack)
  _load_stack(model.audio_encoder, tf_model.audio_encoder.stack)
  _load_stack(model.audio_decoder, tf_model.audio_decoder.stack)
  return model


def load_ssrn_weights(model: SSRN, tf_model) -> SSRN:
  """Copies a tfspeech `SSRN`'s weights into `model`."""
  keras_layers = list(tf_model.head.stack)
  for upsample, block in zip(tf_model.upsamplers, tf_model.blocks):
    keras_layers += [upsample] + list(block.stack)
  _load_stack(model.layers, keras_layers + list(tf_model.tail.stack))
  return model

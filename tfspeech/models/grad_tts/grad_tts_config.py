"""The one config of Grad-TTS (Popov et al., 2021): the model, named as in the reference
`params.py`, plus how the training task feeds it (`add_blank`)."""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class GradTTSConfig:
  """Everything that fixes the shape of a Grad-TTS model and its diffusion process.

  The defaults are the reference LJSpeech recipe (huawei-noah/Speech-Backbones,
  `Grad-TTS/params.py`); `grad_tts_presets` has named variants.

  Attributes:
    n_vocab: number of input token ids (symbol set size, plus one when the text pipeline
      intersperses a blank id between symbols, as the reference does with `add_blank`).
    n_spks: number of speakers; a speaker embedding table exists only when > 1.
    spk_emb_dim: width of the speaker embedding (used only when `n_spks > 1`).
    n_enc_channels: width of the token embedding and of the text encoder's prenet.
      With several speakers the transformer runs on `n_enc_channels + spk_emb_dim`.
    filter_channels: hidden width of the transformer feed-forward blocks.
    filter_channels_dp: hidden width of the duration predictor.
    n_heads: attention heads of the text encoder's self-attention.
    n_enc_layers: transformer layers of the text encoder.
    enc_kernel: kernel size of the feed-forward and duration-predictor convolutions.
    enc_dropout: dropout rate of the transformer and the duration predictor.
    window_size: relative-position window of the self-attention: keys further than this
      many tokens from the query get no relative term.
    prenet_kernel: kernel size of the ConvReluNorm prenet (reference: 5).
    prenet_layers: convolutions in the prenet (reference: 3).
    prenet_dropout: dropout rate of the prenet (reference: 0.5).
    n_feats: mel channels of the output spectrogram.
    dec_dim: base width of the U-Net score estimator.
    dim_mults: width multipliers of the U-Net resolutions; the U-Net halves frames and mel
      channels `len(dim_mults) - 1` times.
    groups: GroupNorm groups in the U-Net blocks (every U-Net width must divide by it).
    attn_heads: heads of the U-Net linear attention (reference: 4).
    attn_dim_head: width of one U-Net linear-attention head (reference: 32).
    beta_min: noise rate beta(t) of the VP-SDE at t = 0.
    beta_max: noise rate beta(t) of the VP-SDE at t = 1.
    pe_scale: multiplier of t inside the U-Net's sinusoidal time embedding (1000 for the
      reference's `grad-tts.pt`, 1 for `grad-tts-old.pt`).
    out_size: frames of the random mel segment the decoder trains on (2 s at 22050 Hz /
      hop 256 = 172 in the reference); `None` trains on whole utterances.
    prior_on_segment: the prior loss covers only the decoder's `out_size` segment, as in the
      reference. False: it covers every frame of the utterance (cheap: no decoder work),
      which the tiny preset needs to form a diagonal alignment in a few hundred steps on
      short utterances (a 32-frame segment rarely reaches their first and last tokens).
    add_blank: intersperse a blank id (`len(symbols)`) before, between and after the
      prepared text ids, as the reference's `add_blank=True`. Ignored when the prepared
      symbol table already has a blank (its records already hold blanks).
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
  prenet_kernel: int = 5
  prenet_layers: int = 3
  prenet_dropout: float = 0.5
  n_feats: int = 80
  dec_dim: int = 64
  dim_mults: Tuple[int, ...] = (1, 2, 4)
  groups: int = 8
  attn_heads: int = 4
  attn_dim_head: int = 32
  beta_min: float = 0.05
  beta_max: float = 20.0
  pe_scale: float = 1000.0
  out_size: Optional[int] = 172
  prior_on_segment: bool = True
  add_blank: bool = True

  def __post_init__(self):
    def fail(field, problem, fix):
      raise ValueError(f"GradTTSConfig.{field}: {problem}; {fix}.")

    for field in ("n_vocab", "n_spks", "spk_emb_dim", "n_enc_channels", "filter_channels",
                  "filter_channels_dp", "n_heads", "n_enc_layers", "enc_kernel",
                  "window_size", "prenet_kernel", "prenet_layers", "n_feats", "dec_dim",
                  "groups", "attn_heads", "attn_dim_head"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail(field, f"must be a positive int, got {value!r}", "pass a positive integer")
    for field in ("enc_kernel", "prenet_kernel"):
      if getattr(self, field) % 2 == 0:
        fail(field, f"must be odd to keep sequence lengths, got {getattr(self, field)}",
             "use an odd kernel size")
    for field in ("enc_dropout", "prenet_dropout"):
      if not 0.0 <= getattr(self, field) < 1.0:
        fail(field, f"must be in [0, 1), got {getattr(self, field)}", "use a dropout rate")
    if self.encoder_channels % self.n_heads:
      fail("n_heads", f"{self.n_heads} heads do not divide the {self.encoder_channels} "
           "encoder channels", "choose n_heads dividing n_enc_channels (+ spk_emb_dim)")
    if not self.dim_mults or any(not isinstance(m, int) or m < 1 for m in self.dim_mults):
      fail("dim_mults", f"must be a non-empty tuple of positive ints, got {self.dim_mults!r}",
           "use e.g. (1, 2, 4)")
    for mult in self.dim_mults:
      if (self.dec_dim * mult) % self.groups:
        fail("groups", f"{self.groups} groups do not divide U-Net width {self.dec_dim * mult}",
             "choose dec_dim a multiple of groups")
    if self.dec_dim < 4 or self.dec_dim % 2:
      fail("dec_dim", f"the sinusoidal time embedding needs an even width >= 4, got "
           f"{self.dec_dim}", "use an even dec_dim")
    if self.n_feats % self.frames_multiple:
      fail("n_feats", f"the U-Net halves mel channels {len(self.dim_mults) - 1} times, so "
           f"n_feats must divide by {self.frames_multiple}, got {self.n_feats}",
           "pick n_feats accordingly")
    if self.out_size is not None and (self.out_size < 1 or self.out_size % self.frames_multiple):
      fail("out_size", f"must be a positive multiple of {self.frames_multiple}, got "
           f"{self.out_size}", "round it up with fix_len_compatibility")
    if not 0.0 < self.beta_min < self.beta_max:
      fail("beta_min", f"need 0 < beta_min < beta_max, got {self.beta_min}, {self.beta_max}",
           "use the reference 0.05 and 20.0")

  @property
  def encoder_channels(self) -> int:
    """Width of the transformer, mu projection and duration predictor inputs."""
    return self.n_enc_channels + (self.spk_emb_dim if self.n_spks > 1 else 0)

  @property
  def frames_multiple(self) -> int:
    """Frame counts (and `n_feats`) the U-Net accepts are multiples of this number."""
    return 2 ** (len(self.dim_mults) - 1)

  def replace(self, **changes) -> "GradTTSConfig":
    """Returns a copy with `changes` applied (and validated)."""
    return dataclasses.replace(self, **changes)


# The task config was a subclass adding `add_blank`; one class now.
GradTTSTaskConfig = GradTTSConfig

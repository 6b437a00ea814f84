"""The one config of FastPitch 1.1 (Łańcucki, 2021; NVIDIA DeepLearningExamples): the model,
named after the reference `fastpitch/arg_parser.py`, plus the loss weights and the
binarization-loss schedule of its `train.py` / `scripts/train.sh`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class FastPitchConfig:
  """Everything that fixes the shape of a FastPitch model and how its losses are weighted.

  The defaults are the reference LJSpeech recipe; `fastpitch_presets` has named variants.

  Attributes:
    n_symbols: input token ids (the prepared symbol table's size).
    padding_idx: id that pads token sequences (its embedding row is unused).
    n_mel_channels: mel bins of the output.
    symbols_embedding_dim: width of the token embedding and of both FFT stacks (d_model).
    in_fft_n_layers, in_fft_n_heads, in_fft_d_head: encoder FFT blocks, heads, head width.
    in_fft_conv1d_kernel_size, in_fft_conv1d_filter_size: encoder conv feed-forward.
    p_in_fft_dropout, p_in_fft_dropatt, p_in_fft_dropemb: encoder dropouts (output,
      attention weights, embedding).
    out_fft_*: the same for the decoder FFT stack (over mel frames).
    dur_predictor_*, pitch_predictor_*, energy_predictor_*: the per-token predictors:
      `n_layers` x (Conv1D kernel_size -> ReLU -> LayerNorm -> dropout) of `filter_size`
      channels, then a Dense to one value.
    pitch_embedding_kernel_size, energy_embedding_kernel_size: the Conv1D (1 -> d_model)
      that embeds per-token pitch / energy values.
    energy_conditioning: predict and embed energy (FastPitch 1.1: on).
    n_speakers: speakers; a speaker embedding (added to the encoder input) exists when > 1.
    speaker_emb_weight: scale of the speaker embedding.
    n_att_channels: width of the alignment encoder's key/query projections (reference 80).
    max_duration: predicted durations are clipped to this many frames per token.
    dur_predictor_loss_scale, pitch_predictor_loss_scale, energy_predictor_loss_scale,
      attn_loss_scale: loss weights (scripts/train.sh: 0.1, 0.1, 0.1 and 1.0).
    kl_loss_start_step: step at which the binarization loss starts (the reference's
      `--kl-loss-start-epoch 0`).
    kl_loss_warmup_steps: steps over which its weight ramps linearly from 0 to
      `kl_loss_weight` (the reference's 100 epochs; an LJSpeech epoch at the reference's
      global batch of 256 is 12500 / 256 ~ 49 steps, so 4900).
    kl_loss_weight: the binarization loss weight after the warm-up.
  """
  n_symbols: int = 148
  padding_idx: int = 0
  n_mel_channels: int = 80
  symbols_embedding_dim: int = 384
  in_fft_n_layers: int = 6
  in_fft_n_heads: int = 1
  in_fft_d_head: int = 64
  in_fft_conv1d_kernel_size: int = 3
  in_fft_conv1d_filter_size: int = 1536
  p_in_fft_dropout: float = 0.1
  p_in_fft_dropatt: float = 0.1
  p_in_fft_dropemb: float = 0.0
  out_fft_n_layers: int = 6
  out_fft_n_heads: int = 1
  out_fft_d_head: int = 64
  out_fft_conv1d_kernel_size: int = 3
  out_fft_conv1d_filter_size: int = 1536
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
  energy_predictor_kernel_size: int = 3
  energy_predictor_filter_size: int = 256
  p_energy_predictor_dropout: float = 0.1
  energy_predictor_n_layers: int = 2
  pitch_embedding_kernel_size: int = 3
  energy_embedding_kernel_size: int = 3
  energy_conditioning: bool = True
  n_speakers: int = 1
  speaker_emb_weight: float = 1.0
  n_att_channels: int = 80
  max_duration: float = 75.0
  dur_predictor_loss_scale: float = 0.1
  pitch_predictor_loss_scale: float = 0.1
  energy_predictor_loss_scale: float = 0.1
  attn_loss_scale: float = 1.0
  kl_loss_start_step: int = 0
  kl_loss_warmup_steps: int = 4900
  kl_loss_weight: float = 1.0

  def __post_init__(self):
    def fail(field, problem, fix):
      raise ValueError(f"FastPitchConfig.{field}: {problem}; {fix}.")

    positive = ["n_symbols", "n_mel_channels", "symbols_embedding_dim", "n_speakers",
                "n_att_channels"]
    for prefix in ("in_fft", "out_fft"):
      positive += [f"{prefix}_{name}" for name in ("n_layers", "n_heads", "d_head",
                                                   "conv1d_kernel_size", "conv1d_filter_size")]
    for prefix in ("dur", "pitch", "energy"):
      positive += [f"{prefix}_predictor_{name}" for name in ("kernel_size", "filter_size",
                                                             "n_layers")]
    positive += ["pitch_embedding_kernel_size", "energy_embedding_kernel_size"]
    for field in positive:
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail(field, f"must be a positive int, got {value!r}", "pass a positive integer")
    for field in positive:
      if field.endswith("kernel_size") and getattr(self, field) % 2 == 0:
        fail(field, f"must be odd to keep sequence lengths, got {getattr(self, field)}",
             "use an odd kernel size")
    for field in (f.name for f in dataclasses.fields(self)):
      if field.startswith("p_") and not 0.0 <= getattr(self, field) < 1.0:
        fail(field, f"must be in [0, 1), got {getattr(self, field)}", "use a dropout rate")
    if not 0 <= self.padding_idx < self.n_symbols:
      fail("padding_idx", f"{self.padding_idx} is not an id below n_symbols={self.n_symbols}",
           "use the symbol table's pad id")
    if self.max_duration <= 0:
      fail("max_duration", f"must be > 0, got {self.max_duration}", "use e.g. 75")
    if self.kl_loss_start_step < 0 or self.kl_loss_warmup_steps < 0:
      fail("kl_loss_warmup_steps", "start and warm-up steps must be >= 0",
           "use e.g. kl_loss_start_step=0, kl_loss_warmup_steps=4900")

  def replace(self, **changes) -> "FastPitchConfig":
    """Returns a copy with `changes` applied (and validated)."""
    return dataclasses.replace(self, **changes)

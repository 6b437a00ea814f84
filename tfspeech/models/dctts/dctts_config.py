"""The one config of DC-TTS (Tachibana et al., 2017, arXiv 1710.08969): Text2Mel and SSRN."""

import dataclasses
import math

STAGES = ("text2mel", "ssrn", "joint")
CONV_TYPES = ("plain", "separable", "grouped")
NORMS = ("layer", "batch", "none")
# The frame sizes the paper's 22050 Hz recipe uses; other sample rates scale them.
_REFERENCE_RATE = 22050
_REFERENCE_HOP = 256
_REFERENCE_FFT = 1024


@dataclasses.dataclass(frozen=True)
class DCTTSConfig:
  """Everything that fixes the shape of a DC-TTS model, what it trains and how it decodes.

  Defaults are the paper's / Kyubyong/dc_tts `hyperparams.py` (e = 128, d = 256, c = 512,
  r = 4, dropout 0.05, g = 0.2, attention window 3); the options the original project explored
  are fields (`conv_type`, `alpha`, `norm`, `chunk_size`, `sample_rate`).

  Attributes:
    stage: what a training run updates: "text2mel", "ssrn" or "joint" (both in one step, SSRN
      reading Text2Mel's teacher-forced mels, so its loss reaches Text2Mel too).
    n_symbols: input token ids: the prepared corpus' symbol table size.
    embedding_dim: e, width of the character embedding.
    hidden_dim: d, channels of Text2Mel (the text encoder works at 2d).
    ssrn_dim: c, channels of SSRN (2c after its upsampling).
    n_mels: F, mel bins (the corpus').
    reduction: r, full frames per coarse Text2Mel frame (a power of two: SSRN upsamples with
      log2(r) stride-2 transposed convolutions).
    sample_rate: Hz; must equal the corpus'.
    n_fft: FFT size of the magnitudes SSRN predicts (n_fft // 2 + 1 bins); 0 derives it from
      the sample rate (1024 at 22050 Hz, the next power of two of the same duration otherwise).
    hop_length: samples per full frame; 0 derives it (256 at 22050 Hz, the same duration
      otherwise).
    dropout: dropout after every convolution (training only).
    guided_attention_g: g of the guided attention loss W[n, t] = 1 - exp(-(n/N - t/T)^2 / 2g^2).
    conv_type: "plain", "separable" (depthwise + pointwise, MobileNet) or "grouped" (the
      convolution split into `conv_groups` independent channel groups).
    conv_groups: groups of "grouped" convolutions (channel counts must divide by it).
    alpha: channel-thinning factor (MobileNet's alpha) applied to d and c.
    norm: "layer" (over channels, per frame: Kyubyong's), "batch" or "none".
    chunk_size: coarse frames Text2Mel decodes per step. The audio encoder reads mels shifted
      by this many frames (1: the paper), so a step needs no frame of its own chunk.
    attention_window: forcibly incremental attention at synthesis: a frame may attend only
      positions [p, p + window) where p is the previous frame's attended position (3: may stay
      or advance by at most 2 characters, as Kyubyong's synthesize.py).
    max_decoder_steps: step limit of `Text2Mel.infer` when none is given (the serving
      control `max_decoder_steps` defaults to the reference's 210 whatever the preset).
    end_frames: an item's decoding ends once this many coarse frames attended its last token.
    ref_db, max_db: mels (in dB) are normalised to [0, 1] as clip((dB - ref_db + max_db) /
      max_db) for the sigmoid outputs and binary divergence (Kyubyong's 20 and 100).
    magnitude_ref_db: ref_db of the linear magnitudes (tfspeech corpora apply no pre-emphasis,
      so their loud low bins sit higher than Kyubyong's; 40 keeps them below the clip).
  """
  stage: str = "text2mel"
  n_symbols: int = 64
  embedding_dim: int = 128
  hidden_dim: int = 256
  ssrn_dim: int = 512
  n_mels: int = 80
  reduction: int = 4
  sample_rate: int = 22050
  n_fft: int = 0
  hop_length: int = 0
  dropout: float = 0.05
  guided_attention_g: float = 0.2
  conv_type: str = "plain"
  conv_groups: int = 4
  alpha: float = 1.0
  norm: str = "layer"
  chunk_size: int = 1
  attention_window: int = 3
  max_decoder_steps: int = 210
  end_frames: int = 2
  ref_db: float = 20.0
  max_db: float = 100.0
  magnitude_ref_db: float = 40.0

  def __post_init__(self):
    def fail(field, problem, fix):
      raise ValueError(f"DCTTSConfig.{field}: {problem}; {fix}.")

    for field, choices in (("stage", STAGES), ("conv_type", CONV_TYPES), ("norm", NORMS)):
      if getattr(self, field) not in choices:
        fail(field, f"got {getattr(self, field)!r}", f"use one of {', '.join(choices)}")
    for field in ("n_symbols", "embedding_dim", "hidden_dim", "ssrn_dim", "n_mels", "reduction",
                  "sample_rate", "conv_groups", "chunk_size", "attention_window",
                  "max_decoder_steps", "end_frames"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail(field, f"must be a positive int, got {value!r}", "pass a positive integer")
    for field in ("n_fft", "hop_length"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        fail(field, f"must be an int >= 0, got {value!r}", "pass 0 to derive it from "
             "sample_rate, or a positive size")
    if self.reduction & (self.reduction - 1):
      fail("reduction", f"SSRN upsamples by stride-2 steps, so r must be a power of two, got "
           f"{self.reduction}", "use 1, 2, 4 (the paper) or 8")
    if not 8000 <= self.sample_rate <= 192000:
      fail("sample_rate", f"{self.sample_rate} Hz is outside 8000..192000", "use the corpus' "
           "sample rate in Hz (e.g. 22050)")
    if self.fft_size % 2:
      fail("n_fft", f"must be even, got {self.fft_size}", "use e.g. 1024")
    if self.hop > self.fft_size:
      fail("hop_length", f"{self.hop} exceeds n_fft={self.fft_size} (frames would skip "
           "samples)", "use a hop of at most n_fft")
    if not 0.0 <= self.dropout < 1.0:
      fail("dropout", f"must be in [0, 1), got {self.dropout}", "use a dropout rate")
    if self.guided_attention_g <= 0:
      fail("guided_attention_g", f"must be > 0, got {self.guided_attention_g}", "use 0.2")
    if not 0.0 < self.alpha <= 4.0:
      fail("alpha", f"must be in (0, 4], got {self.alpha}", "use e.g. 1.0 (none) or 0.5")
    if self.attention_window < 2:
      fail("attention_window", f"a window of {self.attention_window} never lets the attention "
           "advance", "use 2 or more (3: the reference)")
    if self.max_db <= 0:
      fail("max_db", f"must be > 0, got {self.max_db}", "use 100")
    if self.conv_type == "grouped":
      for field, width in (("hidden_dim", self.d), ("ssrn_dim", self.c),
                           ("embedding_dim", self.embedding_dim)):
        if width % self.conv_groups:
          fail("conv_groups", f"{width} channels ({field} after alpha={self.alpha}) do not "
               f"divide into {self.conv_groups} groups", "pick conv_groups dividing every width")

  # ---------------------------------------------------------------- derived sizes
  @property
  def d(self) -> int:
    """Text2Mel channels after channel thinning."""
    return max(1, int(round(self.alpha * self.hidden_dim)))

  @property
  def c(self) -> int:
    """SSRN channels after channel thinning."""
    return max(1, int(round(self.alpha * self.ssrn_dim)))

  @property
  def hop(self) -> int:
    """Samples per full frame (`hop_length`, or derived from the sample rate)."""
    if self.hop_length:
      return self.hop_length
    return int(round(_REFERENCE_HOP * self.sample_rate / _REFERENCE_RATE))

  @property
  def fft_size(self) -> int:
    """FFT size (`n_fft`, or the power of two covering 1024 samples' duration at 22050 Hz)."""
    if self.n_fft:
      return self.n_fft
    return 2 ** int(math.ceil(math.log2(_REFERENCE_FFT * self.sample_rate / _REFERENCE_RATE)))

  @property
  def n_linear(self) -> int:
    """Linear-frequency bins SSRN predicts, n_fft // 2 + 1."""
    return self.fft_size // 2 + 1

  @property
  def trains_text2mel(self) -> bool:
    return self.stage in ("text2mel", "joint")

  @property
  def trains_ssrn(self) -> bool:
    return self.stage in ("ssrn", "joint")

  def replace(self, **changes) -> "DCTTSConfig":
    """Returns a copy with `changes` applied (and validated)."""
    return dataclasses.replace(self, **changes)

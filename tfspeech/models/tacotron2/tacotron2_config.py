"""The one config of Tacotron 2 (Shen et al., 2018), named as in NVIDIA/tacotron2 `hparams.py`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Tacotron2Config:
  """Everything that fixes the shape of a Tacotron 2 model and how it decodes.

  The defaults are the reference LJSpeech recipe (NVIDIA/tacotron2 `hparams.py`);
  `tacotron2_presets` has named variants. The reference hard-codes the three dropout rates of
  the encoder convolutions, the prenet and the postnet (0.5); they are fields here with that
  value.

  Attributes:
    n_symbols: number of input token ids: the prepared corpus' symbol table size (Tacotron 2
      intersperses no blank).
    symbols_embedding_dim: width of the token embedding.
    encoder_kernel_size: kernel of the encoder convolutions (odd).
    encoder_n_convolutions: convolutions before the encoder BiLSTM.
    encoder_embedding_dim: channels of the encoder convolutions and of the BiLSTM output
      (each direction has half of it, so it must be even).
    encoder_dropout: dropout after each encoder convolution (training only).
    n_mel_channels: mel bins of the output.
    n_frames_per_step: mel frames per decoder step; the reference supports only 1.
    decoder_rnn_dim: units of the decoder LSTM.
    prenet_dim: units of each of the two prenet layers.
    prenet_dropout: dropout of the prenet; applied at training *and* inference (the
      reference's only source of randomness at synthesis).
    max_decoder_steps: default step limit of decoding (the `max_decoder_steps` control).
    gate_threshold: decoding stops an item at the first frame whose stop-token probability
      (sigmoid of the gate logit) exceeds this.
    p_attention_dropout: dropout of the attention LSTM's output (training only).
    p_decoder_dropout: dropout of the decoder LSTM's output (training only).
    attention_rnn_dim: units of the attention LSTM.
    attention_dim: width of the location-sensitive attention's energies.
    attention_location_n_filters: filters of the location convolution.
    attention_location_kernel_size: kernel of the location convolution (odd).
    postnet_embedding_dim: channels of the postnet's hidden convolutions.
    postnet_kernel_size: kernel of the postnet convolutions (odd).
    postnet_n_convolutions: postnet convolutions (>= 2: first and last map from/to mels).
    postnet_dropout: dropout after each postnet convolution (training only).
    guided_attention_weight: weight of the guided-attention loss (Tachibana et al., 2018,
      DC-TTS), which penalises attention far from the text/mel-length diagonal; 0 (the
      reference recipe) trains without it. Not part of the model's shape.
    guided_attention_g: width `g` of that loss' penalty `1 - exp(-(n/N - t/T)^2 / (2 g^2))`
      (DC-TTS: 0.2).
  """
  n_symbols: int = 148
  symbols_embedding_dim: int = 512
  encoder_kernel_size: int = 5
  encoder_n_convolutions: int = 3
  encoder_embedding_dim: int = 512
  encoder_dropout: float = 0.5
  n_mel_channels: int = 80
  n_frames_per_step: int = 1
  decoder_rnn_dim: int = 1024
  prenet_dim: int = 256
  prenet_dropout: float = 0.5
  max_decoder_steps: int = 1000
  gate_threshold: float = 0.5
  p_attention_dropout: float = 0.1
  p_decoder_dropout: float = 0.1
  attention_rnn_dim: int = 1024
  attention_dim: int = 128
  attention_location_n_filters: int = 32
  attention_location_kernel_size: int = 31
  postnet_embedding_dim: int = 512
  postnet_kernel_size: int = 5
  postnet_n_convolutions: int = 5
  postnet_dropout: float = 0.5
  guided_attention_weight: float = 0.0
  guided_attention_g: float = 0.2

  def __post_init__(self):
    def fail(field, problem, fix):
      raise ValueError(f"Tacotron2Config.{field}: {problem}; {fix}.")

    for field in ("n_symbols", "symbols_embedding_dim", "encoder_kernel_size",
                  "encoder_n_convolutions", "encoder_embedding_dim", "n_mel_channels",
                  "n_frames_per_step", "decoder_rnn_dim", "prenet_dim", "max_decoder_steps",
                  "attention_rnn_dim", "attention_dim", "attention_location_n_filters",
                  "attention_location_kernel_size", "postnet_embedding_dim",
                  "postnet_kernel_size", "postnet_n_convolutions"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail(field, f"must be a positive int, got {value!r}", "pass a positive integer")
    for field in ("encoder_kernel_size", "attention_location_kernel_size",
                  "postnet_kernel_size"):
      if getattr(self, field) % 2 == 0:
        fail(field, f"must be odd to keep sequence lengths, got {getattr(self, field)}",
             "use an odd kernel size")
    if self.encoder_embedding_dim % 2:
      fail("encoder_embedding_dim", f"the BiLSTM gives each direction half of it, got "
           f"{self.encoder_embedding_dim}", "use an even width")
    if self.n_frames_per_step != 1:
      fail("n_frames_per_step", f"only 1 is supported (as in the reference), got "
           f"{self.n_frames_per_step}", "use 1")
    if self.postnet_n_convolutions < 2:
      fail("postnet_n_convolutions", f"needs a first and a last convolution, got "
           f"{self.postnet_n_convolutions}", "use 2 or more")
    for field in ("encoder_dropout", "prenet_dropout", "p_attention_dropout",
                  "p_decoder_dropout", "postnet_dropout"):
      if not 0.0 <= getattr(self, field) < 1.0:
        fail(field, f"must be in [0, 1), got {getattr(self, field)}", "use a dropout rate")
    if not self.guided_attention_weight >= 0.0:
      fail("guided_attention_weight", f"must be >= 0, got {self.guided_attention_weight}",
           "use 0 to train without the guided-attention loss")
    if not self.guided_attention_g > 0.0:
      fail("guided_attention_g", f"must be > 0, got {self.guided_attention_g}",
           "use e.g. the DC-TTS 0.2")
    if not 0.0 < self.gate_threshold < 1.0:
      fail("gate_threshold", f"is a probability in (0, 1), got {self.gate_threshold}",
           "use e.g. the reference 0.5")

  @property
  def prenet_noise_channels(self) -> int:
    """Channels of the prenet's dropout noise: one per unit of each of its two layers."""
    return 2 * self.prenet_dim

  def replace(self, **changes) -> "Tacotron2Config":
    """Returns a copy with `changes` applied (and validated)."""
    return dataclasses.replace(self, **changes)

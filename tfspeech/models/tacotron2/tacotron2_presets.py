"""The Tacotron 2 preset table (`tiny` and the reference's) and the training recipe of each.

`PRESETS` is the one table: `tfspeech-train --model=tacotron2 --preset=NAME`, the functions
below and `preset` all read it.
"""

from tfspeech.models.tacotron2.tacotron2_config import Tacotron2Config
from tfspeech.training.config import TrainConfig

# Reference symbol set (NVIDIA/tacotron2 text/symbols.py): pad "_", "-", 10 punctuation
# marks, 52 letters and 84 "@"-prefixed ARPAbet symbols = 148 ids, the same table as
# `tfspeech-prepare --symbols=english_arpabet`.
REFERENCE_SYMBOLS = 148
# english_characters (64 symbols, the default `tfspeech-prepare --symbols`).
TINY_SYMBOLS = 64

PRESETS = {
    # NVIDIA/tacotron2 hparams.py: 28.19M parameters with its 148 symbols. Prepare the
    # corpus with --symbols=english_arpabet (or train with --override=n_symbols=N).
    "ljspeech": Tacotron2Config(
        n_symbols=REFERENCE_SYMBOLS, symbols_embedding_dim=512, encoder_kernel_size=5,
        encoder_n_convolutions=3, encoder_embedding_dim=512, n_mel_channels=80,
        n_frames_per_step=1, decoder_rnn_dim=1024, prenet_dim=256, max_decoder_steps=1000,
        gate_threshold=0.5, p_attention_dropout=0.1, p_decoder_dropout=0.1,
        attention_rnn_dim=1024, attention_dim=128, attention_location_n_filters=32,
        attention_location_kernel_size=31, postnet_embedding_dim=512, postnet_kernel_size=5,
        postnet_n_convolutions=5),
    # A ~30k-parameter model for tests and CPU smoke training on the default
    # `tfspeech-prepare` output (english_characters, 64 ids). With the reference's losses
    # alone its attention settles on the first tokens (diagonality 0.27 -> 0.13 in 1000 steps
    # on tests/data/ljspeech_tiny); the DC-TTS guided-attention loss (weight 1) pulls it onto
    # the diagonal within ~200 steps (0.27 -> 0.68).
    "tiny": Tacotron2Config(
        n_symbols=TINY_SYMBOLS, symbols_embedding_dim=16, encoder_kernel_size=5,
        encoder_n_convolutions=2, encoder_embedding_dim=16, n_mel_channels=80,
        n_frames_per_step=1, decoder_rnn_dim=32, prenet_dim=16, max_decoder_steps=400,
        gate_threshold=0.5, p_attention_dropout=0.1, p_decoder_dropout=0.1,
        attention_rnn_dim=32, attention_dim=16, attention_location_n_filters=4,
        attention_location_kernel_size=15, postnet_embedding_dim=16, postnet_kernel_size=5,
        postnet_n_convolutions=3, guided_attention_weight=1.0),
}


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name`."""
  preset(name)  # Validates the name.
  if name == "tiny":
    return TrainConfig(batch_size=8, max_steps=2000, optimizer="adam", learning_rate=3e-3,
                       clip_norm=1.0, log_every=10, checkpoint_every=200, eval_every=100,
                       eval_batches=1, summary_every=200)
  # Reference hparams.py / train.py: Adam 1e-3 with weight decay 1e-6 (torch adds it to the
  # gradient; Keras' Adam decays decoupled, the same at this size), batch 64, gradient norm
  # clipped to 1.
  return TrainConfig(batch_size=64, max_steps=500_000, optimizer="adam", learning_rate=1e-3,
                     weight_decay=1e-6, clip_norm=1.0, log_every=100, checkpoint_every=1000,
                     eval_every=1000, eval_batches=10, summary_every=1000)


def preset(name: str, **overrides) -> Tacotron2Config:
  """Returns the preset called `name` with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown Tacotron 2 preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides)


def ljspeech(**overrides) -> Tacotron2Config:
  """The reference LJSpeech model (NVIDIA/tacotron2 hparams.py, 148 symbols)."""
  return preset("ljspeech", **overrides)


def tiny(**overrides) -> Tacotron2Config:
  """A small model for tests and CPU smoke training (64 ids, 80 mels)."""
  return preset("tiny", **overrides)

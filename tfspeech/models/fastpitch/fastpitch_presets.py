"""The FastPitch preset table (`tiny` and the reference's) and the training recipe of each.

`PRESETS` is the one table: `tfspeech-train --model=fastpitch --preset=NAME`, the functions
below and `preset` all read it.
"""

from tfspeech.models.fastpitch.fastpitch_config import FastPitchConfig
from tfspeech.training.config import TrainConfig

# The reference `english_basic` symbol set (pad, "-", 10 punctuation marks, 52 letters,
# 84 "@"-ARPAbet symbols) has 148 ids, the size of our `english_arpabet` table.
REFERENCE_SYMBOLS = 148
# english_characters (64 symbols, the default `tfspeech-prepare --symbols`).
TINY_SYMBOLS = 64

PRESETS = {
    # The reference FastPitch 1.1 LJSpeech model (arg_parser.py defaults, energy
    # conditioning on as scripts/train.sh): prepare with --symbols=english_arpabet.
    "ljspeech": FastPitchConfig(),
    # A small model for tests and CPU smoke training on the default `tfspeech-prepare`
    # output (english_characters, 64 ids).
    "tiny": FastPitchConfig(
        n_symbols=TINY_SYMBOLS, symbols_embedding_dim=32,
        in_fft_n_layers=1, in_fft_n_heads=2, in_fft_d_head=16,
        in_fft_conv1d_filter_size=64, out_fft_n_layers=1, out_fft_n_heads=2,
        out_fft_d_head=16, out_fft_conv1d_filter_size=64,
        dur_predictor_filter_size=32, pitch_predictor_filter_size=32,
        energy_predictor_filter_size=32, n_att_channels=32,
        kl_loss_start_step=0, kl_loss_warmup_steps=20),
}


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name`."""
  preset(name)  # Validates the name.
  if name == "tiny":
    return TrainConfig(batch_size=16, max_steps=2000, optimizer="adam", learning_rate=3e-3,
                       clip_norm=1.0, log_every=10, checkpoint_every=200, eval_every=100,
                       eval_batches=1, summary_every=200)
  # Reference scripts/train.sh: LAMB, betas (0.9, 0.98), eps 1e-9, weight decay 1e-6,
  # gradient norm clipped at 1000, global batch 8 GPUs x 16 x 2 accumulation = 256, and
  # the schedule lr * min(step / warmup^1.5, step^-0.5) with lr 0.1 and warmup 1000: our
  # "noam" peaks at its learning_rate, so that is 0.1 / sqrt(1000). 1000 epochs of
  # LJSpeech at ~49 steps each.
  return TrainConfig(batch_size=256, max_steps=49_000, optimizer="lamb",
                     learning_rate=0.1 / 1000 ** 0.5, lr_schedule="noam", warmup_steps=1000,
                     beta_1=0.9, beta_2=0.98, epsilon=1e-9, weight_decay=1e-6,
                     clip_norm=1000.0, log_every=100, checkpoint_every=5000,
                     eval_every=1000, eval_batches=10, summary_every=5000)


def preset(name: str, **overrides) -> FastPitchConfig:
  """Returns the preset called `name` with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown FastPitch preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides)


def ljspeech(**overrides) -> FastPitchConfig:
  """The reference FastPitch 1.1 LJSpeech model (148 ids, energy conditioning)."""
  return preset("ljspeech", **overrides)


def tiny(**overrides) -> FastPitchConfig:
  """A small model for tests and CPU smoke training (64 ids, 80 mels)."""
  return preset("tiny", **overrides)

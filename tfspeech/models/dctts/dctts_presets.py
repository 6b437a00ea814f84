"""The DC-TTS preset table (`tiny` and the paper's) and the training recipe of each.

`PRESETS` is the one table: `tfspeech-train --model=dctts --preset=NAME`, the functions below
and `preset` all read it. The stage is a config field: `--override=stage=ssrn`.
"""

from tfspeech.models.dctts.dctts_config import DCTTSConfig
from tfspeech.training.config import TrainConfig

# english_characters (64 symbols, the default `tfspeech-prepare --symbols`). Kyubyong's
# vocabulary has 32 characters; only the embedding's row count differs.
CHARACTER_SYMBOLS = 64

PRESETS = {
    # The paper / Kyubyong hyperparams.py: e = 128, d = 256, c = 512, r = 4, F = 80, n_fft 1024
    # (513 bins, the paper's F'), dropout 0.05, g = 0.2, attention window 3.
    "ljspeech": DCTTSConfig(
        n_symbols=CHARACTER_SYMBOLS, embedding_dim=128, hidden_dim=256, ssrn_dim=512, n_mels=80,
        reduction=4, sample_rate=22050, n_fft=1024, hop_length=256, dropout=0.05,
        guided_attention_g=0.2, attention_window=3, max_decoder_steps=210),
    # A small model for tests and CPU smoke training on the default `tfspeech-prepare` output.
    "tiny": DCTTSConfig(
        n_symbols=CHARACTER_SYMBOLS, embedding_dim=16, hidden_dim=16, ssrn_dim=16, n_mels=80,
        reduction=4, sample_rate=22050, n_fft=1024, hop_length=256, dropout=0.05,
        guided_attention_g=0.2, attention_window=3, max_decoder_steps=120),
}


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name`."""
  preset(name)  # Validates the name.
  if name == "tiny":
    return TrainConfig(batch_size=8, max_steps=2000, optimizer="adam", learning_rate=2e-3,
                       clip_norm=1.0, log_every=10, checkpoint_every=200, eval_every=100,
                       eval_batches=1, summary_every=200)
  # Kyubyong train.py: Adam (beta1 0.5, beta2 0.9, eps 1e-6) at 1e-3 with Noam warm-up 4000
  # and gradients clipped to [-1, 1] per value; batch 32. Here: Adam 1e-3 with the trainer's
  # Noam schedule (warm-up 4000) and norm clipping, the betas left at Adam's defaults.
  return TrainConfig(batch_size=32, max_steps=400_000, optimizer="adam", learning_rate=1e-3,
                     lr_schedule="noam", warmup_steps=4000, epsilon=1e-6, clip_norm=1.0,
                     log_every=100, checkpoint_every=1000, eval_every=1000, eval_batches=10,
                     summary_every=1000)


def preset(name: str, **overrides) -> DCTTSConfig:
  """Returns the preset called `name` with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown DC-TTS preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides)


def ljspeech(**overrides) -> DCTTSConfig:
  """The paper's LJSpeech model (Kyubyong/dc_tts hyperparams.py)."""
  return preset("ljspeech", **overrides)


def tiny(**overrides) -> DCTTSConfig:
  """A small model for tests and CPU smoke training (64 ids, 80 mels)."""
  return preset("tiny", **overrides)

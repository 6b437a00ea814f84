"""The Grad-TTS preset table (`tiny` and the paper's) and the training recipe of each.

`PRESETS` is the one table: `tfspeech-train --model=grad_tts --preset=NAME`, the
functions below and `preset` all read it.
"""

from tfspeech.models.grad_tts.grad_tts_config import GradTTSConfig
from tfspeech.training.config import TrainConfig

# Reference symbol set (Grad-TTS/text/symbols.py): pad "_", "-", 10 punctuation marks,
# 52 letters and 84 "@"-prefixed ARPAbet symbols = 148 ids, plus one blank id that
# `intersperse` puts between symbols (train.py/inference.py use len(symbols) + 1).
REFERENCE_SYMBOLS = 148
REFERENCE_VOCAB_WITH_BLANK = REFERENCE_SYMBOLS + 1


def fix_len_compatibility(length: int, num_downsamplings_in_unet: int = 2) -> int:
  """Rounds a frame count up to a multiple of 2**num_downsamplings_in_unet (Python ints).

  The graph-mode equivalent for tensors is `GradTTS.compatible_frames`.
  """
  multiple = 2 ** num_downsamplings_in_unet
  return -(-int(length) // multiple) * multiple


# english_characters (64 symbols, the default `tfspeech-prepare --symbols`) + the blank id.
TINY_VOCAB = 65

_LJSPEECH = GradTTSConfig(
    n_vocab=REFERENCE_VOCAB_WITH_BLANK, n_spks=1, spk_emb_dim=64,
    n_enc_channels=192, filter_channels=768, filter_channels_dp=256, n_heads=2,
    n_enc_layers=6, enc_kernel=3, enc_dropout=0.1, window_size=4,
    n_feats=80, dec_dim=64, dim_mults=(1, 2, 4), groups=8, attn_heads=4, attn_dim_head=32,
    beta_min=0.05, beta_max=20.0, pe_scale=1000.0,
    out_size=fix_len_compatibility(2 * 22050 // 256))

PRESETS = {
    # The reference LJSpeech model (`Grad-TTS/params.py`, pe_scale 1000): 14.84M parameters.
    # Its 149 ids are `english_arpabet` (148) + blank: prepare with --symbols=english_arpabet.
    "ljspeech": _LJSPEECH,
    # The reference multi-speaker Libri-TTS model (247 speakers, 64-dim speaker embedding).
    "libritts": _LJSPEECH.replace(n_spks=247),
    # A few-thousand-parameter model for tests and CPU smoke training, on the default
    # `tfspeech-prepare` output (english_characters + blank = 65 ids).
    "tiny": GradTTSConfig(
        n_vocab=TINY_VOCAB, n_spks=1, spk_emb_dim=8,
        n_enc_channels=16, filter_channels=32, filter_channels_dp=16, n_heads=2,
        n_enc_layers=2, enc_kernel=3, enc_dropout=0.1, window_size=4,
        prenet_kernel=5, prenet_layers=3, prenet_dropout=0.5,
        n_feats=80, dec_dim=8, dim_mults=(1, 2, 4), groups=4, attn_heads=2, attn_dim_head=8,
        beta_min=0.05, beta_max=20.0, pe_scale=1000.0, out_size=32,
        # Measured on the bundled corpus after 400 steps: with the prior on 32-frame
        # segments, 61% of frames lie within 10% of the text from the diagonal and one
        # token (the first letter or the last blank) holds 21% of an utterance on average;
        # with the prior on whole utterances (decoder still on 32 frames), 89% and 11%.
        prior_on_segment=False),
}


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name`."""
  preset(name)  # Validates the name.
  if name == "tiny":
    # A few-thousand-parameter model: a high rate makes the prior and duration losses fall
    # within ~100 steps on the bundled corpus.
    return TrainConfig(batch_size=16, max_steps=2000, optimizer="adam", learning_rate=3e-3,
                       clip_norm=1.0, log_every=10, checkpoint_every=200, eval_every=100,
                       eval_batches=1, summary_every=200)
  # Reference Grad-TTS/train.py + params.py: Adam 1e-4, batch 16, gradient norms clipped
  # to 1 (the reference clips encoder and decoder separately; here the whole model),
  # 1.7M iterations in the paper.
  return TrainConfig(batch_size=16, max_steps=1_700_000, optimizer="adam",
                     learning_rate=1e-4, clip_norm=1.0, log_every=100,
                     checkpoint_every=5000, eval_every=5000, eval_batches=10,
                     summary_every=5000)


def preset(name: str, **overrides) -> GradTTSConfig:
  """Returns the preset called `name` with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown Grad-TTS preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name].replace(**overrides)


def ljspeech(**overrides) -> GradTTSConfig:
  """The reference LJSpeech model (`Grad-TTS/params.py`, pe_scale 1000): 14.84M parameters."""
  return preset("ljspeech", **overrides)


def libritts(**overrides) -> GradTTSConfig:
  """The reference multi-speaker Libri-TTS model (247 speakers, 64-dim speaker embedding)."""
  return preset("libritts", **overrides)


def tiny(**overrides) -> GradTTSConfig:
  """A few-thousand-parameter model for tests and CPU smoke training (65 ids, 80 mels)."""
  return preset("tiny", **overrides)

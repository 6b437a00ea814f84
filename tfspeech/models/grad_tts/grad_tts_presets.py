"""Named Grad-TTS configurations."""

from tfspeech.models.grad_tts.grad_tts_config import GradTTSConfig

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


def ljspeech(**overrides) -> GradTTSConfig:
  """The reference LJSpeech model (`Grad-TTS/params.py`, pe_scale 1000): 14.84M parameters."""
  config = GradTTSConfig(
      n_vocab=REFERENCE_VOCAB_WITH_BLANK, n_spks=1, spk_emb_dim=64,
      n_enc_channels=192, filter_channels=768, filter_channels_dp=256, n_heads=2,
      n_enc_layers=6, enc_kernel=3, enc_dropout=0.1, window_size=4,
      n_feats=80, dec_dim=64, dim_mults=(1, 2, 4), groups=8, attn_heads=4, attn_dim_head=32,
      beta_min=0.05, beta_max=20.0, pe_scale=1000.0,
      out_size=fix_len_compatibility(2 * 22050 // 256))
  return config.replace(**overrides)


def libritts(**overrides) -> GradTTSConfig:
  """The reference multi-speaker Libri-TTS model (247 speakers, 64-dim speaker embedding)."""
  return ljspeech(n_spks=247, **overrides)


def tiny(**overrides) -> GradTTSConfig:
  """A few-thousand-parameter model for tests and CPU smoke training (same vocab and mels)."""
  config = GradTTSConfig(
      n_vocab=REFERENCE_VOCAB_WITH_BLANK, n_spks=1, spk_emb_dim=8,
      n_enc_channels=16, filter_channels=32, filter_channels_dp=16, n_heads=2,
      n_enc_layers=2, enc_kernel=3, enc_dropout=0.1, window_size=4,
      prenet_kernel=5, prenet_layers=3, prenet_dropout=0.5,
      n_feats=80, dec_dim=8, dim_mults=(1, 2, 4), groups=4, attn_heads=2, attn_dim_head=8,
      beta_min=0.05, beta_max=20.0, pe_scale=1000.0, out_size=32)
  return config.replace(**overrides)


PRESETS = {"ljspeech": ljspeech, "libritts": libritts, "tiny": tiny}


def preset(name: str, **overrides) -> GradTTSConfig:
  """Returns the preset called `name` with `overrides` applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown Grad-TTS preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name](**overrides)

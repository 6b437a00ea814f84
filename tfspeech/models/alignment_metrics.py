"""Numbers that say how well a text-to-mel alignment has formed: logged, never trained on.

Model-neutral: any `[batch, frames, tokens]` attention (Tacotron 2's decoder attention,
FastPitch's alignment encoder) with each item's valid frame and token counts.
- `diagonal_band_mass` / `alignment_diagonality`: the share of attention mass near the
  length-scaled diagonal (about 1 for a text read at an even pace, about `band` for attention
  stuck on the first tokens or spread over the text).
- `path_probability`: the soft attention's probability on a hard path (e.g. FastPitch's MAS
  path); its mean over valid frames is 1/tokens for a uniform attention and 1 for a hard one.
"""

import tensorflow as tf

# Half-width of the diagonal band of `diagonal_band_mass`, as a fraction of the text (what
# Tacotron 2 and FastPitch log as `alignment_diagonality`).
DIAGONAL_BAND = 0.1


def relative_positions(mel_lengths, text_lengths, frames, tokens):
  """Frame and token centres as fractions of each item's lengths: `[batch, frames, 1]` and
  `[batch, 1, tokens]` (lengths of 0 count as 1, so empty items stay finite)."""
  mel_lengths = tf.cast(tf.maximum(mel_lengths, 1), tf.float32)
  text_lengths = tf.cast(tf.maximum(text_lengths, 1), tf.float32)
  t = (tf.cast(tf.range(frames), tf.float32)[None, :] + 0.5) / mel_lengths[:, None]
  n = (tf.cast(tf.range(tokens), tf.float32)[None, :] + 0.5) / text_lengths[:, None]
  return t[:, :, None], n[:, None, :]


def diagonal_band_mass(alignments, mel_lengths, text_lengths, band=DIAGONAL_BAND):
  """Attention mass of each frame within `band` of the length-scaled diagonal.

  Frame t of T attends to token n of N "on the diagonal" when `|n/N - t/T| <= band` (centres
  of frames and tokens, so a 1-token text is all on it). A learnt alignment, which reads the
  text at a roughly even pace, has most of its mass there; attention stuck on the first
  tokens has about `band` of it (only the first frames are near those tokens).

  Args:
    alignments: `[batch, frames, tokens]` attention weights.
    mel_lengths, text_lengths: `[batch]` valid frames and tokens.
    band: half-width of the band as a fraction of the text.

  Returns:
    `[batch, frames]` float32 in [0, 1], 0 at padded frames.
  """
  frames, tokens = tf.shape(alignments)[1], tf.shape(alignments)[2]
  t, n = relative_positions(mel_lengths, text_lengths, frames, tokens)
  inside = tf.cast(tf.abs(n - t) <= band, tf.float32)
  frame_mask = tf.sequence_mask(mel_lengths, frames, tf.float32)
  return tf.reduce_sum(tf.cast(alignments, tf.float32) * inside, axis=2) * frame_mask


def alignment_diagonality(alignments, mel_lengths, text_lengths, band=DIAGONAL_BAND):
  """Per item: the mean over its valid frames of `diagonal_band_mass` → `[batch]` in [0, 1].

  About 1 for a diagonal alignment, about `band` for attention stuck on the first tokens.
  """
  mass = diagonal_band_mass(alignments, mel_lengths, text_lengths, band)
  return tf.reduce_sum(mass, axis=1) / tf.cast(tf.maximum(mel_lengths, 1), tf.float32)


def path_probability(soft, hard, mel_lengths):
  """Each frame's soft-attention probability on the token a hard path gives it.

  The mean over valid frames measures how sharp the soft attention is around that path: 1
  when it is already the hard one, 1/N when it is uniform over N tokens (whatever the path).

  Args:
    soft: `[batch, frames, tokens]` attention probabilities (valid rows sum to 1).
    hard: `[batch, frames, tokens]` 0/1 path, one token per valid frame (e.g. MAS).
    mel_lengths: `[batch]` valid frames.

  Returns:
    `[batch, frames]` float32 in [0, 1], 0 at padded frames.
  """
  frame_mask = tf.sequence_mask(mel_lengths, tf.shape(soft)[1], tf.float32)
  return tf.reduce_sum(tf.cast(soft, tf.float32) * tf.cast(hard, tf.float32),
                       axis=2) * frame_mask

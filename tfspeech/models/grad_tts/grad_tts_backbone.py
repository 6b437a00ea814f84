"""Grad-TTS (Popov et al., ICML 2021): text encoder + MAS alignment + score-based mel decoder.

Layouts (channels-last; the reference's torch layouts in brackets):
  text_ids `[batch, tokens]` int, text_lengths `[batch]` int,
  mel `[batch, frames, n_feats]` ([batch, n_feats, frames]), mel_lengths `[batch]` int,
  alignment `[batch, tokens, frames]` 0/1 (same as the reference's attn without its
  singleton channel), speaker `[batch]` int ids (only when `n_spks > 1`).
"""

import collections
import math

import keras
import tensorflow as tf

from tfspeech.models.grad_tts.diffusion import Diffusion
from tfspeech.models.grad_tts.text_encoder import TextEncoder
from tfspeech.ops import alignment
from tfspeech.ops.sequence import sequence_mask
from tfspeech.training import precision

SynthesisOutput = collections.namedtuple(
    "SynthesisOutput", ["mel_encoder", "mel_decoded", "mel_lengths", "alignment"])
SynthesisOutput.__doc__ = """Result of `GradTTS.synthesize`.

Attributes:
  mel_encoder: `[batch, frames, n_feats]` aligned encoder output mu (the prior mean).
  mel_decoded: `[batch, frames, n_feats]` decoder output, 0 past each item's length.
  mel_lengths: `[batch]` int32 frames of each item; `frames = max(mel_lengths)`.
  alignment: `[batch, tokens, frames]` float 0/1 monotonic path used to expand mu.
"""


class GradTTS(keras.Model):
  """Grad-TTS acoustic model; weights are created on construction.

  Args:
    config: a `GradTTSConfig` (see `grad_tts_presets`).
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    # Under a bfloat16 (or float16) policy only the U-Net computes in it: the encoder, its
    # durations and MAS stay float32, as does the reverse diffusion's state (see Diffusion).
    with precision.dtype_policy("float32"):
      if config.n_spks > 1:
        self.speaker_embedding = keras.layers.Embedding(config.n_spks, config.spk_emb_dim,
                                                        name="speaker_embedding")
      self.encoder = TextEncoder(config, name="encoder")
    self.decoder = Diffusion(config, name="decoder")
    self.build()

  def build(self, input_shape=None):
    if self.config.n_spks > 1:
      self.speaker_embedding.build((None,))
    self.encoder.build(None)
    self.decoder.build(None)
    self.built = True

  def compatible_frames(self, frames):
    """Rounds frame counts up to a multiple the U-Net accepts (reference fix_len_compatibility)."""
    multiple = self.config.frames_multiple
    return (frames + multiple - 1) // multiple * multiple

  def _check_inputs(self, text_ids, text_lengths, speaker):
    text_ids = tf.convert_to_tensor(text_ids)
    text_lengths = tf.convert_to_tensor(text_lengths)
    if text_ids.shape.rank != 2 or not text_ids.dtype.is_integer:
      raise ValueError(f"GradTTS: text_ids must be an int [batch, tokens] tensor, got "
                       f"{text_ids.dtype.name} of shape {text_ids.shape}.")
    if text_lengths.shape.rank != 1 or not text_lengths.dtype.is_integer:
      raise ValueError(f"GradTTS: text_lengths must be an int [batch] tensor, got "
                       f"{text_lengths.dtype.name} of shape {text_lengths.shape}.")
    if self.config.n_spks > 1 and speaker is None:
      raise ValueError(f"GradTTS: this model has {self.config.n_spks} speakers; pass "
                       "speaker=[batch] int ids.")
    if self.config.n_spks == 1 and speaker is not None:
      raise ValueError("GradTTS: this model is single-speaker (n_spks=1); pass speaker=None.")
    return tf.cast(text_ids, tf.int32), tf.cast(text_lengths, tf.int32)

  def encode(self, text_ids, text_lengths, speaker=None, training=False):
    """Runs the text encoder.

    Returns:
      (mu `[batch, tokens, n_feats]`, log_durations `[batch, tokens]`,
       text_mask `[batch, tokens]` float, speaker_embedding `[batch, spk_emb_dim]` or None).
    """
    text_ids, text_lengths = self._check_inputs(text_ids, text_lengths, speaker)
    text_mask = sequence_mask(text_lengths, tf.shape(text_ids)[1])
    speaker_embedding = None
    if self.config.n_spks > 1:
      speaker_embedding = self.speaker_embedding(tf.cast(speaker, tf.int32))
    mu, log_durations = self.encoder(text_ids, text_mask[:, :, None], speaker_embedding,
                                     training=training)
    return mu, log_durations, text_mask, speaker_embedding

  def synthesize(self, text_ids, text_lengths, n_timesteps=10, temperature=1.0,
                 length_scale=1.0, stoc=False, speaker=None, noise=None, seed=None,
                 unroll=False):
    """Generates mels from token ids (the reference's `GradTTS.forward`).

    Durations are `ceil(exp(log_durations)) * length_scale`; the decoder starts from
    `mu + noise / temperature` and runs `n_timesteps` Euler steps (see
    `Diffusion.reverse_diffusion` for the loop and `unroll`).

    Args:
      text_ids: `[batch, tokens]` int ids.
      text_lengths: `[batch]` int lengths.
      n_timesteps: reverse-diffusion steps (Python int or scalar int tensor).
      temperature: divides the terminal noise (higher = less noise).
      length_scale: multiplies durations (> 1 slows speech down).
      stoc: use the stochastic reverse SDE instead of the probability-flow ODE.
      speaker: `[batch]` int speaker ids when `n_spks > 1`.
      noise: optional `[batch, >= frames_needed, n_feats]` standard normal terminal noise;
        only its first `compatible_frames(max(mel_lengths))` frames are used, so a fixed
        noise tensor reproduces a text's mel whatever else is in the batch.
      seed: optional `[2]` int seed for stateless noise (used when `noise` is None, and for
        the stochastic term when `stoc`).
      unroll: see `Diffusion.reverse_diffusion`.

    Returns:
      A `SynthesisOutput(mel_encoder, mel_decoded, mel_lengths, alignment)`.
    """
    mu_x, log_durations, text_mask, speaker_embedding = self.encode(
        text_ids, text_lengths, speaker, training=False)
    durations = tf.math.ceil(tf.exp(log_durations) * text_mask) * length_scale
    # The reference truncates the float total (`.long()`) and keeps at least one frame.
    mel_lengths = tf.maximum(tf.cast(tf.reduce_sum(durations, axis=1), tf.int32), 1)
    max_length = tf.reduce_max(mel_lengths)
    frames = self.compatible_frames(max_length)
    mel_mask = sequence_mask(mel_lengths, frames)
    # The reference's generate_path gives frame j to token i when cum[i-1] <= j < cum[i] for
    # float cumulative durations cum; for integer j that is the integer-duration path of
    # ceil(cum), so fractional length_scale values (the reference uses 0.91) expand alike.
    ends = tf.math.ceil(tf.cumsum(durations, axis=1))
    frame_counts = tf.cast(ends - tf.pad(ends, [[0, 0], [1, 0]])[:, :-1], tf.int32)
    path = alignment.durations_to_path(frame_counts, frames)
    path = path * text_mask[:, :, None] * mel_mask[:, None, :]
    mu_y = tf.linalg.matmul(path, mu_x, transpose_a=True)  # [batch, frames, n_feats]

    shape = tf.shape(mu_y)
    if noise is not None:
      noise = tf.convert_to_tensor(noise, tf.float32)
      if noise.shape.rank != 3:
        raise ValueError(f"GradTTS.synthesize: noise must be [batch, frames, n_feats], got "
                         f"shape {noise.shape}.")
      check = tf.debugging.assert_greater_equal(
          tf.shape(noise)[1], frames,
          message="GradTTS.synthesize: noise has fewer frames than the synthesized mel "
                  "needs (rounded up to the U-Net multiple); pass a longer noise tensor")
      with tf.control_dependencies([check]):
        noise = noise[:, :frames]
    elif seed is not None:
      noise = tf.random.stateless_normal(shape, tf.convert_to_tensor(seed, tf.int32))
    else:
      noise = tf.random.normal(shape)
    z = mu_y + noise / temperature
    decoded = self.decoder.reverse_diffusion(z, mel_mask, mu_y, n_timesteps, stoc,
                                             speaker_embedding, seed=seed, unroll=unroll)
    return SynthesisOutput(mel_encoder=mu_y[:, :max_length],
                           mel_decoded=decoded[:, :max_length],
                           mel_lengths=mel_lengths,
                           alignment=path[:, :, :max_length])

  def call(self, inputs, training=False):
    """`synthesize` with default settings; inputs = (text_ids, text_lengths[, speaker])."""
    return self.synthesize(*inputs)

  def align(self, mu_x, text_lengths, mel, mel_lengths):
    """The most likely monotonic token-to-frame path under the encoder's prior (MAS).

    Args:
      mu_x: `[batch, tokens, n_feats]` encoder means (from `encode`).
      text_lengths: `[batch]` int token counts.
      mel: `[batch, frames, n_feats]` log-mels.
      mel_lengths: `[batch]` int frame counts.

    Returns:
      `[batch, tokens, frames]` float32 0/1 path; no gradient flows through it.
    """
    log_prior = tf.stop_gradient(self._log_prior(mu_x, mel))
    path = alignment.maximum_path(log_prior, tf.cast(text_lengths, tf.int32),
                                  tf.cast(mel_lengths, tf.int32))
    return tf.stop_gradient(tf.cast(path, tf.float32))

  def _log_prior(self, mu_x, mel):
    """log N(mel_j; mu_i, I) for every (token i, frame j): `[batch, tokens, frames]`."""
    const = -0.5 * math.log(2.0 * math.pi) * self.config.n_feats
    mel_square = -0.5 * tf.reduce_sum(tf.square(mel), axis=-1)[:, None, :]
    mu_square = -0.5 * tf.reduce_sum(tf.square(mu_x), axis=-1)[:, :, None]
    cross = tf.linalg.matmul(mu_x, mel, transpose_b=True)
    return mel_square + cross + mu_square + const

  def _prior_loss(self, mel, mu_y, mel_mask):
    """Mean over masked frames and bins of -log N(mel; mu_y, I) (the reference's prior_loss)."""
    prior = 0.5 * (tf.square(mel - mu_y) + math.log(2.0 * math.pi)) * mel_mask[:, :, None]
    return tf.reduce_sum(prior) / (tf.reduce_sum(mel_mask) * float(self.config.n_feats))

  def _random_segments(self, mel, path, mel_lengths, out_size, seed=None):
    """Cuts `out_size` frames at a random offset per item, as the reference's training step.

    The offset is uniform over `range(max(mel_length - out_size, 0))` (0 when that is empty),
    the reference's `random.choice`; items shorter than `out_size` are zero-padded.

    Returns:
      (mel `[batch, out_size, n_feats]`, path `[batch, tokens, out_size]`, mask `[batch, out_size]`).
    """
    max_offset = tf.maximum(mel_lengths - out_size, 0)
    if seed is None:
      uniform = tf.random.uniform(tf.shape(mel_lengths))
    else:
      uniform = tf.random.stateless_uniform(tf.shape(mel_lengths), seed + [0, 2])
    offset = tf.minimum(tf.cast(uniform * tf.cast(max_offset, tf.float32), tf.int32),
                        tf.maximum(max_offset - 1, 0))
    indices = offset[:, None] + tf.range(out_size)[None, :]
    mel = tf.pad(mel, [[0, 0], [0, out_size], [0, 0]])
    path = tf.pad(path, [[0, 0], [0, 0], [0, out_size]])
    mask = sequence_mask(tf.minimum(mel_lengths, out_size), out_size)
    mel_cut = tf.gather(mel, indices, axis=1, batch_dims=1) * mask[:, :, None]
    path_cut = tf.gather(path, indices, axis=2, batch_dims=1) * mask[:, None, :]
    return mel_cut, path_cut, mask

  def compute_losses(self, text_ids, text_lengths, mel, mel_lengths, speaker=None,
                     out_size="config", training=True, seed=None):
    """The three Grad-TTS training losses (the reference's `compute_loss`).

    Monotonic alignment search (no gradient) aligns tokens to frames under the encoder's
    Gaussian prior; the duration predictor fits the log of the resulting durations; the
    decoder and the prior are trained on a random `out_size`-frame segment (the prior on
    every frame when `config.prior_on_segment` is False).

    Args:
      text_ids: `[batch, tokens]` int ids.
      text_lengths: `[batch]` int lengths.
      mel: `[batch, frames, n_feats]` target log-mels (any frame count).
      mel_lengths: `[batch]` int lengths.
      speaker: `[batch]` int speaker ids when `n_spks > 1`.
      out_size: segment frames; "config" uses `config.out_size`, None the whole utterance.
      training: enables dropout.
      seed: optional `[2]` int seed for the segment offsets, diffusion times and noise.

    Returns:
      dict with scalar `duration_loss`, `prior_loss`, `diffusion_loss`.
    """
    c = self.config
    if seed is not None:
      seed = tf.convert_to_tensor(seed, tf.int32)
    if out_size == "config":
      out_size = c.out_size
    mel = tf.convert_to_tensor(mel, tf.float32)
    if mel.shape.rank != 3 or mel.shape[-1] != c.n_feats:
      raise ValueError(f"GradTTS.compute_losses: mel must be [batch, frames, {c.n_feats}], "
                       f"got shape {mel.shape}.")
    mel_lengths = tf.cast(mel_lengths, tf.int32)
    mu_x, log_durations, text_mask, speaker_embedding = self.encode(
        text_ids, text_lengths, speaker, training=training)
    text_lengths = tf.cast(text_lengths, tf.int32)

    path = self.align(mu_x, text_lengths, mel, mel_lengths)
    target_log_durations = tf.math.log(1e-8 + tf.reduce_sum(path, axis=-1)) * text_mask
    duration_loss = tf.reduce_sum(tf.square(log_durations - target_log_durations)) / tf.cast(
        tf.reduce_sum(text_lengths), tf.float32)

    prior_loss = None
    if out_size is not None and not c.prior_on_segment:
      # The prior on every frame (config.prior_on_segment), before the decoder's segment cut.
      full_mask = sequence_mask(mel_lengths, tf.shape(mel)[1])
      prior_loss = self._prior_loss(mel, tf.linalg.matmul(path, mu_x, transpose_a=True),
                                    full_mask)
    if out_size is not None:
      mel, path, mel_mask = self._random_segments(mel, path, mel_lengths, out_size, seed)
    else:
      frames = self.compatible_frames(tf.shape(mel)[1])
      pad = frames - tf.shape(mel)[1]
      mel = tf.pad(mel, [[0, 0], [0, pad], [0, 0]])
      path = tf.pad(path, [[0, 0], [0, 0], [0, pad]])
      mel_mask = sequence_mask(mel_lengths, frames)
    mu_y = tf.linalg.matmul(path, mu_x, transpose_a=True)

    diffusion_loss, _ = self.decoder.compute_loss(mel, mel_mask, mu_y, speaker_embedding,
                                                  seed=seed)
    if prior_loss is None:
      prior_loss = self._prior_loss(mel, mu_y, mel_mask)
    return {"duration_loss": duration_loss, "prior_loss": prior_loss,
            "diffusion_loss": diffusion_loss}

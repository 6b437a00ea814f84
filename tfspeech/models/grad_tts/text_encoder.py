"""Grad-TTS text encoder (glow-tts style): prenet, relative-position transformer, mu, durations.

Layouts are channels-last. For a batch of `batch` texts padded to `tokens` ids:
  token features `[batch, tokens, channels]`, token mask `[batch, tokens, 1]` (1 = real token),
  encoder output mu `[batch, tokens, n_feats]` (the reference's `[batch, n_feats, tokens]`),
  log-durations `[batch, tokens]` (the reference's `[batch, 1, tokens]`).
Every layer multiplies by the mask before mixing positions, so padding never reaches a real
token: a text's outputs do not depend on how far the batch is padded.

Porting reference weights: Conv1d `[out, in, k]` -> Keras Conv1D `[k, in, out]`
(`w.permute(2, 1, 0)`); 1x1 Conv1d (attention q/k/v/o, proj_m) -> Dense `[in, out]`;
`emb_rel_k`/`emb_rel_v` `[1, 2 * window + 1, head_channels]` -> drop the leading axis.
"""

import math

import keras
import tensorflow as tf

# The reference fills masked attention scores with this finite value (softmax gives them
# exactly 0 in float32 while a fully padded query row stays finite).
_MASKED_SCORE = -1e4


def _layer_norm():
  # The reference LayerNorm normalises over channels with eps 1e-4 (not Keras' 1e-3).
  return keras.layers.LayerNormalization(axis=-1, epsilon=1e-4)


class ConvReluNorm(keras.layers.Layer):
  """Prenet: `n_layers` x (Conv1D -> LayerNorm -> ReLU -> dropout), zero-init residual projection.

  Maps `[batch, tokens, channels]` to the same shape; the output is `input + proj(h)`, and
  `proj` starts at zero so the prenet starts as the identity (reference init).
  """

  def __init__(self, channels, kernel_size, n_layers, dropout, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.convs = [keras.layers.Conv1D(channels, kernel_size, padding="same", name=f"conv_{i}")
                  for i in range(n_layers)]
    self.norms = [_layer_norm() for _ in range(n_layers)]
    self.dropout = keras.layers.Dropout(dropout)
    self.proj = keras.layers.Conv1D(channels, 1, kernel_initializer="zeros", name="proj")

  def build(self, input_shape):
    shape = (None, None, self.channels)
    for conv, norm in zip(self.convs, self.norms):
      conv.build(shape)
      norm.build(shape)
    self.proj.build(shape)

  def call(self, x, mask, training=False):
    """x: `[batch, tokens, channels]`; mask: `[batch, tokens, 1]`. Returns x's shape, masked."""
    h = x
    for conv, norm in zip(self.convs, self.norms):
      h = self.dropout(tf.nn.relu(norm(conv(h * mask))), training=training)
    return (x + self.proj(h)) * mask


class DurationPredictor(keras.layers.Layer):
  """Two (Conv1D -> ReLU -> LayerNorm -> dropout) blocks and a 1x1 projection to log-duration.

  Maps `[batch, tokens, in_channels]` to `[batch, tokens, 1]`, zero on padded tokens.
  """

  def __init__(self, in_channels, filter_channels, kernel_size, dropout, **kwargs):
    super().__init__(**kwargs)
    self.in_channels = in_channels
    self.filter_channels = filter_channels
    self.conv_1 = keras.layers.Conv1D(filter_channels, kernel_size, padding="same", name="conv_1")
    self.norm_1 = _layer_norm()
    self.conv_2 = keras.layers.Conv1D(filter_channels, kernel_size, padding="same", name="conv_2")
    self.norm_2 = _layer_norm()
    self.proj = keras.layers.Conv1D(1, 1, name="proj")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    hidden = (None, None, self.filter_channels)
    self.conv_1.build((None, None, self.in_channels))
    self.norm_1.build(hidden)
    self.conv_2.build(hidden)
    self.norm_2.build(hidden)
    self.proj.build(hidden)

  def call(self, x, mask, training=False):
    x = self.dropout(self.norm_1(tf.nn.relu(self.conv_1(x * mask))), training=training)
    x = self.dropout(self.norm_2(tf.nn.relu(self.conv_2(x * mask))), training=training)
    return self.proj(x * mask) * mask


def relative_position_one_hot(length, window_size):
  """One-hot of each (query, key) pair's clipped offset, built for any length on the fly.

  Args:
    length: scalar int tensor, the number of positions.
    window_size: the largest offset |key - query| that has an embedding.

  Returns:
    `[length, length, 2 * window_size + 1]` float32; entry `[i, j, r]` is 1 where
    `j - i + window_size == r`, and the row is all zero where `|j - i| > window_size`.
  """
  positions = tf.range(length)
  offsets = positions[None, :] - positions[:, None] + window_size
  # tf.one_hot maps indices outside [0, depth) to all-zero rows: exactly "no embedding". An
  # int32 one-hot then a cast: the TFJS wasm backend (4.22) fills float one-hots with int bits.
  return tf.cast(tf.one_hot(offsets, 2 * window_size + 1, dtype=tf.int32), tf.float32)


def _matmul_per_query(x, one_hot):
  """`[batch, heads, i, k] x [i, k, n] -> [batch, heads, i, n]`, one matrix per query i.

  Written as transposes and one batched matmul instead of `tf.einsum`, so exported graphs
  need only kernels every runtime has (the TFJS wasm backend has no Einsum).
  """
  batch, heads, length = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
  per_query = tf.reshape(tf.transpose(x, [2, 0, 1, 3]), [length, batch * heads, -1])
  out = tf.linalg.matmul(per_query, one_hot)  # [i, batch * heads, n]
  return tf.transpose(tf.reshape(out, [length, batch, heads, -1]), [1, 2, 0, 3])


class RelativeMultiHeadAttention(keras.layers.Layer):
  """Self-attention with learned relative-position keys and values (Shaw et al., 2018).

  One key table and one value table of `2 * window_size + 1` offsets shared by all heads,
  as the reference (`heads_share=True`). Instead of the reference's pad-and-reshape tables,
  the offsets are matched through `relative_position_one_hot`, so there is no length cap.
  Maps `[batch, tokens, channels]` to the same shape.
  """

  def __init__(self, channels, n_heads, window_size, dropout, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.n_heads = n_heads
    self.head_channels = channels // n_heads
    self.window_size = window_size
    self.query = keras.layers.Dense(channels, name="query")
    self.key = keras.layers.Dense(channels, name="key")
    self.value = keras.layers.Dense(channels, name="value")
    self.output_proj = keras.layers.Dense(channels, name="output")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    shape = (None, None, self.channels)
    for layer in (self.query, self.key, self.value, self.output_proj):
      layer.build(shape)
    init = keras.initializers.RandomNormal(stddev=self.head_channels ** -0.5)
    table = (2 * self.window_size + 1, self.head_channels)
    self.relative_keys = self.add_weight(shape=table, initializer=init, name="relative_keys")
    self.relative_values = self.add_weight(shape=table, initializer=init,
                                           name="relative_values")

  def _split_heads(self, x):
    # [batch, tokens, heads * head_channels] -> [batch, heads, tokens, head_channels]; channel
    # c belongs to head c // head_channels, as the reference's view(b, heads, k, t).
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    x = tf.reshape(x, [batch, length, self.n_heads, self.head_channels])
    return tf.transpose(x, [0, 2, 1, 3])

  def call(self, x, mask, training=False):
    """x: `[batch, tokens, channels]`; mask: `[batch, tokens, 1]`. Returns `[batch, tokens, channels]`."""
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    query = self._split_heads(self.query(x))
    key = self._split_heads(self.key(x))
    value = self._split_heads(self.value(x))
    scale = 1.0 / math.sqrt(self.head_channels)
    one_hot = relative_position_one_hot(length, self.window_size)  # [tokens, tokens, offsets]

    scores = tf.linalg.matmul(query, key, transpose_b=True)  # [batch, heads, i, j]
    query_offsets = tf.linalg.matmul(query, self.relative_keys, transpose_b=True)  # [b, h, i, r]
    scores = (scores + _matmul_per_query(query_offsets, tf.transpose(one_hot, [0, 2, 1]))
              ) * scale
    pair_mask = mask[:, None, :, :] * tf.transpose(mask, [0, 2, 1])[:, None, :, :]
    scores = tf.where(pair_mask > 0, scores, _MASKED_SCORE)
    weights = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)

    out = tf.linalg.matmul(weights, value)  # [batch, heads, i, head_channels]
    offset_weights = _matmul_per_query(weights, one_hot)  # [batch, heads, i, offsets]
    out = out + tf.linalg.matmul(offset_weights, self.relative_values)
    out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch, length, self.channels])
    return self.output_proj(out)


class FeedForward(keras.layers.Layer):
  """Conv1D -> ReLU -> dropout -> Conv1D, masked; `[batch, tokens, channels]` in and out."""

  def __init__(self, channels, filter_channels, kernel_size, dropout, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.filter_channels = filter_channels
    self.conv_1 = keras.layers.Conv1D(filter_channels, kernel_size, padding="same", name="conv_1")
    self.conv_2 = keras.layers.Conv1D(channels, kernel_size, padding="same", name="conv_2")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    self.conv_1.build((None, None, self.channels))
    self.conv_2.build((None, None, self.filter_channels))

  def call(self, x, mask, training=False):
    x = self.dropout(tf.nn.relu(self.conv_1(x * mask)), training=training)
    return self.conv_2(x * mask) * mask


class TransformerEncoderLayer(keras.layers.Layer):
  """Post-norm transformer layer: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

  def __init__(self, channels, filter_channels, n_heads, kernel_size, dropout, window_size,
               **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.attention = RelativeMultiHeadAttention(channels, n_heads, window_size, dropout,
                                                name="attention")
    self.norm_1 = _layer_norm()
    self.ffn = FeedForward(channels, filter_channels, kernel_size, dropout, name="ffn")
    self.norm_2 = _layer_norm()
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    shape = (None, None, self.channels)
    for layer in (self.attention, self.norm_1, self.ffn, self.norm_2):
      layer.build(shape)

  def call(self, x, mask, training=False):
    x = x * mask
    y = self.dropout(self.attention(x, mask, training=training), training=training)
    x = self.norm_1(x + y)
    y = self.dropout(self.ffn(x, mask, training=training), training=training)
    return self.norm_2(x + y)


class TextEncoder(keras.layers.Layer):
  """Token ids -> (mu `[batch, tokens, n_feats]`, log-durations `[batch, tokens]`).

  Embedding (scaled by sqrt(channels)) -> ConvReluNorm prenet -> [speaker concat] ->
  relative-position transformer -> 1x1 mu projection, and a duration predictor on the
  transformer output with its gradient stopped (the reference's `torch.detach`).
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    c = config
    self.embedding = keras.layers.Embedding(
        c.n_vocab, c.n_enc_channels, name="embedding",
        embeddings_initializer=keras.initializers.RandomNormal(stddev=c.n_enc_channels ** -0.5))
    self.prenet = ConvReluNorm(c.n_enc_channels, c.prenet_kernel, c.prenet_layers,
                               c.prenet_dropout, name="prenet")
    self.transformer_layers = [TransformerEncoderLayer(c.encoder_channels, c.filter_channels, c.n_heads,
                                            c.enc_kernel, c.enc_dropout, c.window_size,
                                            name=f"layer_{i}")
                    for i in range(c.n_enc_layers)]
    self.proj_mu = keras.layers.Dense(c.n_feats, name="proj_mu")
    self.duration_predictor = DurationPredictor(c.encoder_channels, c.filter_channels_dp,
                                                c.enc_kernel, c.enc_dropout,
                                                name="duration_predictor")

  def build(self, input_shape=None):
    c = self.config
    self.embedding.build((None, None))
    self.prenet.build((None, None, c.n_enc_channels))
    shape = (None, None, c.encoder_channels)
    for layer in self.transformer_layers:
      layer.build(shape)
    self.proj_mu.build(shape)
    self.duration_predictor.build(shape)

  def call(self, text_ids, text_mask, speaker_embedding=None, training=False):
    """Encodes a padded batch of token ids.

    Args:
      text_ids: `[batch, tokens]` int token ids (padding ids are ignored via the mask).
      text_mask: `[batch, tokens, 1]` float, 1 on real tokens.
      speaker_embedding: `[batch, spk_emb_dim]` when `n_spks > 1`, else None.
      training: enables dropout.

    Returns:
      (mu `[batch, tokens, n_feats]`, log_durations `[batch, tokens]`), both 0 on padding.
    """
    c = self.config
    x = self.embedding(text_ids) * math.sqrt(c.n_enc_channels)
    x = self.prenet(x, text_mask, training=training)
    if c.n_spks > 1:
      tiled = tf.tile(speaker_embedding[:, None, :], [1, tf.shape(x)[1], 1])
      x = tf.concat([x, tiled], axis=-1)
    for layer in self.transformer_layers:
      x = layer(x, text_mask, training=training)
    x = x * text_mask
    mu = self.proj_mu(x) * text_mask
    log_durations = self.duration_predictor(tf.stop_gradient(x), text_mask, training=training)
    return mu, log_durations[..., 0]

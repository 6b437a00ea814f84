"""FastPitch layers: the FFT transformer, the per-token predictors and the alignment encoder.

Layouts are channels-last (the reference's torch layouts in brackets):
  token or frame features `[batch, time, channels]` ([batch, channels, time] around convs),
  masks `[batch, time, 1]` float (1 = real step), soft and hard alignments
  `[batch, frames, tokens]` ([batch, 1, frames, tokens]).

Porting reference weights: Conv1d `[out, in, k]` -> Keras Conv1D `[k, in, out]`
(`w.permute(2, 1, 0)`); Linear `[out, in]` -> Dense `[in, out]` (`w.T`).

Inference code uses `tf.expand_dims`, never `x[:, None]`: TFLite builtins have no
new-axis strided slice on dynamic shapes.

Every layer multiplies by the mask before a convolution mixes neighbouring steps, so padding
never reaches a real step: an item's outputs do not depend on how far its batch is padded.
The reference's TemporalPredictor does not mask between its convolutions (a padded step
holds LayerNorm(ReLU(bias)) there); masking them too changes no parameter.
"""

import collections.abc
import math

import keras
import tensorflow as tf

from tfspeech.ops import winograd as winograd_ops

# Masked attention scores: finite, so a row with no valid key stays finite (softmax of equal
# values) instead of NaN; exp(-1e9 - max) is exactly 0 in float32 next to any real score.
_MASKED_SCORE = -1e9


def _masked_score(dtype):
  """`_MASKED_SCORE` in `dtype`, or its lowest finite value where -1e9 overflows (float16)."""
  return max(_MASKED_SCORE, dtype.min)


# torch.nn.LayerNorm's default epsilon (Keras' is 1e-3).
_LAYER_NORM_EPSILON = 1e-5


def _layer_norm(name=None):
  return keras.layers.LayerNormalization(axis=-1, epsilon=_LAYER_NORM_EPSILON, name=name)


def positional_encoding(length, channels, dtype=tf.float32):
  """The reference `PositionalEmbedding`: `[length, channels]` = [sin(p w), cos(p w)].

  The sines fill the first half of the channels and the cosines the second (not
  interleaved), with w_i = 1 / 10000^(2i / channels).
  """
  inv_freq = 1.0 / (10000.0 ** (tf.range(0.0, channels, 2.0) / float(channels)))
  positions = tf.cast(tf.range(length), tf.float32)
  angles = tf.expand_dims(positions, 1) * tf.expand_dims(inv_freq, 0)
  return tf.cast(tf.concat([tf.sin(angles), tf.cos(angles)], axis=1), dtype)


def _conv1d_same(x, kernel):
  """`tf.nn.conv1d(x, kernel, 1, "SAME")` for odd kernel widths, with hand-written gradients.

  The kernel's gradient is one matmul of the shifted inputs `[batch * time, k * in]` with the
  output gradient `[batch * time, out]`, and the input's the same convolution with the
  flipped, transposed kernel. oneDNN's weight-gradient convolution of these 1-D shapes ran at
  60% of a matmul's rate in bfloat16 (85% in float32) on AVX512-BF16.

  Args:
    x: `[batch, time, in]`.
    kernel: `[k, in, out]` tensor, k odd.
  """
  width, channels_in, channels_out = kernel.shape
  half = (width - 1) // 2

  @tf.custom_gradient
  def conv(x, kernel):
    def grad(upstream):
      flipped = tf.transpose(tf.reverse(kernel, [0]), [0, 2, 1])  # [k, out, in]
      dx = tf.nn.conv1d(upstream, flipped, 1, "SAME")
      length = tf.shape(x)[1]
      padded = tf.pad(x, [[0, 0], [half, half], [0, 0]])
      shifted = tf.concat([padded[:, i:i + length] for i in range(width)], axis=-1)
      dkernel = tf.linalg.matmul(tf.reshape(shifted, [-1, width * channels_in]),
                                 tf.reshape(upstream, [-1, channels_out]), transpose_a=True)
      return dx, tf.reshape(dkernel, [width, channels_in, channels_out])
    return tf.nn.conv1d(x, kernel, 1, "SAME"), grad
  return conv(x, kernel)


class TrainingConv1D(keras.layers.Conv1D):
  """A "same", stride-1 Keras `Conv1D` (odd width) whose training pass uses `_conv1d_same`.

  Inference (`training=False`) is Keras's own convolution, so exported graphs are unchanged;
  the variables are Conv1D's (`kernel` `[k, in, out]`, `bias`), so are checkpoints.
  """

  def __init__(self, filters, kernel_size, **kwargs):
    if kernel_size % 2 != 1:
      raise ValueError(f"TrainingConv1D: kernel_size {kernel_size} must be odd")
    super().__init__(filters, kernel_size, padding="same", **kwargs)

  def call(self, inputs, training=False):
    if not training:
      return super().call(inputs)
    outputs = _conv1d_same(inputs, tf.convert_to_tensor(self.kernel))
    return outputs + self.bias if self.use_bias else outputs


class MultiHeadAttention(keras.layers.Layer):
  """Post-norm self-attention of the reference FFT block: LN(x + drop(o(attn(qkv(x))))).

  One Dense makes queries, keys and values (`3 * n_head * d_head`, with bias); the output
  projection has no bias, as the reference's `o_net`. Padded keys get no weight.
  """

  def __init__(self, n_head, d_model, d_head, dropout, dropatt, **kwargs):
    super().__init__(**kwargs)
    self.n_head, self.d_model, self.d_head = n_head, d_model, d_head
    self.qkv = keras.layers.Dense(3 * n_head * d_head, name="qkv")
    self.output_proj = keras.layers.Dense(d_model, use_bias=False, name="output")
    self.norm = _layer_norm("norm")
    self.dropout = keras.layers.Dropout(dropout)
    self.dropatt = keras.layers.Dropout(dropatt)

  def build(self, input_shape=None):
    self.qkv.build((None, None, self.d_model))
    self.output_proj.build((None, None, self.n_head * self.d_head))
    self.norm.build((None, None, self.d_model))

  def call(self, x, mask, training=False):
    """x: `[batch, time, d_model]`; mask: `[batch, time, 1]`. Returns x's shape."""
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    # Split, not sliced from one [3, batch, heads, time, d_head] tensor: each slice's gradient
    # (StridedSliceGrad) wrote that whole tensor, 123 ms of a batch-16 ljspeech train step.
    query, key, value = (self._heads(t, batch, length)
                         for t in tf.split(self.qkv(x), 3, axis=-1))
    scores = tf.linalg.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(self.d_head))
    key_mask = tf.expand_dims(tf.transpose(mask, [0, 2, 1]), 1)  # [batch, 1, 1, time]
    scores = tf.where(key_mask > 0, scores, _masked_score(scores.dtype))
    weights = self.dropatt(tf.nn.softmax(scores, axis=-1), training=training)
    out = tf.linalg.matmul(weights, value)  # [batch, heads, time, d_head]
    if self.n_head > 1:
      out = tf.transpose(out, [0, 2, 1, 3])
    out = tf.reshape(out, [batch, length, self.n_head * self.d_head])
    out = self.dropout(self.output_proj(out), training=training)
    return self.norm(x + out)

  def _heads(self, x, batch, length):
    """`[batch, time, heads * d_head]` -> `[batch, heads, time, d_head]` (no transpose for
    the reference's one head)."""
    if self.n_head == 1:
      return tf.expand_dims(x, 1)
    return tf.transpose(tf.reshape(x, [batch, length, self.n_head, self.d_head]), [0, 2, 1, 3])


class PositionwiseConvFF(keras.layers.Layer):
  """Post-norm conv feed-forward: LN(x + drop(conv(relu(conv(x))))), 'same' convolutions."""

  def __init__(self, d_model, d_inner, kernel_size, dropout, **kwargs):
    super().__init__(**kwargs)
    self.d_model, self.d_inner = d_model, d_inner
    self.conv_1 = TrainingConv1D(d_inner, kernel_size, name="conv_1")
    self.conv_2 = TrainingConv1D(d_model, kernel_size, name="conv_2")
    self.norm = _layer_norm("norm")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape=None):
    self.conv_1.build((None, None, self.d_model))
    self.conv_2.build((None, None, self.d_inner))
    self.norm.build((None, None, self.d_model))

  def call(self, x, mask, training=False, winograd=False, packing=None):
    """x: `[batch, time, d_model]`; mask: `[batch, time, 1]`, 1 on each item's first steps.

    `winograd`: run the two convolutions by `tfspeech.ops.winograd`'s F(4, 3) (the same values
    to ~5e-6 of the peak in half the multiply-adds) over the batch's real steps packed into
    one sequence (`winograd.pack`: no multiply-adds on padding): True where they are wide
    enough for it to pay (`winograd.pays`), transforming the kernels at every call; a mapping
    from kernel paths to transformed kernels (`winograd_kernels`) for the blocks whose
    kernels it holds. Where `winograd` is set on a CPU but the dtype keeps the convolutions
    (bfloat16), they run over the packed batch too (`packed_tile`). False, and in exported
    graphs: Keras's convolutions over the padded batch. `packing`: the batch's
    `winograd.Packing`, shared by a stack's blocks (computed here without it). Steps past
    each length are not 0 on the packed paths: the caller masks them.
    """
    tile = self.packed_tile(winograd, x.dtype)
    if tile is None:
      h = self._direct(x, mask, training)
      return self.norm(x + self.dropout(h, training=training))
    if packing is None or packing.mask.shape[0] != tile:
      packing = packing_of(mask, tile)
    if tile == 1:
      return self._direct_packed(x, packing, training)
    return self._winograd(x, packing, training, *self._winograd_kernels(winograd))

  def packed_tile(self, winograd, dtype):
    """How the two convolutions run: `winograd.TILE`, by F(4, 3) over the packed batch; 1, as
    direct convolutions over the packed batch (where F(4, 3) would run but the dtype keeps
    the convolutions: bfloat16); None, as direct convolutions over the padded batch."""
    if self._takes_winograd(winograd, dtype):
      return winograd_ops.TILE
    wide = winograd_ops.wide(self.d_model, self.d_inner)
    return 1 if winograd and wide and winograd_ops.preferred() else None

  def pays(self, dtype=tf.float32):
    return winograd_ops.pays(self.conv_1.kernel_size[0], self.d_model, self.d_inner, dtype)

  def winograd_kernels(self):
    """{kernel path: `[6, in, out]` transformed kernel} of the two convolutions."""
    return {conv.kernel.path: winograd_ops.transform_kernel(conv.kernel)
            for conv in (self.conv_1, self.conv_2)}

  def _takes_winograd(self, winograd, dtype):
    """Whether the convolutions run by F(4, 3): float32, and `winograd` maps both kernels
    or is True where that pays."""
    if not winograd or not winograd_ops.supported(self.conv_1.kernel_size[0], dtype):
      return False
    if isinstance(winograd, collections.abc.Mapping):
      return all(conv.kernel.path in winograd for conv in (self.conv_1, self.conv_2))
    return self.pays(dtype)

  def _winograd_kernels(self, winograd):
    """(kernel_1, kernel_2) transformed: from the mapping, or transformed here."""
    if isinstance(winograd, collections.abc.Mapping):
      return tuple(winograd[conv.kernel.path] for conv in (self.conv_1, self.conv_2))
    return tuple(self.winograd_kernels().values())

  def _direct(self, x, mask, training):
    h = tf.nn.relu(self.conv_1(x * mask, training=training)) * mask
    return self.conv_2(h, training=training)

  def _direct_packed(self, x, packing, training):
    x = winograd_ops.pack(x, packing)[0]  # [1, steps, d_model], 0 between the items
    h = tf.nn.relu(self.conv_1(x, training=training)) * tf.cast(packing.mask[0], x.dtype)
    h = self.conv_2(h, training=training)
    out = self.norm(x + self.dropout(h, training=training))
    return winograd_ops.unpack(tf.expand_dims(out, 0), packing)

  def _winograd(self, x, packing, training, kernel_1, kernel_2):
    x = winograd_ops.pack(x, packing)  # [4, 1, tiles, d_model], 0 between the items
    h = tf.nn.relu(winograd_ops.conv1d_phases(x, kernel_1, self.conv_1.bias)) * packing.mask
    h = winograd_ops.conv1d_phases(h, kernel_2, self.conv_2.bias)
    return winograd_ops.unpack(self.norm(x + self.dropout(h, training=training)), packing)


def packing_of(mask, tile=winograd_ops.TILE):
  """The `winograd.Packing` of a batch from its `[batch, time, 1]` mask (1 on each item's
  first steps)."""
  lengths = tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32), [1, 2]), tf.int32)
  return winograd_ops.packing(lengths, tf.shape(mask)[1], tile)


class TransformerLayer(keras.layers.Layer):
  """One FFT block: masked self-attention then the conv feed-forward, output masked."""

  def __init__(self, n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt,
               **kwargs):
    super().__init__(**kwargs)
    self.d_model = d_model
    self.attention = MultiHeadAttention(n_head, d_model, d_head, dropout, dropatt,
                                        name="attention")
    self.feed_forward = PositionwiseConvFF(d_model, d_inner, kernel_size, dropout,
                                           name="feed_forward")

  def build(self, input_shape=None):
    self.attention.build(None)
    self.feed_forward.build(None)

  def call(self, x, mask, training=False, winograd=False, packing=None):
    x = self.attention(x, mask, training=training) * mask
    return self.feed_forward(x, mask, training=training, winograd=winograd,
                             packing=packing) * mask


class FFTransformer(keras.layers.Layer):
  """The reference `FFTransformer`: [token embedding] + positional encoding + FFT blocks.

  Args:
    n_layer, n_head, d_model, d_head, d_inner, kernel_size: shape of the stack.
    dropout, dropatt, dropemb: dropout of block outputs, attention weights, input sum.
    n_embed: with a value, the stack embeds int ids (the encoder); None: it takes features
      (the decoder).
  """

  def __init__(self, n_layer, n_head, d_model, d_head, d_inner, kernel_size, dropout,
               dropatt, dropemb=0.0, n_embed=None, **kwargs):
    super().__init__(**kwargs)
    self.d_model = d_model
    self.n_embed = n_embed
    if n_embed is not None:
      # torch.nn.Embedding's N(0, 1) initialisation.
      self.word_emb = keras.layers.Embedding(
          n_embed, d_model, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
          name="word_emb")
    self.drop = keras.layers.Dropout(dropemb)
    self.blocks = [TransformerLayer(n_head, d_model, d_head, d_inner, kernel_size, dropout,
                                    dropatt, name=f"layer_{i}") for i in range(n_layer)]

  def build(self, input_shape=None):
    if self.n_embed is not None:
      self.word_emb.build((None, None))
    for block in self.blocks:
      block.build(None)

  def embed(self, ids, mask):
    """`[batch, tokens]` ids -> `[batch, tokens, d_model]` embeddings, 0 on padding."""
    embeddings = self.word_emb(ids)
    return embeddings * tf.cast(mask, embeddings.dtype)

  def call(self, inputs, mask, conditioning=None, training=False, winograd=False):
    """Runs the stack.

    Args:
      inputs: `[batch, tokens]` int ids (with `n_embed`) or `[batch, time, d_model]`.
      mask: `[batch, time, 1]` float.
      conditioning: optional `[batch, 1, d_model]` added to every step (speaker).
      winograd: feed-forward convolutions by `tfspeech.ops.winograd` (see
        `PositionwiseConvFF`): True, or transformed kernels from `winograd_kernels`.

    Returns:
      `[batch, time, d_model]`, 0 on padding.
    """
    x = self.embed(inputs, mask) if self.n_embed is not None else inputs
    x = x + tf.expand_dims(positional_encoding(tf.shape(x)[1], self.d_model, x.dtype), 0) * mask
    if conditioning is not None:
      x = x + conditioning
    x = self.drop(x, training=training)
    # One packing for the blocks (all alike; a block whose path differs makes its own).
    tile = self.blocks[0].feed_forward.packed_tile(winograd, x.dtype) if self.blocks else None
    packing = None if tile is None else packing_of(mask, tile)
    for block in self.blocks:
      x = block(x, mask, training=training, winograd=winograd, packing=packing)
    return x

  def winograd_kernels(self):
    """{kernel path: transformed kernel} of the feed-forward blocks where F(4, 3) pays."""
    kernels = {}
    for block in self.blocks:
      if block.feed_forward.pays():
        kernels.update(block.feed_forward.winograd_kernels())
    return kernels


class TemporalPredictor(keras.layers.Layer):
  """`n_layers` x (Conv1D -> ReLU -> LayerNorm -> dropout), then Dense to one value per step.

  Maps `[batch, tokens, input_size]` to `[batch, tokens]`, 0 on padding.
  """

  def __init__(self, input_size, filter_size, kernel_size, dropout, n_layers, **kwargs):
    super().__init__(**kwargs)
    self.input_size, self.filter_size = input_size, filter_size
    self.convs = [keras.layers.Conv1D(filter_size, kernel_size, padding="same",
                                      name=f"conv_{i}") for i in range(n_layers)]
    self.norms = [_layer_norm(f"norm_{i}") for i in range(n_layers)]
    self.dropout = keras.layers.Dropout(dropout)
    self.fc = keras.layers.Dense(1, name="fc")

  def build(self, input_shape=None):
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      conv.build((None, None, self.input_size if i == 0 else self.filter_size))
      norm.build((None, None, self.filter_size))
    self.fc.build((None, None, self.filter_size))

  def call(self, x, mask, training=False):
    for conv, norm in zip(self.convs, self.norms):
      x = self.dropout(norm(tf.nn.relu(conv(x * mask))), training=training)
    return (self.fc(x) * mask)[..., 0]


class ValueEmbedding(keras.layers.Layer):
  """Conv1D of one value per token to `d_model` channels (the reference `pitch_emb`)."""

  def __init__(self, d_model, kernel_size, **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv1D(d_model, kernel_size, padding="same", name="conv")

  def build(self, input_shape=None):
    self.conv.build((None, None, 1))

  def call(self, values, mask):
    """values: `[batch, tokens]`; mask: `[batch, tokens, 1]`. Returns `[batch, tokens, d]`."""
    return self.conv(tf.expand_dims(values, -1) * mask) * mask


class AlignmentEncoder(keras.layers.Layer):
  """The reference `ConvAttention` (align_query_enc_type "3xconv"): alignment scores.

  Keys: token embeddings through Conv(k3, 2C) -> ReLU -> Conv(1, A). Queries: mel frames
  through Conv(k3, 2M) -> ReLU -> Conv(1, M) -> ReLU -> Conv(1, A). Scores are
  -0.0005 x squared L2 distance; `alignment_log_prob` normalises them over tokens with the
  beta-binomial prior. The reference also builds an unused 1x1 `attn_proj` (A -> 1); it is
  kept here so the parameter count matches.
  """

  def __init__(self, n_mel_channels, n_text_channels, n_att_channels, **kwargs):
    super().__init__(**kwargs)
    self.n_mel, self.n_text, self.n_att = n_mel_channels, n_text_channels, n_att_channels
    self.key_conv_1 = keras.layers.Conv1D(2 * n_text_channels, 3, padding="same",
                                          name="key_conv_1")
    self.key_conv_2 = keras.layers.Conv1D(n_att_channels, 1, name="key_conv_2")
    self.query_conv_1 = keras.layers.Conv1D(2 * n_mel_channels, 3, padding="same",
                                            name="query_conv_1")
    self.query_conv_2 = keras.layers.Conv1D(n_mel_channels, 1, name="query_conv_2")
    self.query_conv_3 = keras.layers.Conv1D(n_att_channels, 1, name="query_conv_3")
    self.attn_proj = keras.layers.Dense(1, name="attn_proj")  # Unused, as in the reference.

  def build(self, input_shape=None):
    self.key_conv_1.build((None, None, self.n_text))
    self.key_conv_2.build((None, None, 2 * self.n_text))
    self.query_conv_1.build((None, None, self.n_mel))
    self.query_conv_2.build((None, None, 2 * self.n_mel))
    self.query_conv_3.build((None, None, self.n_mel))
    self.attn_proj.build((None, None, self.n_att))

  def call(self, mel, text_embedding, text_mask):
    """Alignment scores of mel frames against tokens.

    Args:
      mel: `[batch, frames, n_mel]` target mels (queries).
      text_embedding: `[batch, tokens, n_text]` token embeddings (keys), 0 on padding.
      text_mask: `[batch, tokens, 1]` float.

    Returns:
      `[batch, frames, tokens]` float32 scores, -0.0005 |query - key|^2 (padded tokens
      included; `alignment_log_prob` masks them).
    """
    keys = self.key_conv_2(tf.nn.relu(self.key_conv_1(text_embedding * text_mask)))
    queries = self.query_conv_3(tf.nn.relu(self.query_conv_2(
        tf.nn.relu(self.query_conv_1(mel)))))
    # The distance in float32 under any compute dtype: its expansion below cancels large
    # terms, which bfloat16's 8-bit mantissa (or float16's range) would not survive.
    keys, queries = tf.cast(keys, tf.float32), tf.cast(queries, tf.float32)
    # |q - k|^2 = |q|^2 - 2 q.k + |k|^2, without a [batch, frames, tokens, A] tensor.
    distance = (tf.reduce_sum(tf.square(queries), -1, keepdims=True)
                - 2.0 * tf.linalg.matmul(queries, keys, transpose_b=True)
                + tf.expand_dims(tf.reduce_sum(tf.square(keys), -1), 1))
    return -0.0005 * distance


def alignment_log_prob(scores, text_mask, prior):
  """Soft alignment from `AlignmentEncoder` scores and the prior, in float32.

  A function, not part of the layer, so the prior never passes a Keras layer boundary,
  which would cast it to a mixed-precision compute dtype (float16 flushes its small values).

  Args:
    scores: `[batch, frames, tokens]` float32 scores.
    text_mask: `[batch, tokens, 1]` float.
    prior: `[batch, frames, tokens]` beta-binomial prior (0 in padding).

  Returns:
    (soft `[batch, frames, tokens]`: rows sum to 1 over real tokens, 0 on padded tokens;
     log_prob `[batch, frames, tokens]`: log-softmax scores + log prior, padded tokens
     at -1e9), both float32.
  """
  token_valid = tf.transpose(text_mask, [0, 2, 1]) > 0  # [batch, 1, tokens]
  # The reference normalises over padded tokens too; leaving them out keeps an item's
  # alignment independent of its batch (and changes nothing for an unpadded item).
  scores = tf.where(token_valid, tf.cast(scores, tf.float32), _MASKED_SCORE)
  log_prob = tf.nn.log_softmax(scores, axis=-1) + tf.math.log(
      tf.cast(prior, tf.float32) + 1e-8)
  log_prob = tf.where(token_valid, log_prob, _MASKED_SCORE)
  soft = tf.nn.softmax(log_prob, axis=-1) * tf.cast(token_valid, tf.float32)
  return soft, log_prob

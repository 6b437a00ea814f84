"""The Tacotron 2 model: embedding, encoder, attention decoder and postnet.

Two forward passes share one decoder step (`Tacotron2.decoder_step`):
- `teacher_forced`: the decoder reads the true previous frame (training, `--gta`); one
  `tf.while_loop` over the frames of the batch.
- `infer`: the decoder reads its own previous frame; one `tf.while_loop` that runs until every
  item's stop gate fired or `max_decoder_steps` frames were made, all loop variables of fixed
  shape (TFLite converts it to one builtin WHILE when `preallocated=True`).

Both trace with `None` batch, token and frame dims and call no Python.
"""

import math
from typing import Optional

import keras
import tensorflow as tf

from tfspeech.models import serving
# The alignment measures moved to a model-neutral module; importable from here as before.
from tfspeech.models.alignment_metrics import (  # pylint: disable=unused-import
    alignment_diagonality, diagonal_band_mass, relative_positions)
from tfspeech.models.tacotron2 import layers
from tfspeech.models.tacotron2.tacotron2_config import Tacotron2Config

# Salts of the stateless seeds, one per source of training randomness.
_SALT_ENCODER, _SALT_PRENET, _SALT_DECODER, _SALT_POSTNET = 1, 2, 3, 4


def prenet_noise_for(noise, step):
  """Frame `step` of cyclic noise `[batch, >= 1, channels]` (repeated along time)."""
  return tf.gather(noise, step % tf.shape(noise)[1], axis=1)


class Tacotron2(keras.Model):
  """Tacotron 2 (NVIDIA/tacotron2 `model.py`); weights are created on construction.

  Args:
    config: a `Tacotron2Config` (see `tacotron2_presets`).
  """

  def __init__(self, config: Tacotron2Config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    # The reference's embedding init: uniform with std sqrt(2 / (n_symbols + dim)).
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (config.n_symbols + config.symbols_embedding_dim))
    self.embedding = keras.layers.Embedding(
        config.n_symbols, config.symbols_embedding_dim,
        embeddings_initializer=keras.initializers.RandomUniform(-bound, bound), name="embedding")
    self.encoder = layers.Encoder(config, name="encoder")
    self.prenet = layers.Prenet(config, name="prenet")
    self.attention_rnn = layers.LSTMCell(
        config.attention_rnn_dim, config.prenet_dim + config.encoder_embedding_dim,
        name="attention_rnn")
    self.attention = layers.LocationSensitiveAttention(config, name="attention_layer")
    self.decoder_rnn = layers.LSTMCell(
        config.decoder_rnn_dim, config.attention_rnn_dim + config.encoder_embedding_dim,
        name="decoder_rnn")
    features = config.decoder_rnn_dim + config.encoder_embedding_dim
    self.linear_projection = keras.layers.Dense(
        config.n_mel_channels, kernel_initializer=layers._xavier("linear"),
        name="linear_projection")
    self.gate_layer = keras.layers.Dense(1, kernel_initializer=layers._xavier("sigmoid"),
                                         name="gate_layer")
    self.postnet = layers.Postnet(config, name="postnet")
    self.embedding.build((None, None))
    for layer in (self.encoder, self.prenet, self.attention_rnn, self.attention,
                  self.decoder_rnn, self.postnet):
      layer.build()
    self.linear_projection.build((None, features))
    self.gate_layer.build((None, features))
    self.built = True

  # ---------------------------------------------------------------- pieces
  def encode(self, text_ids, text_lengths, training=False, seed=None, preallocated=False):
    """Token ids `[batch, tokens]` → (memory `[batch, tokens, enc]`, mask `[batch, tokens]`)."""
    mask = tf.sequence_mask(text_lengths, tf.shape(text_ids)[1])
    x = self.embedding(text_ids)
    seed = layers.fold_seed(seed, _SALT_ENCODER) if seed is not None else None
    return self.encoder(x, mask, training=training, seed=seed, preallocated=preallocated), mask

  def initial_state(self, memory):
    """Decoder state before the first frame: zero LSTM states, weights and context."""
    batch_size, tokens = tf.shape(memory)[0], tf.shape(memory)[1]
    zero_weights = tf.zeros(tf.stack([batch_size, tokens]), memory.dtype)
    context = tf.zeros(tf.stack([batch_size, self.config.encoder_embedding_dim]), memory.dtype)
    return (self.attention_rnn.zero_state(batch_size), self.decoder_rnn.zero_state(batch_size),
            zero_weights, zero_weights, context)

  def decoder_step(self, gates, state, memory, processed_memory, mask, seed=None):
    """One decoder step (the reference's `Decoder.decode` before its projections).

    Args:
      gates: `(attention_gates, decoder_gates)`: functions of `(context, h)` and `(x, h)`
        giving the two LSTMs' gate pre-activations `[batch, 4 * units]`, biases in (the
        callers own the matmuls: `fused_lstm_weights`, `LoopMatmul`, the prenet's share).
      state: `initial_state` structure.
      memory, processed_memory, mask: from `encode` / `attention.process_memory`.
      seed: stateless seed of this step's attention/decoder dropout (training), or None.

    Returns:
      (features `[batch, decoder_rnn_dim + enc]` for the projections, attention weights
      `[batch, tokens]`, new state).
    """
    config = self.config
    attention_state, decoder_state, weights, cumulative, context = state
    attention_state = self.attention_rnn.activate(gates[0](context, attention_state[0]),
                                                  attention_state[1])
    attention_hidden = layers.stateless_dropout(
        attention_state[0], config.p_attention_dropout,
        None if seed is None else layers.fold_seed(seed, 0))
    attention_state = (attention_hidden, attention_state[1])
    context, weights = self.attention(attention_hidden, memory, processed_memory, weights,
                                      cumulative, mask)
    cumulative = cumulative + weights
    decoder_state = self.decoder_rnn.activate(
        gates[1](tf.concat([attention_hidden, context], -1), decoder_state[0]),
        decoder_state[1])
    decoder_hidden = layers.stateless_dropout(
        decoder_state[0], config.p_decoder_dropout,
        None if seed is None else layers.fold_seed(seed, 1))
    decoder_state = (decoder_hidden, decoder_state[1])
    features = tf.concat([decoder_hidden, context], -1)
    return features, weights, (attention_state, decoder_state, weights, cumulative, context)

  def project(self, features):
    """Decoder features `[..., d]` → (mel frame `[..., n_mels]`, gate logit `[...]`)."""
    return self.linear_projection(features), self.gate_layer(features)[..., 0]

  def apply_postnet(self, mel, mel_mask, training=False, seed=None):
    """Decoder mels → postnet mels, both zero past each length (the reference's `+` residual)."""
    mel = mel * tf.expand_dims(tf.cast(mel_mask, mel.dtype), -1)
    seed = layers.fold_seed(seed, _SALT_POSTNET) if seed is not None else None
    return mel + self.postnet(mel, mel_mask, training=training, seed=seed)

  def fused_lstm_weights(self, dtype):
    """Each decoder LSTM's kernels as one `[inputs + units, 4 * units]` matrix, and its bias.

    A step then makes its gate pre-activations with one matmul of `[inputs, h]` instead of
    two. Made outside the decoder loop (a concat or slice inside it is redone, and
    differentiated, every step). Returns `(attention_kernel, attention_bias, decoder_kernel,
    decoder_bias)`; the attention kernel's rows are `[prenet; context; recurrent]`.
    """
    def fused(cell):
      return (tf.concat([tf.cast(cell.kernel, dtype), tf.cast(cell.recurrent_kernel, dtype)], 0),
              tf.cast(cell.bias + cell.recurrent_bias, dtype))
    return fused(self.attention_rnn) + fused(self.decoder_rnn)

  # ---------------------------------------------------------------- passes
  def teacher_forced(self, text_ids, text_lengths, mel, mel_lengths, noise=None,
                     training=False, seed=None, preallocated=False):
    """The training forward pass: each frame is decoded from the true previous frame.

    Args:
      text_ids: `[batch, tokens]` int ids; text_lengths: `[batch]`.
      mel: `[batch, frames, n_mels]` target log-mels; mel_lengths: `[batch]`.
      noise: `[batch, >= 1, 2 * prenet_dim]` standard normal prenet dropout noise (repeated
        along time), or None to draw it from `seed`.
      training: batch statistics and dropout in the encoder, decoder and postnet.
      seed: int32 `[2]` stateless seed of every dropout (and of the prenet noise when
        `noise` is None); required when `training` or `noise` is None.
      preallocated: TFLite-convertible loop storage (see `layers.new_frame_store`).

    Returns:
      dict: "mel_before" and "mel_after" (postnet) `[batch, frames, n_mels]` zero past each
      length, "gate_logits" `[batch, frames]`, "alignments" `[batch, frames, tokens]`.
    """
    config = self.config
    mel = tf.ensure_shape(mel, [None, None, config.n_mel_channels])
    memory, mask = self.encode(text_ids, text_lengths, training, seed, preallocated)
    processed_memory = self.attention.process_memory(memory)
    batch_size, frames = tf.shape(mel)[0], tf.shape(mel)[1]
    tokens = tf.shape(memory)[1]
    if noise is None:
      noise = tf.random.stateless_normal(
          tf.stack([batch_size, frames, config.prenet_noise_channels]),
          layers.fold_seed(seed, _SALT_PRENET))
    # The decoder reads the all-zero "go" frame, then the true frames shifted by one.
    previous = tf.concat([tf.zeros_like(mel[:, :1]), mel[:, :-1]], axis=1)
    prenet = self.prenet(previous, serving.cyclic_frames(noise, frames))
    # The prenet half of the attention LSTM's input projection, for all frames at once: one
    # large matmul (and one weight gradient) instead of one per step. Kernels are split and
    # joined outside the loop: a slice inside it would cost a full-size gradient per step.
    dtype = prenet.dtype
    attention_kernel, attention_bias, decoder_kernel, decoder_bias = (
        self.fused_lstm_weights(dtype))
    projected = (tf.tensordot(tf.transpose(prenet, [1, 0, 2]),
                              attention_kernel[:config.prenet_dim], axes=1) + attention_bias)
    projected = layers.frame_source(projected, preallocated)  # [frames, batch, 4 * units]
    # The rest of each LSTM's products in the loop: one matmul by [input; recurrent kernel].
    # In training through `LoopMatmul` (one weight gradient after the loop, not one per step).
    attention_kernel = attention_kernel[config.prenet_dim:]
    batched = training and not preallocated
    if batched:
      matmuls = (layers.LoopMatmul(attention_kernel, frames, batch_size),
                 layers.LoopMatmul(decoder_kernel, frames, batch_size))
    decoder_seed = (layers.fold_seed(seed, _SALT_DECODER)
                    if training and seed is not None else None)
    width = config.decoder_rnn_dim + config.encoder_embedding_dim
    stores = (layers.new_frame_store(tf.stack([batch_size, width]),
                                     tf.TensorShape([None, width]), mel.dtype, preallocated,
                                     frames),
              layers.new_frame_store(tf.stack([batch_size, tokens]),
                                     tf.TensorShape([None, None]), mel.dtype, preallocated,
                                     frames))
    inputs = tuple(m.new_store() for m in matmuls) if batched else ()

    def body(step, state, stores, inputs):
      step_seed = None if decoder_seed is None else layers.fold_seed(decoder_seed, step)
      written = list(inputs)

      def product(index, x):
        """`x @ (attention_kernel, decoder_kernel)[index]`, through `LoopMatmul` in training."""
        if not batched:
          return tf.matmul(x, (attention_kernel, decoder_kernel)[index])
        y, written[index] = matmuls[index](x, step, inputs[index])
        return y

      def attention_gates(context, h):
        return (layers.frame_source_read(projected, step)
                + product(0, tf.concat([context, h], -1)))

      def decoder_gates(x, h):
        return product(1, tf.concat([x, h], -1)) + decoder_bias

      features, weights, state = self.decoder_step(
          (attention_gates, decoder_gates), state, memory, processed_memory, mask, step_seed)
      return (step + 1, state, (layers.frame_store_write(stores[0], step, features),
                                layers.frame_store_write(stores[1], step, weights)),
              tuple(written))

    _, _, stores, inputs = tf.while_loop(
        lambda step, *_: step < frames, body,
        (tf.constant(0), self.initial_state(memory), stores, inputs))
    for matmul, store in zip(matmuls if batched else (), inputs):
      matmul.finish(store)
    features = tf.transpose(layers.frame_store_stack(stores[0], frames), [1, 0, 2])
    alignments = tf.transpose(layers.frame_store_stack(stores[1], frames), [1, 0, 2])
    # The projections are linear per frame: applied once to all frames, outside the loop.
    mel_before, gate_logits = self.project(features)
    mel_mask = tf.sequence_mask(mel_lengths, frames)
    mel_after = self.apply_postnet(mel_before, mel_mask, training, seed)
    mel_mask_f = tf.cast(mel_mask, mel.dtype)
    return {"mel_before": mel_before * tf.expand_dims(mel_mask_f, -1), "mel_after": mel_after,
            "gate_logits": gate_logits, "alignments": alignments * tf.expand_dims(mel_mask_f, -1)}

  def infer(self, text_ids, text_lengths, noise, max_decoder_steps=None,
            gate_threshold: Optional[float] = None, preallocated=False):
    """Autoregressive decoding of a batch, each item stopping at its own gate.

    An item stops at the first frame whose stop probability `sigmoid(gate)` exceeds
    `gate_threshold` (that frame is its last, as in the reference), or after
    `max_decoder_steps` frames. The loop ends when every item stopped; frames an item
    "decodes" after its stop are discarded (zeroed), so an item's mel does not depend on its
    batch.

    Args:
      text_ids: `[batch, tokens]` int ids; text_lengths: `[batch]`.
      noise: `[batch, >= 1, 2 * prenet_dim]` standard normal prenet dropout noise; frame
        `t` reads noise frame `t mod noise_frames`.
      max_decoder_steps: int32 scalar step limit (default: the config's).
      gate_threshold: Python float (default: the config's).
      preallocated: TFLite-convertible loop storage (see `layers.new_frame_store`).

    Returns:
      dict: "mel" (postnet) and "mel_before" `[batch, frames, n_mels]`, zero past each
      length; "mel_lengths" `[batch]` int32; "alignments" `[batch, frames, tokens]`;
      "gate_logits" `[batch, frames]`; `frames` is the longest item's length.
    """
    config = self.config
    if max_decoder_steps is None:
      max_decoder_steps = config.max_decoder_steps
    if gate_threshold is None:
      gate_threshold = config.gate_threshold
    max_steps = tf.cast(max_decoder_steps, tf.int32)
    # sigmoid(g) > p  <=>  g > logit(p): compare logits, no sigmoid per step.
    gate_logit_threshold = math.log(gate_threshold / (1.0 - gate_threshold))
    memory, mask = self.encode(text_ids, text_lengths, preallocated=preallocated)
    processed_memory = self.attention.process_memory(memory)
    noise = tf.convert_to_tensor(noise, memory.dtype)
    batch_size, tokens = tf.shape(memory)[0], tf.shape(memory)[1]
    n_mels = config.n_mel_channels
    stores = (layers.new_frame_store(tf.stack([batch_size, n_mels]),
                                     tf.TensorShape([None, n_mels]), memory.dtype,
                                     preallocated, max_steps),
              layers.new_frame_store(tf.stack([batch_size]), tf.TensorShape([None]),
                                     memory.dtype, preallocated, max_steps),
              layers.new_frame_store(tf.stack([batch_size, tokens]),
                                     tf.TensorShape([None, None]), memory.dtype,
                                     preallocated, max_steps))

    def cond(step, previous, state, done, lengths, stores):
      del previous, state, lengths, stores
      return tf.logical_and(step < max_steps, tf.logical_not(tf.reduce_all(done)))

    attention_kernel, attention_bias, decoder_kernel, decoder_bias = (
        self.fused_lstm_weights(memory.dtype))

    def body(step, previous, state, done, lengths, stores):
      prenet_frame = self.prenet(previous, prenet_noise_for(noise, step))

      def attention_gates(context, h):
        return tf.matmul(tf.concat([prenet_frame, context, h], -1),
                         attention_kernel) + attention_bias

      def decoder_gates(x, h):
        return tf.matmul(tf.concat([x, h], -1), decoder_kernel) + decoder_bias

      features, weights, state = self.decoder_step(
          (attention_gates, decoder_gates), state, memory, processed_memory, mask)
      frame, gate = self.project(features)
      lengths = tf.where(done, lengths, step + 1)
      done = tf.logical_or(done, gate > gate_logit_threshold)
      stores = (layers.frame_store_write(stores[0], step, frame),
                layers.frame_store_write(stores[1], step, gate),
                layers.frame_store_write(stores[2], step, weights))
      return step + 1, frame, state, done, lengths, stores

    initial = (tf.constant(0), tf.zeros(tf.stack([batch_size, n_mels]), memory.dtype),
               self.initial_state(memory), tf.zeros(tf.stack([batch_size]), tf.bool),
               tf.zeros(tf.stack([batch_size]), tf.int32), stores)
    steps, _, _, _, lengths, stores = tf.while_loop(cond, body, initial)
    mel_before = tf.transpose(layers.frame_store_stack(stores[0], steps), [1, 0, 2])
    gate_logits = tf.transpose(layers.frame_store_stack(stores[1], steps))
    alignments = tf.transpose(layers.frame_store_stack(stores[2], steps), [1, 0, 2])
    mel_mask = tf.sequence_mask(lengths, steps)
    mel_mask_f = tf.cast(mel_mask, memory.dtype)
    mel_before = mel_before * tf.expand_dims(mel_mask_f, -1)
    return {"mel": self.apply_postnet(mel_before, mel_mask), "mel_before": mel_before,
            "mel_lengths": lengths, "alignments": alignments * tf.expand_dims(mel_mask_f, -1),
            "gate_logits": gate_logits}


def durations_from_alignments(alignments, mel_lengths, text_lengths):
  """Frames per token: each valid frame counts for the token it attends to most.

  Args:
    alignments: `[batch, frames, tokens]` attention weights.
    mel_lengths: `[batch]` valid frames; text_lengths: `[batch]` valid tokens.

  Returns:
    `[batch, tokens]` int32; each row sums to its mel length, 0 past its text length.
  """
  tokens = tf.shape(alignments)[2]
  # Padded tokens have weight 0; an empty text attends nowhere and gets no durations.
  best = tf.argmax(alignments, axis=2, output_type=tf.int32)
  frame_mask = tf.sequence_mask(mel_lengths, tf.shape(alignments)[1], tf.int32)
  counts = tf.reduce_sum(tf.one_hot(best, tokens, dtype=tf.int32) * tf.expand_dims(frame_mask, -1),
                         axis=1)
  return counts * tf.sequence_mask(text_lengths, tokens, tf.int32)


def guided_attention_penalty(alignments, mel_lengths, text_lengths, g=0.2):
  """Guided-attention penalty per frame (Tachibana et al., 2018, DC-TTS eq. 5).

  Each frame's attention weights are weighted by `1 - exp(-(n/N - t/T)^2 / (2 g^2))`, which is
  0 on the diagonal of the item's own text (N) and mel (T) lengths and near 1 far from it.

  Args:
    alignments: `[batch, frames, tokens]` attention weights (each valid row sums to 1).
    mel_lengths, text_lengths: `[batch]` valid frames and tokens.
    g: width of the zero-penalty band (DC-TTS: 0.2).

  Returns:
    `[batch, frames]` float32 in [0, 1], 0 at padded frames; the loss is its mean over valid
    frames.
  """
  frames, tokens = tf.shape(alignments)[1], tf.shape(alignments)[2]
  t, n = relative_positions(mel_lengths, text_lengths, frames, tokens)
  penalty = 1.0 - tf.exp(-tf.square(n - t) / (2.0 * g * g))
  penalty *= tf.sequence_mask(text_lengths, tokens, tf.float32)[:, None, :]
  frame_mask = tf.sequence_mask(mel_lengths, frames, tf.float32)
  return tf.reduce_sum(tf.cast(alignments, tf.float32) * penalty, axis=2) * frame_mask

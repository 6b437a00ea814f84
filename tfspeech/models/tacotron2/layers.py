"""Tacotron 2 layers (NVIDIA/tacotron2 `model.py`), channels-last, with graph-mode loops.

Layouts: token ids `[batch, tokens]`, encoder outputs ("memory") `[batch, tokens, channels]`,
mels `[batch, frames, n_mels]` (the reference's `[batch, n_mels, frames]`), alignments
`[batch, frames, tokens]`.

Deviations from the reference, all for batched graph-mode decoding:
- Padded positions are zeroed before every convolution (encoder, postnet) and the BiLSTM
  keeps its state over padding (the reference packs sequences for the same effect), so a
  text's outputs do not depend on how far its batch is padded: an item decoded alone equals
  the same item decoded in a batch.
- Masked attention energies are -1e9, not -inf: an all-padding row stays finite.
- Dropout is stateless and seeded (`stateless_dropout`), and the prenet's "always on"
  dropout reads its keep/drop decisions from standard normal noise (`Prenet`), so decoding is
  a pure function of its inputs: seedable, and the same in TF, TFLite and TFJS.

Porting reference weights: Conv1d `[out, in, k]` -> Conv1D `[k, in, out]`; Linear
`[out, in]` -> Dense `[in, out]`; LSTM(Cell) `weight_ih [4u, in]`, `weight_hh [4u, u]`,
`bias_ih`, `bias_hh` -> `LSTMCell` kernel/recurrent_kernel (transposed) and both biases, gate
order i, f, g, o kept; BatchNorm1d -> BatchNormalization (gamma, beta, moving mean/variance).
"""

import math
import statistics

import keras
import tensorflow as tf

# Masked attention energies: softmax gives them exactly 0 in float32.
_MASKED_ENERGY = -1e9
# PyTorch BatchNorm1d defaults (momentum 0.1 of the new statistic = Keras momentum 0.9).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _xavier(gain_name):
  """The reference's `xavier_uniform_(w, gain=calculate_gain(gain_name))` as a Keras init."""
  gain = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}[gain_name]
  return keras.initializers.VarianceScaling(gain * gain, mode="fan_avg",
                                            distribution="uniform")


def _batch_norm(name):
  return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def fold_seed(seed, salt):
  """A new stateless seed `[2]` from `seed` and an int (or int32 scalar) `salt`."""
  return tf.random.experimental.stateless_fold_in(seed, salt)


def stateless_dropout(x, rate, seed):
  """Inverted dropout with a stateless seed; identity when `seed` is None or `rate` is 0."""
  if seed is None or not rate:
    return x
  keep = tf.random.stateless_uniform(tf.shape(x), seed) >= rate
  return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))


# ---------------------------------------------------------------- loop storage
def new_frame_store(element_shape, static_element_shape, dtype, preallocated, size=None):
  """Somewhere to put one `[element_shape]` tensor per loop step (step 0, 1, ... in order).

  As `ops/alignment.py` `_new_frame_store` explains: a TensorArray is the fast choice in
  graph mode and under XLA (and what training differentiates through), but TFLite converts
  it only when every element dimension is static, which `None` batch and text dims are not.
  A preallocated `[size, ...]` tensor updated with `tensor_scatter_nd_update` converts to
  TFLite builtins at any shape (the buffer is copied each step in plain graph mode).

  Args:
    element_shape: int32 `[rank]` shape of one element.
    static_element_shape: the same as a `tf.TensorShape` (None dims allowed).
    dtype: element dtype.
    preallocated: use the preallocated tensor (needs `size`).
    size: int32 scalar, the most steps that will be written (preallocated only).
  """
  if preallocated:
    return tf.zeros(tf.concat([[size], element_shape], axis=0), dtype)
  return tf.TensorArray(dtype, size=0, dynamic_size=True,
                        element_shape=static_element_shape)


def frame_source(frames, preallocated):
  """Per-step reads of `frames` `[steps, ...]` inside a `tf.while_loop` (`frame_source_read`).

  A loop that slices a tensor it captures (`frames[step]`) is differentiated into a
  full-size `[steps, ...]` gradient per step, added up across steps: O(steps²) work (21 s
  against 0.2 s for 740 steps of `[16, 1024]` here). A TensorArray's gradient writes one
  element per step. TFLite graphs (`preallocated`, never differentiated) keep the slice.
  """
  if preallocated:
    return frames
  return tf.TensorArray(frames.dtype, size=tf.shape(frames)[0],
                        element_shape=frames.shape[1:]).unstack(frames)


def frame_source_read(source, step):
  """Element `step` of a `frame_source`."""
  if isinstance(source, tf.TensorArray):
    return source.read(step)
  return source[step]


def frame_store_write(store, step, element):
  if isinstance(store, tf.TensorArray):
    return store.write(step, element)
  return tf.tensor_scatter_nd_update(store, [[step]], tf.expand_dims(element, 0))


def frame_store_stack(store, count):
  """The first `count` elements written, `[count, ...]`."""
  if isinstance(store, tf.TensorArray):
    return store.stack()
  return store[:count]


# Rows from which `LoopMatmul`'s input gradient multiplies by the pre-transposed kernel: at
# 16 rows it is 5-7x faster than `transpose_b`; at 1 row (a matrix-vector product either way)
# `transpose_b` was ~10% faster alone and level in Tacotron 2's batch-1 step (3.5-4.1 s both).
_TRANSPOSED_GRADIENT_MIN_ROWS = 4


class LoopMatmul:
  """`x_t @ kernel` inside a `tf.while_loop`, with the kernel's gradient made once, after it.

  Differentiating a product with a captured kernel inside a loop makes an `[in, out]` weight
  gradient per step and adds it to a running sum: two passes over the kernel per step, most
  of Tacotron 2's teacher-forced step at batch 16. Here the loop multiplies by the kernel with
  its gradient stopped and adds a zero "tap" `[steps, batch, out]` read per step (through a
  TensorArray: one element of gradient per step), and records its inputs; the kernel's
  gradient is then one `[steps * batch, in]ᵀ @ [steps * batch, out]` matmul of the recorded
  inputs and the tap's gradient (the gradient of every step's product). Values equal
  `x_t @ kernel`.

  The input's gradient per step, `dy @ kernelᵀ`, multiplies by a transposed copy made once
  before the loop: oneDNN's `transpose_b` matmul at 16 rows runs 5-7x slower than the plain
  one here (`[16, 4096] @ [2560, 4096]ᵀ`: 15.5 ms against 2.7 ms); those products took half
  of Tacotron 2's batch-16 ljspeech train step (30.7 s, now 15.5 s).

  `m = LoopMatmul(kernel, steps, batch_size)`; a loop variable `m.new_store()`; in the body
  `y, store = m(x, step, store)`; after the loop `m.finish(store)` (before differentiating).
  """

  def __init__(self, kernel, steps, batch_size):
    self._kernel = tf.stop_gradient(kernel)
    self._kernel_transposed = tf.transpose(self._kernel)
    self._inputs = None
    in_dim, out_dim = kernel.shape

    @tf.custom_gradient
    def tap(kernel):
      def grad(upstream):
        if self._inputs is None:
          raise ValueError("LoopMatmul.finish() was not called after the loop")
        inputs = tf.reshape(self._inputs, [-1, in_dim])
        return tf.matmul(inputs, tf.reshape(upstream, [-1, out_dim]), transpose_a=True)
      return tf.zeros(tf.stack([steps, batch_size, out_dim]), kernel.dtype), grad

    self._taps = frame_source(tap(kernel), preallocated=False)
    self._in_dim = in_dim

  def new_store(self):
    return tf.TensorArray(self._kernel.dtype, size=0, dynamic_size=True,
                          element_shape=tf.TensorShape([None, self._in_dim]))

  def __call__(self, x, step, store):
    return self._product(x) + self._taps.read(step), store.write(step, x)

  def _product(self, x):
    @tf.custom_gradient
    def product(x):
      def grad(dy):
        return tf.cond(tf.shape(dy)[0] >= _TRANSPOSED_GRADIENT_MIN_ROWS,
                       lambda: tf.matmul(dy, self._kernel_transposed),
                       lambda: tf.matmul(dy, self._kernel, transpose_b=True))
      return tf.matmul(x, self._kernel), grad
    return product(x)

  def finish(self, store):
    self._inputs = store.stack()


# ---------------------------------------------------------------- layers
class LSTMCell(keras.layers.Layer):
  """PyTorch's LSTMCell: gates (i, f, g, o), an input bias and a recurrent bias.

  Keras' LSTM has one bias; the reference's two keep the parameter count and make weights
  portable. Input projections of a whole sequence can be computed before a loop
  (`project_inputs`), leaving only the recurrent matmul in the loop (`step`).
  """

  def __init__(self, units, input_dim, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.input_dim = input_dim

  def build(self, input_shape=None):
    del input_shape
    bound = 1.0 / math.sqrt(self.units)  # PyTorch's init of every LSTM weight.
    init = keras.initializers.RandomUniform(-bound, bound)
    width = 4 * self.units
    self.kernel = self.add_weight(shape=(self.input_dim, width), initializer=init,
                                  name="kernel")
    self.recurrent_kernel = self.add_weight(shape=(self.units, width), initializer=init,
                                            name="recurrent_kernel")
    self.bias = self.add_weight(shape=(width,), initializer=init, name="bias")
    self.recurrent_bias = self.add_weight(shape=(width,), initializer=init,
                                          name="recurrent_bias")
    self.built = True

  def zero_state(self, batch_size):
    zeros = tf.zeros(tf.stack([batch_size, self.units]))
    return zeros, zeros

  def project_inputs(self, x):
    """`[..., input_dim]` → `[..., 4 * units]`: the input half of the gate pre-activations."""
    return tf.tensordot(x, self.kernel, axes=1) + self.bias

  def step(self, projected, state):
    """One step from projected inputs `[batch, 4 * units]`; state and result `(h, c)`."""
    h, c = state
    return self.activate(projected + tf.matmul(h, self.recurrent_kernel) + self.recurrent_bias,
                         c)

  def activate(self, z, c):
    """New `(h, c)` from all gate pre-activations `z` `[batch, 4 * units]` (both biases in)."""
    i, f, g, o = tf.split(z, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c

  def call(self, x, state):
    return self.step(self.project_inputs(x), state)


class Encoder(keras.layers.Layer):
  """Convolutions (Conv1D → BatchNorm → ReLU → dropout) and a bidirectional LSTM.

  Maps embedded tokens `[batch, tokens, symbols_embedding_dim]` to `[batch, tokens,
  encoder_embedding_dim]`, zero on padded tokens.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    dim = config.encoder_embedding_dim
    self.convs = [keras.layers.Conv1D(dim, config.encoder_kernel_size, padding="same",
                                      kernel_initializer=_xavier("relu"), name=f"conv_{i}")
                  for i in range(config.encoder_n_convolutions)]
    self.norms = [_batch_norm(f"norm_{i}") for i in range(config.encoder_n_convolutions)]
    self.forward_cell = LSTMCell(dim // 2, dim, name="lstm_forward")
    self.backward_cell = LSTMCell(dim // 2, dim, name="lstm_backward")

  def build(self, input_shape=None):
    del input_shape
    channels = self.config.symbols_embedding_dim
    for conv, norm in zip(self.convs, self.norms):
      conv.build((None, None, channels))
      channels = self.config.encoder_embedding_dim
      norm.build((None, None, channels))
    self.forward_cell.build()
    self.backward_cell.build()
    self.built = True

  def call(self, x, mask, training=False, seed=None, preallocated=False):
    """x: `[batch, tokens, channels]`; mask: `[batch, tokens]` bool. Returns the memory."""
    mask_f = tf.expand_dims(tf.cast(mask, x.dtype), -1)
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      x = tf.nn.relu(norm(conv(x * mask_f), training=training))
      x = stateless_dropout(x, self.config.encoder_dropout,
                            fold_seed(seed, i) if training and seed is not None else None)
    return self._bidirectional(x * mask_f, mask, preallocated)

  def _bidirectional(self, x, mask, preallocated):
    """Both LSTM directions in one loop over tokens; states hold still over padding."""
    forward = frame_source(tf.transpose(self.forward_cell.project_inputs(x), [1, 0, 2]),
                           preallocated)
    # The backward direction reads tokens last to first; padding (at the end) comes first
    # and leaves its zero state untouched, as packed sequences do in the reference.
    backward = frame_source(
        tf.reverse(tf.transpose(self.backward_cell.project_inputs(x), [1, 0, 2]), [0]),
        preallocated)
    valid = tf.expand_dims(tf.transpose(mask), -1)  # [tokens, batch, 1]
    valid_backward = tf.reverse(valid, [0])
    batch_size, tokens = tf.shape(x)[0], tf.shape(x)[1]
    units = self.forward_cell.units
    element = tf.stack([batch_size, units])
    static = tf.TensorShape([x.shape[0], units])
    stores = (new_frame_store(element, static, x.dtype, preallocated, tokens),
              new_frame_store(element, static, x.dtype, preallocated, tokens))

    def body(t, forward_state, backward_state, stores):
      new_states = []
      outputs = []
      for cell, inputs, ok, state in ((self.forward_cell, forward, valid, forward_state),
                                      (self.backward_cell, backward, valid_backward,
                                       backward_state)):
        h, c = cell.step(frame_source_read(inputs, t), state)
        new_states.append((tf.where(ok[t], h, state[0]), tf.where(ok[t], c, state[1])))
        outputs.append(tf.where(ok[t], h, tf.zeros_like(h)))
      stores = tuple(frame_store_write(s, t, o) for s, o in zip(stores, outputs))
      return t + 1, new_states[0], new_states[1], stores

    zero = self.forward_cell.zero_state(batch_size)
    _, _, _, stores = tf.while_loop(lambda t, *_: t < tokens, body,
                                    (tf.constant(0), zero, zero, stores))
    forward_out = tf.transpose(frame_store_stack(stores[0], tokens), [1, 0, 2])
    backward_out = tf.transpose(tf.reverse(frame_store_stack(stores[1], tokens), [0]),
                                [1, 0, 2])
    return tf.concat([forward_out, backward_out], axis=-1)


class LocationSensitiveAttention(keras.layers.Layer):
  """Additive attention whose energies also see the previous and cumulative weights."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    dim = config.attention_dim
    self.query_layer = keras.layers.Dense(dim, use_bias=False, kernel_initializer=_xavier(
        "tanh"), name="query_layer")
    self.memory_layer = keras.layers.Dense(dim, use_bias=False, kernel_initializer=_xavier(
        "tanh"), name="memory_layer")
    self.v = keras.layers.Dense(1, use_bias=False, kernel_initializer=_xavier("linear"),
                                name="v")
    self.location_conv = keras.layers.Conv1D(
        config.attention_location_n_filters, config.attention_location_kernel_size,
        padding="same", use_bias=False, kernel_initializer=_xavier("linear"),
        name="location_conv")
    self.location_dense = keras.layers.Dense(dim, use_bias=False, kernel_initializer=_xavier(
        "tanh"), name="location_dense")

  def build(self, input_shape=None):
    del input_shape
    config = self.config
    self.query_layer.build((None, config.attention_rnn_dim))
    self.memory_layer.build((None, None, config.encoder_embedding_dim))
    self.v.build((None, None, config.attention_dim))
    self.location_conv.build((None, None, 2))
    self.location_dense.build((None, None, config.attention_location_n_filters))
    self.built = True

  def process_memory(self, memory):
    """The memory's key projection `[batch, tokens, attention_dim]`, once per utterance."""
    return self.memory_layer(memory)

  def call(self, query, memory, processed_memory, weights, cumulative_weights, mask):
    """One attention step.

    Args:
      query: `[batch, attention_rnn_dim]` attention LSTM output.
      memory: `[batch, tokens, encoder_embedding_dim]`.
      processed_memory: `process_memory(memory)`.
      weights, cumulative_weights: `[batch, tokens]` previous and summed weights.
      mask: `[batch, tokens]` bool, True on real tokens.

    Returns:
      (context `[batch, encoder_embedding_dim]`, weights `[batch, tokens]`).
    """
    location = self.location_dense(self.location_conv(
        tf.stack([weights, cumulative_weights], axis=-1)))
    energies = self.v(tf.tanh(tf.expand_dims(self.query_layer(query), 1) + location
                              + processed_memory))[..., 0]
    energies = tf.where(mask, energies, tf.fill(tf.shape(energies), _MASKED_ENERGY))
    weights = tf.nn.softmax(energies, axis=-1)
    context = tf.squeeze(tf.matmul(tf.expand_dims(weights, 1), memory), 1)
    return context, weights


class Prenet(keras.layers.Layer):
  """Two bias-free Dense → ReLU → dropout layers; the dropout is on at inference too.

  The keep/drop decision of each unit comes from a standard normal `noise` value: a unit is
  kept where `noise >= Phi^-1(rate)` (probability 1 - rate), so the prenet is deterministic
  given its noise. Noise has `2 * prenet_dim` channels, one per unit of each layer.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.layers_ = [keras.layers.Dense(config.prenet_dim, use_bias=False,
                                       kernel_initializer=_xavier("linear"), name=f"linear_{i}")
                    for i in range(2)]
    rate = config.prenet_dropout
    self._threshold = statistics.NormalDist().inv_cdf(rate) if rate > 0 else -math.inf

  def build(self, input_shape=None):
    del input_shape
    self.layers_[0].build((None, self.config.n_mel_channels))
    self.layers_[1].build((None, self.config.prenet_dim))
    self.built = True

  def call(self, x, noise):
    """x: `[..., n_mels]`; noise: `[..., 2 * prenet_dim]`. Returns `[..., prenet_dim]`."""
    dim = self.config.prenet_dim
    rate = self.config.prenet_dropout
    for i, layer in enumerate(self.layers_):
      x = tf.nn.relu(layer(x))
      if rate > 0:
        keep = noise[..., i * dim:(i + 1) * dim] >= self._threshold
        x = tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))
    return x


class Postnet(keras.layers.Layer):
  """Convolutions with BatchNorm (tanh on all but the last, dropout in training).

  Maps `[batch, frames, n_mels]` to a residual of the same shape, zero past each length.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    n = config.postnet_n_convolutions
    widths = [config.postnet_embedding_dim] * (n - 1) + [config.n_mel_channels]
    self.convs = [keras.layers.Conv1D(width, config.postnet_kernel_size, padding="same",
                                      kernel_initializer=_xavier("tanh" if i < n - 1
                                                                 else "linear"),
                                      name=f"conv_{i}")
                  for i, width in enumerate(widths)]
    self.norms = [_batch_norm(f"norm_{i}") for i in range(n)]

  def build(self, input_shape=None):
    del input_shape
    channels = self.config.n_mel_channels
    for conv, norm in zip(self.convs, self.norms):
      conv.build((None, None, channels))
      channels = conv.filters
      norm.build((None, None, channels))
    self.built = True

  def call(self, x, mask, training=False, seed=None):
    """x: `[batch, frames, n_mels]`; mask: `[batch, frames]` bool."""
    mask_f = tf.expand_dims(tf.cast(mask, x.dtype), -1)
    last = len(self.convs) - 1
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      x = norm(conv(x * mask_f), training=training)
      if i < last:
        x = tf.tanh(x)
      x = stateless_dropout(x, self.config.postnet_dropout,
                            fold_seed(seed, i) if training and seed is not None else None)
    return x * mask_f

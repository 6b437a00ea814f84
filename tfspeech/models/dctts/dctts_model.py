"""The DC-TTS networks (Kyubyong/dc_tts networks.py): Text2Mel and SSRN, and the spectra they use.

Text2Mel maps characters to coarse mels (every r-th frame, each value normalised to [0, 1]):
the text encoder gives keys K and values V `[batch, N, d]`, the causal audio encoder turns the
mels decoded so far into queries Q `[batch, T, d]`, the attention A = softmax(Q K^T / sqrt(d))
reads R = A V, and the causal audio decoder maps [R, Q] to the next frames. Two passes share
those pieces:
- `teacher_forced`: the audio encoder reads the true coarse mels shifted by `chunk_size`
  frames (training; one parallel pass, nothing loops).
- `infer`: autoregressive decoding as one `tf.while_loop` over chunks of `chunk_size` frames
  (see its docstring), with forcibly incremental attention and per-item end detection.

SSRN upsamples coarse mels r-fold to full-rate linear magnitudes `[batch, T * r, n_fft/2 + 1]`
(normalised like the mels); `magnitudes_to_mel` turns them into the corpus' log-mels.
"""

import math

import keras
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.models.dctts import layers
from tfspeech.models.dctts.dctts_config import DCTTSConfig

# Salts of the stateless dropout seeds, one per network.
_SALT_TEXT, _SALT_AUDIO_ENC, _SALT_AUDIO_DEC, _SALT_SSRN = 1, 2, 3, 4
# Score of a position the attention may not read (finite: an empty text gives no NaN).
_BLOCKED = -1e9


# ---------------------------------------------------------------- spectra
def normalize_db(db, ref_db, max_db):
  """dB → [0, 1] (Kyubyong's clip((dB - ref_db + max_db) / max_db, 1e-8, 1))."""
  return tf.clip_by_value((db - ref_db + max_db) / max_db, 0.0, 1.0)


def denormalize_db(value, ref_db, max_db):
  """Inverse of `normalize_db` inside the clip range."""
  return value * max_db - max_db + ref_db


def log_mel_to_db(log_mel, mel_config):
  """Corpus log-mels (any `MelConfig.log`) → dB of the mel amplitude."""
  mel = audio_lib.log_decompress(log_mel, mel_config)
  floor = mel_config.clamp_min if mel_config.log is not None else 1e-10
  return (20.0 / mel_config.power) * tf.math.log(tf.maximum(mel, floor)) / math.log(10.0)


def db_to_log_mel(db, mel_config):
  """dB → corpus log-mels (inverse of `log_mel_to_db` above the clamp)."""
  return audio_lib.log_compress(tf.pow(10.0, db * (mel_config.power / 20.0)), mel_config)


def mel_targets(log_mel, mel_config, config: DCTTSConfig):
  """Corpus log-mels `[batch, frames, n_mels]` → normalised coarse mels `[batch, ceil(frames / r),
  n_mels]` (every r-th frame, as Kyubyong's `Y[::r]`)."""
  coarse = log_mel[:, ::config.reduction]
  return normalize_db(log_mel_to_db(coarse, mel_config), config.ref_db, config.max_db)


def coarse_lengths(mel_lengths, reduction):
  """Coarse frames of items of `mel_lengths` full frames: ceil(length / r)."""
  return (mel_lengths + reduction - 1) // reduction


def magnitude_targets(audio, mel_config, config: DCTTSConfig, frames):
  """Normalised linear magnitudes `[batch, frames, n_fft/2 + 1]` of `[batch, samples]` audio.

  Computed with the corpus' STFT (`mel_config`: padding, window, hop), power 1, cut or
  zero-padded to `frames` (the frames past an item's mel length are masked by the losses).
  """
  spectrum = audio_lib.stft(audio, mel_config)
  magnitude = tf.abs(spectrum)
  magnitude = magnitude[:, :frames]
  magnitude = tf.pad(magnitude, [[0, 0], [0, frames - tf.shape(magnitude)[1]], [0, 0]])
  db = 20.0 * tf.math.log(tf.maximum(magnitude, 1e-5)) / math.log(10.0)
  return normalize_db(db, config.magnitude_ref_db, config.max_db)


def linear_magnitudes(normalized, config: DCTTSConfig):
  """Normalised magnitudes (SSRN's output) → linear |STFT| for Griffin-Lim."""
  db = denormalize_db(normalized, config.magnitude_ref_db, config.max_db)
  return tf.pow(10.0, db / 20.0)


def magnitudes_to_mel(normalized, mel_config, config: DCTTSConfig):
  """SSRN's normalised magnitudes → the corpus' log-mels (its filterbank and compression)."""
  linear = linear_magnitudes(normalized, config)
  if mel_config.power != 1:
    linear = tf.pow(linear, mel_config.power)
  mel = tf.einsum("btf,fm->btm", linear, audio_lib.mel_filterbank(mel_config))
  return audio_lib.log_compress(mel, mel_config)


def sequence_mask3(lengths, frames, dtype=tf.float32):
  """`[batch, frames, 1]` 1/0 mask of the frames before each length."""
  return tf.expand_dims(tf.sequence_mask(lengths, frames, dtype), -1)


# ---------------------------------------------------------------- networks
class _Builder:
  """Creates the layers of one network with distinct dropout salts."""

  def __init__(self, config):
    self.config = config
    self.salt = 0

  def _next(self):
    self.salt += 1
    return self.salt

  def conv(self, cin, cout, k=1, dilation=1, causal=False, activation=None, output=False):
    return layers.Conv(cin, cout, k, dilation, causal, activation, normalize=not output,
                       dropout=not output, config=self.config, salt=self._next(),
                       name=f"conv_{self.salt}")

  def highway(self, channels, k, dilation, causal=False):
    return layers.HighwayConv(channels, k, dilation, causal, config=self.config,
                              salt=self._next(), name=f"highway_{self.salt}")

  def upsample(self, cin, cout):
    return layers.Upsample(cin, cout, config=self.config, salt=self._next(),
                           name=f"upsample_{self.salt}")


def text_encoder(config: DCTTSConfig):
  """TextEnc after the embedding: e → 2d (two 1x1 convolutions), 12 centred highway
  convolutions ((1, 3, 9, 27) x 2 dilations, 2 x k3, 2 x k1); split into K and V."""
  b, d = _Builder(config), config.d
  stack = [b.conv(config.embedding_dim, 2 * d, activation="relu"), b.conv(2 * d, 2 * d)]
  stack += [b.highway(2 * d, 3, rate) for _ in range(2) for rate in (1, 3, 9, 27)]
  stack += [b.highway(2 * d, 3, 1) for _ in range(2)]
  stack += [b.highway(2 * d, 1, 1) for _ in range(2)]
  return layers.Stack(stack, name="text_encoder")


def audio_encoder(config: DCTTSConfig):
  """AudioEnc: three causal 1x1 convolutions (F → d), 10 causal highway convolutions."""
  b, d = _Builder(config), config.d
  stack = [b.conv(config.n_mels, d, causal=True, activation="relu"),
           b.conv(d, d, causal=True, activation="relu"), b.conv(d, d, causal=True)]
  stack += [b.highway(d, 3, rate, causal=True) for _ in range(2) for rate in (1, 3, 9, 27)]
  stack += [b.highway(d, 3, 3, causal=True) for _ in range(2)]
  return layers.Stack(stack, name="audio_encoder")


def audio_decoder(config: DCTTSConfig):
  """AudioDec: [R, Q] (2d) → d, 6 causal highway convolutions, three ReLU 1x1 convolutions,
  and the 1x1 projection to F mel logits (no norm or dropout on it, unlike Kyubyong's, so
  the logits are not forced to zero mean per frame)."""
  b, d = _Builder(config), config.d
  stack = [b.conv(2 * d, d, causal=True)]
  stack += [b.highway(d, 3, rate, causal=True) for rate in (1, 3, 9, 27)]
  stack += [b.highway(d, 3, 1, causal=True) for _ in range(2)]
  stack += [b.conv(d, d, causal=True, activation="relu") for _ in range(3)]
  stack += [b.conv(d, config.n_mels, causal=True, output=True)]
  return layers.Stack(stack, name="audio_decoder")


class Text2Mel(keras.Model):
  """Text → coarse normalised mels; weights are created on construction.

  Args:
    config: a `DCTTSConfig`.
  """

  def __init__(self, config: DCTTSConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.embedding = keras.layers.Embedding(config.n_symbols, config.embedding_dim,
                                            name="embedding")
    self.text_encoder = text_encoder(config)
    self.audio_encoder = audio_encoder(config)
    self.audio_decoder = audio_decoder(config)
    self.embedding.build((None, None))
    for stack in (self.text_encoder, self.audio_encoder, self.audio_decoder):
      stack.build()
    self.built = True

  @property
  def scale(self):
    return 1.0 / math.sqrt(self.config.d)

  def encode_text(self, text_ids, text_lengths, training=False, seed=None):
    """→ (keys, values `[batch, N, d]`, token mask `[batch, N]` bool); padding encodes to 0."""
    mask = tf.sequence_mask(text_lengths, tf.shape(text_ids)[1])
    mask3 = tf.expand_dims(tf.cast(mask, tf.float32), -1)
    x = self.embedding(text_ids)
    seed = None if seed is None else layers.fold_seed(seed, _SALT_TEXT)
    x = self.text_encoder(x, frame_mask=mask3, training=training, seed=seed) * mask3
    keys, values = tf.split(x, 2, axis=-1)
    return keys, values, mask

  def encode_audio(self, inputs, training=False, seed=None):
    """Causal queries `[batch, T, d]` of mel inputs `[batch, T, F]` (frame t sees <= t)."""
    seed = None if seed is None else layers.fold_seed(seed, _SALT_AUDIO_ENC)
    return self.audio_encoder(inputs, training=training, seed=seed)

  def decode(self, context, queries, training=False, seed=None):
    """Causal mel logits `[batch, T, F]` of [R, Q]."""
    seed = None if seed is None else layers.fold_seed(seed, _SALT_AUDIO_DEC)
    return self.audio_decoder(tf.concat([context, queries], -1), training=training, seed=seed)

  def shifted(self, coarse_mels):
    """The audio encoder's input: mels delayed by `chunk_size` frames (zeros first)."""
    chunk = self.config.chunk_size
    return tf.pad(coarse_mels, [[0, 0], [chunk, 0], [0, 0]])[:, :tf.shape(coarse_mels)[1]]

  def teacher_forced(self, text_ids, text_lengths, coarse_mels, training=False, seed=None):
    """The training pass (one parallel pass: every frame reads the true earlier frames).

    Args:
      text_ids: `[batch, N]` int ids; text_lengths: `[batch]`.
      coarse_mels: `[batch, T, F]` normalised coarse mels (`mel_targets`).
      training: dropout and batch statistics.
      seed: int32 `[2]` stateless dropout seed (training), or None.

    Returns:
      dict: "logits" and "mel" (sigmoid) `[batch, T, F]`, "alignments" `[batch, T, N]`.
    """
    coarse_mels = tf.ensure_shape(coarse_mels, [None, None, self.config.n_mels])
    keys, values, mask = self.encode_text(text_ids, text_lengths, training, seed)
    queries = self.encode_audio(self.shifted(coarse_mels), training, seed)
    scores = tf.einsum("btd,bnd->btn", queries, keys) * self.scale
    scores = tf.where(tf.expand_dims(mask, 1), scores, _BLOCKED)
    alignments = tf.nn.softmax(scores, axis=-1)
    context = tf.einsum("btn,bnd->btd", alignments, values)
    logits = self.decode(context, queries, training, seed)
    return {"logits": logits, "mel": tf.sigmoid(logits), "alignments": alignments}

  def infer(self, text_ids, text_lengths, max_decoder_steps=None):
    """Autoregressive decoding of a batch, `chunk_size` coarse frames per loop step.

    One `tf.while_loop` whose variables all keep their shapes: the decoded frames and their
    attention live in `[batch, max_decoder_steps * chunk_size, ...]` buffers, written by
    `tf.where` over the chunk's positions (TFLite converts the loop to one builtin WHILE).
    Each step runs the causal audio encoder over the frames so far (frame t reads frame
    t - chunk_size), attends frame by frame, and decodes the chunk.

    Forcibly incremental attention (Kyubyong's synthesize.py): frame t may attend only
    positions [p, p + attention_window) of its text, p being frame t-1's attended position
    (its attention's argmax; 0 before the first frame). An item ends at the frame where
    `end_frames` of its frames have attended its last token; the loop ends when every item
    ended or after `max_decoder_steps` steps. Frames after an item's end are zeroed, and no
    item reads another's, so an item decodes alone as in any batch.

    Returns:
      dict: "mel" `[batch, T, F]` normalised coarse mels (0 past each length),
      "lengths" `[batch]` int32 coarse frames, "alignments" `[batch, T, N]` (0 past each
      length), "positions" `[batch, T]` int32 attended positions (0 past each length);
      `T` is the longest item's length.
    """
    config = self.config
    chunk, window = config.chunk_size, config.attention_window
    if max_decoder_steps is None:
      max_decoder_steps = config.max_decoder_steps
    max_steps = tf.cast(max_decoder_steps, tf.int32)
    text_lengths = tf.cast(text_lengths, tf.int32)
    keys, values, mask = self.encode_text(text_ids, text_lengths)
    batch, tokens = tf.shape(keys)[0], tf.shape(keys)[1]
    capacity = max_steps * chunk
    token_index = tf.expand_dims(tf.range(tokens), 0)
    last_token = tf.maximum(text_lengths - 1, 0)
    frame_index = tf.reshape(tf.range(capacity), tf.stack([1, capacity, 1]))

    def write(buffer, start, values_chunk):
      """`buffer` with frames [start, start + chunk) replaced by `values_chunk`."""
      padded = tf.pad(values_chunk, [[0, 0], [start, capacity - start - chunk], [0, 0]])
      inside = tf.logical_and(frame_index >= start, frame_index < start + chunk)
      return tf.where(inside, padded, buffer)

    def body(step, position, at_end, done, lengths, mels, weights, positions):
      start = step * chunk
      end = start + chunk
      queries = self.encode_audio(self.shifted(mels[:, :end]))
      step_weights, step_positions = [], []
      for j in range(chunk):  # Frames of a chunk attend in order (each window follows the last).
        query = tf.gather(queries, start + j, axis=1)
        scores = tf.einsum("bd,bnd->bn", query, keys) * self.scale
        first = tf.expand_dims(position, 1)
        allowed = tf.logical_and(tf.logical_and(token_index >= first,
                                                token_index < first + window), mask)
        scores = tf.where(allowed, scores, _BLOCKED)
        step_weights.append(tf.nn.softmax(scores, axis=-1))
        position = tf.argmax(scores, axis=-1, output_type=tf.int32)
        step_positions.append(position)
        lengths = tf.where(done, lengths, start + j + 1)
        at_end = at_end + tf.cast(tf.logical_and(position >= last_token,
                                                 tf.logical_not(done)), tf.int32)
        done = tf.logical_or(done, at_end >= config.end_frames)
      weights = write(weights, start, tf.stack(step_weights, axis=1))
      positions = write(positions, start, tf.expand_dims(tf.stack(step_positions, axis=1), -1))
      context = tf.einsum("btn,bnd->btd", weights[:, :end], values)
      logits = self.decode(context, queries)
      mels = write(mels, start, tf.sigmoid(logits[:, start:end]))
      return step + 1, position, at_end, done, lengths, mels, weights, positions

    zeros_int = tf.zeros(tf.stack([batch]), tf.int32)
    initial = (tf.constant(0), zeros_int, zeros_int, tf.zeros(tf.stack([batch]), tf.bool),
               zeros_int, tf.zeros(tf.stack([batch, capacity, config.n_mels])),
               tf.zeros(tf.stack([batch, capacity, tokens])),
               tf.zeros(tf.stack([batch, capacity, 1]), tf.int32))
    def cond(step, position, at_end, done, *unused):
      del position, at_end, unused
      return tf.logical_and(step < max_steps, tf.logical_not(tf.reduce_all(done)))

    _, _, _, _, lengths, mels, weights, positions = tf.while_loop(cond, body, initial)
    frames = tf.reduce_max(lengths)
    frame_mask = sequence_mask3(lengths, frames)
    return {"mel": mels[:, :frames] * frame_mask, "lengths": lengths,
            "alignments": weights[:, :frames] * frame_mask,
            "positions": positions[:, :frames, 0] * tf.cast(frame_mask[..., 0], tf.int32)}


class SSRN(keras.Model):
  """Coarse normalised mels `[batch, T, F]` → normalised magnitudes `[batch, T * r, n_fft/2+1]`.

  Kyubyong's ssrn: 1x1 conv F → c, 2 highway convolutions; log2(r) times an upsampling
  (kernel 2, stride 2: the paper's; Kyubyong uses kernel 3) and 2 highway convolutions; 1x1
  conv to 2c, 2 highway convolutions; 1x1 conv to the bins, two ReLU 1x1 convolutions and the
  output projection (no norm or dropout on it). Centred, masked to each item's length.
  """

  def __init__(self, config: DCTTSConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    b, c, bins = _Builder(config), config.c, config.n_linear
    self.head = layers.Stack([b.conv(config.n_mels, c)]
                             + [b.highway(c, 3, rate) for rate in (1, 3)], name="head")
    self.upsamplers = []
    self.blocks = []
    for index in range(int(round(math.log2(config.reduction)))):
      self.upsamplers.append(b.upsample(c, c))
      self.blocks.append(layers.Stack([b.highway(c, 3, rate) for rate in (1, 3)],
                                      name=f"block_{index}"))
    self.tail = layers.Stack(
        [b.conv(c, 2 * c)] + [b.highway(2 * c, 3, 1) for _ in range(2)]
        + [b.conv(2 * c, bins)] + [b.conv(bins, bins, activation="relu") for _ in range(2)]
        + [b.conv(bins, bins, output=True)], name="tail")
    for layer in [self.head, self.tail] + self.upsamplers + self.blocks:
      layer.build()
    self.built = True

  def call(self, coarse_mels, lengths, training=False, seed=None):
    """Returns the magnitude logits `[batch, T * r, n_fft/2 + 1]` (sigmoid: magnitudes).

    Args:
      coarse_mels: `[batch, T, F]` normalised coarse mels.
      lengths: `[batch]` coarse frames per item.
    """
    coarse_mels = tf.ensure_shape(coarse_mels, [None, None, self.config.n_mels])
    seed = None if seed is None else layers.fold_seed(seed, _SALT_SSRN)
    lengths = tf.cast(lengths, tf.int32)
    frames = tf.shape(coarse_mels)[1]
    mask = sequence_mask3(lengths, frames)
    x = self.head(coarse_mels, frame_mask=mask, training=training, seed=seed)
    for upsample, block in zip(self.upsamplers, self.blocks):
      x = upsample(x, frame_mask=mask, training=training, seed=seed)
      lengths, frames = 2 * lengths, 2 * frames
      mask = sequence_mask3(lengths, frames)
      x = block(x, frame_mask=mask, training=training, seed=seed)
    return self.tail(x, frame_mask=mask, training=training, seed=seed)


def durations_from_positions(positions, lengths, text_lengths, tokens, reduction):
  """Full frames per token: each coarse frame counts r frames for the token it attended.

  Args:
    positions: `[batch, T]` int32 attended token per coarse frame.
    lengths: `[batch]` coarse frames; text_lengths: `[batch]` tokens.
    tokens: int32 scalar N, the padded text length.
    reduction: r.

  Returns:
    `[batch, N]` int32, 0 past each text length; rows sum to `lengths * r`.
  """
  frame_mask = tf.sequence_mask(lengths, tf.shape(positions)[1], tf.int32)
  counts = tf.reduce_sum(tf.one_hot(positions, tokens, dtype=tf.int32)
                         * tf.expand_dims(frame_mask, -1), axis=1)
  return counts * reduction * tf.sequence_mask(text_lengths, tokens, tf.int32)

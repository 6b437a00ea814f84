"""FastPitch 1.1: FFT encoder, duration / pitch / energy predictors, learned alignment, FFT decoder.

Layouts (channels-last; the reference's torch layouts in brackets):
  text_ids `[batch, tokens]` int, text_lengths `[batch]` int,
  mel `[batch, frames, n_mels]` ([batch, n_mels, frames]), mel_lengths `[batch]` int,
  pitch / energy per frame `[batch, frames]` (pitch in Hz, 0 = unvoiced),
  per-token values `[batch, tokens]` ([batch, 1, tokens]),
  alignments `[batch, frames, tokens]` ([batch, 1, frames, tokens]).

Training (`FastPitch.forward`) aligns text and mel with the alignment encoder, takes hard
durations from monotonic alignment search (`tfspeech.ops.maximum_path`, inside the traced
step), averages pitch and energy per token over them, and teacher-forces the decoder.
Inference (`FastPitch.infer`) uses the predictors; it is loop-free.

Under a mixed-precision policy (training's `mixed_bfloat16` / `mixed_float16`, serving's
bfloat16) the layers compute in the low precision and everything that is not a layer stays
float32: the predictions, the alignment's normalisation with the prior, MAS, the per-token
targets, the mel output and so every loss.
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from tfspeech.models.fastpitch.layers import (AlignmentEncoder, FFTransformer,
                                              TemporalPredictor, ValueEmbedding,
                                              alignment_log_prob)
from tfspeech.ops import alignment as alignment_ops
from tfspeech.ops import winograd as winograd_ops
from tfspeech.ops.pitch import average_pitch_per_token
from tfspeech.ops.sequence import sequence_mask


def normalize_pitch(pitch_hz, mean, std):
  """(Hz - mean) / std where voiced, 0 where the value is 0 (the reference `normalize_pitch`)."""
  return tf.where(tf.not_equal(pitch_hz, 0.0), (pitch_hz - mean) / std, 0.0)


def frame_energy(mel, mel_lengths):
  """Per-frame energy `[batch, frames]`: the L2 norm of each log-mel frame, 0 past each length.

  The reference's (its data loader's `torch.norm(mel, dim=0)` on the log-mel). The prepared
  records' `energy` is the norm of the linear STFT magnitude instead, a different scale the
  reference's training and its published checkpoints never saw, so the task derives energy
  from `mel` (`[batch, frames, n_mels]`) and leaves the record's `energy` unread.
  """
  return tf.norm(mel, axis=-1) * sequence_mask(mel_lengths, tf.shape(mel)[1])


def token_targets(pitch, energy, durations, pitch_mean, pitch_std):
  """Per-token pitch and energy targets from per-frame values and integer durations.

  Pitch: mean over the voiced frames of each token's span, normalised with the corpus
  statistics (the reference normalises frames first, then averages: the same on voiced
  frames); tokens without a voiced frame get 0. Energy: mean over the span's non-zero
  frames, then log(1 + e), as the reference.

  Returns:
    (pitch `[batch, tokens]`, energy `[batch, tokens]` or None).
  """
  pitch_tokens = normalize_pitch(average_pitch_per_token(pitch, durations), pitch_mean,
                                 pitch_std)
  energy_tokens = None
  if energy is not None:
    energy_tokens = tf.math.log(1.0 + average_pitch_per_token(energy, durations))
  return pitch_tokens, energy_tokens


def batch_prior(text_lengths, mel_lengths, tokens, frames):
  """`tfspeech.ops.beta_binomial_prior` padded to `[batch, frames, tokens]`.

  Its size follows the longest item, a data-dependent shape XLA cannot compile, so the
  task computes it in the input pipeline (as the reference's data loader does).
  """
  prior = alignment_ops.beta_binomial_prior(text_lengths, mel_lengths)
  return tf.pad(prior, [[0, 0], [0, frames - tf.shape(prior)[1]],
                        [0, tokens - tf.shape(prior)[2]]])


class FastPitch(keras.Model):
  """FastPitch 1.1 acoustic model; weights are created on construction.

  Args:
    config: a `FastPitchConfig` (see `fastpitch_presets`).
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = c = config
    d_model = c.symbols_embedding_dim
    self.encoder = FFTransformer(
        c.in_fft_n_layers, c.in_fft_n_heads, d_model, c.in_fft_d_head,
        c.in_fft_conv1d_filter_size, c.in_fft_conv1d_kernel_size, c.p_in_fft_dropout,
        c.p_in_fft_dropatt, c.p_in_fft_dropemb, n_embed=c.n_symbols, name="encoder")
    if c.n_speakers > 1:
      self.speaker_emb = keras.layers.Embedding(
          c.n_speakers, d_model, embeddings_initializer=keras.initializers.RandomNormal(
              stddev=1.0), name="speaker_emb")
    self.duration_predictor = TemporalPredictor(
        d_model, c.dur_predictor_filter_size, c.dur_predictor_kernel_size,
        c.p_dur_predictor_dropout, c.dur_predictor_n_layers, name="duration_predictor")
    self.pitch_predictor = TemporalPredictor(
        d_model, c.pitch_predictor_filter_size, c.pitch_predictor_kernel_size,
        c.p_pitch_predictor_dropout, c.pitch_predictor_n_layers, name="pitch_predictor")
    self.pitch_emb = ValueEmbedding(d_model, c.pitch_embedding_kernel_size, name="pitch_emb")
    if c.energy_conditioning:
      self.energy_predictor = TemporalPredictor(
          d_model, c.energy_predictor_filter_size, c.energy_predictor_kernel_size,
          c.p_energy_predictor_dropout, c.energy_predictor_n_layers, name="energy_predictor")
      self.energy_emb = ValueEmbedding(d_model, c.energy_embedding_kernel_size,
                                       name="energy_emb")
    self.decoder = FFTransformer(
        c.out_fft_n_layers, c.out_fft_n_heads, d_model, c.out_fft_d_head,
        c.out_fft_conv1d_filter_size, c.out_fft_conv1d_kernel_size, c.p_out_fft_dropout,
        c.p_out_fft_dropatt, c.p_out_fft_dropemb, name="decoder")
    self.proj = keras.layers.Dense(c.n_mel_channels, name="proj")
    self.attention = AlignmentEncoder(c.n_mel_channels, d_model, c.n_att_channels,
                                      name="attention")
    self.build()

  def build(self, input_shape=None):
    c = self.config
    layers = [self.encoder, self.duration_predictor, self.pitch_predictor, self.pitch_emb,
              self.decoder, self.attention]
    if c.energy_conditioning:
      layers += [self.energy_predictor, self.energy_emb]
    for layer in layers:
      layer.build(None)
    if c.n_speakers > 1:
      self.speaker_emb.build((None,))
    self.proj.build((None, None, c.symbols_embedding_dim))
    self.built = True

  # ------------------------------------------------------------------ shared
  def _check_inputs(self, text_ids, text_lengths, speaker):
    text_ids = tf.convert_to_tensor(text_ids)
    text_lengths = tf.convert_to_tensor(text_lengths)
    if text_ids.shape.rank != 2 or not text_ids.dtype.is_integer:
      raise ValueError(f"FastPitch: text_ids must be an int [batch, tokens] tensor, got "
                       f"{text_ids.dtype.name} of shape {text_ids.shape}.")
    if text_lengths.shape.rank != 1 or not text_lengths.dtype.is_integer:
      raise ValueError(f"FastPitch: text_lengths must be an int [batch] tensor, got "
                       f"{text_lengths.dtype.name} of shape {text_lengths.shape}.")
    if self.config.n_speakers > 1 and speaker is None:
      raise ValueError(f"FastPitch: this model has {self.config.n_speakers} speakers; pass "
                       "speaker=[batch] int ids.")
    return tf.cast(text_ids, tf.int32), tf.cast(text_lengths, tf.int32)

  def encode(self, text_ids, text_lengths, speaker=None, training=False, winograd=False):
    """Encoder and the duration and pitch predictors.

    Args:
      winograd: transformed kernels (`winograd_kernels`) for the encoder's feed-forward
        convolutions by `tfspeech.ops.winograd`. In float32 a bool leaves them direct
        (transformed at every call, F(4, 3) costs more than it saves over one sentence's
        ~100 tokens); in bfloat16, which keeps the convolutions, True runs them over the
        batch's packed real steps.

    Returns:
      (enc_out `[batch, tokens, d_model]`, text_mask `[batch, tokens, 1]` float,
       log_durations `[batch, tokens]`, pitch `[batch, tokens]` normalised), 0 on padding.
    """
    text_ids, text_lengths = self._check_inputs(text_ids, text_lengths, speaker)
    text_mask = tf.expand_dims(sequence_mask(text_lengths, tf.shape(text_ids)[1]), 2)
    conditioning = None
    if self.config.n_speakers > 1:
      conditioning = (tf.expand_dims(self.speaker_emb(tf.cast(speaker, tf.int32)), 1)
                      * self.config.speaker_emb_weight)
    if not isinstance(winograd, Mapping) and self.compute_dtype == "float32":
      winograd = False
    enc_out = self.encoder(text_ids, text_mask, conditioning, training=training,
                           winograd=winograd)
    # The predictions leave the network as float32 under any compute dtype: durations are
    # rounded to frames, and the controls (pace, pitch, energy) act on them in float32.
    log_durations = tf.cast(self.duration_predictor(enc_out, text_mask, training=training),
                            tf.float32)
    pitch = tf.cast(self.pitch_predictor(enc_out, text_mask, training=training), tf.float32)
    return enc_out, text_mask, log_durations, pitch

  def decode(self, enc_out, durations, max_length=None, training=False, winograd=False):
    """Length regulation, the decoder and the mel projection.

    Args:
      enc_out: `[batch, tokens, d_model]` conditioned encodings.
      durations: `[batch, tokens]` int frames per token.
      max_length: optional cap on frames (the target mel's length in training).
      winograd: the decoder's feed-forward convolutions by `tfspeech.ops.winograd` where
        that pays.

    Returns:
      (mel `[batch, frames, n_mels]` 0 past each length, mel_lengths `[batch]` int32);
      at least one (all-zero) frame when every duration is 0.
    """
    durations = tf.maximum(tf.cast(durations, tf.int32), 0)
    mel_lengths = tf.reduce_sum(durations, axis=1)
    frames = tf.reduce_max(tf.concat([mel_lengths, [0]], 0))
    if max_length is not None:
      frames = tf.minimum(frames, tf.cast(max_length, tf.int32))
      mel_lengths = tf.minimum(mel_lengths, tf.cast(max_length, tf.int32))
    # At least one (masked) frame: zero predicted frames (short input, high pace) would hand
    # the decoder's convs an empty time axis, which they reject.
    frames = tf.maximum(frames, 1)
    # Length regulation as the hard path's matmul (exact: one 1 per frame row), not
    # `length_regulate`'s batched gather, which the TFJS wasm backend computes wrongly for
    # every item after the first (GatherV2 with batch_dims=1).
    path = alignment_ops.durations_to_path(durations, frames)  # [batch, tokens, frames]
    regulated = tf.linalg.matmul(tf.cast(path, enc_out.dtype), enc_out, transpose_a=True)
    frame_mask = tf.expand_dims(sequence_mask(mel_lengths, tf.shape(regulated)[1]), 2)
    decoded = self.decoder(regulated, frame_mask, training=training, winograd=winograd)
    mel = self.proj(decoded)
    return mel * tf.cast(frame_mask, mel.dtype), mel_lengths

  # ------------------------------------------------------------------ training
  def align(self, text_ids, text_lengths, mel, mel_lengths, speaker=None, prior=None):
    """Soft and hard alignments of mel frames to tokens (no encoder needed beyond the embedding).

    Args:
      prior: optional `[batch, frames, tokens]` beta-binomial prior, e.g. computed in the
        input pipeline (`batch_prior`) so the traced step has no data-dependent shapes
        (XLA); None computes it here.

    Returns:
      dict with "soft", "log_prob", "hard" (`[batch, frames, tokens]`) and "durations"
      (`[batch, tokens]` int32: frames per token, summing to each mel length when it is
      at least the token count).
    """
    text_ids, text_lengths = self._check_inputs(text_ids, text_lengths, speaker)
    mel_lengths = tf.cast(mel_lengths, tf.int32)
    tokens, frames = tf.shape(text_ids)[1], tf.shape(mel)[1]
    text_mask = tf.expand_dims(sequence_mask(text_lengths, tokens), 2)
    if prior is None:
      prior = batch_prior(text_lengths, mel_lengths, tokens, frames)
    scores = self.attention(mel, self.encoder.embed(text_ids, text_mask), text_mask)
    soft, log_prob = alignment_log_prob(scores, text_mask, prior)
    # MAS on the log-probabilities: log(soft) differs from them by a per-frame constant,
    # which moves no path (every path takes one cell per frame), and has no log(0).
    hard = tf.transpose(alignment_ops.maximum_path(
        tf.transpose(log_prob, [0, 2, 1]), text_lengths, mel_lengths), [0, 2, 1])
    durations = tf.cast(tf.reduce_sum(hard, axis=1), tf.int32)
    return {"soft": soft, "log_prob": log_prob, "hard": hard, "durations": durations}

  def forward(self, text_ids, text_lengths, mel, mel_lengths, pitch, energy, pitch_mean,
              pitch_std, speaker=None, prior=None, training=False, winograd=None):
    """The training pass (reference `FastPitch.forward` with ground-truth pitch).

    Args:
      text_ids, text_lengths, mel, mel_lengths: the batch.
      pitch: `[batch, frames]` Hz, 0 = unvoiced.
      energy: `[batch, frames]` per-frame energy (ignored without energy conditioning).
      pitch_mean, pitch_std: corpus pitch statistics (Hz).
      prior: optional `[batch, frames, tokens]` alignment prior (see `align`).
      winograd: the decoder's feed-forward convolutions by `tfspeech.ops.winograd` where
        that pays; None: on CPUs (`winograd.preferred()`).

    Returns:
      dict: "mel" `[batch, frames, n_mels]`, "mel_lengths", "log_durations",
      "pitch_predicted", "pitch_target", "energy_predicted", "energy_target" (None without
      energy conditioning), "text_mask" `[batch, tokens]`, and `align`'s entries.
    """
    if winograd is None:
      winograd = winograd_ops.preferred()
    enc_out, text_mask, log_durations, pitch_predicted = self.encode(
        text_ids, text_lengths, speaker, training=training)
    aligned = self.align(text_ids, text_lengths, mel, mel_lengths, speaker, prior)
    durations = aligned["durations"]
    use_energy = self.config.energy_conditioning
    pitch_target, energy_target = token_targets(
        pitch, energy if use_energy else None, durations, pitch_mean, pitch_std)
    enc_out = enc_out + self.pitch_emb(pitch_target, text_mask)
    energy_predicted = None
    if use_energy:
      energy_predicted = tf.cast(
          self.energy_predictor(enc_out, text_mask, training=training), tf.float32)
      enc_out = enc_out + self.energy_emb(energy_target, text_mask)
    # The hard path is the length regulation of its own durations (monotonic, one token per
    # frame); as a matmul it keeps the target's frame count, a static shape under XLA.
    regulated = tf.linalg.matmul(tf.cast(aligned["hard"], enc_out.dtype), enc_out)
    out_lengths = tf.reduce_sum(durations, axis=1)
    frame_mask = tf.expand_dims(sequence_mask(out_lengths, tf.shape(mel)[1]), 2)
    decoded = self.decoder(regulated, frame_mask, training=training, winograd=winograd)
    # The losses see float32 under any compute dtype (mixed-precision training).
    mel_out = tf.cast(self.proj(decoded), tf.float32) * frame_mask
    return dict(aligned, mel=mel_out, mel_lengths=out_lengths, log_durations=log_durations,
                pitch_predicted=pitch_predicted, pitch_target=pitch_target,
                energy_predicted=energy_predicted, energy_target=energy_target,
                text_mask=text_mask[..., 0])

  # ------------------------------------------------------------------ inference
  def winograd_kernels(self):
    """{kernel path: `[6, in, out]`} transformed feed-forward kernels of the encoder and the
    decoder where F(4, 3) pays, for `infer(..., winograd=...)`: computed once instead of at
    every call (twice the kernels' size in memory)."""
    return {**self.encoder.winograd_kernels(), **self.decoder.winograd_kernels()}

  def predicted_durations(self, log_durations, text_mask):
    """Frames per token as floats: clip(exp(log d) - 1, 0, max_duration), 0 on padding."""
    return tf.clip_by_value(tf.exp(log_durations) - 1.0, 0.0,
                            self.config.max_duration) * text_mask[..., 0]

  def infer(self, text_ids, text_lengths, speaker=None, pace=1.0, pitch_transform=None,
            energy_transform=None, durations=None, pitch=None, winograd=False):
    """Synthesis from the predictors (reference `FastPitch.infer`); loop-free.

    Args:
      pace: speaking rate (> 1 faster): durations are divided by it and rounded half up.
      pitch_transform: optional fn(pitch `[batch, tokens]` normalised, mask) -> pitch.
      energy_transform: optional fn(energy `[batch, tokens]` log(1 + e), mask) -> energy.
      durations: optional `[batch, tokens]` int frames per token (teacher forcing).
      pitch: optional `[batch, tokens]` normalised pitch to use instead of the predicted.
      winograd: the decoder's feed-forward convolutions by `tfspeech.ops.winograd` where
        that pays (True), or every block's whose transformed kernels it maps
        (`winograd_kernels`; in-process synthesis on CPUs). Exported graphs keep the
        convolutions, which their runtimes run well and store once.

    Returns:
      dict: "mel" `[batch, frames, n_mels]` 0 past each length, "mel_lengths" `[batch]`,
      "durations" `[batch, tokens]` int32, "pitch" and "energy" `[batch, tokens]` used.
    """
    enc_out, text_mask, log_durations, pitch_predicted = self.encode(
        text_ids, text_lengths, speaker, winograd=winograd)
    if pitch is None:
      pitch = pitch_predicted
      if pitch_transform is not None:
        pitch = pitch_transform(pitch, text_mask[..., 0])
    pitch = pitch * text_mask[..., 0]
    enc_out = enc_out + self.pitch_emb(pitch, text_mask)
    energy = None
    if self.config.energy_conditioning:
      energy = tf.cast(self.energy_predictor(enc_out, text_mask), tf.float32)
      if energy_transform is not None:
        energy = energy_transform(energy, text_mask[..., 0]) * text_mask[..., 0]
      enc_out = enc_out + self.energy_emb(energy, text_mask)
    if durations is None:
      predicted = self.predicted_durations(log_durations, text_mask)
      pace = tf.cast(pace, tf.float32)
      # FastPitch's rounding, int(d / pace + 0.5), done here so the returned
      # durations are exactly the frames each token gets.
      durations = tf.cast(predicted / pace + 0.5, tf.int32)
    durations = tf.cast(durations, tf.int32) * tf.cast(text_mask[..., 0], tf.int32)
    mel, mel_lengths = self.decode(enc_out, durations, winograd=winograd)
    return {"mel": mel, "mel_lengths": mel_lengths, "durations": durations, "pitch": pitch,
            "energy": energy}

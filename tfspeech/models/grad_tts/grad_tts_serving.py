"""Grad-TTS behind the `tfspeech.models.serving.AcousticModel` interface.

Controls: `n_timesteps` (static: the reverse diffusion is unrolled into that many copies of
the decoder step, so the graph has no loop for TFLite builtins or TFJS `execute`),
`temperature` (divides the terminal noise) and `length_scale` (multiplies durations).
The terminal noise is an input (`noise_channels = n_feats`), so TF, TFLite and TFJS give
the same mel for the same noise and an app chooses its own random source.
"""

import tensorflow as tf

from tfspeech.models import serving
from tfspeech.ops.sequence import sequence_mask

CONTROLS = (
    serving.Control("n_timesteps", "int32", 10, "reverse-diffusion steps (more: cleaner, "
                    "slower)", static=True, minimum=1),
    serving.Control("temperature", "float32", 1.5, "divides the starting noise (higher: "
                    "smoother)", exclusive_minimum=0.0),
    serving.Control("length_scale", "float32", 1.0, "multiplies durations (> 1 speaks "
                    "slower)", exclusive_minimum=0.0),
)


class GradTTSServing(serving.AcousticModel):
  """A trained `GradTTS` as an acoustic model (its weights are used, not copied).

  Args:
    model: a `GradTTS`.
    unroll: unroll the reverse diffusion into `n_timesteps` decoder copies (loop-free, for
      export); False runs it as a `tf.while_loop` (`in_process()`: one small graph, so
      hundreds of steps trace as fast as ten).
  """
  controls = CONTROLS

  def __init__(self, model, unroll: bool = True):
    self.model = model
    self.unroll = unroll
    self._in_process = self if not unroll else None
    self.n_mels = model.config.n_feats
    self.noise_channels = model.config.n_feats
    self.num_speakers = model.config.n_spks

  @property
  def weights(self):
    return list(self.model.weights)

  def in_process(self):
    """The same model with the diffusion as a loop (see `serving.AcousticModel.in_process`)."""
    if self._in_process is None:
      self._in_process = GradTTSServing(self.model, unroll=False)
    return self._in_process

  def _speaker(self, speaker):
    return speaker if self.num_speakers > 1 else None

  def frames_bound(self, text_ids, text_lengths, speaker=None, length_scale=1.0, **unused):
    """An int32 scalar >= the frames `synthesize` needs noise for."""
    del unused
    _, log_durations, text_mask, _ = self.model.encode(text_ids, text_lengths,
                                                       self._speaker(speaker))
    durations = tf.math.ceil(tf.exp(log_durations) * text_mask) * length_scale
    longest = tf.math.ceil(tf.reduce_max(tf.reduce_sum(durations, axis=1)))
    # synthesize keeps >= 1 frame and rounds up to the U-Net multiple.
    return tf.cast(longest, tf.int32) + 2 * self.model.config.frames_multiple

  def synthesize(self, text_ids, text_lengths, noise, speaker=None, n_timesteps=10,
                 temperature=1.5, length_scale=1.0):
    """Unrolled synthesis; `noise` `[batch, >=1, n_feats]` is repeated along time as needed."""
    frames = self.frames_bound(text_ids, text_lengths, speaker, length_scale=length_scale)
    out = self.model.synthesize(
        text_ids, text_lengths, n_timesteps=int(n_timesteps), temperature=temperature,
        length_scale=length_scale, speaker=self._speaker(speaker),
        noise=serving.cyclic_frames(noise, frames), unroll=self.unroll)
    # The 0/1 path is exact: frames per token, 0 for padding tokens.
    durations = tf.cast(tf.reduce_sum(out.alignment, axis=2), tf.int32)
    return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths, "durations": durations}

  def ground_truth_aligned(self, text_ids, text_lengths, mel, mel_lengths, noise,
                           speaker=None, n_timesteps=10, temperature=1.5, length_scale=1.0):
    """Teacher forcing: MAS against the true mel, then the decoder on the aligned prior.

    `noise` must hold `compatible_frames(frames of mel)` frames (it is repeated otherwise).
    Returns `[batch, frames, n_feats]` mels (0 past each length).
    """
    del length_scale  # The true mel fixes the durations.
    model = self.model
    mu_x, _, _, speaker_embedding = model.encode(text_ids, text_lengths,
                                                 self._speaker(speaker))
    path = model.align(mu_x, text_lengths, mel, mel_lengths)
    frames = model.compatible_frames(tf.shape(mel)[1])
    path = tf.pad(path, [[0, 0], [0, 0], [0, frames - tf.shape(mel)[1]]])
    mask = sequence_mask(mel_lengths, frames)
    mu_y = tf.linalg.matmul(path, mu_x, transpose_a=True)
    z = mu_y + serving.cyclic_frames(noise, frames) / temperature
    decoded = model.decoder.reverse_diffusion(z, mask, mu_y, int(n_timesteps),
                                              speaker_embedding=speaker_embedding,
                                              unroll=self.unroll)
    return decoded[:, :tf.shape(mel)[1]]

  def gta_noise_frames(self, frames):
    """Noise frames `ground_truth_aligned` uses for a mel of `frames` frames."""
    return self.model.compatible_frames(frames)

  def alignment_prior(self) -> "GradTTSPrior":
    """The training step's prior: log N(mel; mu, I) for the encoder's means (tfspeech-align)."""
    return GradTTSPrior(self)


class GradTTSPrior:
  """Grad-TTS's alignment prior: log N(mel_j; mu_i, I) for encoder means mu (as in training).

  Args:
    acoustic: a `GradTTSServing` (its `model` is a `GradTTS`).
  """

  def __init__(self, acoustic):
    self.model = acoustic.model
    self.num_speakers = acoustic.num_speakers
    self.n_mels = self.model.config.n_feats

  def log_likelihood(self, text_ids, text_lengths, mel, speaker=None):
    """`[batch, tokens, frames]` float32 for `[batch, frames, n_mels]` log-mels."""
    mu_x, _, _, _ = self.model.encode(text_ids, text_lengths,
                                      speaker if self.num_speakers > 1 else None)
    return self.model._log_prior(mu_x, mel)  # pylint: disable=protected-access

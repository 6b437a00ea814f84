"""FastPitch behind the `tfspeech.models.serving.AcousticModel` interface.

Controls (all dynamic scalars, so one exported graph serves every value):
  pace          durations are divided by it (> 1 speaks faster), rounded half up.
  pitch_shift   Hz added to the predicted pitch contour (0: unchanged).
  pitch_scale   multiplies the predicted pitch in Hz (1: unchanged; 0 flattens it to
                `pitch_shift` Hz, i.e. a monotone).
  energy_scale  multiplies the predicted energy (the linear per-token mean, before the
                model's log(1 + e)); 1: unchanged.
The pitch controls act in Hz through the training corpus's statistics (recorded in the
run's data_info as `pitch_stats`): Hz = normalised x std + mean, as the reference's
`pitch_transform` hooks. FastPitch draws no noise (`noise_channels = None`).
"""

import tensorflow as tf

from tfspeech.models import serving
from tfspeech.ops import winograd as winograd_ops

CONTROLS = (
    serving.Control("pace", "float32", 1.0, "speaking rate: durations are divided by it "
                    "(> 1 speaks faster)", exclusive_minimum=0.0),
    serving.Control("pitch_shift", "float32", 0.0, "Hz added to the predicted pitch"),
    serving.Control("pitch_scale", "float32", 1.0, "multiplies the predicted pitch in Hz "
                    "(0: monotone at pitch_shift Hz)", minimum=0.0),
    serving.Control("energy_scale", "float32", 1.0, "multiplies the predicted energy "
                    "(loudness/emphasis)", minimum=0.0),
)


class FastPitchServing(serving.AcousticModel):
  """A trained `FastPitch` as an acoustic model (its weights are used, not copied).

  Args:
    model: a `FastPitch`.
    pitch_mean, pitch_std: the training corpus's voiced-frame pitch statistics (Hz).
    winograd: the feed-forward convolutions by `tfspeech.ops.winograd`: False (exported
      graphs keep the convolutions), True (float32: the decoder's, kernels transformed at
      every call; bfloat16, `in_process()` on CPUs: direct convolutions over the batch's
      packed real steps) or "cached" (float32 `in_process()` on CPUs: every block's where it
      pays, with the kernels transformed once, into variables of this object, when
      `in_process()` is called).
  """
  controls = CONTROLS
  noise_channels = None

  def __init__(self, model, pitch_mean: float, pitch_std: float, winograd=False):
    self.model = model
    self.pitch_mean = float(pitch_mean)
    self.pitch_std = float(pitch_std)
    self.winograd = winograd
    self.n_mels = model.config.n_mel_channels
    self.num_speakers = model.config.n_speakers
    self._in_process = None
    self._kernels = None  # {kernel path: tf.Variable}, with winograd="cached"

  def in_process(self):
    """This model with its wide feed-forward convolutions by Winograd's F(4, 3) on CPUs
    (in-process synthesis and `--gta`: half their multiply-adds; `tfspeech.ops.winograd`).

    The transformed kernels are computed here, from the weights as they are now (twice the
    feed-forward kernels' size: ~340 MB for `ljspeech`), and at every later call, into the
    same variables, so that the returned object (and the functions traced with it) follows
    the weights: call it again after changing them (training on, restoring a checkpoint).
    bfloat16 keeps the convolutions (no F(4, 3)): its in-process form (winograd=True) runs
    the wide ones over the batch's real steps packed into one sequence
    (`PositionwiseConvFF.packed_tile`), with no kernels to transform.
    """
    if not winograd_ops.preferred():
      return self  # F(4, 3) and packing are for CPUs (measured there)
    form = "cached" if self.model.compute_dtype == "float32" else True
    if self.winograd == form:  # already the in-process form
      self.refresh_kernels()
      return self
    if self._in_process is None:
      self._in_process = FastPitchServing(self.model, self.pitch_mean, self.pitch_std,
                                          winograd=form)
    self._in_process.refresh_kernels()
    return self._in_process

  def refresh_kernels(self):
    """Transforms the current feed-forward kernels into this object's variables
    (winograd="cached" only)."""
    if self.winograd != "cached":
      return
    kernels = self.model.winograd_kernels()
    if self._kernels is None:
      self._kernels = {path: tf.Variable(value, trainable=False, name="winograd_kernel")
                       for path, value in kernels.items()}
    else:
      for path, value in kernels.items():
        self._kernels[path].assign(value)

  def _winograd(self):
    if self.winograd == "cached":
      return {path: variable.read_value() for path, variable in self._kernels.items()}
    return bool(self.winograd)

  @property
  def weights(self):
    return list(self.model.weights)

  def _speaker(self, speaker):
    return speaker if self.num_speakers > 1 else None

  def _transforms(self, pitch_shift, pitch_scale, energy_scale):
    mean, std = self.pitch_mean, self.pitch_std
    pitch_shift = tf.cast(pitch_shift, tf.float32)
    pitch_scale = tf.cast(pitch_scale, tf.float32)
    energy_scale = tf.cast(energy_scale, tf.float32)

    def pitch_transform(pitch, mask):
      hz = (pitch * std + mean) * pitch_scale + pitch_shift
      return (hz - mean) / std * mask

    def energy_transform(energy, mask):
      # The model's energy is log(1 + e); scale e. At 1 this is the identity (to round-off),
      # also for slightly negative predictions; the floor keeps the log finite.
      linear = (tf.exp(energy) - 1.0) * energy_scale
      return tf.math.log(tf.maximum(1.0 + linear, 1e-4)) * mask

    return pitch_transform, energy_transform

  def frames_bound(self, text_ids, text_lengths, speaker=None, pace=1.0, **unused):
    """The longest item's frame count (FastPitch draws no noise; for the interface)."""
    del unused
    # The encoder as `synthesize` runs it: the same durations, to the last rounding.
    _, text_mask, log_durations, _ = self.model.encode(
        text_ids, text_lengths, self._speaker(speaker), winograd=self._winograd())
    durations = self.model.predicted_durations(log_durations, text_mask)
    frames = tf.reduce_sum(tf.cast(durations / tf.cast(pace, tf.float32) + 0.5, tf.int32), 1)
    return tf.maximum(tf.reduce_max(tf.concat([frames, [0]], 0)), 1)

  def synthesize(self, text_ids, text_lengths, noise=None, speaker=None, pace=1.0,
                 pitch_shift=0.0, pitch_scale=1.0, energy_scale=1.0):
    """{"mel", "mel_lengths", "durations"}; `noise` is ignored (FastPitch draws none)."""
    del noise
    pitch_transform, energy_transform = self._transforms(pitch_shift, pitch_scale,
                                                         energy_scale)
    out = self.model.infer(text_ids, text_lengths, self._speaker(speaker), pace=pace,
                           pitch_transform=pitch_transform,
                           energy_transform=energy_transform, winograd=self._winograd())
    return {"mel": out["mel"], "mel_lengths": out["mel_lengths"],
            "durations": out["durations"]}

  def ground_truth_aligned(self, text_ids, text_lengths, mel, mel_lengths, noise=None,
                           speaker=None, pace=1.0, pitch_shift=0.0, pitch_scale=1.0,
                           energy_scale=1.0):
    """Teacher forcing: durations from the alignment encoder + MAS against the true mel.

    Pitch and energy come from the predictors (the interface passes no pitch track), with
    the controls applied; `pace` is ignored (the true mel fixes the durations). Returns
    `[batch, frames of mel, n_mels]`, 0 past each length.
    """
    del noise, pace
    aligned = self.model.align(text_ids, text_lengths, mel, mel_lengths,
                               self._speaker(speaker))
    pitch_transform, energy_transform = self._transforms(pitch_shift, pitch_scale,
                                                         energy_scale)
    out = self.model.infer(text_ids, text_lengths, self._speaker(speaker),
                           pitch_transform=pitch_transform, energy_transform=energy_transform,
                           durations=aligned["durations"], winograd=self._winograd())
    frames = tf.shape(mel)[1]
    predicted = out["mel"][:, :frames]
    return tf.pad(predicted, [[0, 0], [0, frames - tf.shape(predicted)[1]], [0, 0]])

"""The one config of a DiffWave vocoder (Kong et al. 2020, arXiv 2009.09761; lmnt-com/diffwave).

Field names follow lmnt-com/diffwave `params.py`, so the reference's params read across one to
one. Mel settings (n_fft, hop, fmin/fmax) belong to the prepared corpus; `hop_length` here is
what the upsampler produces (two transposed convolutions of stride `upsample_stride`) and must
equal the corpus hop. The optimiser (Adam, lr 2e-4, batch 16) is the run's `TrainConfig`:
`diffwave_presets.train_config(preset)`.
"""

import dataclasses
from typing import Optional

import numpy as np


def _as_float_tuple(name, value, *, upper):
  try:
    items = tuple(float(v) for v in value)
  except TypeError as error:
    raise TypeError(f"DiffWaveConfig.{name} must be a sequence of numbers, got {value!r}") from error
  if not items or any(not 0.0 < v < upper for v in items):
    raise ValueError(f"DiffWaveConfig.{name} must be a non-empty sequence of betas in "
                     f"(0, {upper}), got {value!r}")
  return items


@dataclasses.dataclass(frozen=True)
class DiffWaveConfig:
  """DiffWave hyperparameters: the network, the two noise schedules and the training crop.

  Attributes:
    residual_layers: residual blocks; block i dilates by 2 ** (i % dilation_cycle_length).
    residual_channels: channels of the residual stream (the skip stream has as many).
    dilation_cycle_length: dilations restart at 1 after this many blocks.
    noise_schedule: the training betas (T = its length: diffusion steps and rows of the
      step-embedding table).
    inference_noise_schedule: the betas of the fast reverse process; each of its steps
      is aligned to a fractional training step (`diffusion.aligned_steps`).
    n_mels: mel bins of the conditioner (ignored when unconditional).
    upsample_stride: time stride of each of the two transposed convolutions of the mel
      upsampler (kernel 2 * stride); hop_length = stride ** 2.
    unconditional: no mel conditioner (the reference's unconditional model).
    crop_mel_frames: training crop in mel frames (the reference: 62 frames = 15,872 samples).
    shuffle_buffer_size: records in the training shuffle buffer.
  """

  residual_layers: int = 30
  residual_channels: int = 64
  dilation_cycle_length: int = 10
  noise_schedule: tuple[float, ...] = tuple(np.linspace(1e-4, 0.05, 50).tolist())
  inference_noise_schedule: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)
  n_mels: int = 80
  upsample_stride: int = 16
  unconditional: bool = False
  crop_mel_frames: int = 62
  shuffle_buffer_size: int = 256

  def __post_init__(self):
    object.__setattr__(self, "noise_schedule",
                       _as_float_tuple("noise_schedule", self.noise_schedule, upper=1.0))
    object.__setattr__(self, "inference_noise_schedule", _as_float_tuple(
        "inference_noise_schedule", self.inference_noise_schedule, upper=1.0))
    for name in ("residual_layers", "residual_channels", "dilation_cycle_length", "n_mels",
                 "upsample_stride", "crop_mel_frames", "shuffle_buffer_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"DiffWaveConfig.{name} must be a positive integer, got {value!r}")
    if len(self.noise_schedule) < 2:
      raise ValueError("DiffWaveConfig.noise_schedule needs at least 2 betas, got "
                       f"{self.noise_schedule}")
    # The fast schedule is aligned to the training one by its cumulative alphas; one
    # outside the training range has no training step to map to (the reference then
    # silently drops the step and indexes past its list).
    from tfspeech.models.diffwave import diffusion  # pylint: disable=import-outside-toplevel
    diffusion.check_schedule(self.inference_noise_schedule, self.noise_schedule,
                             "DiffWaveConfig.inference_noise_schedule")

  @property
  def hop_length(self) -> int:
    """Audio samples per mel frame: the two upsampler strides."""
    return self.upsample_stride ** 2

  @property
  def segment_size(self) -> int:
    """The training crop in samples."""
    return self.crop_mel_frames * self.hop_length

  @property
  def diffusion_steps(self) -> int:
    """T: training diffusion steps (rows of the step-embedding table)."""
    return len(self.noise_schedule)

  def schedule(self, steps: Optional[int] = None) -> tuple[float, ...]:
    """The betas of a reverse process of `steps` steps.

    `len(noise_schedule)` (or None) is the full training schedule, `len(
    inference_noise_schedule)` the fast one; other counts have no reference schedule.

    Raises:
      ValueError: any other count, naming both.
    """
    if steps is None or steps == len(self.noise_schedule):
      return self.noise_schedule
    if steps == len(self.inference_noise_schedule):
      return self.inference_noise_schedule
    raise ValueError(f"steps={steps}: DiffWave has schedules of {len(self.noise_schedule)} "
                     f"(training) and {len(self.inference_noise_schedule)} (fast) steps; "
                     "pass one of them, or your own betas to the looped reverse process")

  def replace(self, **changes):
    """Returns a copy with `changes` applied (validated again)."""
    return dataclasses.replace(self, **changes)

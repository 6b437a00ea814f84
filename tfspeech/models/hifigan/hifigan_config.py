"""The one config of a HiFi-GAN vocoder: generator and discriminator shapes, and how the
training task feeds them.

Network field names follow jik876/hifi-gan's `config_v*.json` so the published
configs read across one to one. Mel-spectrogram settings (n_fft, hop, fmin/fmax) are
not repeated here: they belong to the prepared corpus (`MelConfig.hifigan()`). The
reference's optimiser settings (batch size, learning rate, betas, decay, seed) are
a run's `TrainConfig`: `hifigan_presets.train_config(preset)`.
"""

import dataclasses
import math
from typing import ClassVar, Literal, Optional

from tfspeech import config as cfg

RESBLOCK_TYPES = ("1", "2")


def _as_int_tuple(name, value):
  try:
    items = tuple(int(v) for v in value)
  except TypeError as error:
    raise TypeError(f"HifiGanConfig.{name} must be a sequence of ints, got {value!r}") from error
  if not items or any(v <= 0 for v in items):
    raise ValueError(f"HifiGanConfig.{name} must be a non-empty sequence of positive ints, "
                     f"got {value!r}")
  return items


@dataclasses.dataclass(frozen=True)
class HifiGanConfig:
  """HiFi-GAN hyperparameters: the networks plus the task's data settings.

  A run's config.json `model_config` holds these fields (older runs' task config had
  the same network and data fields, so they load unchanged).

  Attributes:
    resblock: "1" (ResBlock1: pairs of dilated + undilated convs per dilation)
      or "2" (ResBlock2: one dilated conv per dilation).
    upsample_rates: stride of each transposed-conv upsampling stage; their
      product is the hop length (samples per mel frame).
    upsample_kernel_sizes: kernel of each upsampling stage; each must be
      >= its rate and differ from it by an even number, so that the reference
      padding (k - u) // 2 yields exactly `rate * frames` samples.
    upsample_initial_channel: channels after conv_pre; halved at every stage.
    resblock_kernel_sizes: kernel of each parallel residual block in an MRF.
    resblock_dilation_sizes: dilations of each residual block (one tuple per
      kernel size).
    num_mels: mel channels of the generator input.
    segment_size: training crop, in samples (multiple of the hop length).
    mpd_periods: periods of the multi-period discriminator's sub-discriminators.
    mpd_channels: output channels of each period discriminator's 5 convs.
    msd_channels: output channels of each scale discriminator's 7 convs.
    msd_groups: groups of each scale discriminator's 7 convs.
    eval_segment_size: validation crop in samples; None validates on full
      utterances (the reference) (safe).
    shuffle_buffer_size: records in the training shuffle buffer (after the
      shard order is shuffled); each holds a whole clip's audio and mel.
    data_checkpoint: how a resumed run finds its place in the data (see
      `Task.data_checkpoint`). "reseed" (default) rebuilds the pipeline with
      seed + step: no data in checkpoints and correct past the first epoch.
      "symbolic" saves the iterator, so a resume replays exactly the batches of
      an uninterrupted run, but the checkpoint then holds the shuffle buffer's
      records (measured 1-2.7x their size: ~0.5-1.3 MB per LJSpeech clip) and
      TF 2.17 restores repeated TFRecord readers wrongly past the first epoch;
      use it for short runs and tests.
  """

  resblock: Literal["1", "2"]
  upsample_rates: tuple[int, ...]
  upsample_kernel_sizes: tuple[int, ...]
  upsample_initial_channel: int
  resblock_kernel_sizes: tuple[int, ...]
  resblock_dilation_sizes: tuple[tuple[int, ...], ...]
  num_mels: int = 80
  segment_size: int = 8192
  mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
  mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
  msd_channels: tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
  msd_groups: tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)
  eval_segment_size: Optional[int] = cfg.safe_field(None)
  shuffle_buffer_size: int = 256
  data_checkpoint: Literal["reseed", "symbolic"] = "reseed"

  # Keys of older runs' config.json `model_config` that are now `TrainConfig`
  # fields (read by `tfspeech.training.config.RunConfig.from_dict`, and accepted
  # as override keys): HiFi-GAN's own fine-tuning became the trainer's init_from.
  MOVED_TO_TRAIN: ClassVar[dict] = {"finetune_from": "init_from",
                                    "finetune_optimizers": "init_optimizers"}

  def __post_init__(self):
    # Normalise lists (e.g. from JSON) to tuples so the config stays hashable.
    for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes",
                 "mpd_periods", "mpd_channels", "msd_channels", "msd_groups"):
      object.__setattr__(self, name, _as_int_tuple(name, getattr(self, name)))
    object.__setattr__(self, "resblock_dilation_sizes", tuple(
        _as_int_tuple(f"resblock_dilation_sizes[{i}]", d)
        for i, d in enumerate(self.resblock_dilation_sizes)))
    object.__setattr__(self, "resblock", str(self.resblock))

    if self.resblock not in RESBLOCK_TYPES:
      raise ValueError(f"HifiGanConfig.resblock must be one of {RESBLOCK_TYPES}, "
                       f"got {self.resblock!r}")
    if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
      raise ValueError("HifiGanConfig.upsample_rates and upsample_kernel_sizes must have the same "
                       f"length, got {self.upsample_rates} and {self.upsample_kernel_sizes}")
    for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
      if kernel < rate or (kernel - rate) % 2:
        raise ValueError(
            f"HifiGanConfig: upsample kernel {kernel} with rate {rate} does not give exactly "
            f"rate * frames samples; use a kernel >= the rate that differs from it by an even "
            f"number (the published configs use kernel = 2 * rate)")
    if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
      raise ValueError("HifiGanConfig.resblock_kernel_sizes and resblock_dilation_sizes must have "
                       f"the same length, got {self.resblock_kernel_sizes} and "
                       f"{self.resblock_dilation_sizes}")
    if any(k % 2 == 0 for k in self.resblock_kernel_sizes):
      raise ValueError("HifiGanConfig.resblock_kernel_sizes must be odd ('same' padding), got "
                       f"{self.resblock_kernel_sizes}")
    if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
      raise ValueError(f"HifiGanConfig.upsample_initial_channel={self.upsample_initial_channel} "
                       f"must be divisible by 2**{len(self.upsample_rates)} (halved per stage)")
    if self.segment_size % self.hop_length:
      raise ValueError(f"HifiGanConfig.segment_size={self.segment_size} must be a multiple of the "
                       f"hop length prod(upsample_rates)={self.hop_length}")
    if self.eval_segment_size is not None and (
        self.eval_segment_size <= 0 or self.eval_segment_size % self.hop_length):
      raise ValueError(f"eval_segment_size={self.eval_segment_size} must be a positive multiple "
                       f"of the hop length {self.hop_length}, or None for full utterances")
    if self.shuffle_buffer_size < 1:
      raise ValueError(f"shuffle_buffer_size must be >= 1, got {self.shuffle_buffer_size}")
    if self.data_checkpoint not in ("reseed", "symbolic"):
      raise ValueError(f"data_checkpoint must be 'reseed' or 'symbolic', got "
                       f"{self.data_checkpoint!r}")
    if len(self.mpd_channels) != 5:
      raise ValueError(f"HifiGanConfig.mpd_channels needs 5 entries, got {self.mpd_channels}")
    if len(self.msd_channels) != 7 or len(self.msd_groups) != 7:
      raise ValueError("HifiGanConfig.msd_channels and msd_groups need 7 entries each, got "
                       f"{self.msd_channels} and {self.msd_groups}")
    in_channels = (1,) + self.msd_channels[:-1]
    for i, (cin, cout, groups) in enumerate(zip(in_channels, self.msd_channels, self.msd_groups)):
      if cin % groups or cout % groups:
        raise ValueError(f"HifiGanConfig: scale-discriminator conv {i} has {cin} -> {cout} "
                         f"channels, not divisible by msd_groups[{i}]={groups}")

  @property
  def hop_length(self):
    """Audio samples generated per mel frame: the product of the upsample rates."""
    return math.prod(self.upsample_rates)

  def replace(self, **changes):
    """Returns a copy with `changes` applied (validated again)."""
    return dataclasses.replace(self, **changes)

  def network_config(self) -> "HifiGanConfig":
    """This config (the task and network configs were one before; kept for old callers)."""
    return self


# The task config was a separate class with the network fields copied; one class now.
HifiGanTaskConfig = HifiGanConfig

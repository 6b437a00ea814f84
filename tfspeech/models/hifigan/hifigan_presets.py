"""Published HiFi-GAN configurations (jik876/hifi-gan config_v1/v2/v3.json) and a tiny one.

V1, V2 and V3 differ only in generator shape; discriminators and optimiser
settings are shared (see `HifiGanConfig` defaults, which are the published values).
"""

from tfspeech.models.hifigan.hifigan_config import HifiGanConfig

_MRF_V1_V2 = dict(
    resblock="1",
    upsample_rates=(8, 8, 2, 2),
    upsample_kernel_sizes=(16, 16, 4, 4),
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
)


def v1():
  """HiFi-GAN V1: highest quality, 13.93M generator parameters."""
  return HifiGanConfig(upsample_initial_channel=512, **_MRF_V1_V2)


def v2():
  """HiFi-GAN V2: V1's shape with 128 initial channels, 0.93M generator parameters."""
  return HifiGanConfig(upsample_initial_channel=128, **_MRF_V1_V2)


def v3():
  """HiFi-GAN V3: three upsampling stages and ResBlock2, 1.46M generator parameters."""
  return HifiGanConfig(
      resblock="2",
      upsample_rates=(8, 8, 4),
      upsample_kernel_sizes=(16, 16, 8),
      upsample_initial_channel=256,
      resblock_kernel_sizes=(3, 5, 7),
      resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
  )


def tiny():
  """A few-thousand-parameter model for tests and CPU smoke training.

  Keeps the hop length (256) of the published configs so it consumes the same
  HiFi-GAN mels, and keeps every discriminator period and scale, with narrow
  channels.
  """
  return HifiGanConfig(
      resblock="2",
      upsample_rates=(8, 8, 4),
      upsample_kernel_sizes=(16, 16, 8),
      upsample_initial_channel=16,
      resblock_kernel_sizes=(3,),
      resblock_dilation_sizes=((1, 3),),
      segment_size=2048,
      batch_size=2,
      mpd_channels=(4, 8, 16, 16, 16),
      msd_channels=(8, 8, 16, 16, 16, 16, 16),
      msd_groups=(1, 4, 4, 4, 4, 4, 1),
  )


PRESETS = {"v1": v1, "v2": v2, "v3": v3, "tiny": tiny}


def get_preset(name):
  """Returns the preset config called `name` ("v1", "v2", "v3" or "tiny")."""
  try:
    return PRESETS[name]()
  except KeyError:
    raise ValueError(f"unknown HiFi-GAN preset {name!r}; choose one of {sorted(PRESETS)}") from None

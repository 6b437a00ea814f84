"""The HiFi-GAN preset table: the published configs (jik876/hifi-gan config_v1/v2/v3.json)
and a tiny one, with the training recipe of each.

V1, V2 and V3 differ only in generator shape; discriminators and optimiser
settings are shared (the `HifiGanConfig` defaults are the published values).
`PRESETS` is the one table: `tfspeech-train --model=hifigan --preset=NAME`, the
functions below and `get_preset` all read it.
"""

import dataclasses

from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.training.config import TrainConfig

_MRF_V1_V2 = dict(
    resblock="1",
    upsample_rates=(8, 8, 2, 2),
    upsample_kernel_sizes=(16, 16, 4, 4),
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
)

PRESETS = {
    # 13.93M generator parameters: highest quality.
    "v1": HifiGanConfig(upsample_initial_channel=512, **_MRF_V1_V2),
    # V1's shape with 128 initial channels: 0.93M generator parameters.
    "v2": HifiGanConfig(upsample_initial_channel=128, **_MRF_V1_V2),
    # Three upsampling stages and ResBlock2: 1.46M generator parameters.
    "v3": HifiGanConfig(
        resblock="2",
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        upsample_initial_channel=256,
        resblock_kernel_sizes=(3, 5, 7),
        resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
    ),
    # A few-thousand-parameter model for tests and CPU smoke training. Keeps the hop
    # length (256) of the published configs so it consumes the same HiFi-GAN mels, and
    # keeps every discriminator period and scale, with narrow channels.
    "tiny": HifiGanConfig(
        resblock="2",
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        upsample_initial_channel=16,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
        segment_size=2048,
        mpd_channels=(4, 8, 16, 16, 16),
        msd_channels=(8, 8, 16, 16, 16, 16, 16),
        msd_groups=(1, 4, 4, 4, 4, 4, 1),
    ),
}

# jik876/hifi-gan config_v*.json + train.py, the same for V1-V3: AdamW (lr 2e-4, betas
# 0.8/0.99, torch's default weight decay 0.01: the reference passes none),
# ExponentialLR(0.999) stepped once per epoch, batch 16, seed 1234.
REFERENCE_BATCH_SIZE = 16
REFERENCE_LEARNING_RATE = 2e-4
REFERENCE_BETAS = (0.8, 0.99)
REFERENCE_WEIGHT_DECAY = 0.01
REFERENCE_LR_DECAY = 0.999
REFERENCE_SEED = 1234
# jik876/hifi-gan LJSpeech-1.1/training.txt holds 12,950 clips; with batch 16 and
# drop_last=True an epoch is 809 steps.
REFERENCE_TRAIN_CLIPS = 12950
# 3100 epochs (train.py --training_epochs) * 809 steps: the paper's 2.5M steps.
REFERENCE_MAX_STEPS = 2_500_000


def reference_train_config() -> TrainConfig:
  """The jik876/hifi-gan optimiser settings (V1, V2 and V3) as a `TrainConfig`.

  The reference's per-epoch decay is the continuous schedule lr * 0.999^(step /
  decay_steps) with decay_steps = steps per epoch of its LJSpeech split.
  """
  return TrainConfig(
      batch_size=REFERENCE_BATCH_SIZE, max_steps=REFERENCE_MAX_STEPS, seed=REFERENCE_SEED,
      optimizer="adamw", learning_rate=REFERENCE_LEARNING_RATE, lr_schedule="exponential",
      decay_steps=REFERENCE_TRAIN_CLIPS // REFERENCE_BATCH_SIZE, decay_rate=REFERENCE_LR_DECAY,
      beta_1=REFERENCE_BETAS[0], beta_2=REFERENCE_BETAS[1],
      weight_decay=REFERENCE_WEIGHT_DECAY, log_every=100, checkpoint_every=5000,
      eval_every=1000, eval_batches=10, summary_every=5000)


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name` (the reference recipe; tiny: CPU smoke)."""
  get_preset(name)  # Validates the name.
  config = reference_train_config()
  if name == "tiny":
    # A higher rate shows the mel error falling within ~100 steps on the bundled
    # corpus; decay off (its "epoch" is a couple of steps).
    return dataclasses.replace(
        config, batch_size=2, decay_steps=REFERENCE_TRAIN_CLIPS // 2, max_steps=2000,
        learning_rate=2e-3, lr_schedule="constant", log_every=10, checkpoint_every=500, eval_every=100, eval_batches=1, summary_every=500)
  return config


def get_preset(name: str) -> HifiGanConfig:
  """The preset config called `name` ("v1", "v2", "v3" or "tiny")."""
  try:
    return PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown HiFi-GAN preset {name!r}; choose one of {sorted(PRESETS)}") from None


def v1() -> HifiGanConfig:
  """HiFi-GAN V1: highest quality, 13.93M generator parameters."""
  return PRESETS["v1"]


def v2() -> HifiGanConfig:
  """HiFi-GAN V2: V1's shape with 128 initial channels, 0.93M generator parameters."""
  return PRESETS["v2"]


def v3() -> HifiGanConfig:
  """HiFi-GAN V3: three upsampling stages and ResBlock2, 1.46M generator parameters."""
  return PRESETS["v3"]


def tiny() -> HifiGanConfig:
  """A few-thousand-parameter model for tests and CPU smoke training (hop 256)."""
  return PRESETS["tiny"]

"""The DiffWave preset table: the reference model (lmnt-com/diffwave params.py) and a tiny one,
with the training recipe of each.

`PRESETS` is the one table: `tfspeech-train --model=diffwave --preset=NAME` and `get_preset`
read it.
"""

import dataclasses

from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig
from tfspeech.training.config import TrainConfig

PRESETS = {
    # lmnt-com/diffwave params.py: 30 layers, 64 channels, cycle 10, T = 50 (2.62M parameters).
    "base": DiffWaveConfig(),
    # The reference's unconditional model (no mel input; its use is sampling, not vocoding).
    "base_unconditional": DiffWaveConfig(unconditional=True),
    # Tests and CPU smoke training: the same hop (256) and schedules, 4 narrow layers.
    "tiny": DiffWaveConfig(residual_layers=4, residual_channels=8, dilation_cycle_length=2,
                           crop_mel_frames=8, shuffle_buffer_size=16),
}

# lmnt-com/diffwave params.py + learner.py: Adam lr 2e-4, batch 16, no gradient clipping.
REFERENCE_BATCH_SIZE = 16
REFERENCE_LEARNING_RATE = 2e-4
# The paper trains the LJSpeech vocoder for 1M steps.
REFERENCE_MAX_STEPS = 1_000_000


def reference_train_config() -> TrainConfig:
  """The lmnt-com/diffwave optimiser settings as a `TrainConfig`."""
  return TrainConfig(
      batch_size=REFERENCE_BATCH_SIZE, max_steps=REFERENCE_MAX_STEPS, optimizer="adam",
      learning_rate=REFERENCE_LEARNING_RATE, lr_schedule="constant", log_every=100,
      checkpoint_every=5000, eval_every=5000, eval_batches=10, summary_every=10000)


def train_config(name: str) -> TrainConfig:
  """The recommended `TrainConfig` of preset `name` (the reference recipe; tiny: CPU smoke)."""
  get_preset(name)  # Validates the name.
  config = reference_train_config()
  if name == "tiny":
    return dataclasses.replace(
        config, batch_size=4, max_steps=2000, learning_rate=2e-3, log_every=10,
        checkpoint_every=500, eval_every=100, eval_batches=1, summary_every=500)
  return config


def get_preset(name: str) -> DiffWaveConfig:
  """The preset config called `name` ("base", "base_unconditional" or "tiny")."""
  try:
    return PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown DiffWave preset {name!r}; choose one of {sorted(PRESETS)}") from None

"""DiffWave vocoder (Kong et al. 2020, arXiv 2009.09761; lmnt-com/diffwave), channels-last Keras 3.

Network: audio `[batch, samples]` + diffusion step + mel `[batch, frames, 80]` -> predicted
noise. Serving: `[batch, frames, 80]` mels -> `[batch, frames * 256]` audio by the 6-step fast
or the 50-step full reverse process (`diffwave_serving`).
"""

from tfspeech.models.diffwave import diffusion
from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig
from tfspeech.models.diffwave.diffwave_model import (
    DiffusionEmbedding, DiffWave, ResidualBlock, SpectrogramUpsampler, build_model, step_table)
from tfspeech.models.diffwave.diffwave_presets import PRESETS, get_preset
from tfspeech.models.diffwave.diffwave_serving import CONTROLS, DiffWaveServing
# Registers the "diffwave" training task.
from tfspeech.models.diffwave.diffwave_task import DiffWaveTask

__all__ = [
    "CONTROLS", "DiffusionEmbedding", "DiffWave", "DiffWaveConfig", "DiffWaveServing",
    "DiffWaveTask", "PRESETS", "ResidualBlock", "SpectrogramUpsampler", "build_model",
    "diffusion", "get_preset", "step_table",
]

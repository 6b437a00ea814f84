"""FastPitch 1.1: FFT transformer, pitch/energy/duration predictors and a learned alignment."""

from tfspeech.models.fastpitch.fastpitch_config import FastPitchConfig
from tfspeech.models.fastpitch.fastpitch_model import FastPitch
from tfspeech.models.fastpitch.fastpitch_presets import PRESETS, ljspeech, preset, tiny
from tfspeech.models.fastpitch.fastpitch_serving import FastPitchServing
# Registers the "fastpitch" training task.
from tfspeech.models.fastpitch.fastpitch_task import FastPitchTask

__all__ = ["FastPitch", "FastPitchConfig", "FastPitchServing", "FastPitchTask", "PRESETS",
           "ljspeech", "preset", "tiny"]

"""Grad-TTS: text encoder, U-Net score estimator, VP-SDE decoder and the full model."""

from tfspeech.models.grad_tts.diffusion import Diffusion
from tfspeech.models.grad_tts.grad_tts_backbone import GradTTS, SynthesisOutput
from tfspeech.models.grad_tts.grad_tts_config import GradTTSConfig
from tfspeech.models.grad_tts.grad_tts_presets import (PRESETS, fix_len_compatibility,
                                                       ljspeech, libritts, preset, tiny)
from tfspeech.models.grad_tts.score_estimator import GradLogPEstimator2d
from tfspeech.models.grad_tts.text_encoder import TextEncoder
# Registers the "grad_tts" training task.
from tfspeech.models.grad_tts.grad_tts_task import GradTTSTask, GradTTSTaskConfig

__all__ = ["Diffusion", "GradLogPEstimator2d", "GradTTS", "GradTTSConfig", "GradTTSTask",
           "GradTTSTaskConfig", "PRESETS",
           "SynthesisOutput", "TextEncoder", "fix_len_compatibility", "libritts", "ljspeech",
           "preset", "tiny"]

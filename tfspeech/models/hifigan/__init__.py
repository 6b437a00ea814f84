"""HiFi-GAN vocoder (Kong et al. 2020; jik876/hifi-gan), channels-last Keras 3.

Generator: `[batch, frames, 80]` log mels -> `[batch, frames * hop]` audio.
"""

from tfspeech.models.hifigan.discriminators import (
    MultiPeriodDiscriminator, MultiScaleDiscriminator, PeriodDiscriminator, ScaleDiscriminator,
    build_discriminators)
from tfspeech.models.hifigan.generator import LRELU_SLOPE, HifiGanGenerator
from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.models.hifigan.hifigan_presets import PRESETS, get_preset, tiny, v1, v2, v3
from tfspeech.models.hifigan.losses import (
    FEATURE_MATCHING_WEIGHT, MEL_LOSS_WEIGHT, MelReconstructionLoss, discriminator_loss,
    discriminator_losses, feature_matching_loss, generator_loss, generator_losses, mel_l1_loss)
from tfspeech.models.hifigan.weight_norm import (
    NormalizedConv1D, NormalizedConv1DTranspose, NormalizedConv2D)
# Registers the "hifigan" training task.
from tfspeech.models.hifigan.hifigan_task import HifiGanTask, HifiGanTaskConfig

__all__ = [
    "HifiGanConfig", "HifiGanGenerator", "HifiGanTask", "HifiGanTaskConfig",
    "MultiPeriodDiscriminator", "MultiScaleDiscriminator",
    "PeriodDiscriminator", "ScaleDiscriminator", "build_discriminators", "LRELU_SLOPE",
    "PRESETS", "get_preset", "tiny", "v1", "v2", "v3",
    "FEATURE_MATCHING_WEIGHT", "MEL_LOSS_WEIGHT", "MelReconstructionLoss", "discriminator_loss",
    "discriminator_losses", "feature_matching_loss", "generator_loss", "generator_losses",
    "mel_l1_loss", "NormalizedConv1D", "NormalizedConv1DTranspose", "NormalizedConv2D",
]

"""Tacotron 2: encoder, location-sensitive attention decoder, postnet; training and decoding."""

from tfspeech.models.tacotron2.tacotron2_config import Tacotron2Config
from tfspeech.models.tacotron2.tacotron2_model import (Tacotron2, alignment_diagonality,
                                                      diagonal_band_mass,
                                                      durations_from_alignments,
                                                      guided_attention_penalty)
from tfspeech.models.tacotron2.tacotron2_presets import PRESETS, ljspeech, preset, tiny
from tfspeech.models.tacotron2.tacotron2_serving import Tacotron2Serving
# Registers the "tacotron2" training task.
from tfspeech.models.tacotron2.tacotron2_task import Tacotron2Task

__all__ = ["PRESETS", "Tacotron2", "Tacotron2Config", "Tacotron2Serving", "Tacotron2Task",
           "alignment_diagonality", "diagonal_band_mass", "durations_from_alignments",
           "guided_attention_penalty", "ljspeech", "preset", "tiny"]

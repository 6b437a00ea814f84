"""DC-TTS: Text2Mel (guided, forcibly incremental attention) and SSRN; training and decoding."""

from tfspeech.models.dctts.dctts_config import DCTTSConfig
from tfspeech.models.dctts.dctts_model import SSRN, Text2Mel, durations_from_positions
from tfspeech.models.dctts.dctts_presets import PRESETS, ljspeech, preset, tiny
from tfspeech.models.dctts.dctts_serving import DCTTSServing
# Registers the "dctts" training task.
from tfspeech.models.dctts.dctts_task import DCTTSTask

__all__ = ["DCTTSConfig", "DCTTSServing", "DCTTSTask", "PRESETS", "SSRN", "Text2Mel",
           "durations_from_positions", "ljspeech", "preset", "tiny"]

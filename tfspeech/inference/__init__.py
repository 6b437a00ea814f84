"""Inference: text → mel → audio files with a trained run, and ground-truth-aligned mels.

  run = tfspeech.training.load_run("runs/tts")
  result = synthesize_texts(run, ["Hello there."], out_dir="out/")
"""

from tfspeech.inference.synthesize_lib import (GtaResult, SynthesisFailure, SynthesisResult,
                                               SynthesizedItem, TextFrontEnd, acoustic_serving,
                                               generate_gta,
                                               item_noise, load_vocoder, make_synthesis_fn,
                                               read_text_file, synthesize_mels,
                                               synthesize_texts, text_front_end)
from tfspeech.inference.streaming import (AudioChunk, StreamedAudio, StreamingWavWriter,
                                          stream_texts, stream_vocode)

__all__ = ["AudioChunk", "StreamedAudio", "StreamingWavWriter", "stream_texts", "stream_vocode",
           "GtaResult", "SynthesisFailure", "SynthesisResult", "SynthesizedItem",
           "TextFrontEnd", "acoustic_serving", "generate_gta", "item_noise", "load_vocoder", "make_synthesis_fn",
           "read_text_file", "synthesize_mels", "synthesize_texts", "text_front_end"]

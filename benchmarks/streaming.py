"""Streaming vocoding (`tfspeech.inference.streaming`): time to first audio and total
real-time factor against whole-utterance vocoding of the same mels.

Whole-utterance vocoding's first audio is its whole result; streaming's is the first chunk
(`first_chunk_frames` frames plus the vocoder's receptive field of context after it). The
total counts every chunk, context included (each chunk re-vocodes up to 2 x context frames).
HiFi-GAN V2 (context 13 frames) and V1 with their initial weights (speed does not depend
on training); the mel exists before the clock starts.
"""

import time

import numpy as np
import tensorflow as tf

from benchmarks import harness
from benchmarks.models import SAMPLE_RATE, HOP_LENGTH


def _stream_times(vocoder, mels, chunk_frames, first_frames):
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import streaming
  start = time.perf_counter()
  first = None
  for chunk in streaming.stream_vocode(vocoder, mels, chunk_frames=chunk_frames,
                                       first_chunk_frames=first_frames):
    if first is None:
      first = time.perf_counter() - start
  return first, time.perf_counter() - start


@harness.case("infer", "streaming")
def streaming_infer(ctx):
  """HiFi-GAN V2/V1: whole-utterance vocoding vs streaming chunks: first audio and RTF."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import vocode_lib
  from tfspeech.models.hifigan import HifiGanGenerator, hifigan_presets
  from tfspeech.models.hifigan.hifigan_serving import HifiGanServing
  seconds = 1.0 if ctx.quick else 6.0
  presets = ("v2",) if ctx.quick else ("v2", "v1")
  # (chunk frames, first chunk frames)
  chunkings = [(32, 8)] if ctx.quick else [(32, 8), (64, 16), (16, 4)]
  repeats = ctx.repeats(5)
  frames = int(round(seconds * SAMPLE_RATE / HOP_LENGTH))
  audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
  measurements = []
  for preset in presets:
    serving = HifiGanServing(HifiGanGenerator(hifigan_presets.get_preset(preset),
                                              weight_norm=False), SAMPLE_RATE)
    vocoder = vocode_lib.Vocoder.for_serving(serving)
    mels = tf.random.stateless_normal([1, frames, serving.n_mels], [0, 0], mean=-5.0,
                                      stddev=2.0)
    lengths = tf.constant([frames])
    whole = lambda: vocoder.vocode(mels, lengths)[0].numpy()  # noqa: E731
    whole()  # Trace.
    whole_samples = [harness.time_calls(whole, 1, warmup=0)[0] for _ in range(repeats)]
    runs = {}
    for chunk_frames, first_frames in chunkings:
      _stream_times(vocoder, mels, chunk_frames, first_frames)  # Trace (once per vocoder).
      runs[(chunk_frames, first_frames)] = [
          _stream_times(vocoder, mels, chunk_frames, first_frames) for _ in range(repeats)]
    facts = {"preset": preset, "frames": frames, "audio_seconds": audio_seconds,
             "context_frames": serving.receptive_field}
    for metric in ("first audio", "total"):
      group = f"HiFi-GAN {preset}, {frames} frames ({audio_seconds:.2f} s), {metric}"
      # Throughput (audio s per wall s) means something for the totals only.
      work = dict(work=audio_seconds, work_unit="audio s") if metric == "total" else {}
      measurements.append(harness.Measurement(
          "whole utterance", whole_samples, baseline=True, group=group, **work, note="vocode_lib.Vocoder.vocode; first audio = all of it",
          extra=facts))
      for (chunk_frames, first_frames), times in runs.items():
        samples = [t[0] if metric == "first audio" else t[1] for t in times]
        ctx.log(f"  streaming {preset} chunk {chunk_frames} first {first_frames}: "
                f"{metric} {np.median(samples) * 1000:.1f} ms (whole "
                f"{np.median(whole_samples) * 1000:.1f} ms)")
        measurements.append(harness.Measurement(
            f"stream chunk {chunk_frames}, first {first_frames}", samples, group=group, **work,
            note=f"stream_vocode, context {serving.receptive_field} frames each side",
            extra=dict(facts, chunk_frames=chunk_frames, first_chunk_frames=first_frames)))
  return measurements

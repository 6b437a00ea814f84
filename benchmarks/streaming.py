"""Streaming vocoding (`tfspeech.inference.streaming`): time to first audio and total
real-time factor against whole-utterance vocoding of the same mels.

Whole-utterance vocoding's first audio is its whole result; streaming's is the first chunk
(`first_chunk_frames` frames plus the vocoder's receptive field of context after it). The
total counts every chunk, context included (each chunk re-vocodes up to 2 x context frames).
HiFi-GAN V2 (context 13 frames; V1 too with --extended) with their initial weights (speed
does not depend on training); the mel exists before the clock starts.
"""

import os
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
  # V1 (streams of 2.5-4.5 s per utterance, ~40 s of the case) with --extended only.
  presets = ("v2", "v1") if ctx.extended and not ctx.quick else ("v2",)
  # (chunk frames, first chunk frames)
  chunkings = [(32, 8)] if ctx.quick else [(32, 8), (64, 16), (16, 4)]
  repeats = ctx.repeats(3)  # V1 streams take 2.5-4.5 s per utterance: --suite=all budget
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


# --------------------------------------------------------------------------- #
# Text to first audio in the browser demo (headless Chromium, wasm, 1 thread).

# (label, model, training overrides, export controls): non-autoregressive FastPitch (one
# pass) and Grad-TTS at 4 diffusion steps, each with HiFi-GAN V2 streamed.
BROWSER_MODELS = (
    ("FastPitch tiny", "fastpitch", {"batch_size": 8, "max_steps": 10}, {}),
    # Each model is one TFJS export with the vocoder (1-2.5 min): the suite keeps 4 steps.
    # 2026-12-05, first audio at 2 / 4 / 10 steps: 372 / 564 / 997 ms (~linear in the steps).
    ("Grad-TTS tiny, 4 steps", "grad_tts", {"batch_size": 4, "max_steps": 2},
     {"n_timesteps": 4}),
)
BROWSER_TEXT = "The quick brown fox jumps over the lazy dog, twice."
# (label, page URL parameters): stream_player.js's default schedule (16, 24, 32, ... frames,
# the first chunk held back by the shortfall its timing predicts). The fixed 8-then-32 one it
# replaced ("first_chunk=8&chunk=32&growth=1&delay=0", no hold-back) is no longer timed, for
# --suite=all's 30 minutes; its last rows (2026-12-06): gaps 23 ms (FastPitch) / 35 ms
# (Grad-TTS) and one late chunk per click, against none for the default.
BROWSER_SCHEDULES = (("chunks 16, 24, 32, ...", ""),)

def _hifigan_v2_run(workdir):
  """A HiFi-GAN V2 run folder with random weights (speed does not depend on training)."""
  # pylint: disable=import-outside-toplevel
  import dataclasses
  from tfspeech import audio as audio_lib
  from tfspeech.models.hifigan.hifigan_task import HifiGanTask
  from tfspeech.training import Trainer
  from tfspeech.training.checkpoints import Checkpoints
  from tfspeech.training.config import RunConfig, write_run_config
  task = HifiGanTask(HifiGanTask.preset("v2"))
  config = HifiGanTask.default_train_config("v2")
  trainer = Trainer(task, config)
  rng = np.random.default_rng(5)
  for v in trainer.modules["generator"].weights:  # small, so the audio is not clipped noise
    v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.05)
  write_run_config(workdir, RunConfig(
      model="hifigan", preset="v2", model_config=task.config, train=config,
      data_info={"sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "n_mels": 80,
                 "mel_config": dataclasses.asdict(audio_lib.MelConfig.hifigan())}))
  Checkpoints(trainer, workdir).save(1)
  return workdir


def browser_clicks(export_dir, clicks, page_params="", timeout_s=300):
  """check_web_demo.js's per-click results (wasm, 1 thread) for a TFJS --stream export."""
  # pylint: disable=import-outside-toplevel
  import json
  import subprocess
  script = harness.REPO_ROOT / "export" / "js" / "check_web_demo.js"
  command = ["node", str(script), f"--model={export_dir}", f"--text={BROWSER_TEXT}",
             "--backend=wasm", f"--clicks={clicks}", f"--timeout_s={timeout_s}"]
  if page_params:
    command.append(f"--page_params={page_params}")
  done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s * 2,
                        check=False)
  lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
  if done.returncode or not lines:
    raise RuntimeError(f"check_web_demo.js failed ({done.returncode}): "
                       f"{(done.stderr or done.stdout)[-2000:]}")
  outcome = json.loads(lines[-1])
  return outcome["clicks"]


@harness.case("export", "streaming_browser")
def streaming_browser(ctx):
  """Text to first audio in headless Chromium (wasm, 1 thread), streamed HiFi-GAN V2 after
  FastPitch and Grad-TTS at 4 steps: first audio (the first chunk ready to play; it
  sounds after the start delay + 20 ms), text_to_mel, first chunk, gaps in playback."""
  # pylint: disable=import-outside-toplevel
  import shutil
  from tfspeech import training
  from tfspeech.data.prepare import prepare_corpus
  from tfspeech.export import export_lib, tfjs
  from tfspeech.models import registry
  from benchmarks.prepare import TINY_CORPUS
  if not shutil.which("node") or not (harness.REPO_ROOT / "export" / "node_modules").exists():
    raise harness.Skip("needs node and `npm ci` in export/")
  if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
    raise harness.Skip("needs Chromium at /usr/bin/chromium")
  try:
    tfjs.converter_executable(progress=ctx.log)
  except tfjs.ConverterUnavailable as error:
    raise harness.Skip(f"TFJS converter unavailable: {str(error).splitlines()[0]}") from error
  clicks = 1 + ctx.repeats(5, quick=2)  # the first click includes one-time work: dropped
  # Grad-TTS (a TFJS export and a training of its own, ~1 min) with --extended only.
  models = BROWSER_MODELS if ctx.extended else BROWSER_MODELS[:1]
  root = ctx.tmp_dir / "streaming_browser"
  data = str(root / "data")
  prepare_corpus(str(TINY_CORPUS), data, workers=1, progress=False, pitch=True)
  vocoder = _hifigan_v2_run(str(root / "hifigan_v2"))
  runs, measurements = {}, []
  for label, model, overrides, controls in models:
    if model not in runs:
      runs[model] = str(root / model)
      training.train(model, "tiny", tasks=registry.get, data_dir=data, workdir=runs[model],
                     overrides=dict(overrides, eval_every=0, summary_every=0), progress=False,
                     handle_signals=False)
    out = str(root / f"tfjs_{model}_{controls.get('n_timesteps', 0)}")
    export_lib.export_workdir(runs[model], "tfjs", out, vocoder=vocoder, controls=controls,
                              stream=True)
    for schedule, params in BROWSER_SCHEDULES:
      if ctx.quick and params:
        continue
      results = browser_clicks(out, clicks, params)[1:]
      group = f"{label} + HiFi-GAN V2 (wasm, Chromium), {schedule}"
      facts = {"text": BROWSER_TEXT, "schedule": params,
               "chunk_frames": results[0]["chunkFrames"]}
      series = {
          "first audio": [r["firstAudioMs"] / 1000 for r in results],
          "text_to_mel": [r["melMs"] / 1000 for r in results],
          "first chunk": [r["chunkMs"][0] / 1000 for r in results],
          "start delay": [r["delayMs"] / 1000 for r in results],
          "gaps (total)": [r["gapMs"] / 1000 for r in results],
      }
      late = [r["underruns"] for r in results]
      ctx.log(f"  {group}: " + ", ".join(
          f"{name} {np.median(v) * 1000:.0f} ms" for name, v in series.items()) +
              f", late chunks {late}")
      for name, samples in series.items():
        measurements.append(harness.Measurement(
            name, samples, group=group,
            note=f"median of {len(samples)} clicks; late chunks per click {late}"
            if name == "gaps (total)" else "", extra=facts))
  return measurements

"""Train and inference speed of the models: Grad-TTS and HiFi-GAN (absolute numbers).

Every case times the real library code on synthetic in-memory inputs of
realistic sizes, after an untimed warm-up call (tracing, graph optimisation):

- train/grad_tts: `Trainer(GradTTSTask, ...).train_step_fn` (MAS, the three
  losses, Adam with clipping) on batches of 60-150 token ids and 240-600 mel
  frames; throughput in mel frames per second.
- infer/grad_tts: `synthesize_lib.make_synthesis_fn` (the traced batched
  synthesis) on 60-150 token ids; throughput in audio seconds per second
  (mel frames × hop / sample rate), i.e. the real-time factor.
- train/hifigan: `Trainer(HifiGanTask, ...).train_step_fn` (generator and both
  discriminators) on random audio crops and their mels.
- infer/hifigan: `vocode_lib.Vocoder.for_generator(...).vocode` on random mels;
  throughput = audio seconds per second.

The weights are untrained, which does not change the cost of a step or a
synthesis of a given size (Grad-TTS's lengths are set by `length_scale`, see
`grad_tts_infer`). There is no baseline yet: a later change adds PyTorch
transcriptions of the references; until then each row is an absolute
measurement and says so.
"""

import dataclasses
import json
import time

import numpy as np
import tensorflow as tf

from benchmarks import harness

NO_BASELINE = "absolute; no baseline yet (PyTorch reference to come)"
# LJSpeech: 22050 Hz, hop 256 (both models' presets use it).
SAMPLE_RATE = 22050
HOP_LENGTH = 256
# A synthetic item: token ids (blanks included) and mel frames per token, as in LJSpeech
# (~100 characters → ~200 ids with blanks → ~6.5 s ≈ 560 frames).
MIN_TOKENS, MAX_TOKENS = 60, 150
FRAMES_PER_TOKEN = 4
# Calls slower than this get one timed repeat (unless --repeats), to keep --suite=all short.
SLOW_CALL_SECONDS = 20.0


def _repeats(ctx, warmup_seconds, default):
  """`default` repeats, 1 when one call takes longer than SLOW_CALL_SECONDS."""
  if ctx.repeats_override is not None:
    return ctx.repeats_override
  if warmup_seconds > SLOW_CALL_SECONDS:
    return 1
  return ctx.repeats(default)


def _timed(ctx, fn, default_repeats):
  """Warm-up call, then the timed repeats; returns (samples, warm-up seconds)."""
  start = time.perf_counter()
  fn()
  warmup = time.perf_counter() - start
  return harness.time_calls(fn, _repeats(ctx, warmup, default_repeats), warmup=0), warmup


def _token_lengths(rng, batch):
  return rng.integers(MIN_TOKENS, MAX_TOKENS + 1, size=batch).astype(np.int32)


# --- Grad-TTS ------------------------------------------------------------------------------


def _grad_tts_batch(config, batch, seed=0):
  """A padded batch as the task's pipeline gives it: ids, lengths, log-mels, mel lengths."""
  rng = np.random.default_rng(seed)
  text_lengths = _token_lengths(rng, batch)
  mel_lengths = (text_lengths * FRAMES_PER_TOKEN).astype(np.int32)
  ids = rng.integers(1, config.n_vocab, size=[batch, text_lengths.max()]).astype(np.int32)
  ids[np.arange(text_lengths.max())[None, :] >= text_lengths[:, None]] = 0
  mel = rng.normal(-5.0, 2.0, size=[batch, mel_lengths.max(), config.n_feats])
  mel[np.arange(mel_lengths.max())[None, :] >= mel_lengths[:, None]] = np.log(1e-5)
  return {"text_ids": tf.constant(ids), "text_lengths": tf.constant(text_lengths),
          "mel": tf.constant(mel, tf.float32), "mel_lengths": tf.constant(mel_lengths)}


def _grad_tts_variants(ctx):
  presets = ("tiny",) if ctx.quick else ("tiny", "ljspeech")
  return [(p, b) for p in presets for b in ((1,) if ctx.quick else (1, 16))]


@harness.case("train", "grad_tts")
def grad_tts_train(ctx):
  """Grad-TTS train step (Trainer, MAS + losses + Adam), synthetic LJSpeech-length batches."""
  harness.require_model("grad_tts", "Grad-TTS")
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.training import Trainer  # pylint: disable=import-outside-toplevel
  task_class = registry.get("grad_tts")
  measurements = []
  for preset, batch_size in _grad_tts_variants(ctx):
    task = task_class(task_class.preset(preset))
    config = dataclasses.replace(task_class.default_train_config(preset),
                                 batch_size=batch_size)
    trainer = Trainer(task, config)
    batch = _grad_tts_batch(task.config, batch_size)
    step = trainer.train_step_fn(tf.data.Dataset.from_tensors(batch).element_spec)
    samples, warmup = _timed(ctx, lambda: step(batch)["losses/loss"].numpy(), 5)
    frames = int(np.sum(batch["mel_lengths"].numpy()))
    ctx.log(f"  grad_tts train {preset} b{batch_size}: {np.median(samples):.3f} s/step "
            f"(first call {warmup:.1f} s)")
    measurements.append(harness.Measurement(
        f"tfspeech {preset}", samples, group=f"batch {batch_size}", work=frames,
        work_unit="mel frames",
        note=(f"{1 / np.median(samples):.3g} steps/s; {frames} frames, "
              f"{int(np.sum(batch['text_lengths'].numpy()))} ids per batch; {NO_BASELINE}"),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "first_call_seconds": warmup}))
  return measurements


@harness.case("infer", "grad_tts")
def grad_tts_infer(ctx):
  """Grad-TTS synthesis (make_synthesis_fn): real-time factor on 60-150-id inputs."""
  harness.require_model("grad_tts", "Grad-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models.grad_tts import GradTTS
  from tfspeech.models import registry
  task_class = registry.get("grad_tts")
  timesteps = (10,) if ctx.quick else (10, 50)
  measurements = []
  for preset in sorted({p for p, _ in _grad_tts_variants(ctx)}, key=["tiny", "ljspeech"].index):
    config = task_class.preset(preset)
    model = GradTTS(config)
    synthesize = synthesize_lib.make_synthesis_fn(model)
    for batch_size in sorted({b for p, b in _grad_tts_variants(ctx) if p == preset}):
      inputs = _grad_tts_batch(config, batch_size, seed=1)
      ids, lengths = inputs["text_ids"], inputs["text_lengths"]
      seeds = tf.stack([tf.zeros([batch_size], tf.int32), tf.range(batch_size)], axis=1)

      def run(n_timesteps, length_scale):
        return synthesize(ids, lengths, seeds, tf.constant(n_timesteps), tf.constant(1.5),
                          tf.constant(length_scale, tf.float32), tf.zeros([batch_size], tf.int32))

      # Untrained durations are ~1 frame per id; scale them to FRAMES_PER_TOKEN so the
      # decoder runs on utterance-sized mels (this call also traces the function).
      probe = run(1, 1.0)["mel_lengths"].numpy()
      length_scale = FRAMES_PER_TOKEN * float(np.sum(lengths.numpy())) / max(
          float(np.sum(probe)), 1.0)
      # ljspeech × 16 × 50 steps is ~7 min per call on 2 cores: 10 steps only (the decoder's
      # cost grows linearly with the steps).
      big = preset != "tiny" and batch_size > 1 and not ctx.quick
      expected = None  # seconds per call, extrapolated from the previous step count
      for n_timesteps in ((10,) if big else timesteps):
        out = {}

        def call(n_timesteps=n_timesteps):
          out["mel_lengths"] = run(n_timesteps, length_scale)["mel_lengths"].numpy()
        if expected is not None and expected > SLOW_CALL_SECONDS:
          # The probe call traced the function; a second warm-up would cost minutes.
          samples, warmup = harness.time_calls(call, ctx.repeats_override or 1, warmup=0), 0.0
        else:
          samples, warmup = _timed(ctx, call, 3)
        expected = float(np.median(samples)) * 5
        frames = int(np.sum(out["mel_lengths"]))
        audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
        ctx.log(f"  grad_tts infer {preset} b{batch_size} T={n_timesteps}: "
                f"{np.median(samples):.3f} s for {audio_seconds:.1f} audio s")
        measurements.append(harness.Measurement(
            f"tfspeech {preset}", samples, group=f"batch {batch_size}, {n_timesteps} steps",
            work=audio_seconds, work_unit="audio s",
            note=(f"{frames} frames from {int(np.sum(lengths.numpy()))} ids "
                  f"(length_scale {length_scale:.2f}); throughput = RTF; "
                  + ("50 steps not run (~5× the time); " if big else "") + NO_BASELINE),
            extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
                   "batch_size": batch_size, "n_timesteps": n_timesteps, "frames": frames,
                   "length_scale": length_scale, "first_call_seconds": warmup}))
  return measurements


# --- HiFi-GAN ------------------------------------------------------------------------------


def _write_dataset_json(directory, mel_config):
  """The dataset.json facts the hifigan task checks (sets up its mel loss), no records."""
  info = {"sample_rate": mel_config.sample_rate, "hop_length": mel_config.hop_length,
          "n_mels": mel_config.n_mels, "mel_config": dataclasses.asdict(mel_config),
          "counts": {"train": 13100, "validation": 0}}
  from tfspeech.data import dataset as dataset_lib  # pylint: disable=import-outside-toplevel
  with open(directory / dataset_lib.DATASET_JSON, "w", encoding="utf-8") as f:
    json.dump(info, f)


@harness.case("train", "hifigan")
def hifigan_train(ctx):
  """HiFi-GAN GAN step (Trainer: generator + MPD + MSD, two AdamW) on random crops."""
  harness.require_model("hifigan", "HiFi-GAN")
  # pylint: disable=import-outside-toplevel
  from tfspeech import audio as audio_lib
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("hifigan")
  mel_config = audio_lib.MelConfig.hifigan()
  _write_dataset_json(ctx.tmp_dir, mel_config)
  mel_fn = audio_lib.MelSpectrogram(mel_config)
  # v1 at its batch 16 is ~30 s per step on 2 CPU cores: batch 1 here.
  variants = [("tiny", 16)] if ctx.quick else [("tiny", 16), ("v1", 1)]
  measurements = []
  for preset, batch_size in variants:
    task = task_class(task_class.preset(preset))
    task.data_info(str(ctx.tmp_dir))
    config = dataclasses.replace(task_class.default_train_config(preset),
                                 batch_size=batch_size)
    trainer = Trainer(task, config)
    segment = task.config.segment_size
    audio = tf.random.stateless_uniform([batch_size, segment], [0, 1], -0.5, 0.5)
    mel = mel_fn(audio)
    frames = segment // HOP_LENGTH
    batch = {"audio": audio, "mel": mel[:, :frames],
             "mel_lengths": tf.fill([batch_size], frames),
             "audio_lengths": tf.fill([batch_size], segment)}
    step = trainer.train_step_fn(tf.data.Dataset.from_tensors(batch).element_spec)
    samples, warmup = _timed(ctx, lambda: step(batch)["items"].numpy(), 3)
    audio_seconds = batch_size * segment / SAMPLE_RATE
    ctx.log(f"  hifigan train {preset} b{batch_size}: {np.median(samples):.3f} s/step "
            f"(first call {warmup:.1f} s)")
    measurements.append(harness.Measurement(
        f"tfspeech {preset}", samples, group=f"batch {batch_size} × {segment} samples",
        work=audio_seconds, work_unit="audio s",
        note=f"{1 / np.median(samples):.3g} steps/s; {NO_BASELINE}",
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "segment_size": segment,
               "first_call_seconds": warmup}))
  return measurements


@harness.case("infer", "hifigan")
def hifigan_infer(ctx):
  """HiFi-GAN generator (Vocoder.vocode, weight norm folded) on random mels: RTF."""
  harness.require_model("hifigan", "HiFi-GAN")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import vocode_lib
  from tfspeech.models.hifigan import get_preset
  from tfspeech.models.hifigan.generator import HifiGanGenerator
  if ctx.quick:
    variants, seconds = [("v3", 1)], 2.0
  else:
    variants, seconds = [(p, b) for p in ("v1", "v2", "v3") for b in (1, 16)], 10.0
  measurements = []
  vocoders = {}
  for preset, batch_size in variants:
    if preset not in vocoders:
      network = get_preset(preset)
      generator = HifiGanGenerator(network, weight_norm=False)
      vocoders[preset] = vocode_lib.Vocoder.for_generator(generator, SAMPLE_RATE)
      # Trace once on a short input: the signature has None dims, so one graph serves all.
      short = tf.zeros([1, 8, network.num_mels])
      vocoders[preset].vocode(short, tf.constant([8]))[0].numpy()
    vocoder = vocoders[preset]
    frames = int(round(seconds * SAMPLE_RATE / vocoder.hop_length))
    mels = tf.random.stateless_normal([batch_size, frames, vocoder.num_mels], [0, 0],
                                      mean=-5.0, stddev=2.0)
    lengths = tf.fill([batch_size], frames)
    big = batch_size * seconds > 40  # v1 × 16 × 10 s is minutes per call on 2 cores
    samples = ctx.time(lambda: vocoder.vocode(mels, lengths)[0].numpy(),
                       repeats=_repeats(ctx, 0.0, 3) if not big else (ctx.repeats_override or 1),
                       warmup=0 if big else 1)
    audio_seconds = batch_size * frames * vocoder.hop_length / SAMPLE_RATE
    ctx.log(f"  hifigan infer {preset} b{batch_size}: {np.median(samples):.3f} s for "
            f"{audio_seconds:.0f} audio s")
    measurements.append(harness.Measurement(
        f"tfspeech {preset}", samples, group=f"batch {batch_size} × {seconds:g} s",
        work=audio_seconds, work_unit="audio s",
        note=("throughput = RTF (audio s per wall s); "
              + ("warm-up was a short input only; " if big else "") + NO_BASELINE),
        extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "audio_seconds_per_item": seconds}))
  return measurements

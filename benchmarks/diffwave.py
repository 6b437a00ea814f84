"""Train and inference speed of DiffWave against its PyTorch reference (lmnt-com/diffwave).

Same structure and policies as `benchmarks/models.py` (warm-up call, then timed repeats
within `TIMING_BUDGET_SECONDS`; torch's thread settings in `extra`; without torch
the tfspeech rows remain and say why):

- train/diffwave: `Trainer(DiffWaveTask, ...).train_step_fn` (random step per item, L1 on the
  noise, Adam) on random audio crops of the reference length (62 frames = 15,872 samples) and
  their mels, vs the reference `learner.py` step (`torch_reference.diffwave.TrainStep`).
- infer/diffwave: `vocode_lib.Vocoder.for_serving(DiffWaveServing(...), {"steps": S})` (the
  in-process `tf.while_loop` form, seeded noise) at S = 6 (fast schedule) and 50 (training
  schedule), S = 6 at batch 1 and 16, S = 50 at batch 1, vs the reference `predict`
  (`fast_sampling` for 6) on the same mels; throughput = audio seconds per wall second (RTF).

Sizes: one base network call costs ~0.4 s per second of audio on 2 CPU cores, and the reverse
process makes S calls, so the clips are short (each row names its clip length): 50 steps on
a 16 × 0.1 s batch took 32 s (tfspeech) and 55 s (reference) per call, so the suite leaves
it out. The weights are untrained, which does not change the cost.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from benchmarks import harness
from benchmarks.models import (_Torch, _timed, _write_dataset_json, HOP_LENGTH, SAMPLE_RATE,
                               count_flops, log_step, tf_row, torch_row)

REFERENCE = "lmnt-com/diffwave"


@harness.case("train", "diffwave")
def diffwave_train(ctx):
  """DiffWave train step (Trainer: L1 noise loss, Adam) vs the reference learner.py step."""
  harness.require_model("diffwave", "DiffWave")
  # pylint: disable=import-outside-toplevel
  from tfspeech import audio as audio_lib
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("diffwave")
  reference = _Torch.get(ctx)
  mel_config = audio_lib.MelConfig.hifigan()
  _write_dataset_json(ctx.tmp_dir, mel_config)
  mel_fn = audio_lib.MelSpectrogram(mel_config)
  # base at the reference batch 16 is tens of seconds per step on 2 CPU cores: batch 4 there.
  base_batch = 16 if ctx.device == "gpu" else 4
  # The bigger step first, and the reference before tfspeech: see models.TRAIN_VARIANTS.
  # The base preset (a 4.6 s step: with its warm-up, FLOP count and reference ~45 s of the
  # suite) with --extended only; no open target names DiffWave.
  variants = ([("tiny", 4)] if ctx.quick else
              ([("base", base_batch)] if ctx.extended else []) + [("tiny", 16)])
  measurements = []
  for preset, batch_size in variants:
    task = task_class(task_class.preset(preset))
    task.data_info(str(ctx.tmp_dir))
    config = dataclasses.replace(task_class.default_train_config(preset),
                                 batch_size=batch_size)
    trainer = Trainer(task, config)
    segment = task.config.segment_size
    frames = segment // HOP_LENGTH
    audio = tf.random.stateless_uniform([batch_size, segment], [0, 1], -0.5, 0.5)
    mel = mel_fn(audio)[:, :frames]
    batch = {"audio": audio, "mel": mel, "mel_lengths": tf.fill([batch_size], frames),
             "audio_lengths": tf.fill([batch_size], segment)}
    step = trainer.train_step_fn(tf.data.Dataset.from_tensors(batch).element_spec)
    audio_seconds = batch_size * segment / SAMPLE_RATE
    group = f"{preset}, batch {batch_size} × {segment} samples"
    extra = {"preset": preset, "batch_size": batch_size, "segment_size": segment}
    torch_timing = None
    if reference is not None:
      torch_lib, diffwave = reference.torch, _torch_diffwave()
      reference.seed(0)
      torch_step = diffwave.TrainStep(diffwave.params_from_tfspeech(task.config),
                                      learning_rate=config.learning_rate)
      torch_step.model.to(reference.device)
      torch_step.noise_level = torch_step.noise_level.to(reference.device)
      y = torch_lib.from_numpy(audio.numpy()).to(reference.device)
      x = reference.channels_first(mel)
      torch_timing = _timed(ctx, lambda: torch_step(y, x), 3)
      log_step(ctx, f"diffwave train {preset} b{batch_size} pytorch reference", *torch_timing)
      del torch_step, y, x
    samples, warmup = _timed(ctx, lambda: step(batch)["items"].numpy(), 3)
    step_flops, flops_extra = count_flops(ctx, f"diffwave train {preset} b{batch_size}", step,
                                          batch)
    log_step(ctx, f"diffwave train {preset} b{batch_size}", samples, warmup)
    measurements.append(tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s", note=f"{1 / np.median(samples):.3g} steps/s",
        extra=dict(extra, steps_per_second=1 / float(np.median(samples)),
                   first_call_seconds=warmup, **flops_extra), flops=step_flops))
    if torch_timing is None:
      continue
    samples, warmup = torch_timing
    measurements.append(torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=(f"{1 / np.median(samples):.3g} steps/s; {REFERENCE} learner.py step (Adam, L1) "
              "on the same audio and mels; timed before tfspeech's step; "),
        extra=dict(extra, steps_per_second=1 / float(np.median(samples)),
                   first_call_seconds=warmup), flops=step_flops))
  return measurements


def _torch_diffwave():
  from benchmarks.torch_reference import diffwave  # pylint: disable=import-outside-toplevel
  return diffwave


@harness.case("infer", "diffwave")
def diffwave_infer(ctx):
  """DiffWave reverse process (Vocoder.vocode, in-process loop) vs the reference predict: RTF."""
  harness.require_model("diffwave", "DiffWave")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import vocode_lib
  from tfspeech.models.diffwave import diffwave_presets
  from tfspeech.models.diffwave.diffwave_model import build_model
  from tfspeech.models.diffwave.diffwave_serving import DiffWaveServing
  reference = _Torch.get(ctx)
  # (steps, batch, audio seconds per item): see the module docstring for the sizes.
  if ctx.quick:
    variants = [(6, 1, 0.25)]
  else:
    # 2026-12-05: with (6, 16, 0.25) and (50, 16, 0.1) as well this case took 6.4 minutes
    # (the reference's 50-step batch-16 call alone 55 s) and 9.3 GB.
    # Batch 16 with --extended only (no open target names DiffWave).
    variants = [(6, 1, 1.0)] + ([(6, 16, 0.1)] if ctx.extended else []) + [(50, 1, 0.1)]
  config = diffwave_presets.get_preset("base")
  model = build_model(config)
  serving = DiffWaveServing(model, SAMPLE_RATE)
  torch_model = None
  if reference is not None:
    diffwave = _torch_diffwave()
    reference.seed(0)
    torch_model = diffwave.load_tfspeech_weights(
        diffwave.DiffWave(diffwave.params_from_tfspeech(config)), model).to(reference.device)
    torch_model.eval()
  vocoders = {}
  measurements = []
  for steps, batch_size, seconds in variants:
    if steps not in vocoders:
      vocoders[steps] = vocode_lib.Vocoder.for_serving(serving, {"steps": steps})
      # Trace once on a short input: the signature has None dims, so one graph serves all.
      vocoders[steps].vocode(tf.zeros([1, 2, config.n_mels]), tf.constant([2]))[0].numpy()
    vocoder = vocoders[steps]
    frames = int(round(seconds * SAMPLE_RATE / HOP_LENGTH))
    mels = tf.random.stateless_normal([batch_size, frames, config.n_mels], [0, 0],
                                      mean=-5.0, stddev=2.0)
    lengths = tf.fill([batch_size], frames)
    samples, warmup = _timed(ctx, lambda: vocoder.vocode(mels, lengths)[0].numpy(), 3)
    audio_seconds = batch_size * frames * HOP_LENGTH / SAMPLE_RATE
    group = f"base, {steps} steps, batch {batch_size} × {frames} frames ({seconds:g} s)"
    ctx.log(f"  diffwave infer base S={steps} b{batch_size}: {np.median(samples):.3f} s for "
            f"{audio_seconds:.2f} audio s")
    extra = {"rtf": audio_seconds / float(np.median(samples)), "preset": "base",
             "steps": steps, "batch_size": batch_size, "audio_seconds_per_item": seconds,
             "frames": frames, "first_call_seconds": warmup}
    measurements.append(tf_row(
        f"tfspeech base S={steps}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=("throughput = RTF (audio s per wall s); in-process tf.while_loop form, noise "
              "drawn from seeds in the graph"),
        extra=extra))
    if reference is None:
      continue
    torch_mels = reference.channels_first(mels)
    diffwave = _torch_diffwave()

    def torch_call():
      audio = diffwave.predict(torch_model, torch_mels, fast_sampling=steps == 6)
      return audio.cpu()  # waits for the result, as .numpy() does
    samples, warmup = _timed(ctx, torch_call, 3)
    ctx.log(f"  diffwave infer base S={steps} b{batch_size} pytorch reference: "
            f"{np.median(samples):.3f} s for {audio_seconds:.2f} audio s")
    measurements.append(torch_row(
        f"pytorch reference base S={steps}", samples, reference, group=group,
        work=audio_seconds, work_unit="audio s",
        note=(f"{REFERENCE} inference.py predict ({'fast_sampling' if steps == 6 else 'full'}"
              " schedule) with tfspeech's weights, no_grad, same mels; "),
        extra=dict(extra, rtf=audio_seconds / float(np.median(samples)),
                   first_call_seconds=warmup)))
  return measurements


"""Train and inference speed of Tacotron 2 against its PyTorch reference.

Both cases time the real library code on synthetic in-memory inputs of realistic sizes, after
an untimed warm-up call (tracing, graph optimisation), with the policies of
`benchmarks/models.py` (`_timed`: timed repeats within `TIMING_BUDGET_SECONDS`; torch waits passively;
both libraries on every core):

- train/tacotron2: `Trainer(Tacotron2Task, ...).train_step_fn` (teacher-forced decoder loop,
  mel + gate losses, Adam with clipping) on batches of 60-150 token ids and 5 mel frames per
  id (LJSpeech: ~100 characters, ~6.5 s); throughput in mel frames per second. The baseline is
  NVIDIA/tacotron2's train.py step (`torch_reference.tacotron2.TrainStep`) on the same batch.
- infer/tacotron2: `synthesize_lib.make_synthesis_fn` (what tfspeech-synthesize runs: the
  batched decoding loop with TensorArray storage, postnet, durations) on 60-150 ids;
  throughput in audio seconds per second (mel frames x hop / sample rate), i.e. the RTF. The
  baseline is the reference's `Tacotron2.inference` with tfspeech's weights; it decodes one
  utterance at a time, so its batch 16 is the 16 items one after another (what the reference
  can do), timed on its first `REFERENCE_ITEMS` and scaled (each decodes the same frames).

The weights are untrained, so the stop gate would fire at a random step: both libraries get
the gate bias -1e4 (never stops) and decode exactly `INFER_FRAMES` frames per item, the same
work on both sides. The quick suite runs the `tiny` preset at batch 1; the full suite runs
`ljspeech` (the reference recipe) at batch 1, and at batch 16 too with --extended.
"""

import numpy as np
import tensorflow as tf

from benchmarks import harness
from benchmarks import models

SAMPLE_RATE, HOP_LENGTH = models.SAMPLE_RATE, models.HOP_LENGTH
# LJSpeech items: ~100 characters (60-150 here) and ~5.5 mel frames per character.
FRAMES_PER_TOKEN = 5
# Decoded frames per item in infer/tacotron2 (~5.8 s of audio at hop 256, 22050 Hz).
INFER_FRAMES = 500
# Items of a batch the reference decodes in the timed calls (it takes one at a time).
REFERENCE_ITEMS = 4
# Gate bias that keeps an untrained model decoding to the step limit in both libraries.
_NEVER_STOP_BIAS = -1e4


def _variants(ctx, train=False):
  """(preset, batch) pairs: tiny at batch 1 for --quick, else the reference recipe at batch 1;
  --extended adds batch 16 (train: batch 16 first, see `models.TRAIN_VARIANTS`), which no open
  target names (2026-12-06: 2.6 min of --suite=all's 30, the reference's 36 s train steps and
  45 s decoding calls)."""
  if ctx.quick:
    return [("tiny", 1)]
  if not ctx.extended:
    return [("ljspeech", 1)]
  return list(models.TRAIN_VARIANTS) if train else [("ljspeech", 1), ("ljspeech", 16)]


def _batch(config, batch, seed=0):
  """A padded batch as the task's pipeline gives it: ids, lengths, log-mels, mel lengths."""
  return models.text_mel_batch(np.random.default_rng(seed), batch, config.n_symbols,
                               config.n_mel_channels, FRAMES_PER_TOKEN)


def _torch_module():
  from benchmarks.torch_reference import tacotron2  # pylint: disable=import-outside-toplevel
  return tacotron2


def _torch_batch(reference, batch):
  """The reference's layouts: ids `[b, tokens]` int64, mels `[b, n_mels, frames]`."""
  torch = reference.torch
  return reference.tensors({
      "text": torch.from_numpy(batch["text_ids"].numpy().astype(np.int64)),
      "text_lengths": torch.from_numpy(batch["text_lengths"].numpy().astype(np.int64)),
      "mels": torch.from_numpy(np.ascontiguousarray(batch["mel"].numpy().transpose(0, 2, 1))),
      "mel_lengths": torch.from_numpy(batch["mel_lengths"].numpy().astype(np.int64))})


@harness.case("train", "tacotron2")
def tacotron2_train(ctx):
  """Tacotron 2 teacher-forced train step (Trainer) vs the reference's train.py step."""
  harness.require_model("tacotron2", "Tacotron 2")
  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("tacotron2")
  reference = models._Torch.get(ctx)  # pylint: disable=protected-access
  measurements = []
  steps = {}  # preset → (task, train config, traced step): one trace serves every batch size
  for preset, batch_size in _variants(ctx, train=True):
    traced_here = preset not in steps
    if traced_here:
      task = task_class(task_class.preset(preset))
      config = task_class.default_train_config(preset)
      spec = tf.data.Dataset.from_tensors(_batch(task.config, batch_size)).element_spec
      steps[preset] = (task, config, Trainer(task, config).train_step_fn(spec))
    task, config, step = steps[preset]
    batch = _batch(task.config, batch_size)
    frames = int(np.sum(batch["mel_lengths"].numpy()))
    ids = int(np.sum(batch["text_lengths"].numpy()))
    group = f"{preset}, batch {batch_size}"
    torch_timing = None
    if reference is not None:  # before tfspeech: see models.TRAIN_VARIANTS
      tacotron2 = _torch_module()
      reference.seed(0)
      model = tacotron2.Tacotron2(tacotron2.params_from_tfspeech(task.config))
      torch_step = tacotron2.TrainStep(model.to(reference.device),
                                       learning_rate=config.learning_rate,
                                       weight_decay=config.weight_decay or 0.0,
                                       clip_norm=config.clip_norm)
      torch_batch = _torch_batch(reference, batch)
      torch_timing = models._timed(  # pylint: disable=protected-access
          ctx, lambda: torch_step(**torch_batch), 3)
      models.log_step(ctx, f"tacotron2 train {preset} b{batch_size} pytorch reference",
                      *torch_timing)
      parameters = tacotron2.count_parameters(model)
      del model, torch_step, torch_batch
    samples, warmup = models._timed(  # pylint: disable=protected-access
        ctx, lambda: step(batch)["losses/loss"].numpy(), 3)
    models.log_step(ctx, f"tacotron2 train {preset} b{batch_size}", samples, warmup)
    measurements.append(models.tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=frames,
        work_unit="mel frames",
        note=(f"{1 / np.median(samples):.3g} steps/s; {frames} frames, {ids} ids per batch"
              + ("" if traced_here else "; step traced at the batch above")),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "first_call_seconds": warmup,
               "first_call_traced": traced_here}))
    if torch_timing is None:
      continue
    samples, warmup = torch_timing
    measurements.append(models.torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=frames,
        work_unit="mel frames",
        note=(f"{1 / np.median(samples):.3g} steps/s; NVIDIA/tacotron2 train.py step on the "
              "same batch (Python loop over frames, LSTMCell per step); timed before "
              "tfspeech's step; "),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "first_call_seconds": warmup,
               "parameters": parameters}))
  return measurements


@harness.case("infer", "tacotron2")
def tacotron2_infer(ctx):
  """Tacotron 2 decoding (make_synthesis_fn) vs the reference's Tacotron2.inference: RTF."""
  harness.require_model("tacotron2", "Tacotron 2")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  from tfspeech.models.tacotron2 import Tacotron2
  task_class = registry.get("tacotron2")
  reference = models._Torch.get(ctx)  # pylint: disable=protected-access
  frames_per_item = 50 if ctx.quick else INFER_FRAMES
  measurements = []
  built = {}  # preset → (config, synthesis fn, torch model or None)
  for preset, batch_size in _variants(ctx):
    if preset not in built:
      config = task_class.preset(preset).replace(max_decoder_steps=frames_per_item)
      model = Tacotron2(config)
      model.gate_layer.bias.assign(tf.fill([1], _NEVER_STOP_BIAS))
      acoustic = task_class(config).serving({"tacotron2": model}, {}).in_process()
      torch_model = None
      if reference is not None:
        tacotron2 = _torch_module()
        torch_model = tacotron2.load_tfspeech_weights(
            tacotron2.Tacotron2(tacotron2.params_from_tfspeech(config)), model)
        torch_model = torch_model.to(reference.device).eval()
      built[preset] = (config, synthesize_lib.make_synthesis_fn(acoustic), torch_model)
    config, synthesize, torch_model = built[preset]
    inputs = _batch(config, batch_size, seed=1)
    ids, lengths = inputs["text_ids"], inputs["text_lengths"]
    seeds = tf.stack([tf.zeros([batch_size], tf.int32), tf.range(batch_size)], axis=1)
    out = {}

    def call():
      out["mel_lengths"] = synthesize(ids, lengths, seeds, tf.zeros([batch_size], tf.int32),
                                      tf.constant(frames_per_item))["mel_lengths"].numpy()
    samples, warmup = models._timed(ctx, call, 3)  # pylint: disable=protected-access
    frames = int(np.sum(out["mel_lengths"]))
    audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
    group = f"{preset}, batch {batch_size} × {frames_per_item} frames"
    ctx.log(f"  tacotron2 infer {preset} b{batch_size}: {np.median(samples):.3f} s for "
            f"{audio_seconds:.1f} audio s (first call {warmup:.1f} s)")
    measurements.append(models.tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=(f"{frames} frames from {int(np.sum(lengths.numpy()))} ids, batched decoding "
              "loop (TensorArray storage), gate never fires; throughput = RTF"),
        extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "frames": frames, "first_call_seconds": warmup}))
    if reference is None:
      continue
    torch = reference.torch
    # One item at a time: every item decodes exactly frames_per_item frames (the gate never
    # fires), so the batch's time is its first REFERENCE_ITEMS items' time scaled.
    timed_items = min(batch_size, REFERENCE_ITEMS)
    items = [torch.from_numpy(ids.numpy()[i:i + 1, :lengths.numpy()[i]].astype(np.int64)
                              ).to(reference.device) for i in range(timed_items)]
    torch_out = {}

    def torch_call():
      """The reference decodes one utterance per call: the batch's items in turn."""
      total = 0
      with torch.inference_mode():
        for text in items:
          total += int(torch_model.inference(text)[0].shape[2])  # .shape waits (CPU/CUDA sync)
      torch_out["frames"] = total
    torch.manual_seed(1)
    samples, warmup = models._timed(ctx, torch_call, 3)  # pylint: disable=protected-access
    scale = batch_size / timed_items
    samples = [sample * scale for sample in samples]
    torch_frames = int(torch_out["frames"] * scale)
    torch_audio_seconds = torch_frames * HOP_LENGTH / SAMPLE_RATE
    ctx.log(f"  tacotron2 infer {preset} b{batch_size} pytorch reference: "
            f"{np.median(samples):.3f} s for {torch_audio_seconds:.1f} audio s")
    measurements.append(models.torch_row(
        f"pytorch reference {preset}", samples, reference, group=group,
        work=torch_audio_seconds, work_unit="audio s",
        note=(f"NVIDIA/tacotron2 Tacotron2.inference with tfspeech's weights, inference_mode, "
              f"one utterance per call ({batch_size} in turn), {torch_frames} frames"
              + (f"; timed on the first {timed_items} items × {scale:g}" if scale != 1 else "")
              + "; "),
        extra={"rtf": torch_audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "frames": torch_frames, "tfspeech_frames": frames,
               "timed_items": timed_items,
               "first_call_seconds": warmup}))
  return measurements

"""Train and inference speed of DC-TTS against its PyTorch reference, and what its options cost.

Every case times the real library code on synthetic in-memory inputs of realistic sizes, after
an untimed warm-up call (tracing, graph optimisation), with the policies of
`benchmarks/models.py` (`_timed`: timed repeats within `TIMING_BUDGET_SECONDS`; torch waits passively;
both libraries on every core):

- train/dctts: `Trainer(DCTTSTask, ...).train_step_fn` for each stage (`stage=text2mel`:
  teacher-forced Text2Mel, L1 + binary divergence + guided attention; `stage=ssrn`: SSRN on
  the true coarse mels, its magnitude targets computed in the step from the audio with the
  corpus' STFT), Adam with clipping, on batches of 60-150 ids and 5 mel frames per id
  (LJSpeech: ~100 characters, ~6.5 s); throughput in (full-rate) mel frames per second. The
  baseline is Kyubyong/dc_tts's train.py step (`torch_reference.dctts.TrainStep`) on the same
  batch, its coarse mels and magnitudes precomputed as its data loader does.
- infer/dctts: `synthesize_lib.make_synthesis_fn` (what tfspeech-synthesize runs: Text2Mel's
  decoding loop, SSRN, the mel projection, durations) on 60-150 ids; throughput in audio
  seconds per second (mel frames x hop / sample rate), i.e. the RTF. The baseline is the
  transcription's batched `Text2Mel.inference` then `SSRN` with tfspeech's weights (the same
  algorithm; see `torch_reference/dctts.py` for Kyubyong's costlier loop).
- train/dctts_options: parameter counts of Text2Mel and SSRN, and the Text2Mel train step
  and decoding times, of the paper's model with each of the options the original project
  explored (`conv_type` separable / grouped, `alpha`); tfspeech only, ratios against the
  plain model.

The weights are untrained, so the attention would end items at random steps: both libraries
get `end_frames` larger than any run (never ends) and decode exactly `max_decoder_steps`
coarse frames per item, the same work on both sides. The quick suite runs the `tiny` preset
at batch 1; the full suite runs `ljspeech` (the paper's model) at batch 1 and 16.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from benchmarks import harness
from benchmarks import models

SAMPLE_RATE, HOP_LENGTH = models.SAMPLE_RATE, models.HOP_LENGTH
# LJSpeech: ~5.5 mel frames per character (so 75-190 coarse frames at r = 4).
FRAMES_PER_TOKEN = 5
# Coarse frames decoded per item in infer/dctts (x r = 480 mel frames, ~5.6 s of audio).
INFER_STEPS = 120
# An end that no run reaches: untrained attention must not end items at random steps.
_NEVER_END = 1_000_000
STAGES = ("text2mel", "ssrn")
# (label, config changes) of train/dctts_options, on the paper's model.
OPTIONS = (("plain", {}), ("separable", {"conv_type": "separable"}),
           ("grouped (4)", {"conv_type": "grouped", "conv_groups": 4}),
           ("alpha 0.5", {"alpha": 0.5}),
           ("separable, alpha 0.5", {"conv_type": "separable", "alpha": 0.5}))


def _variants(ctx, train=False):
  """(preset, batch) pairs: tiny at batch 1 for --quick, else the paper's model at batch 1;
  --extended adds batch 16 (train: batch 16 first, see `models.TRAIN_VARIANTS`), which no
  open target names (2026-12-06: 2 min of --suite=all's 30)."""
  if ctx.quick:
    return [("tiny", 1)]
  if not ctx.extended:
    return [("ljspeech", 1)]
  return list(models.TRAIN_VARIANTS) if train else [("ljspeech", 1), ("ljspeech", 16)]


def _batch(config, batch, seed=0):
  """A padded batch as the task's pipeline gives it (audio only where SSRN trains)."""
  rng = np.random.default_rng(seed)
  out = models.text_mel_batch(rng, batch, config.n_symbols, config.n_mels, FRAMES_PER_TOKEN)
  lengths = out["mel_lengths"].numpy() * HOP_LENGTH
  audio = rng.uniform(-0.5, 0.5, [batch, lengths.max()]).astype(np.float32)
  audio[np.arange(lengths.max())[None] >= lengths[:, None]] = 0.0
  if config.trains_ssrn:
    out["audio"] = tf.constant(audio)
    out["audio_lengths"] = tf.constant(lengths.astype(np.int32))
  return out


def _prepared(ctx, task):
  """Writes the dataset.json facts the task checks (mel convention, symbols) and reads them."""
  # pylint: disable=import-outside-toplevel
  from tfspeech import text as text_lib
  from tfspeech.data import CorpusInfo
  from tfspeech.models.dctts import dctts_serving
  directory = ctx.tmp_dir / "dctts_corpus"
  directory.mkdir(exist_ok=True)
  CorpusInfo(mel_config=dctts_serving.default_mel_config(task.config),
             symbols=text_lib.get_symbol_table("english_characters"),
             counts={"train": 13100, "validation": 0}).write(directory)
  task.data_info(str(directory))
  return task._info.mel_config  # pylint: disable=protected-access


def _torch_module():
  from benchmarks.torch_reference import dctts  # pylint: disable=import-outside-toplevel
  return dctts


def _torch_batch(reference, stage, config, mel_config, batch):
  """The reference's inputs: what Kyubyong's loader gives (normalised coarse mels, magnitudes)
  in PyTorch layouts, computed with tfspeech's target functions (outside the timing)."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.models.dctts import dctts_model
  torch = reference.torch
  coarse = dctts_model.mel_targets(batch["mel"], mel_config, config)
  coarse_lengths = dctts_model.coarse_lengths(batch["mel_lengths"], config.reduction)
  if stage == "text2mel":
    return reference.tensors({
        "text": torch.from_numpy(batch["text_ids"].numpy().astype(np.int64)),
        "text_lengths": torch.from_numpy(batch["text_lengths"].numpy().astype(np.int64)),
        "mels": reference.channels_first(coarse), "lengths":
            torch.from_numpy(coarse_lengths.numpy().astype(np.int64))})
  frames = int(coarse.shape[1]) * config.reduction
  magnitudes = dctts_model.magnitude_targets(batch["audio"], mel_config, config, frames)
  return reference.tensors({
      "mels": reference.channels_first(coarse), "magnitudes": reference.channels_first(magnitudes),
      "lengths": torch.from_numpy(batch["mel_lengths"].numpy().astype(np.int64))})


@harness.case("train", "dctts")
def dctts_train(ctx):
  """DC-TTS train steps (Trainer; Text2Mel and SSRN stages) vs Kyubyong/dc_tts's train.py."""
  harness.require_model("dctts", "DC-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("dctts")
  reference = models._Torch.get(ctx)  # pylint: disable=protected-access
  measurements = []
  steps = {}  # (preset, stage) → (task, train config, mel config, step): one trace each
  # SSRN first: its batch-16 step is the larger one (see models.TRAIN_VARIANTS).
  for stage in reversed(STAGES):
    for preset, batch_size in _variants(ctx, train=True):
      traced_here = (preset, stage) not in steps
      if traced_here:
        task = task_class(task_class.preset(preset).replace(stage=stage))
        mel_config = _prepared(ctx, task)
        config = task_class.default_train_config(preset)
        spec = tf.data.Dataset.from_tensors(_batch(task.config, batch_size)).element_spec
        steps[preset, stage] = (task, config, mel_config,
                                Trainer(task, config).train_step_fn(spec))
      task, config, mel_config, step = steps[preset, stage]
      batch = _batch(task.config, batch_size)
      frames = int(np.sum(batch["mel_lengths"].numpy()))
      ids = int(np.sum(batch["text_lengths"].numpy()))
      group = f"{stage}, {preset}, batch {batch_size}"
      torch_timing = None
      if reference is not None:  # before tfspeech: see models.TRAIN_VARIANTS
        dctts = _torch_module()
        reference.seed(0)
        torch_step = dctts.TrainStep(task.config, stage, learning_rate=config.learning_rate)
        torch_step.to(reference.device)
        torch_batch = _torch_batch(reference, stage, task.config, mel_config, batch)
        torch_timing = models._timed(  # pylint: disable=protected-access
            ctx, lambda: torch_step(**torch_batch), 3)
        models.log_step(ctx, f"dctts train {stage} {preset} b{batch_size} pytorch reference",
                        *torch_timing)
        parameters = dctts.count_parameters(torch_step.model)
        del torch_step, torch_batch
      samples, warmup = models._timed(  # pylint: disable=protected-access
          ctx, lambda: step(batch)["losses/loss"].numpy(), 3)
      step_flops, flops_extra = models.count_flops(
          ctx, f"dctts train {stage} {preset} b{batch_size}", step, batch)
      models.log_step(ctx, f"dctts train {stage} {preset} b{batch_size}", samples, warmup)
      measurements.append(models.tf_row(
          f"tfspeech {preset}", samples, reference, group=group, work=frames,
          work_unit="mel frames",
          note=(f"{1 / np.median(samples):.3g} steps/s; {frames} mel frames, {ids} ids per "
                "batch" + ("; magnitude targets: STFT in the step" if stage == "ssrn" else "")
                + ("" if traced_here else "; step traced at the batch above")),
          extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
                 "stage": stage, "batch_size": batch_size, "first_call_seconds": warmup,
                 "first_call_traced": traced_here, **flops_extra}, flops=step_flops))
      if torch_timing is None:
        continue
      samples, warmup = torch_timing
      measurements.append(models.torch_row(
          f"pytorch reference {preset}", samples, reference, group=group, work=frames,
          work_unit="mel frames",
          note=(f"{1 / np.median(samples):.3g} steps/s; Kyubyong/dc_tts train.py step on the "
                "same batch, targets precomputed as its loader does; timed before tfspeech's "
                "step; "),
          extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
                 "stage": stage, "batch_size": batch_size, "first_call_seconds": warmup,
                 "parameters": parameters}, flops=step_flops))
  return measurements


def _serving(task_class, config):
  """Untrained Text2Mel + SSRN served as tfspeech-synthesize serves them, and the networks."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.models.dctts import SSRN, Text2Mel
  text2mel, ssrn = Text2Mel(config, name="text2mel"), SSRN(config, name="ssrn")
  acoustic = task_class(config).serving({"text2mel": text2mel, "ssrn": ssrn}, {}).in_process()
  return acoustic, text2mel, ssrn


@harness.case("infer", "dctts")
def dctts_infer(ctx):
  """DC-TTS synthesis (make_synthesis_fn: Text2Mel decoding + SSRN) vs the reference's: RTF."""
  harness.require_model("dctts", "DC-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  task_class = registry.get("dctts")
  reference = models._Torch.get(ctx)  # pylint: disable=protected-access
  decoder_steps = 20 if ctx.quick else INFER_STEPS
  measurements = []
  built = {}  # preset → (config, synthesis fn, torch Text2Mel and SSRN or None)
  for preset, batch_size in _variants(ctx):
    if preset not in built:
      config = task_class.preset(preset).replace(end_frames=_NEVER_END)
      acoustic, text2mel, ssrn = _serving(task_class, config)
      torch_models = None
      if reference is not None:
        dctts = _torch_module()
        torch_models = (
            dctts.load_text2mel_weights(dctts.Text2Mel(config), text2mel).to(
                reference.device).eval(),
            dctts.load_ssrn_weights(dctts.SSRN(config), ssrn).to(reference.device).eval())
      built[preset] = (config, synthesize_lib.make_synthesis_fn(acoustic), torch_models)
    config, synthesize, torch_models = built[preset]
    inputs = _batch(config, batch_size, seed=1)
    ids, lengths = inputs["text_ids"], inputs["text_lengths"]
    seeds = tf.stack([tf.zeros([batch_size], tf.int32), tf.range(batch_size)], axis=1)
    out = {}

    def call():
      out["mel_lengths"] = synthesize(ids, lengths, seeds, tf.zeros([batch_size], tf.int32),
                                      tf.constant(decoder_steps))["mel_lengths"].numpy()
    samples, warmup = models._timed(ctx, call, 3)  # pylint: disable=protected-access
    frames = int(np.sum(out["mel_lengths"]))
    audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
    group = f"{preset}, batch {batch_size} × {decoder_steps} coarse frames"
    ctx.log(f"  dctts infer {preset} b{batch_size}: {np.median(samples):.3f} s for "
            f"{audio_seconds:.1f} audio s (first call {warmup:.1f} s)")
    measurements.append(models.tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=(f"{frames} mel frames from {int(np.sum(lengths.numpy()))} ids: Text2Mel's "
              "decoding loop (one tf.while_loop), SSRN, mel projection; throughput = RTF"),
        extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "frames": frames, "first_call_seconds": warmup}))
    if reference is None:
      continue
    torch = reference.torch
    torch_ids = torch.from_numpy(ids.numpy().astype(np.int64)).to(reference.device)
    torch_lengths = torch.from_numpy(lengths.numpy().astype(np.int64)).to(reference.device)
    text2mel, ssrn = torch_models
    torch_out = {}

    def torch_call():
      with torch.inference_mode():
        mels, coarse_lengths, _ = text2mel.inference(torch_ids, torch_lengths, decoder_steps)
        torch.sigmoid(ssrn(mels)).cpu()  # waits for the result
      torch_out["frames"] = int(coarse_lengths.sum()) * config.reduction
    samples, warmup = models._timed(ctx, torch_call, 3)  # pylint: disable=protected-access
    torch_audio_seconds = torch_out["frames"] * HOP_LENGTH / SAMPLE_RATE
    ctx.log(f"  dctts infer {preset} b{batch_size} pytorch reference: "
            f"{np.median(samples):.3f} s for {torch_audio_seconds:.1f} audio s")
    measurements.append(models.torch_row(
        f"pytorch reference {preset}", samples, reference, group=group,
        work=torch_audio_seconds, work_unit="audio s",
        note=("Kyubyong/dc_tts Text2Mel decoding (batched, text encoded once, audio encoder "
              "and decoder over the frames so far per step) + SSRN with tfspeech's weights, "
              f"inference_mode, {torch_out['frames']} mel frames; "),
        extra={"rtf": torch_audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "frames": torch_out["frames"],
               "tfspeech_frames": frames, "first_call_seconds": warmup}))
  return measurements


@harness.case("train", "dctts_options", on_request=True)
def dctts_options(ctx):
  """Parameters, Text2Mel train step and decoding time of the paper's model per option."""
  harness.require_model("dctts", "DC-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("dctts")
  preset = "tiny" if ctx.quick else "ljspeech"
  batch_size = 1 if ctx.quick else 8
  decoder_steps = 20 if ctx.quick else 60
  options = OPTIONS[:2] if ctx.quick else OPTIONS
  measurements = []
  for label, changes in options:
    config = task_class.preset(preset).replace(end_frames=_NEVER_END, **changes)
    task = task_class(config)
    _prepared(ctx, task)
    acoustic, text2mel, ssrn = _serving(task_class, config)
    counts = [sum(int(np.prod(w.shape)) for w in m.trainable_weights) for m in (text2mel, ssrn)]
    train_config = dataclasses.replace(task_class.default_train_config(preset),
                                       batch_size=batch_size)
    batch = _batch(config, batch_size)
    step = Trainer(task, train_config).train_step_fn(
        tf.data.Dataset.from_tensors(batch).element_spec)
    samples, warmup = models._timed(  # pylint: disable=protected-access
        ctx, lambda: step(batch)["losses/loss"].numpy(), 3)
    frames = int(np.sum(batch["mel_lengths"].numpy()))
    models.log_step(ctx, f"dctts options {label} train b{batch_size}", samples, warmup)
    note = (f"Text2Mel {counts[0] / 1e6:.2f} M, SSRN {counts[1] / 1e6:.2f} M parameters; "
            f"d={config.d}, c={config.c}")
    extra = {"option": label, "text2mel_parameters": counts[0], "ssrn_parameters": counts[1],
             "preset": preset, "batch_size": batch_size, **dict(changes)}
    measurements.append(harness.Measurement(
        f"tfspeech {label}", samples, baseline=label == "plain",
        group=f"Text2Mel train step, {preset}, batch {batch_size}", work=frames,
        work_unit="mel frames", note=note, extra=dict(extra, first_call_seconds=warmup)))
    synthesize = synthesize_lib.make_synthesis_fn(acoustic)
    inputs = _batch(config, 1, seed=1)
    samples, warmup = models._timed(  # pylint: disable=protected-access
        ctx, lambda: synthesize(inputs["text_ids"], inputs["text_lengths"],
                                tf.zeros([1, 2], tf.int32), tf.zeros([1], tf.int32),
                                tf.constant(decoder_steps))["mel"].numpy(), 3)
    audio_seconds = decoder_steps * config.reduction * HOP_LENGTH / SAMPLE_RATE
    ctx.log(f"  dctts options {label} decode: {np.median(samples):.3f} s for "
            f"{audio_seconds:.1f} audio s")
    measurements.append(harness.Measurement(
        f"tfspeech {label}", samples, baseline=label == "plain",
        group=f"decoding + SSRN, {preset}, batch 1 × {decoder_steps} coarse frames",
        work=audio_seconds, work_unit="audio s", note=note,
        extra=dict(extra, first_call_seconds=warmup)))
  return measurements

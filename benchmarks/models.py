"""Train and inference speed of Grad-TTS and HiFi-GAN against their PyTorch references.

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
- infer/hifigan: `vocode_lib.Vocoder.for_serving(HifiGanServing(...)).vocode` on random mels;
  throughput = audio seconds per second.

The weights are untrained, which does not change the cost of a step or a
synthesis of a given size (Grad-TTS's lengths are set by `length_scale`, see
`grad_tts_infer`).

Baseline of every group: the PyTorch transcription of the reference
(`benchmarks/torch_reference`: huawei-noah/Speech-Backbones Grad-TTS,
jik876/hifi-gan) with the same hyperparameters and parameter counts, timed in
the same run on the same inputs (the NumPy/TF batch converted to torch) with
the same warm-up/repeat policy. Both libraries keep their default thread
counts (all cores); torch waits passively (OMP_WAIT_POLICY=PASSIVE unless the
environment sets it, see `benchmarks/torch_reference/__init__.py`); the settings
are in each row's `extra`. Without torch the tfspeech rows remain, as absolute
numbers that say why.

FLOPs (`count_flops`, `benchmarks/flops.py`): each group's tfspeech call is traced once more
with the batch's exact shapes and its matmuls and convolutions counted; both rows of the group
carry that figure (the reference does the same work on the same inputs), so the report gives
each library's GFLOP/s and fraction of this machine's float32 matmul peak. Grad-TTS synthesis
has a data-dependent frame count, which its graph does not know: its count is the text encoder's
plus n_timesteps × the U-Net score estimator's, each traced at the frames the call produced
(`_grad_tts_synthesis_flops`).
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from benchmarks import flops as flops_lib
from benchmarks import harness

from benchmarks import torch_reference

NO_TORCH = f"no baseline: torch not installed ({torch_reference.INSTALL_HINT})"
# LJSpeech: 22050 Hz, hop 256 (both models' presets use it).
SAMPLE_RATE = 22050
HOP_LENGTH = 256
# A synthetic item: token ids (blanks included) and mel frames per token, as in LJSpeech
# (~100 characters → ~200 ids with blanks → ~6.5 s ≈ 560 frames).
MIN_TOKENS, MAX_TOKENS = 60, 150
FRAMES_PER_TOKEN = 4
# Train cases run batch 16 first and, within a batch, the reference before tfspeech: TensorFlow
# with oneDNN keeps its largest step's memory for the process's life (5.9 GB resident after the
# ljspeech Grad-TTS batch-16 step, even after malloc_trim), while PyTorch returns its memory to
# malloc, where TF's step reuses it. Grad-TTS batch 16 in one process: 12.9 GB peak with TF
# first, 6.8 GB with the reference first (2026-12-06, /proc/self/status VmHWM).
TRAIN_VARIANTS = [("ljspeech", 16), ("ljspeech", 1)]
# Calls expected to take longer than this get no second warm-up and one timed call (unless
# --repeats), to keep --suite=all short.
SLOW_CALL_SECONDS = 20.0
# Timed calls after the warm-up stop once the next one would take the timed total past this,
# unless --repeats: at most the case's default, and at least MIN_TIMED_CALLS (or the default,
# if smaller; one with --quick). --suite=all must fit in 30 minutes (issue #22); a 1 s call gets
# its 5 samples, a 2.5 s or 4 s call 3.
TIMING_BUDGET_SECONDS = 5.0
# A single timed call is a single draw of the machine's state: the first timed call after the
# warm-up is often the slowest (Grad-TTS ljspeech batch 1: 0.424 s, then 0.385-0.401 s), and the
# batch-16 rows that the budget cut to one sample moved the most between runs (Grad-TTS's step
# 5.04 s in the 03:05 run of 2026-12-07, 4.00 and 4.08 s in two runs of the case around it).
# Three make the median robust to one slow call, for ~3 more minutes of --suite=all.
MIN_TIMED_CALLS = 3


def _timed(ctx, fn, default_repeats):
  """Warm-up call, then timed calls: `MIN_TIMED_CALLS` (fewer only if `default_repeats` is, or
  one with --quick), more up to `default_repeats` while within TIMING_BUDGET_SECONDS; exactly
  --repeats if given. Returns (samples, warm-up seconds)."""
  return _timed_together(ctx, [fn], default_repeats)[0]


def _timed_together(ctx, fns, default_repeats, warm=()):
  """`_timed` for calls that are compared: their timed calls alternate (a, b, a, b, ...).

  This machine's speed moves for seconds to minutes at a time: one process's element-wise ops
  ran 0.25 ms a pass for a minute, then 0.40 (`[1, 412, 80, 64]` maps, 2026-12-07), while its
  convolutions barely moved. Timed one after the other, two models meet different minutes;
  alternating, both meet the same ones. (That is not all of the spread: the Grad-TTS 10-step
  synthesis ratio still read 1.30-1.50x in three runs within half an hour, alternating.) Each
  gets a warm-up call unless its index is in `warm`, then rounds of one call each: at least the
  minimum of `_timed`, more while all rounds stay within `len(fns)` budgets. Returns
  [(samples, warm-up seconds)] in `fns`' order (0.0 for the calls in `warm`).
  """
  warmups = [0.0] * len(fns)
  for i, fn in enumerate(fns):
    if i not in warm:
      start = time.perf_counter()
      fn()
      warmups[i] = time.perf_counter() - start
  if ctx.repeats_override is not None:
    limit = floor = ctx.repeats_override
  else:
    limit = ctx.repeats(default_repeats)
    floor = 1 if ctx.quick else min(limit, MIN_TIMED_CALLS)
  samples = [[] for _ in fns]
  while len(samples[0]) < limit:
    for fn, taken in zip(fns, samples):
      taken += harness.time_calls(fn, 1, warmup=0)
    spent = sum(sum(taken) + float(np.median(taken)) for taken in samples)
    if (ctx.repeats_override is None and len(samples[0]) >= floor
        and spent > TIMING_BUDGET_SECONDS * len(fns)):
      break
  return list(zip(samples, warmups))


class _Torch:
  """The torch reference of a case: its modules, device and thread facts (None: no torch)."""

  def __init__(self, ctx):
    # pylint: disable=import-outside-toplevel
    import torch
    from benchmarks.torch_reference import grad_tts, hifigan
    self.torch, self.grad_tts, self.hifigan = torch, grad_tts, hifigan
    cuda = ctx.device == "gpu" and torch.cuda.is_available()
    self.device = torch.device("cuda" if cuda else "cpu")
    self.label = "GPU" if cuda else "CPU"
    self.threads = torch_reference.thread_settings()
    self.note = (f"torch {torch.__version__}, {self.threads['torch_num_threads']} threads "
                 f"(OMP_WAIT_POLICY {self.threads['omp_wait_policy']}); TF intra/inter-op "
                 f"threads {self.threads['tf_intra_op_threads']}/"
                 f"{self.threads['tf_inter_op_threads']} (0 = all cores); both use every core "
                 "(default thread counts); glibc mmap threshold "
                 f"{self.threads['glibc_malloc']['MALLOC_MMAP_THRESHOLD_']}")
    if ctx.device == "gpu" and not cuda:
      self.note += "; torch has no CUDA here, so it ran on CPU against TF on GPU"

  @classmethod
  def get(cls, ctx):
    if not torch_reference.available():
      return None
    return cls(ctx)

  def seed(self, value=0):
    self.torch.manual_seed(value)

  def tensors(self, batch):
    return {k: v.to(self.device) for k, v in batch.items()}

  def channels_first(self, array):
    """`[b, frames, channels]` (NumPy or eager TF) -> torch `[b, channels, frames]` on the device,
    the layout of the references' mel inputs."""
    return self.torch.from_numpy(np.ascontiguousarray(
        np.asarray(array).transpose(0, 2, 1))).to(self.device)


def _tf_note(reference, note):
  """The tfspeech row's note: `note`, plus why there is no ratio when torch is missing."""
  return note if reference is not None else f"{note}; {NO_TORCH}"


def _thread_extra(reference):
  if reference is not None:
    return dict(reference.threads)
  return {"tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def tf_row(label, samples, reference, *, note, extra, **fields):
  """The tfspeech `Measurement` of a group; `note` gains why there is no ratio when torch is
  missing, `extra` the thread settings; `fields`: group, work, work_unit."""
  return harness.Measurement(label, samples, note=_tf_note(reference, note),
                             extra={**extra, **_thread_extra(reference)}, **fields)


def torch_row(label, samples, reference, *, note, extra, **fields):
  """The PyTorch baseline `Measurement` of a group, on `reference`'s device; `note` gains the
  torch version and thread facts, `extra` the thread settings."""
  return harness.Measurement(label, samples, baseline=True, device=reference.label,
                             note=note + reference.note, extra={**extra, **reference.threads},
                             **fields)


def precision_error(output, exact):
  """(max |output - exact|, max |exact|, SNR in dB of `output` against `exact`)."""
  output, exact = np.asarray(output, np.float64), np.asarray(exact, np.float64)
  error = output - exact
  snr = 10.0 * np.log10(np.sum(exact ** 2) / max(np.sum(error ** 2), 1e-30))
  return float(np.abs(error).max()), float(np.abs(exact).max()), float(snr)


def torch_bfloat16_samples(ctx, reference, what, call):
  """The reference's `call` timed under `torch.autocast(bfloat16)` (at most 2 timed calls)."""
  def autocast_call():
    with reference.torch.autocast(reference.device.type, dtype=reference.torch.bfloat16):
      return call()
  samples, _ = _timed(ctx, autocast_call, 2)
  ctx.log(f"  {what} pytorch reference bfloat16: {np.median(samples):.3f} s")
  return samples


def torch_bfloat16_row(ctx, reference, what, call, tf_seconds, *, label, model_note,
                       samples=None, work_unit="audio s", **fields):
  """The reference under `torch.autocast(bfloat16)` as a row beside tfspeech's bfloat16 row
  (`tf_seconds`, its median): `call` timed by `torch_bfloat16_samples`, or its `samples` when
  already timed; `fields`: group, work, extra."""
  if samples is None:
    samples = torch_bfloat16_samples(ctx, reference, what, call)
  extra = fields.pop("extra")
  return harness.Measurement(
      f"{label} bfloat16 (autocast)", samples, work_unit=work_unit, device=reference.label,
      note=(f"{model_note} under torch.autocast(bfloat16); tfspeech bfloat16 is "
            f"{np.median(samples) / tf_seconds:.2f}x it; " + reference.note),
      extra={**extra, "precision": "bfloat16", **reference.threads}, **fields)


def mixed_step_fields(policy, tf_seconds, samples):
  """(note suffix, extra) of a train row under `mixed_precision=policy`; records its median in
  `tf_seconds["bfloat16"]` beside the float32 step's (timed first)."""
  tf_seconds["bfloat16"] = float(np.median(samples))
  note = (f"; mixed_precision={policy!r}: bfloat16 compute, float32 variables; "
          f"{tf_seconds['float32'] / tf_seconds['bfloat16']:.2f}x tfspeech float32")
  return note, {"precision": "bfloat16", "mixed_precision": policy}


def count_flops(ctx, what, fn, *args, while_trips=None):
  """FLOPs of one call `fn(*args)` (a tf.function or Python callable), from one extra trace with
  the args' exact shapes (no graph optimisation, nothing runs). Not counted where `what` names
  a tiny preset (returns None).

  Returns:
    (flops, or None when the count is partial or failed; facts for the rows' `extra`:
    the count's `summary()` and `flops_trace_seconds`).
  """
  if " tiny " in f" {what} ":
    # Tiny presets are bound by per-op overhead, not arithmetic: their fraction of peak says
    # little, and each count is one more trace (5-15 s) of --suite=all's budget.
    return None, {"flops_skipped": "tiny preset: not counted"}
  start = time.perf_counter()
  try:
    counted = flops_lib.count_call(fn, *args, while_trips=while_trips)
  except Exception as e:  # pylint: disable=broad-except
    # A count that fails must not cost the case's timings.
    ctx.log(f"  {what}: FLOPs not counted ({type(e).__name__}: {e})")
    return None, {"flops_error": f"{type(e).__name__}: {e}"}
  seconds = time.perf_counter() - start
  extra = dict(counted.summary(), flops_trace_seconds=seconds)
  ctx.log(f"  {what}: {counted.flops / 1e9:.4g} GFLOP per call (counted in {seconds:.1f} s)"
          + ("" if counted.complete else
             f"; PARTIAL, not reported: {len(counted.unknown_ops)} ops without static shapes, "
             f"{len(counted.unknown_loops)} loops without trips"))
  return (counted.flops if counted.complete else None), extra


def log_step(ctx, what, samples, warmup):
  """Logs a train step's median time and its first (tracing) call."""
  ctx.log(f"  {what}: {np.median(samples):.3f} s/step (first call {warmup:.1f} s)")


def _token_lengths(rng, batch):
  return rng.integers(MIN_TOKENS, MAX_TOKENS + 1, size=batch).astype(np.int32)


def text_mel_batch(rng, batch, n_vocab, n_mels, frames_per_token=FRAMES_PER_TOKEN):
  """A padded text-to-mel training batch as the task pipelines give it, drawn from `rng`.

  Returns:
    {"text_ids": `[batch, tokens]` int32 ids in [1, n_vocab), 0 past each length;
     "text_lengths": `[batch]` int32 in [MIN_TOKENS, MAX_TOKENS];
     "mel": `[batch, frames, n_mels]` float32 random log-mels, log(1e-5) past each length;
     "mel_lengths": `[batch]` int32, `frames_per_token` per token} as TF tensors.
  """
  text_lengths = _token_lengths(rng, batch)
  mel_lengths = (text_lengths * frames_per_token).astype(np.int32)
  ids = rng.integers(1, n_vocab, size=[batch, text_lengths.max()]).astype(np.int32)
  ids[np.arange(text_lengths.max())[None, :] >= text_lengths[:, None]] = 0
  mel = rng.normal(-5.0, 2.0, size=[batch, mel_lengths.max(), n_mels])
  mel[np.arange(mel_lengths.max())[None, :] >= mel_lengths[:, None]] = np.log(1e-5)
  return {"text_ids": tf.constant(ids), "text_lengths": tf.constant(text_lengths),
          "mel": tf.constant(mel, tf.float32), "mel_lengths": tf.constant(mel_lengths)}


# --- Grad-TTS ------------------------------------------------------------------------------


def _grad_tts_batch(config, batch, seed=0):
  """A padded batch as the task's pipeline gives it: ids, lengths, log-mels, mel lengths."""
  return text_mel_batch(np.random.default_rng(seed), batch, config.n_vocab, config.n_feats)


def _grad_tts_variants(ctx, infer=False):
  """(preset, batch) pairs. CPU-sized: no ljspeech synthesis at batch 16, which took 2 and 4
  minutes per call for tfspeech and the reference on 2 cores (7 min of the suite's budget);
  tiny synthesis at batch 16 stands in for it. Training: ljspeech only (the tiny rows, one
  more trace and two more references, cost a minute of --suite=all's 30 for a model only the
  demo trains). --quick: tiny at batch 1."""
  if ctx.quick:
    return [("tiny", 1)]
  if infer:
    return [("tiny", 16), ("ljspeech", 1)]
  return TRAIN_VARIANTS


@harness.case("train", "grad_tts")
def grad_tts_train(ctx):
  """Grad-TTS train step (Trainer, MAS + losses + Adam) vs the PyTorch reference's train.py step;
  --extended also times the `mixed_bfloat16` step beside the reference under
  `torch.autocast(bfloat16)` (about a minute, which --suite=all's 30 do not have)."""
  harness.require_model("grad_tts", "Grad-TTS")
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.training import Trainer  # pylint: disable=import-outside-toplevel
  task_class = registry.get("grad_tts")
  reference = _Torch.get(ctx)
  policies = ("none", "mixed_bfloat16") if ctx.extended else ("none",)
  measurements = []
  steps = {}  # (preset, policy) → (task, train config, traced step), serving every batch size
  for preset, batch_size in _grad_tts_variants(ctx):
    group = f"{preset}, batch {batch_size}"
    torch_timing = torch_bf16 = torch_call = None
    tf_seconds = {}
    # At batch 1 the steps are small, so the reference's stays alive and the timed steps take
    # turns (`_timed_together`); at batch 16 the reference runs first and is freed (memory:
    # see TRAIN_VARIANTS).
    alternate = batch_size == 1
    traced = {}
    for policy in policies:
      traced[policy] = (preset, policy) not in steps
      if traced[policy]:
        task = task_class(task_class.preset(preset))
        config = dataclasses.replace(task_class.default_train_config(preset),
                                     mixed_precision=policy)
        # The step's input signature has None dims (relaxed_spec): the function traced at the
        # first batch size runs the others without retracing, so tracing and graph optimisation
        # (30-60 s per preset) are paid once per preset, as in a real run.
        spec = tf.data.Dataset.from_tensors(_grad_tts_batch(task.config, batch_size)).element_spec
        steps[(preset, policy)] = (task, config, Trainer(task, config).train_step_fn(spec))
    task, config, _ = steps[(preset, policies[0])]
    batch = _grad_tts_batch(task.config, batch_size)
    frames = int(np.sum(batch["mel_lengths"].numpy()))
    ids = int(np.sum(batch["text_lengths"].numpy()))
    if reference is not None:
      reference.seed(0)
      model = reference.grad_tts.GradTTS(reference.grad_tts.params_from_tfspeech(task.config))
      torch_step = reference.grad_tts.TrainStep(model.to(reference.device),
                                                learning_rate=config.learning_rate, seed=0)
      torch_batch = reference.tensors(reference.grad_tts.torch_batch(batch))
      torch_call = lambda: torch_step(torch_batch)  # pylint: disable=cell-var-from-loop
      if not alternate:  # before tfspeech: see TRAIN_VARIANTS
        torch_timing = _timed(ctx, torch_call, 5)
        log_step(ctx, f"grad_tts train {preset} b{batch_size} pytorch reference", *torch_timing)
      if ctx.extended:
        torch_bf16 = torch_bfloat16_samples(
            ctx, reference, f"grad_tts train {preset} b{batch_size}", torch_call)
      parameters = reference.grad_tts.count_parameters(model)
      if not alternate:
        del model, torch_step, torch_batch, torch_call
    calls = [lambda step=steps[(preset, policy)][2]: step(batch)["losses/loss"].numpy()
             for policy in policies]
    if alternate and torch_call is not None:
      timings = _timed_together(ctx, calls + [torch_call], 5)
      torch_timing = timings.pop()
      log_step(ctx, f"grad_tts train {preset} b{batch_size} pytorch reference", *torch_timing)
      del model, torch_step, torch_batch, torch_call
    else:
      timings = [_timed(ctx, call, 5) for call in calls]
    for policy, (samples, warmup) in zip(policies, timings):
      traced_here = traced[policy]
      step = steps[(preset, policy)][2]
      mixed = policy != "none"
      row_flops, row_extra, note = None, {}, ""
      if mixed:
        note, row_extra = mixed_step_fields(policy, tf_seconds, samples)
      else:  # the mixed step does the same work: one count per group
        tf_seconds["float32"] = float(np.median(samples))
        step_flops, flops_extra = count_flops(ctx, f"grad_tts train {preset} b{batch_size}",
                                              step, batch)
        row_flops, row_extra = step_flops, flops_extra
      if alternate and torch_timing is not None:
        note += "; timed steps took turns with the reference's" + (
            " and the other precision's" if len(policies) > 1 else "")
      log_step(ctx, f"grad_tts train {preset} b{batch_size}{' mixed_bfloat16' if mixed else ''}",
               samples, warmup)
      measurements.append(tf_row(
          f"tfspeech {preset}{' mixed_bfloat16' if mixed else ''}", samples, reference,
          group=group, work=frames, work_unit="mel frames",
          note=(f"{1 / np.median(samples):.3g} steps/s; {frames} frames, {ids} ids per batch"
                + ("" if traced_here else "; step traced at the batch above") + note),
          extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
                 "batch_size": batch_size, "first_call_seconds": warmup,
                 "first_call_traced": traced_here, **row_extra}, flops=row_flops))
    if torch_timing is None:
      continue
    samples, warmup = torch_timing
    measurements.append(torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=frames,
        work_unit="mel frames",
        note=(f"{1 / np.median(samples):.3g} steps/s; Speech-Backbones train.py step, same "
              f"batch, same out_size={task.config.out_size} random segment as tfspeech; MAS "
              "is the Cython core on host copies (tfspeech: in-graph op); gradient norms "
              "clipped per encoder and decoder (tfspeech: whole model; same cost); "
              + ("timed in turn with tfspeech's steps; " if alternate
                 else "timed before tfspeech's step; ")),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "first_call_seconds": warmup,
               "parameters": parameters}, flops=step_flops))
    if torch_bf16 is not None:
      measurements.append(torch_bfloat16_row(
          ctx, reference, f"grad_tts train {preset} b{batch_size}", None,
          tf_seconds["bfloat16"], samples=torch_bf16, label=f"pytorch reference {preset}",
          model_note="the same train step", group=group, work=frames, work_unit="mel frames",
          extra={"preset": preset, "batch_size": batch_size}))
  return measurements


def _grad_tts_synthesis_flops(ctx, what, model, ids, lengths, mel_lengths):
  """(encoder FLOPs, U-Net FLOPs per diffusion step, facts) of a synthesis call whose items came
  out `mel_lengths` long: the decoder runs on `compatible_frames(max(mel_lengths))` frames."""
  frames = int(model.compatible_frames(int(np.max(mel_lengths))))
  batch, n_feats = int(ids.shape[0]), model.config.n_feats
  encoder, encoder_extra = count_flops(
      ctx, f"{what} encoder", lambda i, n: model.encode(i, n)[0], ids, lengths)
  step, step_extra = count_flops(
      ctx, f"{what} U-Net step at {frames} frames",
      lambda x, m, t: model.decoder.estimator(x, m, x, t, None),
      tf.zeros([batch, frames, n_feats]), tf.ones([batch, frames]), tf.ones([batch]))
  extra = {"flops_encoder": encoder, "flops_per_step": step, "flops_decoder_frames": frames,
           "flops_trace_seconds": (encoder_extra.get("flops_trace_seconds", 0.0)
                                   + step_extra.get("flops_trace_seconds", 0.0))}
  return encoder, step, extra


def _time_synthesis(ctx, calls, expected, warm=()):
  """Times synthesis calls that are compared, alternating (`_timed_together`); skips the
  warm-ups when the previous step count predicts a slow call, and those of the calls in `warm`
  (nothing to trace, and the same shapes ran before: the reference at 50 steps after its 10-step
  calls).

  Returns:
    ([(samples, warm-up seconds)] in `calls`' order, expected seconds of the first call at 5×
    the steps).
  """
  if expected is not None and expected > SLOW_CALL_SECONDS:
    # The probe call traced the functions; second warm-ups would cost minutes.
    timings = [(harness.time_calls(call, ctx.repeats_override or 1, warmup=0), 0.0)
               for call in calls]
  else:
    timings = _timed_together(ctx, calls, 3, warm=warm)
  return timings, float(np.median(timings[0][0])) * 5


@harness.case("infer", "grad_tts")
def grad_tts_infer(ctx):
  """Grad-TTS synthesis (make_synthesis_fn) vs the PyTorch reference's forward: RTF."""
  harness.require_model("grad_tts", "Grad-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models.grad_tts import GradTTS
  from tfspeech.models import registry
  from tfspeech.training import precision as precision_lib
  task_class = registry.get("grad_tts")
  reference = _Torch.get(ctx)
  timesteps = (10,) if ctx.quick else (10, 50)
  measurements = []
  variants = _grad_tts_variants(ctx, infer=True)
  # The same weights in every run: the bfloat16 row's error depends on them (the ljspeech
  # U-Net's SNR was 22, 29 and 24 dB in three unseeded runs of the same code).
  tf.keras.utils.set_random_seed(0)
  for preset in sorted({p for p, _ in variants}, key=["tiny", "ljspeech"].index):
    config = task_class.preset(preset)
    model = GradTTS(config)
    # What tfspeech-synthesize runs: the diffusion as a loop (exports unroll it).
    acoustic = task_class(config).serving({"grad_tts": model}, {}).in_process()
    # The same weights with the U-Net in bfloat16 (load_run(..., precision="bfloat16")).
    with precision_lib.precision_policy("bfloat16"):
      bf16_model = GradTTS(config)
      bf16_acoustic = task_class(config).serving({"grad_tts": bf16_model}, {}).in_process()
    for source, target in zip(model.variables, bf16_model.variables):
      target.assign(source)
    if reference is not None:
      # tfspeech's weights, so that both predict the same durations (hence mel lengths).
      torch_model = reference.grad_tts.load_tfspeech_weights(
          reference.grad_tts.GradTTS(reference.grad_tts.params_from_tfspeech(config)), model)
      torch_model = torch_model.to(reference.device).eval()
    for batch_size in sorted({b for p, b in variants if p == preset}):
      inputs = _grad_tts_batch(config, batch_size, seed=1)
      ids, lengths = inputs["text_ids"], inputs["text_lengths"]
      seeds = tf.stack([tf.zeros([batch_size], tf.int32), tf.range(batch_size)], axis=1)

      def run(n_timesteps, length_scale, served=acoustic):
        # One traced graph per step count (steps are a static control).
        synthesize = synthesize_lib.make_synthesis_fn(served, {"n_timesteps": n_timesteps})
        return synthesize(ids, lengths, seeds, tf.zeros([batch_size], tf.int32),
                          tf.constant(1.5), tf.constant(length_scale, tf.float32))

      # Untrained durations are ~1 frame per id; scale them to FRAMES_PER_TOKEN so the
      # decoder runs on utterance-sized mels (this call also traces the function).
      probe = run(1, 1.0)["mel_lengths"].numpy()
      length_scale = FRAMES_PER_TOKEN * float(np.sum(lengths.numpy())) / max(
          float(np.sum(probe)), 1.0)
      if reference is not None:
        torch_inputs = reference.tensors(reference.grad_tts.torch_batch(inputs))

        def run_torch(n_timesteps, length_scale=length_scale):
          """The reference's GradTTS.forward (temperature 1.5, stoc=False) -> total frames."""
          with reference.torch.inference_mode():
            _, _, attn = torch_model(torch_inputs["x"], torch_inputs["x_lengths"], n_timesteps,
                                     temperature=1.5, stoc=False, length_scale=length_scale)
            return int(attn.sum())  # = sum of y_lengths; waits for the result

        reference.seed(1)
        run_torch(1)  # mirrors tfspeech's probe call
      # Batch 16 runs 10 steps only (CPU-sized suite): the decoder's cost grows linearly with
      # the steps (measured: tiny × 16 × 50 steps 44 s per call and library; ljspeech ~7 min).
      big = batch_size > 1 and not ctx.quick
      expected = None  # seconds per call, from the previous step count
      counted = None  # (encoder, per-step FLOPs, facts), once per preset and batch
      for n_timesteps in ((10,) if big else timesteps):
        out, torch_out = {}, {}

        def call(n_timesteps=n_timesteps, served=acoustic, key="float32"):
          result = run(n_timesteps, length_scale, served)
          out["mel_lengths"], out[key] = result["mel_lengths"].numpy(), result["mel"].numpy()

        def torch_call(n_timesteps=n_timesteps):
          torch_out["frames"] = run_torch(n_timesteps)

        # bfloat16 for ljspeech at 10 steps only (the ratio to float32 holds per step; the
        # tiny U-Net is bound by per-op overhead, where bfloat16 gains nothing: 3.84 s against
        # float32's 3.65 at batch 16; --suite=all's 30 minutes).
        calls = {"float32": call}
        if n_timesteps == 10 and preset != "tiny":
          calls["bfloat16"] = lambda: call(served=bf16_acoustic, key="bfloat16")
        if reference is not None:
          calls["reference"] = torch_call
        # The reference's shapes ran at the previous step count: no second warm-up.
        warm = {len(calls) - 1} if reference is not None and expected is not None else set()
        timings, expected = _time_synthesis(ctx, list(calls.values()), expected, warm=warm)
        timings = dict(zip(calls, timings))
        samples, warmup = timings["float32"]
        frames = int(np.sum(out["mel_lengths"]))
        audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
        group = f"{preset}, batch {batch_size}, {n_timesteps} steps"
        if counted is None:
          counted = _grad_tts_synthesis_flops(ctx, f"grad_tts infer {preset} b{batch_size}",
                                              model, ids, lengths, out["mel_lengths"])
        call_flops = (counted[0] + n_timesteps * counted[1]
                      if counted[0] is not None and counted[1] is not None else None)
        ctx.log(f"  grad_tts infer {preset} b{batch_size} T={n_timesteps}: "
                f"{np.median(samples):.3f} s for {audio_seconds:.1f} audio s")
        alternated = ("; timed calls alternated with " + ", ".join(
            {"bfloat16": "bfloat16's", "reference": "the reference's"}[k]
            for k in calls if k != "float32")) if len(calls) > 1 else ""
        measurements.append(tf_row(
            f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
            work_unit="audio s",
            note=(f"{frames} frames from {int(np.sum(lengths.numpy()))} ids "
                  f"(length_scale {length_scale:.2f}); throughput = RTF"
                  + ("; 50 steps not run (~5× the time)" if big else "") + alternated),
            extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
                   "batch_size": batch_size, "n_timesteps": n_timesteps, "frames": frames,
                   "length_scale": length_scale, "first_call_seconds": warmup, **counted[2]},
            flops=call_flops))
        bf16_samples = timings["bfloat16"][0] if "bfloat16" in timings else None
        if bf16_samples is not None:
          error, peak, snr = precision_error(out["bfloat16"], out["float32"])
          ctx.log(f"  grad_tts infer {preset} b{batch_size} T={n_timesteps} bfloat16: "
                  f"{np.median(bf16_samples):.3f} s (SNR {snr:.0f} dB)")
          measurements.append(tf_row(
              f"tfspeech {preset} bfloat16", bf16_samples, reference, group=group,
              work=audio_seconds, work_unit="audio s",
              note=(f"load_run(..., precision='bfloat16'): the U-Net in bfloat16 (encoder, "
                    f"durations and the diffusion state float32, float32 weights); "
                    f"{np.median(samples) / np.median(bf16_samples):.2f}x tfspeech float32; "
                    f"same durations; max |error| {error:.3g} (mel peak {peak:.3g}), SNR "
                    f"{snr:.0f} dB (untrained weights)"),
              extra={"rtf": audio_seconds / float(np.median(bf16_samples)), "preset": preset,
                     "batch_size": batch_size, "n_timesteps": n_timesteps,
                     "precision": "bfloat16", "max_abs_error": error, "snr_db": snr}))
        if reference is None:
          continue
        samples, warmup = timings["reference"]
        torch_frames = torch_out["frames"]
        torch_audio_seconds = torch_frames * HOP_LENGTH / SAMPLE_RATE
        ctx.log(f"  grad_tts infer {preset} b{batch_size} T={n_timesteps} pytorch reference: "
                f"{np.median(samples):.3f} s for {torch_audio_seconds:.1f} audio s")
        same = ("same frames as tfspeech" if torch_frames == frames
                else f"tfspeech: {frames} frames")
        measurements.append(torch_row(
            f"pytorch reference {preset}", samples, reference, group=group,
            work=torch_audio_seconds, work_unit="audio s",
            note=(f"Speech-Backbones GradTTS.forward with tfspeech's weights (Euler sampler, "
                  f"temperature 1.5, stoc=False, same length_scale), inference_mode; "
                  f"{torch_frames} frames ({same}); "),
            extra={"rtf": torch_audio_seconds / float(np.median(samples)), "preset": preset,
                   "batch_size": batch_size, "n_timesteps": n_timesteps,
                   "frames": torch_frames, "tfspeech_frames": frames,
                   "length_scale": length_scale, "first_call_seconds": warmup},
            flops=call_flops if torch_frames == frames else None))
        if bf16_samples is not None and batch_size == 1:
          measurements.append(torch_bfloat16_row(
              ctx, reference, f"grad_tts infer {preset} b{batch_size} T={n_timesteps}",
              lambda n_timesteps=n_timesteps: run_torch(n_timesteps),
              float(np.median(bf16_samples)), label=f"pytorch reference {preset}",
              model_note="GradTTS.forward (the whole model)", group=group,
              work=torch_audio_seconds,
              extra={"preset": preset, "batch_size": batch_size, "n_timesteps": n_timesteps}))
  return measurements


# --- HiFi-GAN ------------------------------------------------------------------------------


def _write_dataset_json(directory, mel_config):
  """The dataset.json facts the hifigan task checks (sets up its mel loss), no records."""
  from tfspeech.data import CorpusInfo  # pylint: disable=import-outside-toplevel
  CorpusInfo(mel_config=mel_config, counts={"train": 13100, "validation": 0}).write(directory)


@harness.case("train", "hifigan")
def hifigan_train(ctx):
  """HiFi-GAN GAN step (Trainer: G + MPD + MSD, two AdamW) vs the reference train.py step."""
  harness.require_model("hifigan", "HiFi-GAN")
  # pylint: disable=import-outside-toplevel
  from tfspeech import audio as audio_lib
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("hifigan")
  reference = _Torch.get(ctx)
  mel_config = audio_lib.MelConfig.hifigan()
  _write_dataset_json(ctx.tmp_dir, mel_config)
  mel_fn = audio_lib.MelSpectrogram(mel_config)
  # v1 at its batch 16 is ~30 s per step on 2 CPU cores: batch 1 here.
  # tiny (the demo's) left out of the full suite: one more trace and reference for a model
  # nobody ships, within --suite=all's 30 minutes.
  variants = [("tiny", 16)] if ctx.quick else [("v1", 1)]
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
    step_flops, flops_extra = count_flops(ctx, f"hifigan train {preset} b{batch_size}", step,
                                          batch)
    audio_seconds = batch_size * segment / SAMPLE_RATE
    group = f"{preset}, batch {batch_size} × {segment} samples"
    log_step(ctx, f"hifigan train {preset} b{batch_size}", samples, warmup)
    measurements.append(tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s", note=f"{1 / np.median(samples):.3g} steps/s",
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "segment_size": segment,
               "first_call_seconds": warmup, **flops_extra}, flops=step_flops))
    if reference is None:
      continue
    torch_lib, hifigan = reference.torch, reference.hifigan
    reference.seed(0)
    torch_step = hifigan.TrainStep(hifigan.params_from_tfspeech(task.config),
                                   learning_rate=config.learning_rate)
    for module in (torch_step.generator, torch_step.mpd, torch_step.msd):
      module.to(reference.device)
    y = torch_lib.from_numpy(audio.numpy()).to(reference.device)
    x = reference.channels_first(batch["mel"])
    # The reference's data loader computes the loss mel (fmax_for_loss) outside the step.
    y_mel = torch_step.loss_mel(y)
    samples, warmup = _timed(ctx, lambda: torch_step(x, y.unsqueeze(1), y_mel), 3)
    log_step(ctx, f"hifigan train {preset} b{batch_size} pytorch reference", samples, warmup)
    measurements.append(torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=(f"{1 / np.median(samples):.3g} steps/s; jik876/hifi-gan train.py step on the "
              "same audio and input mels: D update then G update through the updated D, "
              "real and fake in separate D calls (tfspeech: one call on both), loss mel of "
              "the real audio precomputed as its data loader does (tfspeech: in the step); "),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "segment_size": segment,
               "first_call_seconds": warmup}, flops=step_flops))
  return measurements


@harness.case("infer", "hifigan")
def hifigan_infer(ctx):
  """HiFi-GAN generator (Vocoder.vocode, weight norm folded) vs the reference generator: RTF."""
  harness.require_model("hifigan", "HiFi-GAN")
  # pylint: disable=import-outside-toplevel
  from tfspeech import testing
  from tfspeech.inference import vocode_lib
  from tfspeech.models.hifigan import get_preset
  from tfspeech.models.hifigan.generator import HifiGanGenerator
  from tfspeech.models.hifigan.hifigan_serving import HifiGanServing
  from tfspeech.training import precision as precision_lib
  reference = _Torch.get(ctx)
  # (preset, batch, audio seconds per item). CPU-sized: batch 16 gets 2 s items (32 s of audio
  # per call; V1 at 16 × 10 s would take minutes per call per library on 2 cores).
  if ctx.quick:
    variants = [("v3", 1, 2.0)]
  else:
    variants = [(p, b, 10.0 if b == 1 else 2.0) for p in ("v1", "v2", "v3") for b in (1, 16)]
  measurements = []
  vocoders, bf16_vocoders, generators, tf_generators = {}, {}, {}, {}
  # The same weights in every run (randomize_weights perturbs the initializers' draws): the
  # bfloat16 rows' error depends on them (V3's SNR ranged 28-46 dB across unseeded runs).
  tf.keras.utils.set_random_seed(0)
  for preset, batch_size, seconds in variants:
    if preset not in vocoders:
      network = get_preset(preset)
      generator = HifiGanGenerator(network, weight_norm=False)
      # Trained-like weights (timing does not depend on them; the bfloat16 rows' error does).
      testing.randomize_weights([generator], seed=0)
      tf_generators[preset] = generator
      vocoders[preset] = vocode_lib.Vocoder.for_serving(HifiGanServing(generator, SAMPLE_RATE))
      # The same weights computed in bfloat16 (what load_vocoder(..., precision="bfloat16")
      # builds: float32 variables, bfloat16 compute).
      with precision_lib.precision_policy("bfloat16"):
        bf16_generator = HifiGanGenerator(network, weight_norm=False)
        bf16_vocoders[preset] = vocode_lib.Vocoder.for_serving(
            HifiGanServing(bf16_generator, SAMPLE_RATE))
      for source, target in zip(generator.variables, bf16_generator.variables):
        target.assign(source)
      # Trace once on a short input: the signature has None dims, so one graph serves all.
      short = tf.zeros([1, 8, network.num_mels])
      for vocoder in (vocoders[preset], bf16_vocoders[preset]):
        vocoder.vocode(short, tf.constant([8]))[0].numpy()
      if reference is not None:
        reference.seed(0)
        generators[preset] = reference.hifigan.inference_generator(
            reference.hifigan.params_from_tfspeech(network)).to(reference.device)
        with reference.torch.inference_mode():  # the same short first call
          generators[preset](reference.torch.zeros(1, network.num_mels, 8,
                                                   device=reference.device)).cpu()
    vocoder = vocoders[preset]
    frames = int(round(seconds * SAMPLE_RATE / vocoder.hop_length))
    mels = tf.random.stateless_normal([batch_size, frames, vocoder.num_mels], [0, 0],
                                      mean=-5.0, stddev=2.0)
    lengths = tf.fill([batch_size], frames)
    big = batch_size * seconds > 40  # minutes per call on 2 cores: no warm-up, one repeat

    outputs = {}

    def vocode(vocoder_, key):
      outputs[key] = vocoder_.vocode(mels, lengths)[0].numpy()
      return outputs[key]
    calls = [lambda: vocode(vocoder, "float32"),
             lambda: vocode(bf16_vocoders[preset], "bfloat16")]
    if reference is not None:
      torch_generator = generators[preset]
      torch_mels = reference.channels_first(mels)

      def torch_call():
        with reference.torch.inference_mode():
          return torch_generator(torch_mels).cpu()  # waits for the result, as .numpy() does
      calls.append(torch_call)
    if big:
      timings = [ctx.time(fn, repeats=ctx.repeats_override or 1, warmup=0) for fn in calls]
    else:  # alternating, so that the compared calls meet the same minutes of the machine
      timings = [samples for samples, _ in _timed_together(ctx, calls, 3)]
    samples, bf16_samples = timings[:2]
    audio_seconds = batch_size * frames * vocoder.hop_length / SAMPLE_RATE
    group = f"{preset}, batch {batch_size} × {seconds:g} s"
    # The generator's FLOPs: the serving wrapper's dynamic padding hides the frame count from
    # the graph, and adds only element-wise work.
    call_flops, flops_extra = count_flops(
        ctx, f"hifigan infer {preset} b{batch_size}",
        lambda m, g=tf_generators[preset]: g(m, training=False), mels)
    ctx.log(f"  hifigan infer {preset} b{batch_size}: {np.median(samples):.3f} s for "
            f"{audio_seconds:.0f} audio s")
    measurements.append(tf_row(
        f"tfspeech {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=("throughput = RTF (audio s per wall s)"
              + ("; warm-up was a short input only" if big else
                 "; timed calls alternated with bfloat16's"
                 + (" and the reference's" if reference is not None else ""))),
        extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "audio_seconds_per_item": seconds, **flops_extra},
        flops=call_flops))
    error, peak, snr = precision_error(outputs["bfloat16"], outputs["float32"])
    ctx.log(f"  hifigan infer {preset} b{batch_size} bfloat16: {np.median(bf16_samples):.3f} s "
            f"(max |error| {error / peak:.2%} of the float32 audio's peak, SNR {snr:.0f} dB)")
    measurements.append(tf_row(
        f"tfspeech {preset} bfloat16", bf16_samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=(f"load_vocoder(..., precision='bfloat16'): bfloat16 compute, float32 weights; "
              f"{np.median(samples) / np.median(bf16_samples):.2f}x tfspeech float32; "
              f"max |error| {error / peak:.2%} of the float32 audio's peak, SNR {snr:.0f} dB "
              f"(weights perturbed like a trained model's)"),
        extra={"rtf": audio_seconds / float(np.median(bf16_samples)), "preset": preset,
               "batch_size": batch_size, "precision": "bfloat16",
               "max_abs_error_of_peak": error / peak, "snr_db": snr}))
    if reference is None:
      continue
    samples = timings[2]
    ctx.log(f"  hifigan infer {preset} b{batch_size} pytorch reference: "
            f"{np.median(samples):.3f} s for {audio_seconds:.0f} audio s")
    measurements.append(torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=audio_seconds,
        work_unit="audio s",
        note=("jik876/hifi-gan Generator, weight norm removed, inference_mode, same mels; "
              + ("warm-up was a short input only; " if big else "")),
        extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "audio_seconds_per_item": seconds},
        flops=call_flops))
    if batch_size != 1:  # the reference in bfloat16 at batch 1 only (--suite=all's 30 minutes)
      continue

    measurements.append(torch_bfloat16_row(
        ctx, reference, f"hifigan infer {preset} b{batch_size}", torch_call,
        float(np.median(bf16_samples)), label=f"pytorch reference {preset}",
        model_note="the reference generator", group=group, work=audio_seconds,
        extra={"preset": preset, "batch_size": batch_size}))
  return measurements

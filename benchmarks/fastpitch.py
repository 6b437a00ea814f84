"""Train and inference speed of FastPitch 1.1 against its PyTorch transcription.

Follows `benchmarks.models` (its `_Torch`, `_timed` and row policies):

- train/fastpitch: `Trainer(FastPitchTask, ...).train_step_fn` (alignment encoder, in-graph
  MAS, per-token pitch/energy targets, the five losses, the optimizer) on batches of 60-150
  token ids and 4 frames per token (with --quick also XLA-compiled, `xla=True`: slower on
  CPU, see below); throughput in mel frames per second. Also the same step under
  `mixed_precision="mixed_bfloat16"` beside the reference's step under
  `torch.autocast(bfloat16)`.
- infer/fastpitch: `synthesize_lib.make_synthesis_fn` of the serving's `in_process()` form
  (the traced batched text-to-mel, what `tfspeech-synthesize` runs: on CPUs the decoder's
  feed-forward convolutions by Winograd's F(4, 3), `tfspeech.ops.winograd`) on the same ids;
  throughput in audio seconds per second.
  Not XLA-compiled: the frame count is data-dependent, which `jit_compile` rejects.

Both libraries' duration predictors output a constant log(1 + FRAMES_PER_TOKEN) (their last
layer's weights zeroed, bias set) so that untrained models synthesize utterance-sized mels
and the two decoders run on exactly the same frame counts; every other weight is random.

FLOPs (`benchmarks/flops.py`, via `models.count_flops`): the train step's from one extra trace
at the batch's exact shapes; synthesis has a data-dependent frame count, so its count is
`FastPitch.infer` traced at the ids' shapes (encoder, predictors, embeddings) plus the decoder
and mel projection traced at the frames the call produced and the length-regulation matmul
(`_synthesis_flops`). Both rows of a group carry the figure (same work, same inputs). The
counts are of the network as written (direct convolutions over the padded batch, as the
reference computes it), also where tfspeech computes the feed-forward convolutions by F(4, 3)
in half the multiply-adds and over the batch's real steps only (`winograd.pack`), so its
"fraction of peak" can pass 100%.

Baseline: `benchmarks/torch_reference/fastpitch.py` (NVIDIA DeepLearningExamples FastPitch
1.1) with the same hyperparameters, timed in the same run on the same inputs.
"""

import dataclasses
import time
from unittest import mock

import numpy as np
import tensorflow as tf

from benchmarks import flops as flops_lib
from benchmarks import harness
from benchmarks import models as common
from tfspeech.ops import winograd as winograd_ops

FRAMES_PER_TOKEN = common.FRAMES_PER_TOKEN
HOP_LENGTH, SAMPLE_RATE = common.HOP_LENGTH, common.SAMPLE_RATE
PITCH_MEAN, PITCH_STD = 214.7, 65.7  # LJSpeech's voiced-frame statistics (reference)


def _variants(ctx, train=False):
  """(preset, batch) pairs: ljspeech at batch 1 and 16 (train: 16 first, see
  `models.TRAIN_VARIANTS`); --quick: tiny at batch 1."""
  if ctx.quick:
    return [("tiny", 1)]
  return list(common.TRAIN_VARIANTS) if train else [("ljspeech", 1), ("ljspeech", 16)]


def _batch(config, batch, seed=0):
  """A padded training batch as the task's pipeline gives it (with the alignment prior)."""
  from tfspeech.models.fastpitch.fastpitch_model import batch_prior  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  out = common.text_mel_batch(rng, batch, config.n_symbols, config.n_mel_channels,
                              FRAMES_PER_TOKEN)
  mel_lengths = out["mel_lengths"].numpy()
  tokens, frames = int(out["text_ids"].shape[1]), int(mel_lengths.max())
  # Hz, a third of the frames unvoiced (0), as a pitch track has them.
  pitch = rng.uniform(100.0, 300.0, size=[batch, frames]) * (rng.uniform(size=[batch, frames])
                                                             > 0.33)
  pitch[np.arange(frames)[None, :] >= mel_lengths[:, None]] = 0.0
  out["pitch"] = tf.constant(pitch, tf.float32)
  out["prior"] = batch_prior(out["text_lengths"], out["mel_lengths"], tokens, frames)
  return out


def _synthesis_flops(ctx, what, model, ids, lengths, frames):
  """(FLOPs of `model.infer(ids, lengths)` producing `frames` frames (padded), facts).

  The infer graph traced at the ids' shapes counts everything before length regulation; its
  costly ops without static shapes must be exactly the regulation matmul and the decoder's
  and projection's ops, which are counted again at `frames` frames. None when that fails.
  """
  start = time.perf_counter()
  try:
    head = flops_lib.count_call(lambda i, n: model.infer(i, n)["mel_lengths"], ids, lengths)
    batch, tokens = int(ids.shape[0]), int(ids.shape[1])
    d_model = int(model.encode(ids[:, :1], tf.ones_like(lengths))[0].shape[-1])
    tail = flops_lib.count_call(
        lambda r, m: model.proj(model.decoder(r, m, training=False)) * m,
        tf.zeros([batch, frames, d_model]), tf.ones([batch, frames, 1]))
  except Exception as e:  # pylint: disable=broad-except
    ctx.log(f"  {what}: FLOPs not counted ({type(e).__name__}: {e})")
    return None, {"flops_error": f"{type(e).__name__}: {e}"}
  regulate = 2.0 * batch * tokens * frames * d_model  # path^T [frames, tokens] @ enc_out
  complete = (not head.unknown_loops and tail.complete
              and len(head.unknown_ops) == tail.n_ops + 1)
  total = head.flops + tail.flops + regulate
  seconds = time.perf_counter() - start
  ctx.log(f"  {what}: {total / 1e9:.4g} GFLOP per call at {frames} frames (counted in "
          f"{seconds:.1f} s)" + ("" if complete else "; PARTIAL, not reported: "
                                 f"{len(head.unknown_ops)} ops without static shapes"))
  extra = {"flops": total, "flops_complete": complete, "flops_encoder": head.flops,
           "flops_decoder": tail.flops + regulate, "flops_decoder_frames": frames,
           "flops_trace_seconds": seconds}
  return (total if complete else None), extra


def _as_written(preset):
  """{"flops_as_written": True} where float32 tfspeech computes the feed-forward convolutions
  by F(4, 3) (fewer multiply-adds than the counted network), else {}."""
  c = _preset_config(preset)
  computed = winograd_ops.preferred() and winograd_ops.pays(
      c.out_fft_conv1d_kernel_size, c.symbols_embedding_dim, c.out_fft_conv1d_filter_size,
      tf.float32)
  return {"flops_as_written": True} if computed else {}


def _preset_config(preset):  # the registry loads the models on first use
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  return registry.get("fastpitch").preset(preset)


def _fix_durations(model):
  """The duration predictor outputs log(1 + FRAMES_PER_TOKEN) everywhere (tfspeech model)."""
  dense = model.duration_predictor.fc
  dense.kernel.assign(tf.zeros_like(dense.kernel))
  dense.bias.assign(tf.fill(dense.bias.shape, float(np.log1p(FRAMES_PER_TOKEN))))


class _TorchTrainStep:
  """The reference train.py step: forward, FastPitchLoss + attention losses, backward, update.

  The reference's optimizer is apex FusedLAMB (CUDA-only); AdamW stands in (the same
  per-tensor moment updates; LAMB adds one norm per tensor). Gradient norm clipped at 1000.
  """

  def __init__(self, torch, fastpitch, model, learning_rate, kl_weight=1.0):
    self.torch, self.fastpitch, self.model = torch, fastpitch, model
    self.kl_weight = kl_weight
    self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate,
                                       betas=(0.9, 0.98), eps=1e-9, weight_decay=1e-6)

  def __call__(self, b):
    fp = self.fastpitch
    self.model.train()
    self.optimizer.zero_grad(set_to_none=True)
    out = self.model(b["x"], b["x_lengths"], b["mel"], b["mel_lengths"], b["pitch"],
                     b["energy"], b["prior"])
    loss, _ = fp.fastpitch_loss(out, b["mel"], b["x_lengths"], b["mel_lengths"])
    attn_soft, attn_hard = out[8], out[9]
    loss = loss + self.kl_weight * fp.binarization_loss(attn_hard, attn_soft)
    loss.backward()
    self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1000.0)
    self.optimizer.step()
    return float(loss.detach())


def _torch_batch(torch, batch):
  """The reference loader's layouts: mel [b, n_mels, frames], normalised pitch [b, 1, frames],
  energy = L2 norm of each log-mel frame [b, frames], prior [b, frames, tokens]."""
  mel = batch["mel"].numpy()
  pitch = batch["pitch"].numpy()
  pitch = np.where(pitch != 0, (pitch - PITCH_MEAN) / PITCH_STD, 0.0).astype(np.float32)
  frames = np.arange(mel.shape[1])[None, :] < batch["mel_lengths"].numpy()[:, None]
  energy = (np.linalg.norm(mel, axis=-1) * frames).astype(np.float32)
  return {"x": torch.from_numpy(batch["text_ids"].numpy().astype(np.int64)),
          "x_lengths": torch.from_numpy(batch["text_lengths"].numpy().astype(np.int64)),
          "mel": torch.from_numpy(np.ascontiguousarray(mel.transpose(0, 2, 1))),
          "mel_lengths": torch.from_numpy(batch["mel_lengths"].numpy().astype(np.int64)),
          "pitch": torch.from_numpy(pitch[:, None]), "energy": torch.from_numpy(energy),
          "prior": torch.from_numpy(batch["prior"].numpy())}


def _torch_model(reference, config):
  from benchmarks.torch_reference import fastpitch  # pylint: disable=import-outside-toplevel
  reference.seed(0)
  model = fastpitch.FastPitch(fastpitch.params_from_tfspeech(config))
  with reference.torch.no_grad():
    model.duration_predictor.fc.weight.zero_()
    model.duration_predictor.fc.bias.fill_(float(np.log1p(FRAMES_PER_TOKEN)))
  return fastpitch, model.to(reference.device)


@harness.case("train", "fastpitch")
def fastpitch_train(ctx):
  """FastPitch train step (Trainer; plain and XLA) vs the reference train.py step."""
  harness.require_model("fastpitch", "FastPitch")
  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry
  from tfspeech.training import Trainer
  task_class = registry.get("fastpitch")
  reference = common._Torch.get(ctx)  # pylint: disable=protected-access
  measurements = []
  # (preset, xla, mixed_precision) → traced step: one trace serves every batch size, as in a run
  steps = {}
  for preset, batch_size in _variants(ctx, train=True):
    config = task_class.preset(preset)
    batch = _batch(config, batch_size)
    frames = int(np.sum(batch["mel_lengths"].numpy()))
    group = f"{preset}, batch {batch_size}"
    torch_timing = torch_bf16 = torch_call = None
    # At batch 1 the steps are small, so the reference's stays alive and the timed steps take
    # turns (`common._timed_together`: the compared steps meet the same minutes of the
    # machine; one full run had tfspeech's float32 step 0.58 s against 0.40 s alone). At
    # batch 16 the reference runs first and is freed: see models.TRAIN_VARIANTS.
    alternate = batch_size == 1
    if reference is not None:
      fastpitch, model = _torch_model(reference, config)
      torch_step = _TorchTrainStep(reference.torch, fastpitch, model, learning_rate=1e-4)
      torch_batch = reference.tensors(_torch_batch(reference.torch, batch))
      torch_call = lambda: torch_step(torch_batch)  # pylint: disable=cell-var-from-loop
      if not alternate:
        torch_timing = common._timed(ctx, torch_call, 3)  # pylint: disable=protected-access
        common.log_step(ctx, f"fastpitch train {preset} b{batch_size} pytorch reference",
                        *torch_timing)
      torch_bf16 = common.torch_bfloat16_samples(
          ctx, reference, f"fastpitch train {preset} b{batch_size}", torch_call)
      parameters = fastpitch.count_parameters(model)
      if not alternate:
        del model, torch_step, torch_batch, torch_call
    # The XLA-compiled step (TrainConfig.xla) runs in --quick only: on this CPU it was slower
    # (tiny, batch 1: 1.50 vs 0.51 s/step) and compiling the ljspeech step took > 8 minutes
    # (per batch shape), more than the whole case's budget.
    # The mixed_bfloat16 step (TrainConfig.mixed_precision): bfloat16 compute, float32
    # variables; the same losses within bfloat16's rounding (tests/training/test_mixed_precision).
    variants = [(False, "none"), (False, "mixed_bfloat16")]
    if ctx.quick:
      variants.insert(1, (True, "none"))
    traced = {}
    for xla, policy in variants:
      traced[(xla, policy)] = (preset, xla, policy) not in steps
      if traced[(xla, policy)]:
        task = task_class(config)
        # What `data_info` reads from dataset.json; here without a corpus on disk.
        task._pitch = {"mean": PITCH_MEAN, "std": PITCH_STD}  # pylint: disable=protected-access
        train_config = dataclasses.replace(task_class.default_train_config(preset),
                                           batch_size=batch_size, xla=xla,
                                           mixed_precision=policy)
        steps[(preset, xla, policy)] = (train_config, Trainer(task, train_config).train_step_fn(
            tf.data.Dataset.from_tensors(batch).element_spec))
    calls = [lambda step=steps[(preset, xla, policy)][1]: step(batch)["losses/loss"].numpy()
             for xla, policy in variants]
    if alternate and torch_call is not None:
      timings = common._timed_together(ctx, calls + [torch_call], 3)  # pylint: disable=protected-access
      torch_timing = timings.pop()
      common.log_step(ctx, f"fastpitch train {preset} b{batch_size} pytorch reference",
                      *torch_timing)
      del model, torch_step, torch_batch, torch_call
    else:
      timings = [common._timed(ctx, call, 3) for call in calls]  # pylint: disable=protected-access
    tf_seconds = {}
    for (xla, policy), (samples, warmup) in zip(variants, timings):
      traced_here = traced[(xla, policy)]
      train_config, step = steps[(preset, xla, policy)]
      mixed = policy != "none"
      label = "tfspeech XLA" if xla else ("tfspeech mixed_bfloat16" if mixed else "tfspeech")
      row_flops, row_extra, note = None, {}, ""
      if not (xla or mixed):  # the other steps do the same work: one count per group
        # The network's work as written (direct convolutions over the padded batch), not the
        # fewer multiply-adds packed F(4, 3) runs for it: the reference does the former, and
        # the rows share the figure.
        with mock.patch.object(winograd_ops, "preferred", lambda: False):
          step_flops, flops_extra = common.count_flops(
              ctx, f"fastpitch train {preset} b{batch_size}", step, batch)
        tf_seconds["float32"] = float(np.median(samples))
      if not mixed:  # the XLA row carries the float32 step's count, as before
        row_flops, row_extra = step_flops, dict(flops_extra, **_as_written(preset))
      else:
        note, row_extra = common.mixed_step_fields(policy, tf_seconds, samples)
      if alternate and torch_timing is not None:
        note += "; timed steps took turns with the other steps of this batch and the reference's"
      common.log_step(ctx, f"fastpitch train {preset} b{batch_size}"
                      f"{' xla' if xla else ''}{' mixed_bfloat16' if mixed else ''}",
                      samples, warmup)
      measurements.append(common.tf_row(
          f"{label} {preset}", samples, reference, group=group, work=frames,
          work_unit="mel frames",
          note=(f"{1 / np.median(samples):.3g} steps/s; {frames} frames per batch; optimizer "
                f"{train_config.optimizer}" + ("; jit_compile step" if xla else "")
                + ("" if traced_here else "; step traced at the batch above") + note),
          extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
                 "batch_size": batch_size, "xla": xla, "first_call_seconds": warmup,
                 **row_extra}, flops=row_flops))
    if torch_timing is None:
      continue
    samples, warmup = torch_timing
    measurements.append(common.torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=frames,
        work_unit="mel frames",
        note=(f"{1 / np.median(samples):.3g} steps/s; DeepLearningExamples FastPitch 1.1 "
              "train step on the same batch (energy = log-mel frame norms, prior from the "
              "loader); MAS is a NumPy loop on host copies (reference: numba; tfspeech: "
              "in-graph op); AdamW stands in for apex FusedLAMB; "
              + ("timed in turn with tfspeech's steps; " if alternate
                 else "timed before tfspeech's step; ")),
        extra={"steps_per_second": 1 / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "first_call_seconds": warmup,
               "parameters": parameters}, flops=step_flops))
    measurements.append(common.torch_bfloat16_row(
        ctx, reference, f"fastpitch train {preset} b{batch_size}", None,
        tf_seconds["bfloat16"], samples=torch_bf16, label=f"pytorch reference {preset}",
        model_note="the same train step", group=group, work=frames, work_unit="mel frames",
        extra={"preset": preset, "batch_size": batch_size}))
  return measurements


@harness.case("infer", "fastpitch")
def fastpitch_infer(ctx):
  """FastPitch text-to-mel (make_synthesis_fn) vs the reference infer: RTF."""
  harness.require_model("fastpitch", "FastPitch")
  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  from tfspeech.models.fastpitch.fastpitch_serving import FastPitchServing
  from tfspeech.training import precision as precision_lib
  task_class = registry.get("fastpitch")
  reference = common._Torch.get(ctx)  # pylint: disable=protected-access
  measurements = []
  built = {}
  for preset, batch_size in _variants(ctx):
    if preset not in built:
      config = task_class.preset(preset)
      model = task_class(config).build_modules()["fastpitch"]
      _fix_durations(model)
      # In-process synthesis, as tfspeech-synthesize runs it (the feed-forward convolutions
      # by Winograd's F(4, 3) on CPUs, kernels transformed once; see tfspeech.ops.winograd).
      acoustic = FastPitchServing(model, PITCH_MEAN, PITCH_STD).in_process()
      synthesize = synthesize_lib.make_synthesis_fn(acoustic, {})
      # The same weights computed in bfloat16, in-process as load_run(...,
      # precision="bfloat16") synthesizes (the convolutions over the packed real steps).
      with precision_lib.precision_policy("bfloat16"):
        bf16_model = task_class(config).build_modules()["fastpitch"]
        bf16_synthesize = synthesize_lib.make_synthesis_fn(
            FastPitchServing(bf16_model, PITCH_MEAN, PITCH_STD).in_process(), {})
      for source, target in zip(model.variables, bf16_model.variables):
        target.assign(source)
      built[preset] = config, synthesize, model, bf16_synthesize
      if reference is not None:
        built[preset] += _torch_model(reference, config)
    config, synthesize, tf_model, bf16_synthesize = built[preset][:4]
    inputs = _batch(config, batch_size, seed=1)
    ids, lengths = inputs["text_ids"], inputs["text_lengths"]
    seeds = tf.zeros([batch_size, 2], tf.int32)
    speakers = tf.zeros([batch_size], tf.int32)
    one = tf.constant(1.0)
    # No XLA row: the frame count is data-dependent (length regulation), which jit_compile
    # rejects ("must be a compile-time constant").
    mels = {}

    def call_with(fn, label):
      out = fn(ids, lengths, seeds, speakers, one, tf.constant(0.0), one, one)
      mels[label] = out["mel"].numpy()
      return out["mel_lengths"].numpy()
    calls = {"tfspeech": lambda: call_with(synthesize, "tfspeech"),
             "tfspeech bfloat16": lambda: call_with(bf16_synthesize, "tfspeech bfloat16")}
    if reference is not None:
      _, torch_model = built[preset][4:]
      torch_model.eval()
      x = reference.torch.from_numpy(ids.numpy().astype(np.int64)).to(reference.device)

      def torch_call():
        with reference.torch.inference_mode():
          _, dec_lens, *_ = torch_model.infer(x)
          return int(dec_lens.sum())  # waits for the result
      calls["reference"] = torch_call
    first = {label: call() for label, call in calls.items()}  # frames; traces the graphs
    # Alternating, so that the compared calls meet the same minutes of the machine.
    timings = dict(zip(calls, common._timed_together(  # pylint: disable=protected-access
        ctx, list(calls.values()), 5)))
    group = f"{preset}, batch {batch_size}"
    tf_median = None
    for label in ("tfspeech", "tfspeech bfloat16"):
      mel_lengths = first[label]
      frames = int(np.sum(mel_lengths))
      row_flops, flops_extra = None, {}
      if label == "tfspeech":  # the bfloat16 graph does the same work
        call_flops, flops_extra = _synthesis_flops(
            ctx, f"fastpitch infer {preset} b{batch_size}", tf_model, ids, lengths,
            int(np.max(mel_lengths)))
        row_flops, flops_extra = call_flops, dict(flops_extra, **_as_written(preset))
      audio_seconds = frames * HOP_LENGTH / SAMPLE_RATE
      samples, warmup = timings[label]
      ctx.log(f"  fastpitch infer {preset} b{batch_size} {label}: {np.median(samples):.3f} s "
              f"for {audio_seconds:.1f} audio s")
      note = f"{frames} frames from {int(np.sum(lengths.numpy()))} ids; throughput = RTF"
      if label == "tfspeech":
        note += ("; timed calls alternated with bfloat16's"
                 + (" and the reference's" if reference is not None else ""))
      extra = {}
      if label == "tfspeech":
        tf_median = float(np.median(samples))
      else:
        # Same durations (fixed by _fix_durations), so the mels compare frame by frame.
        error, peak, snr = common.precision_error(mels[label], mels["tfspeech"])
        note += (f"; load_run(..., precision='bfloat16'): bfloat16 compute, float32 weights; "
                 f"{tf_median / float(np.median(samples)):.2f}x tfspeech float32; max |error| "
                 f"{error:.3g} (log-mel; peak {peak:.3g}), SNR {snr:.0f} dB")
        extra = {"precision": "bfloat16", "max_abs_error": error, "snr_db": snr}
      measurements.append(common.tf_row(
          f"{label} {preset}", samples, reference, group=group, work=audio_seconds,
          work_unit="audio s", note=note,
          extra={"rtf": audio_seconds / float(np.median(samples)), "preset": preset,
                 "batch_size": batch_size, "frames": frames, "first_call_seconds": warmup,
                 **extra, **flops_extra}, flops=row_flops))
      bf16_median = float(np.median(samples))
    if reference is None:
      continue
    torch_frames = first["reference"]
    samples, warmup = timings["reference"]
    torch_seconds = torch_frames * HOP_LENGTH / SAMPLE_RATE
    ctx.log(f"  fastpitch infer {preset} b{batch_size} pytorch reference: "
            f"{np.median(samples):.3f} s for {torch_seconds:.1f} audio s")
    measurements.append(common.torch_row(
        f"pytorch reference {preset}", samples, reference, group=group, work=torch_seconds,
        work_unit="audio s",
        note=(f"DeepLearningExamples FastPitch.infer (pace 1), inference_mode, same ids; "
              f"{torch_frames} frames; "),
        extra={"rtf": torch_seconds / float(np.median(samples)), "preset": preset,
               "batch_size": batch_size, "frames": torch_frames},
        flops=call_flops if torch_frames == frames else None))

    measurements.append(common.torch_bfloat16_row(
        ctx, reference, f"fastpitch infer {preset} b{batch_size}", torch_call, bf16_median,
        label=f"pytorch reference {preset}", model_note="FastPitch.infer", group=group,
        work=torch_seconds, extra={"preset": preset, "batch_size": batch_size}))
  return measurements

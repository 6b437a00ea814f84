"""Exported-model speed, size and parity: TF vs TFLite (LiteRT) vs TFJS (Node).

Every case builds untrained models from presets (weights do not change the cost of a call of
a given size; HiFi-GAN's are perturbed like a trained model's, `tfspeech.testing.
randomize_weights`, so that the quantized rows' errors include non-zero biases), wraps them in
the export's inference graphs (`tfspeech.export.inference_graphs`), and compares, on the same
inputs in the same run:

- TF: the inference graph's `tf.function` (the baseline of its group);
- TFLite float32 / float16 / dynamic_range (`tflite.export_graphs`, one conversion each per
  run, all from one frozen SavedModel), run by LiteRT (`tflite.TFLiteGraph`) with as many
  interpreter threads as the process has cores;
- LiteRT.js float32 (@litertjs/core 2.5.3, LiteRT's XNNPACK kernels in WebAssembly): the
  graph converted at the shapes of this run's inputs, since LiteRT.js runs only graphs whose
  inputs and outputs all have static shapes (tfspeech-export's files keep them dynamic; a
  Grad-TTS text_to_mel runs as the --fixed_shapes graph at this run's tokens and TF's mel
  length, `inference_graphs.FixedShape`). Timed in Node (`export/js/run_tflite.js`: Node 20 has no
  relaxed SIMD, so LiteRT.js loads its compat build, one thread), beside TFJS wasm in Node,
  and in headless Chromium (`export/js/check_web_demo.js --litert_model --threads`: the
  browser build, relaxed SIMD and threads, cross-origin isolated by serve_demo.js), which is
  what a page gets;
- TFJS float32 and float16 (`tfjs.export_graphs` through the converter's own virtualenv), run
  in Node by `export/js/run_graph_model.js` (`tfjs.run_in_node`): float32 on the wasm and
  pure-JS cpu backends when the runner takes `backend=` (else on its only backend, cpu),
  float16 on the first of them (its weights are dequantized when the model loads, so it
  computes like float32: one call, for its size and error). Node is 6-150x slower than TF
  here, so a variant whose call is expected (from TF's time, `NODE_SLOWDOWN`) to take more
  than its backend's `NODE_CALL_BUDGET_SECONDS` (a quarter of it for float16) is not run, and
  the TF row's note says so; slow calls get no warm-up and one timed call.

Repeats: each variant gets `REPEAT_BUDGET_SECONDS` of timed calls (at least 1, at most 3),
from its first call's time (Node: from the estimate), so that big presets do not dominate the
suite's time; the n column says how many.

Cases:

- export/grad_tts: `TextToMel` (decoder unrolled to 4 steps, 2 with --quick; fixed noise) on one
  LJSpeech-length input (120 ids; `length_scale` set so the untrained durations give
  ~4 frames per id, as `benchmarks/models.py` does), presets tiny (every precision and
  runtime) and ljspeech (TF and TFLite float32).
- export/hifigan: `MelToAudio` on random mels of 4 s (2 s with --quick), presets v1, v3
  (TF, TFLite float32 and dynamic range) and v2 (every precision and runtime), each with the
  PyTorch reference generator on the same mel (issue #22 asks LiteRT float32 for 1.5x it on
  V2; each TFLite row's note gives its ratio); --quick: tiny, no reference.

Per row: throughput in audio seconds per wall second (the inverse of the real-time factor,
wall / audio, that tfspeech-synthesize, tfspeech-vocode and the web demo print), the artifact
size in MB (TF: the frozen SavedModel), the largest absolute and relative error of the main
output (mel / audio) against TF, and the conversion time (note and extra). Timings of Node
runs exclude process start and model loading; each call waits for its outputs.

Reading Grad-TTS errors: durations are rounded up per token (`ceil`), then scaled, so a
runtime whose log-durations differ in the last bits (quantized weights, another exp/softmax
kernel) can give a token a frame more or less, which shifts the mel from there on: the max
error then measures that shift, not the precision of the decoder. A different total length
is stated in the note; a shift inside an equal total length is not visible.
"""

import inspect
import os
import pathlib
import shutil
import subprocess
import time

import numpy as np
import tensorflow as tf

from benchmarks import harness
from benchmarks import models as model_cases

SAMPLE_RATE = model_cases.SAMPLE_RATE
HOP_LENGTH = model_cases.HOP_LENGTH
FRAMES_PER_TOKEN = model_cases.FRAMES_PER_TOKEN
# Converting the unrolled decoder costs ~linear time in its steps (tiny preset, loaded 2-core
# machine: freeze ~20 s and each TFLite conversion ~10 s per step), and a call's cost is ~linear
# in them for every runtime alike, so the suite unrolls 4 (the ratios hold for 10), --quick 2.
N_TIMESTEPS = 4
N_TIMESTEPS_QUICK = 2
TEMPERATURE = 1.5
GRAD_TTS_TOKENS = 120
HIFIGAN_SECONDS, HIFIGAN_SECONDS_QUICK = 4.0, 2.0
# Node variants expected to take longer than this per call get no warm-up call.
SLOW_CALL_SECONDS = model_cases.SLOW_CALL_SECONDS
# Timed calls per variant: as many as fit in this (1-3), unless --repeats.
REPEAT_BUDGET_SECONDS = 12.0
TFLITE_PRECISIONS = ("float32", "float16", "dynamic_range")
TFJS_PRECISIONS = ("float32", "float16")
NODE_BACKENDS = ("wasm", "cpu")
# Node seconds per call ÷ TF's, measured on a quiet 2-core machine (2026-11-23): wasm 6x
# (Grad-TTS tiny) to 11x (HiFi-GAN V1-V3), pure-JS cpu 29x (HiFi-GAN tiny) to 120x (Grad-TTS
# tiny, V2, V3); a loaded machine doubles them. Used to skip calls over the budget below.
NODE_SLOWDOWN = {"wasm": 15, "cpu": 150}
# Seconds per call above which a Node variant is not run; float16 (same compute as float32):
# a quarter of it. The pure-JS cpu backend is the browser's fallback, 5-20x slower than wasm
# on every model: it is timed where a call is short (tiny HiFi-GAN, --quick), which shows
# that ratio; in --suite=all its calls (Grad-TTS tiny 18 s, V2 19 s on 2026-12-06) are left
# out for the suite's 30 minutes.
NODE_CALL_BUDGET_SECONDS = {"wasm": 240.0, "cpu": 5.0}
_MB = 1e6
LITERT_RUNNERS = ("Node", "Chromium")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _cores():
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def _size_mb(path):
  """Bytes of a file, or of every file under a folder, in MB."""
  path = pathlib.Path(path)
  if path.is_file():
    return path.stat().st_size / _MB
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / _MB


def errors(actual, reference):
  """(max |actual - reference|, that / max |reference|) on the overlapping region.

  Quantized Grad-TTS graphs may round a duration the other way and give a few frames more
  or less than TF; the common frames are compared then (the note says the lengths differ).
  """
  actual, reference = np.asarray(actual), np.asarray(reference)
  if actual.shape != reference.shape:
    common = tuple(slice(0, min(a, r)) for a, r in zip(actual.shape, reference.shape))
    actual, reference = actual[common], reference[common]
  max_abs = float(np.max(np.abs(actual.astype(np.float64) - reference)))
  return max_abs, max_abs / max(float(np.max(np.abs(reference))), 1e-30)


def node_backends():
  """Backends to time in Node: both when `tfjs.run_in_node` takes `backend=`, else [None]."""
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  if "backend" in inspect.signature(tfjs.run_in_node).parameters:
    return list(NODE_BACKENDS)
  return [None]  # the runner's only backend: pure-JS CPU


def static_graph_function(graph, inputs):
  """`graph.function` traced at the shapes of `inputs` (a ConcreteFunction with the same
  input and output names), and whether all its outputs then have static shapes."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.export import inference_graphs
  specs = [tf.TensorSpec(np.shape(inputs[spec.name]), spec.dtype, name=spec.name)
           for spec in graph.function.input_signature]
  concrete = inference_graphs.named_function(specs, graph.function).get_concrete_function()
  static = all(t.shape.is_fully_defined()
               for t in tf.nest.flatten(concrete.structured_outputs))
  return concrete, static


def run_litertjs(command, inputs, scratch, repeat, warmup):
  """Runs a LiteRT.js runner (`command`: run_tflite.js --model=, or check_web_demo.js
  --litert_model=) on `inputs`; returns (outputs, seconds per call, outputs.json)."""
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  inputs_json = tfjs.write_runner_inputs(inputs, scratch)
  out = os.path.join(scratch, "out")
  result = subprocess.run(command + [f"--inputs={inputs_json}", f"--out={out}",
                                     f"--repeat={repeat}", f"--warmup={warmup}",
                                     "--timeout_s=590"],
                          capture_output=True, text=True, check=False, timeout=600)
  if result.returncode != 0:
    raise RuntimeError((result.stderr.strip() or result.stdout.strip()).splitlines()[-1])
  description, outputs = tfjs.read_runner_outputs(out)
  return outputs, description["seconds_per_call"], description


def _repeats(ctx, call_seconds, default=3):
  """Timed calls that fit in REPEAT_BUDGET_SECONDS (1 to `default`), unless --repeats."""
  if ctx.repeats_override is not None:
    return ctx.repeats_override
  fit = int(REPEAT_BUDGET_SECONDS // max(call_seconds, 1e-9))
  return max(1, min(ctx.repeats(default), fit))


class _Comparison:
  """Times one inference graph in TF, LiteRT and Node and collects the Measurements.

  Args:
    ctx: the case's `harness.Context`.
    graph: an `InferenceGraph`.
    inputs: input name → NumPy array (the same for every runtime).
    output: the output compared against TF ("mel" or "audio").
    group: the Measurement group (one per preset).
    preset: for `extra`.
  """

  def __init__(self, ctx, graph, inputs, output, group, preset, every_variant=True,
               tflite_precisions=None):
    self.ctx, self.graph, self.inputs, self.output = ctx, graph, inputs, output
    self.group, self.preset = group, preset
    # Quantized variants (TFLite float16 / dynamic range, TFJS float16) and the JavaScript
    # runtimes (LiteRT.js in Node and Chromium, TFJS in Node) for one preset per model
    # (`every_variant`); the others get TF and TFLite float32. Each quantized variant is one
    # more conversion (tens of seconds to minutes for the big presets) for a size and speed
    # ratio that differs little between presets; each JS runtime is a conversion plus Node /
    # browser processes whose calls are 5-15x TF's (ljspeech Grad-TTS: 11.6 s LiteRT.js,
    # 19.5 s TFJS wasm per call), and what a page ships is the small preset.
    self.every_variant = every_variant
    self.tflite_precisions = tuple(tflite_precisions or (
        TFLITE_PRECISIONS if every_variant else TFLITE_PRECISIONS[:1]))
    self.dir = ctx.tmp_dir / preset
    self.frozen_dir = str(self.dir / "frozen")
    self.measurements = []
    self.reference = None
    self.work = None
    self.skipped = []

  def _measure(self, name, samples, size_mb, outputs, runtime, precision, convert_seconds,
               extra_note="", **extra):
    actual = outputs[self.output]
    max_abs, relative = errors(actual, self.reference[self.output])
    note = f"{size_mb:.2f} MB; max |err| {max_abs:.1e} (rel {relative:.1e})"
    if "mel_lengths" in outputs and not np.array_equal(outputs["mel_lengths"],
                                                       self.reference["mel_lengths"]):
      note += (f"; mel_lengths {outputs['mel_lengths'].tolist()} vs TF "
               f"{self.reference['mel_lengths'].tolist()} (common frames compared)")
    note += f"; converted in {convert_seconds:.0f} s" + extra_note
    self.measurements.append(harness.Measurement(
        name, samples, group=self.group, device="CPU", work=self.work, work_unit="audio s",
        note=note,
        extra=dict(preset=self.preset, runtime=runtime, precision=precision, size_mb=size_mb,
                   max_abs_error=max_abs, relative_error=relative,
                   conversion_seconds=convert_seconds,
                   rtf=self.work / float(np.median(samples)), **extra)))

  def tf_baseline(self, audio_seconds_of):
    """Times `graph.function`; sets the reference outputs and the work (audio seconds)."""
    tensors = {name: tf.constant(value) for name, value in self.inputs.items()}
    out = {}

    def call():
      out.update({k: v.numpy() for k, v in self.graph.function(**tensors).items()})
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    samples = harness.time_calls(call, _repeats(self.ctx, first), warmup=0)
    self.reference = dict(out)
    self.work = audio_seconds_of(self.reference)
    self.ctx.log(f"  export {self.preset} TF: {np.median(samples):.3f} s per call "
                 f"({self.work:.1f} audio s; first call {first:.1f} s)")
    return samples, first

  def tflite(self):
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    threads = _cores()
    for precision in self.tflite_precisions:
      start = time.perf_counter()
      path = tflite.export_graphs({self.graph.name: self.graph}, str(self.dir / precision),
                                  precision, frozen_dir=self.frozen_dir)[self.graph.name]
      convert_seconds = time.perf_counter() - start
      runner = tflite.TFLiteGraph(path, num_threads=threads)
      out = {}

      def call(runner=runner):
        out.update(runner(**self.inputs))
      start = time.perf_counter()
      call()
      first = time.perf_counter() - start
      samples = harness.time_calls(call, _repeats(self.ctx, first), warmup=0)
      self.ctx.log(f"  export {self.preset} TFLite {precision}: {np.median(samples):.3f} s "
                   f"per call (converted in {convert_seconds:.0f} s)")
      self._measure(f"TFLite {precision} (LiteRT, {threads} threads)", samples,
                    _size_mb(path), out, "tflite", precision, convert_seconds,
                    extra_note=" (incl. freezing)" if precision == TFLITE_PRECISIONS[0] else "",
                    num_threads=threads, first_call_seconds=first)
      del runner

  def litertjs(self, tf_seconds):
    """LiteRT.js float32 at this run's static shapes, in Node and in Chromium."""
    # pylint: disable=import-outside-toplevel
    from tfspeech.export import frozen_graph, tfjs, tflite
    from tfspeech.export import inference_graphs
    concrete, static = static_graph_function(self.graph, self.inputs)
    inputs, shapes_note = self.inputs, "; static shapes"
    if not static:
      # The mel length comes from the durations: the --fixed_shapes graph (padded and cut at
      # its edges) at this run's tokens and TF's mel length, so outputs compare 1:1.
      if np.shape(self.inputs["text_ids"])[0] != 1:
        self.skipped.append("LiteRT.js not run: fixed-shape graphs take batch 1")
        return
      tokens = int(np.shape(self.inputs["text_ids"])[1])
      frames = int(np.max(self.reference["mel_lengths"]))
      fixed = inference_graphs.FixedShape(self.graph, tokens, frames)
      concrete = fixed.concrete_function()
      inputs = dict(self.inputs)
      if "noise" in inputs:  # the model reads the first frames it needs
        inputs["noise"] = np.asarray(inputs["noise"])[:, :frames]  # graph-ok: host I/O
      inputs = tflite.fixed_shape_inputs({"tokens": tokens, "frames": frames}, **inputs)
      shapes_note = f"; --fixed_shapes=tokens={tokens},frames={frames}"
    estimate = tf_seconds * NODE_SLOWDOWN["wasm"]
    if estimate > NODE_CALL_BUDGET_SECONDS["wasm"] and self.ctx.repeats_override is None:
      self.skipped.append(f"LiteRT.js not run: ~{estimate:.0f} s per call expected")
      return
    try:
      node = tfjs.ensure_node_modules()
    except tfjs.NodeUnavailable as error:
      self.skipped.append(f"LiteRT.js not measured: {str(error).splitlines()[0]}")
      return
    start = time.perf_counter()
    saved_model = frozen_graph.save_frozen_saved_model(
        {self.graph.name: concrete}, str(self.dir / "litertjs_frozen"))
    path = self.dir / "litertjs" / f"{self.graph.name}.tflite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite.convert_saved_model(saved_model, self.graph.name))
    convert_seconds = time.perf_counter() - start
    js_dir = os.path.join(tfjs.EXPORT_DIR, "js")
    commands = {"Node": [node, os.path.join(js_dir, "run_tflite.js"), f"--model={path}"],
                "Chromium": [node, os.path.join(js_dir, "check_web_demo.js"),
                             f"--litert_model={path}", "--threads", f"--chromium={CHROMIUM}"]}
    slow = estimate > SLOW_CALL_SECONDS
    repeats = 1 if slow and self.ctx.repeats_override is None else _repeats(self.ctx, estimate)
    for runner in LITERT_RUNNERS:
      if runner == "Chromium" and not os.path.isfile(CHROMIUM):
        self.skipped.append("LiteRT.js Chromium not run: no Chromium")
        continue
      try:
        out, samples, description = run_litertjs(
            commands[runner], inputs, str(self.dir / f"litertjs_{runner}"), repeats,
            0 if slow else 1)
      except (RuntimeError, subprocess.TimeoutExpired) as error:
        self.skipped.append(f"LiteRT.js {runner} failed: {error}")
        continue
      build = description["wasm"].replace("litert_wasm_", "").replace("_internal", "")
      self.ctx.log(f"  export {self.preset} LiteRT.js ({runner}, {build}): "
                   f"{np.median(samples):.3f} s per call")
      self._measure(f"LiteRT.js float32 ({runner}, {build} wasm)", samples, _size_mb(path),
                    out, "litertjs", "float32", convert_seconds,
                    extra_note=(shapes_note + ("; no warm-up call" if slow else "")),
                    backend=runner.lower(), wasm=description["wasm"],
                    warmup_calls=0 if slow else 1)

  def tfjs(self, tf_seconds):
    """TFJS float32 on every Node backend, float16 on the first; skips say why."""
    # pylint: disable=import-outside-toplevel
    from tfspeech.export import tfjs
    backends = node_backends()
    plan = []  # (precision, backend, estimated seconds per call)
    precisions = TFJS_PRECISIONS
    if not (self.ctx.extended or self.ctx.quick):
      # float16 computes as float32 (dequantized at load): its row gives size and error for
      # one more conversion (Grad-TTS tiny: 30 s), left to --extended for the 30 minutes.
      precisions = TFJS_PRECISIONS[:1]
      self.skipped.append("TFJS float16: with --extended")
    for precision in precisions:
      for backend in (backends if precision == "float32" else backends[:1]):
        label = backend or "cpu"
        estimate = tf_seconds * NODE_SLOWDOWN[label]
        budget = NODE_CALL_BUDGET_SECONDS[label] / (1 if precision == "float32" else 4)
        if estimate > budget and self.ctx.repeats_override is None:
          self.skipped.append(f"TFJS {precision} {label} not run: ~{estimate:.0f} s per call "
                              f"expected ({NODE_SLOWDOWN[label]}x TF), over the "
                              f"{budget:.0f} s budget")
        else:
          plan.append((precision, backend, estimate))
    if not plan:
      return
    try:
      converter = tfjs.converter_executable(progress=self.ctx.log)
      tfjs.ensure_node_modules()
    except (tfjs.ConverterUnavailable, tfjs.NodeUnavailable) as error:
      self.skipped.append(f"TFJS not measured: {str(error).splitlines()[0]}")
      return
    folders = {}
    for precision, backend, estimate in plan:
      if precision not in folders:
        start = time.perf_counter()
        folders[precision] = (tfjs.export_graphs(
            {self.graph.name: self.graph}, str(self.dir / f"tfjs_{precision}"), precision,
            converter=converter, frozen_dir=self.frozen_dir)[self.graph.name],
                              time.perf_counter() - start)
      folder, convert_seconds = folders[precision]
      label = backend or "cpu"
      kwargs = {} if backend is None else {"backend": backend}
      # One Node process per variant; a Node call cannot be timed before it is made, so
      # slow ones (estimated from TF's time) get no warm-up and one timed call.
      slow = estimate > SLOW_CALL_SECONDS or precision != "float32"
      repeats = 1 if slow and self.ctx.repeats_override is None else _repeats(self.ctx, estimate)
      try:
        out, samples = tfjs.run_in_node(folder, self.inputs, repeat=repeats,
                                        warmup=0 if slow else 1, **kwargs)
      except RuntimeError as error:  # e.g. a backend that cannot load here
        self.skipped.append(f"TFJS {precision} {label} failed: {str(error).splitlines()[-1]}")
        continue
      self.ctx.log(f"  export {self.preset} TFJS {precision} ({label}): "
                   f"{np.median(samples):.3f} s per call (converted in {convert_seconds:.0f} s)")
      extra_note = "; no warm-up call" if slow else ""
      if precision != "float32":
        extra_note += "; weights dequantized at load: computes like float32"
      self._measure(f"TFJS {precision} (Node, {label})", samples, _size_mb(folder), out,
                    "tfjs", precision, convert_seconds, extra_note=extra_note, backend=label,
                    warmup_calls=0 if slow else 1)

  def run(self, audio_seconds_of):
    """All variants; returns the Measurements (TF first, the baseline)."""
    tf_samples, first = self.tf_baseline(audio_seconds_of)
    self.tflite()
    if not self.every_variant:
      self.skipped.append("LiteRT.js and TFJS: another preset's rows")
    else:
      self.litertjs(float(np.median(tf_samples)))
      self.tfjs(float(np.median(tf_samples)))
    note = (f"frozen SavedModel {_size_mb(self.frozen_dir):.2f} MB; reference of the errors; "
            f"{_cores()} cores")
    left_out = [p for p in TFLITE_PRECISIONS if p not in self.tflite_precisions]
    if left_out:
      self.skipped.append(f"TFLite {', '.join(left_out)}: another preset's rows")
    if self.skipped:
      note += "; " + "; ".join(self.skipped)
    baseline = harness.Measurement(
        "TF (tf.function)", tf_samples, baseline=True, group=self.group, device="CPU",
        work=self.work, work_unit="audio s", note=note,
        extra={"preset": self.preset, "runtime": "tf", "precision": "float32",
               "size_mb": _size_mb(self.frozen_dir), "first_call_seconds": first,
               "rtf": self.work / float(np.median(tf_samples)), "skipped": self.skipped})
    return [baseline] + self.measurements


# --- Grad-TTS ------------------------------------------------------------------------------


def grad_tts_inputs(graph, tokens, n_vocab, seed=0):
  """One item of `tokens` random ids, fixed noise, and a length_scale for ~4 frames per id.

  Untrained durations are ~1 frame per id; a probe call of the TF graph measures them.
  """
  rng = np.random.default_rng(seed)
  inputs = {
      "text_ids": rng.integers(1, n_vocab, size=(1, tokens)).astype(np.int32),
      "text_lengths": np.array([tokens], np.int32),
      # More frames than the text takes: only the first ones are used.
      "noise": rng.standard_normal((1, 2 * FRAMES_PER_TOKEN * tokens + 64,
                                    graph.n_mels)).astype(np.float32),
      "temperature": np.float32(TEMPERATURE), "length_scale": np.float32(1.0)}
  probe = graph.function(**{k: tf.constant(v) for k, v in inputs.items()})
  frames = max(int(probe["mel_lengths"].numpy()[0]), 1)
  inputs["length_scale"] = np.float32(FRAMES_PER_TOKEN * tokens / frames)
  return inputs


@harness.case("export", "grad_tts")
def grad_tts_export(ctx):
  """Grad-TTS text_to_mel (4 unrolled steps; 2 with --quick): TF vs TFLite vs TFJS in Node."""
  harness.require_model("grad_tts", "Grad-TTS")
  # pylint: disable=import-outside-toplevel
  from tfspeech.export import inference_graphs
  from tfspeech.models import registry
  from tfspeech.models.grad_tts import GradTTS
  from tfspeech.models.grad_tts.grad_tts_serving import GradTTSServing
  task_class = registry.get("grad_tts")
  measurements = []
  n_timesteps = N_TIMESTEPS_QUICK if ctx.quick else N_TIMESTEPS
  for preset in (("tiny",) if ctx.quick else ("tiny", "ljspeech")):
    tf.keras.utils.set_random_seed(0)
    config = task_class.preset(preset)
    graph = inference_graphs.TextToMel(GradTTSServing(GradTTS(config)),
                                       {"n_timesteps": n_timesteps})
    inputs = grad_tts_inputs(graph, GRAD_TTS_TOKENS, config.n_vocab)
    comparison = _Comparison(ctx, graph, inputs, "mel",
                             f"{preset}, {GRAD_TTS_TOKENS} ids, {n_timesteps} steps", preset,
                             every_variant=preset == "tiny")
    measurements += comparison.run(
        lambda out: float(out["mel_lengths"][0]) * HOP_LENGTH / SAMPLE_RATE)
  return measurements


# --- HiFi-GAN ------------------------------------------------------------------------------


@harness.case("export", "hifigan")
def hifigan_export(ctx):
  """HiFi-GAN mel_to_audio: TF vs TFLite (3 precisions) vs TFJS in Node, on random mels."""
  harness.require_model("hifigan", "HiFi-GAN")
  # pylint: disable=import-outside-toplevel
  from tfspeech.export import inference_graphs
  from tfspeech.models.hifigan import get_preset
  from tfspeech.models.hifigan.generator import HifiGanGenerator
  from tfspeech.models.hifigan.hifigan_serving import HifiGanServing
  from tfspeech import testing
  seconds = HIFIGAN_SECONDS_QUICK if ctx.quick else HIFIGAN_SECONDS
  measurements = []
  # tiny is left out of the full suite (its rows were the fastest Node ones, nothing a user
  # ships); V2, the LiteRT-vs-PyTorch target and the browser demo's vocoder, gets the
  # quantized variants and the JavaScript runtimes. V1 and V3 get dynamic range too: V1 runs
  # at the float32 peak in TF and in LiteRT, where precision is the lever left (issue #22).
  # Every preset is timed against the PyTorch reference generator on the same mel.
  for preset in (("tiny",) if ctx.quick else ("v1", "v2", "v3")):
    tf.keras.utils.set_random_seed(0)
    network = get_preset(preset)
    generator = HifiGanGenerator(network, weight_norm=False)
    graph = inference_graphs.MelToAudio(HifiGanServing(generator))
    # Errors of the quantized rows with weights like a trained model's (non-zero biases).
    testing.randomize_weights([generator], seed=0)
    frames = int(round(seconds * SAMPLE_RATE / graph.hop_length))
    mel = np.random.default_rng(0).normal(-5.0, 2.0, (1, frames, graph.n_mels))
    every_variant = preset in ("tiny", "v2")
    comparison = _Comparison(ctx, graph, {"mel": mel.astype(np.float32),
                                          "mel_lengths": np.array([frames], np.int32)}, "audio",
                             f"{preset}, {seconds:g} s", preset, every_variant=every_variant,
                             tflite_precisions=(None if every_variant
                                                else ("float32", "dynamic_range")))
    rows = comparison.run(lambda out: out["audio"].shape[1] / SAMPLE_RATE)
    if not ctx.quick:
      rows += _torch_hifigan_row(ctx, network, mel, comparison, rows)
    measurements += rows
  return measurements


def _torch_hifigan_row(ctx, network, mel, comparison, rows):
  """The reference generator (jik876/hifi-gan, eager, `inference_mode`) on the same mel, and
  each TFLite row's ratio to it in that row's note; [] without torch."""
  reference = model_cases._Torch.get(ctx)  # pylint: disable=protected-access
  if reference is None:
    return []
  reference.seed(0)
  generator = reference.hifigan.inference_generator(
      reference.hifigan.params_from_tfspeech(network)).to(reference.device)
  torch_mel = reference.channels_first(mel.astype(np.float32))

  def call():
    with reference.torch.inference_mode():
      return generator(torch_mel).cpu()
  first = time.perf_counter()
  call()
  first = time.perf_counter() - first
  samples = ctx.time(call, repeats=_repeats(ctx, first), warmup=1)
  seconds = float(np.median(samples))
  ctx.log(f"  export {comparison.preset} PyTorch reference: {seconds:.3f} s per call")
  for row in rows:
    if row.extra.get("runtime") == "tflite":
      row.note += f"; {seconds / float(np.median(row.samples)):.2f}x the PyTorch reference"
      row.extra["vs_pytorch_reference"] = seconds / float(np.median(row.samples))
  return [harness.Measurement(
      "PyTorch reference (eager)", samples, group=comparison.group, device=reference.label,
      work=comparison.work, work_unit="audio s",
      note="jik876/hifi-gan Generator, weight norm removed, inference_mode, same mel; "
           + reference.note,
      extra={"preset": comparison.preset, "runtime": "pytorch", "precision": "float32"})]

"""Runs tfspeech benchmark suites and writes results.json, results.md and ratios.png.

    python -m benchmarks.run --suite=ops,prepare --device=cpu --out=results/
    python -m benchmarks.run --suite=all --quick          # tiny configuration, about a minute
    python -m benchmarks.run --suite=all --extended       # also the rows --suite=all leaves out

Every figure is a ratio against a baseline measured in the same run on the
same inputs. Suites: ops (monotonic alignment search, pitch), prepare (corpus
preparation throughput), train / infer / export (Grad-TTS and HiFi-GAN; cases
report "skipped" until those models are registered). A case is a function
registered with `@harness.case(suite, name)`; modules holding cases are listed
in `CASE_MODULES`.
"""

import collections
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import harness  # noqa: E402
from benchmarks import torch_reference  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("suite", ["all"], "Comma-separated suites to run: "
                  f"{', '.join(harness.SUITE_NAMES)}, or all.")
flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"],
                  "cpu hides every GPU from TensorFlow (also in worker processes); gpu requires "
                  "one (`pip install .[gpu]`) and records its peak memory.")
flags.DEFINE_list("cases", [], "Only these case names within the suites (e.g. diffwave,fastpitch); "
                  "default: every case of the suites.")
flags.DEFINE_string("out", "results", "Directory for results.json, results.md and ratios.png.")
flags.DEFINE_integer("repeats", None, "Timed repeats per variant after warm-up; default: each "
                     "case's own (3-5, 2 with --quick).", lower_bound=1)
flags.DEFINE_bool("isolate", True, "Run each case in a process of its own (this module with "
                  "that one case): its peak memory is its own, and what one case builds (models, "
                  "traced graphs) is freed before the next. In one process a 2026-12-05 "
                  "--suite=all grew to 22.5 GB and was killed for memory in its 19th case. A "
                  "case whose process dies becomes an error row with its exit status.")
flags.DEFINE_string("record_to", None, "Internal (used by --isolate): run the one selected case "
                    "and write its record as JSON to this path instead of the results files.")
flags.DEFINE_bool("extended", False, "Also the rows --suite=all leaves out to fit in 30 minutes "
                  "(the on-request cases, and variants no open target names: DC-TTS at batch "
                  "16, DiffWave base training and batch 16, Grad-TTS browser streaming, ...); "
                  "see benchmarks/README.md.")
flags.DEFINE_bool("quick", False, "Tiny configuration (short audio, small corpora, 2 repeats): "
                  "checks that every case runs, in about a minute; not for reporting.")

# Modules whose import registers cases. Add benchmarks/train.py etc. here.
CASE_MODULES = ("benchmarks.prepare", "benchmarks.models", "benchmarks.export",
                "benchmarks.diffwave", "benchmarks.fastpitch", "benchmarks.tacotron2", "benchmarks.dctts",
                "benchmarks.streaming", "benchmarks.startup", "benchmarks.export_time",
                "benchmarks.conv_bound")


def _suites_ok(value):
  try:
    harness.parse_suites(value)
    return True
  except ValueError:
    return False


flags.register_validator("suite", _suites_ok,
                         message=f"--suite takes a comma-separated list of "
                                 f"{', '.join(harness.SUITE_NAMES)}, or all")


# --- ops: wrappers of benchmarks/mas.py and benchmarks/pitch.py ----------------------------


def _collect(runs, key_fields, seconds_of):
  """Per-variant samples from repeated `module.run()` calls: {key: [seconds, ...]}, first rows."""
  samples, first = collections.defaultdict(list), {}
  for rows in runs:
    for row in rows:
      key = tuple(row[f] for f in key_fields)
      samples[key].append(seconds_of(row))
      first.setdefault(key, row)
  return samples, first


@harness.case("ops", "monotonic alignment search")
def mas_case(ctx):
  """tfspeech.ops.alignment.maximum_path vs the glow-tts Cython (else NumPy) MAS."""
  try:
    from benchmarks import mas  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise harness.Skip(f"not available: benchmarks/mas.py could not be imported ({e})") from e
  if not hasattr(mas, "run"):
    raise harness.Skip("not available: benchmarks/mas.py has no run(repeats) yet")
  # Each mas.run() call warms up every implementation, then times `inner` round-robin calls;
  # one sample = its median. Outer calls give the spread.
  inner = 2 if ctx.quick else 10
  runs = [mas.run(inner) for _ in range(ctx.repeats(3))]
  samples, first = _collect(runs, ("case", "implementation"), lambda r: r["median_ms"] / 1e3)
  names = {impl for _, impl in samples}
  baseline = next((n for n in sorted(names) if n.startswith("cython")),
                  next((n for n in sorted(names) if n.startswith("numpy")), None))
  measurements = []
  for (shape, impl), values in samples.items():
    matches = first[(shape, impl)].get("matches_cython")
    measurements.append(harness.Measurement(
        impl, values, baseline=impl == baseline, group=f"B×T×M {shape}",
        device=ctx.device_label if impl.startswith("tfspeech") else "CPU",
        note=(f"median of {inner} calls per sample"
              + ("; PATH DIFFERS FROM CYTHON" if matches is False else "")),
        extra={"matches_cython": matches, "inner_repeats": inner}))
  return measurements


@harness.case("ops", "pitch (YIN)")
def pitch_case(ctx):
  """tfspeech.ops.pitch.yin_pitch vs librosa.yin and librosa.pyin (the baseline) on speech."""
  from benchmarks import pitch  # pylint: disable=import-outside-toplevel
  seconds = 2.0 if ctx.quick else 20.0
  inner = 1 if ctx.quick else 3
  # pyin is warmed up (numba) by the first run only: ~10 s per call.
  runs = [pitch.run(inner, seconds=seconds, pyin_warmup=i == 0) for i in range(ctx.repeats(2))]
  samples, first = _collect(runs, ("method",), lambda r: r["seconds_per_call"])
  measurements = []
  for (method,), values in samples.items():
    row = first[(method,)]
    measurements.append(harness.Measurement(
        method, values, baseline=method == "librosa.pyin",
        device=ctx.device_label if method.startswith("tfspeech") else "CPU",
        work=row["audio_seconds"], work_unit="audio s",
        note=f"{row['audio_seconds']:.0f} s of {row['audio']}"
             + (f"; median of {inner} calls per sample" if inner > 1 and method != "librosa.pyin"
                else "")))
  return measurements


# --- train / infer / export: stand-ins until the models land -------------------------------

MODELS = {"grad_tts": "Grad-TTS", "hifigan": "HiFi-GAN", "diffwave": "DiffWave",
          "fastpitch": "FastPitch", "tacotron2": "Tacotron 2", "dctts": "DC-TTS"}


def _model_placeholder(suite, model, label):
  def placeholder(ctx):
    del ctx
    harness.require_model(model, label)
    raise harness.Skip(f"{label} is registered, but no {suite} benchmark case is written yet "
                       f"(register one with @harness.case({suite!r}, {model!r}))")
  placeholder.__name__ = f"{suite}_{model}_placeholder"
  return placeholder


for _suite in ("train", "infer", "export"):
  for _model, _label in MODELS.items():
    harness.register(harness.Case(_suite, _model, _model_placeholder(_suite, _model, _label),
                                  f"{_label} {_suite} (stand-in)", placeholder=True))


def _import_case_modules():
  """Imports CASE_MODULES; a module that fails to import becomes an error row, not a crash."""
  for module in CASE_MODULES:
    try:
      importlib.import_module(module)
    except Exception as e:  # pylint: disable=broad-except
      message = f"import {module} failed: {type(e).__name__}: {e}"

      def failed(ctx, message=message):
        del ctx
        raise RuntimeError(message)
      suite = module.rsplit(".", 1)[-1]
      harness.register(harness.Case(suite if suite in harness.SUITE_NAMES else "ops",
                                    f"import {module}", failed))


def _configure_device(device):
  """Hides GPUs for --device=cpu (before TensorFlow starts); checks one exists for gpu."""
  if device == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # inherited by corpus worker processes
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  gpus = tf.config.list_physical_devices("GPU")
  if device == "cpu":
    tf.config.set_visible_devices([], "GPU")
    return
  if not gpus:
    raise app.UsageError(
        "--device=gpu, but TensorFlow sees no GPU. Install the CUDA build with "
        "`pip install .[gpu]` (NVIDIA driver >= 525 for TF 2.17) and check "
        "`python -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"`, "
        "or run with --device=cpu.")
  for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)  # peak memory = what the case needs
  # Spawned corpus workers also start TensorFlow: without growth each would claim the whole GPU.
  os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"


def _case_command(c, record_path):
  """`python -m benchmarks.run` for case `c` alone, writing its record to `record_path`."""
  command = [sys.executable, "-m", "benchmarks.run", f"--suite={c.suite}", f"--cases={c.name}",
             f"--device={FLAGS.device}", "--noisolate", f"--record_to={record_path}",
             "--quick" if FLAGS.quick else "--noquick",
             "--extended" if FLAGS.extended else "--noextended"]
  return command + ([f"--repeats={FLAGS.repeats}"] if FLAGS.repeats else [])


def _run_isolated(c):
  """Runs case `c` in a child process and returns its record (an error record if it died)."""
  if (c.on_request and not (FLAGS.cases or FLAGS.extended)) or c.placeholder:
    # Its skip row: a child process would spend ~4 s importing TensorFlow to write it.
    return harness.run_case(c, FLAGS.device, FLAGS.quick, FLAGS.repeats)
  with tempfile.TemporaryDirectory(prefix="tfspeech-bench-case-") as tmp:
    record_path = os.path.join(tmp, "record.json")
    start = time.perf_counter()
    # The child's progress lines go straight to this stdout; stderr (TensorFlow's start-up
    # chatter, tracebacks) is kept for the error message of a child that dies.
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(harness.__file__)))
    env = dict(torch_reference.ALLOCATOR_ENV, **os.environ)  # the environment's values win
    env["PYTHONPATH"] = os.pathsep.join(
        [repo_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    child = subprocess.run(_case_command(c, record_path), stderr=subprocess.PIPE, text=True,
                           errors="replace", env=env, cwd=repo_root, check=False)
    if os.path.exists(record_path):
      with open(record_path, encoding="utf-8") as f:
        return json.load(f)
  status = child.returncode
  how = (f"was killed by {signal.Signals(-status).name}" if status < 0
         else f"exited with status {status}")
  if status == -signal.SIGKILL:
    how += " (the kernel's out-of-memory killer, or a kill from outside)"
  tail = "\n".join(child.stderr.strip().splitlines()[-15:])
  return harness.failed_record(c, f"the case's process {how} before writing its record; "
                                  f"the end of its stderr:\n{tail}",
                               time.perf_counter() - start)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  suites = harness.parse_suites(FLAGS.suite)
  _configure_device(FLAGS.device)
  _import_case_modules()
  selected = harness.cases(suites)
  if FLAGS.cases:
    unknown = sorted(set(FLAGS.cases) - {c.name for c in selected})
    if unknown:
      names = ", ".join(sorted({c.name for c in selected}))
      raise app.UsageError(f"--cases: no case named {', '.join(unknown)} in suites "
                           f"{','.join(suites)}; cases: {names}")
    selected = [c for c in selected if c.name in FLAGS.cases]
  elif not FLAGS.extended:
    selected = [harness.not_requested(c) if c.on_request else c for c in selected]
  if FLAGS.record_to:
    if len(selected) != 1:
      raise app.UsageError(f"--record_to runs one case; --suite/--cases selected {len(selected)}")
    record = harness.run_case(selected[0], FLAGS.device, FLAGS.quick, FLAGS.repeats,
                              extended=FLAGS.extended)
    with open(FLAGS.record_to, "w", encoding="utf-8") as f:
      json.dump(record, f, allow_nan=True)
    return 0
  with tempfile.TemporaryDirectory(prefix="tfspeech-bench-shared-") as shared:
    # The case processes share this folder for set-ups that several cases use alike.
    os.environ.setdefault(harness.SHARED_DIR_ENV, shared)
    results = harness.run_cases(
        selected, device=FLAGS.device, quick=FLAGS.quick, repeats=FLAGS.repeats,
        options={"suites": suites, "cases": FLAGS.cases, "command": " ".join(sys.argv),
                 "isolated": FLAGS.isolate},
        partial=lambda document: harness.write_results(document, FLAGS.out, plot=False),
        runner=_run_isolated if FLAGS.isolate else None, extended=FLAGS.extended)
  paths = harness.write_results(results, FLAGS.out)
  print(harness.to_markdown(results))
  print("wrote " + ", ".join(p for p in paths.values() if p))
  counts = collections.Counter(r["status"] for r in results["cases"])
  print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['error']} error")
  return 1 if counts["error"] else 0  # every result is written either way


if __name__ == "__main__":
  app.run(main)

"""Export time and size: `tfspeech-export` of trained runs to each format, as a user runs it.

export/export_time: the start-up set-up's tiny Grad-TTS and tiny HiFi-GAN runs
(`benchmarks/startup.py`, real binaries) exported with `tfspeech-export --vocoder=` to a
SavedModel, TFLite float32 and, when the TFJS converter's virtualenv exists, TFJS: one fresh
process per format (its wall time, peak RSS and CPU time; the artifact's size), then the
SavedModel loaded in a fresh process and its text_to_audio signature called once (load and
first-call seconds).

export/export_time_ljspeech (only when named: `--cases=export_time_ljspeech`; 2-3 minutes
that --suite=all leaves out, where export/grad_tts states the ljspeech TFLite conversion time):
the ljspeech preset (14.8 M parameters, one training step on the tiny corpus) alone to a
SavedModel (load and first call as above) and TFLite. Ten unrolled diffusion steps (the
export default) throughout. There is no baseline: the targets are absolute
(issue #22: under 2 minutes per format for tiny, the SavedModel's load in seconds).
"""

import json
import pathlib
import sys
from typing import List

from benchmarks import harness
from benchmarks import startup

HISTORICAL = ("issue #22 (busy machine): SavedModel 7 min, TFLite float32 35 min, TFJS 35 min; "
              "2026-12-05 before sharing the U-Net and the GraphDef freezing (quiet): "
              "SavedModel 136 s, 55 MB, load 31 s")
LJSPEECH_STEPS = 1

_LOAD_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
import tensorflow as tf
imported = time.perf_counter()
model = tf.saved_model.load(sys.argv[1])
loaded = time.perf_counter()
name = "text_to_audio" if "text_to_audio" in model.signatures else "text_to_mel"
fn = model.signatures[name]
inputs = {}
for key, spec in fn.structured_input_signature[1].items():
  shape = [1 if d is None else d for d in spec.shape.as_list()]
  if key == "text_ids":
    shape = [1, 40]
  if key in ("noise", "vocoder_noise"):
    shape = [1, 400] + shape[2:]
  if spec.dtype.is_floating:
    value = np.ones(shape, spec.dtype.as_numpy_dtype)
  else:
    value = np.full(shape, 40 if key == "text_lengths" else 3, spec.dtype.as_numpy_dtype)
  inputs[key] = tf.constant(value)
fn(**inputs)
called = time.perf_counter()
print(json.dumps({"import": imported - start, "load": loaded - imported,
                  "first call": called - loaded, "signature": name}))
"""


def _size_mb(path: pathlib.Path) -> float:
  return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _tfjs_available() -> bool:
  # pylint: disable=import-outside-toplevel
  from tfspeech.export import tfjs
  try:
    tfjs.converter_executable(create=False)
    return True
  except tfjs.ConverterUnavailable:
    return False


def _export(ctx, label: str, group: str, workdir, vocoder, fmt: str, note: str = ""):
  """One fresh `tfspeech-export` process → (Measurement, output folder)."""
  out = ctx.tmp_dir / f"export_{label}_{fmt}"
  command = startup.binary("export") + [f"--workdir={workdir}", f"--format={fmt}",
                                        f"--out={out}"]
  if vocoder is not None:
    command.append(f"--vocoder={vocoder}")
  run = startup.run_process(command).check(f"tfspeech-export --format={fmt}")
  size = _size_mb(out)
  steps = [line.split("export: ", 1)[1] for line in run.stderr.splitlines()
           if line.startswith("export: ")]
  ctx.log(f"  export {label} {fmt}: {run.wall_seconds:.1f} s, {size:.1f} MB")
  rss = "" if run.peak_rss_mb is None else f"; peak RSS {run.peak_rss_mb:.0f} MB"
  measurement = harness.Measurement(
      f"tfspeech-export --format={fmt}", [run.wall_seconds], group=group,
      device=ctx.device_label,
      note=f"fresh process; {size:.1f} MB; CPU {run.cpu_seconds:.0f} s{rss}"
           + (f"; {note}" if note else ""),
      extra={"size_mb": size, "cpu_s": run.cpu_seconds, "peak_rss_mb": run.peak_rss_mb,
             "progress": steps})
  return measurement, out


def _load(ctx, group: str, saved_model: pathlib.Path) -> harness.Measurement:
  run = startup.run_process([sys.executable, "-c", _LOAD_SCRIPT, str(saved_model)])
  run.check("SavedModel load")
  phases = json.loads(run.stdout.strip().splitlines()[-1])
  ctx.log(f"  SavedModel load {phases['load']:.1f} s, first {phases['signature']} call "
          f"{phases['first call']:.1f} s")
  return harness.Measurement(
      "SavedModel load (fresh process)", [phases["load"]], group=group,
      device=ctx.device_label,
      note=f"tf.saved_model.load; then the first {phases['signature']} call (40 ids) "
           f"{phases['first call']:.1f} s; TensorFlow import {phases['import']:.1f} s",
      extra={"phases_s": phases})


@harness.case("export", "export_time")
def export_time(ctx) -> List[harness.Measurement]:
  """tfspeech-export wall time, size and SavedModel load of the tiny Grad-TTS + HiFi-GAN runs."""
  harness.require_model("grad_tts", "Grad-TTS")
  s = startup.setup(ctx)
  formats = ["saved_model", "tflite"] + (["tfjs"] if _tfjs_available() else [])
  pair = " + HiFi-GAN tiny" if s.hifigan else ""
  group = f"Grad-TTS tiny{pair}, 10 steps"
  measurements = []
  for fmt in formats:
    measurement, out = _export(ctx, "tiny", group, s.grad_tts, s.hifigan, fmt,
                               note=HISTORICAL if fmt == "saved_model" else "")
    measurements.append(measurement)
    if fmt == "saved_model":
      measurements.append(_load(ctx, group, out))
  if "tfjs" not in formats:
    ctx.log("  export tfjs not timed: no TFJS converter virtualenv (tfspeech-export "
            "--format=tfjs creates it)")
  return measurements


@harness.case("export", "export_time_ljspeech", on_request=True)
def export_time_ljspeech(ctx) -> List[harness.Measurement]:
  """tfspeech-export wall time, size and SavedModel load of a ljspeech Grad-TTS run."""
  harness.require_model("grad_tts", "Grad-TTS")
  s = startup.setup(ctx)
  workdir = s.root / "grad_tts_ljspeech"
  if not workdir.is_dir():
    ctx.log("  export set-up: train grad_tts ljspeech (1 step) ...")
    startup.run_process(startup.binary("train") + [
        "--model=grad_tts", "--preset=ljspeech", f"--data={s.data}",
        f"--workdir={workdir}", f"--max_steps={LJSPEECH_STEPS}", "--noprogress",
        # The tiny run's ids (this corpus's symbols + blank), not the preset's ARPAbet 149.
        f"--override=n_vocab={startup.run_config(s.grad_tts)['model_config']['n_vocab']}"]
    ).check("set-up train grad_tts ljspeech")
  group = "Grad-TTS ljspeech (14.8 M), 10 steps, no vocoder"
  measurements = []
  for fmt in ("saved_model", "tflite"):
    measurement, out = _export(ctx, "ljspeech", group, workdir, None, fmt)
    measurements.append(measurement)
    if fmt == "saved_model":
      measurements.append(_load(ctx, group, out))
  return measurements

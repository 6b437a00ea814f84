"""Start-up: a fresh `tfspeech-synthesize` and the first `tfspeech-train` step, as a user runs them.

Set-up (once per run, shared by both cases, with the real binaries in subprocesses): the
bundled tiny corpus prepared (`tfspeech-prepare --workers=1`), a tiny Grad-TTS run trained
for `GRAD_TTS_STEPS` steps and, without --quick, a tiny HiFi-GAN run for `HIFIGAN_STEPS`
step (`tfspeech-train --preset=tiny`, the preset's batch size). Every timed sample is then one
FRESH process (Python start, imports, loading, tracing, the work, exit), the wall time a
user waits, with that process's own peak RSS (its VmHWM, polled) and CPU seconds (user + system,
which a loaded machine inflates less than the wall):

- infer/startup: `tfspeech-synthesize --workdir=RUN --text=SENTENCE` with Griffin-Lim and,
  without --quick, with `--vocoder=` the HiFi-GAN run. The wall is split from the binary's
  own output (`--alsologtostderr`): "import" (Python start, flag checks, TensorFlow and
  tfspeech imports: to its "start-up: ... imported" log line), "load" (config, modules,
  checkpoint restore: to "start-up: run loaded"), "warm-up" (the one-off trace and first
  call of the synthesis and vocoder graphs, as printed), "synthesis" (the sentence after
  warm-up, files written, as printed) and "exit" (the rest: result lines and interpreter
  teardown). Baseline of each group: the PyTorch reference (benchmarks/torch_reference) for
  the same job in a fresh `python -c` process: import torch, build Grad-TTS at the run's
  tiny config, load a state dict file (the run's weights copied from tfspeech, so both
  predict the same durations), synthesize the sentence's ids (the same ids
  tfspeech reads: tokenized here, not in the timed process) at tfspeech's default controls
  (10 steps, temperature 1.5), plus, in the HiFi-GAN group, build, load and run the tiny
  HiFi-GAN generator on that mel. The Griffin-Lim group's baseline makes the mel only (the
  reference has no Griffin-Lim; tfspeech's row also vocodes and writes the files), so its
  ratio flatters the baseline.
- train/startup: `tfspeech-train --workdir=COPY --max_steps=N+1` on a copy of the trained
  Grad-TTS run (a resume that runs exactly one step; it calls the train step that the
  set-up's training traced and kept in WORKDIR/trace_cache), and the same with
  `--notrace_cache` (traced again, as at a run's first start), each timed to the end of
  that step: the trainer's "step N+1:" log line (its losses read back, so the step has
  run). Split: "to loop" (Python start, imports, config checks, dataset, model build,
  checkpoint restore: to the "training ... from step N" line) and "first step" (the train
  step's trace or cache load, Grappler's optimisation and the run). The issue's historical
  figure: 29.5 s (the first measurement, 2026-12-06 02:11, before the cache). Baseline: the reference's `TrainStep` in a fresh process (import
  torch, build, load the state dict, Adam, one step on a random batch as large as the
  corpus's first train batch, no data loading: it flatters the baseline).

The issue's historical figure (#22): one sentence with the demo's tiny run took 72 s wall on
a busy machine, 45 s of it the one-off warm-up.
"""

import atexit
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

from benchmarks import harness

SENTENCE = "The quick brown fox jumps over the lazy dog."
TINY_CORPUS = harness.REPO_ROOT / "tests" / "data" / "ljspeech_tiny"
GRAD_TTS_STEPS = 2
HIFIGAN_STEPS = 1
# tfspeech-synthesize's defaults for Grad-TTS (serving controls), used by the reference too.
N_TIMESTEPS, TEMPERATURE = 10, 1.5
PROCESS_TIMEOUT_SECONDS = 900
HISTORICAL = "issue #22: 72 s wall, 45 s of it warm-up (busy machine, demo's tiny run)"

_ABSL_LINE = re.compile(r"^([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+\s+\S+\] (.*)$")
_SYNTH_RESULT = re.compile(r"of audio in ([0-9.]+) s: .*one-off warm-up ([0-9.]+) s")


# --- processes -------------------------------------------------------------------------------


@dataclasses.dataclass
class ProcessRun:
  """One finished process: wall and CPU seconds, its own peak RSS, its output."""
  command: List[str]
  started_at: float  # time.time() at spawn, for absl log timestamps
  wall_seconds: float
  cpu_seconds: float
  peak_rss_mb: Optional[float]  # None: never read (a process shorter than one poll)
  returncode: int
  stdout: str
  stderr: str

  def check(self, what: str) -> "ProcessRun":
    if self.returncode != 0:
      lines = [l for l in (self.stderr + self.stdout).splitlines() if l.strip()]
      errors = [l for l in lines if l.startswith("error:")] or lines[-3:]
      raise RuntimeError(f"{what} exited with {self.returncode}: {' | '.join(errors)}")
    return self


def _vm_hwm_kib(pid: int) -> Optional[int]:
  """The peak RSS (VmHWM) of process `pid`'s current program, or None (gone, not Linux)."""
  try:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1])
  except (OSError, ValueError):
    pass
  return None


def run_process(command: Sequence[str], env: Optional[dict] = None, cwd=None,
                timeout: float = PROCESS_TIMEOUT_SECONDS) -> ProcessRun:
  """Runs `command` to completion: wall, CPU (`os.wait4`) and peak RSS of that process.

  The peak RSS is its VmHWM, polled every 20 ms (a high-water mark: any read after the peak
  holds it, so only a peak in the last 20 ms of a process is missed). Not `ru_maxrss`:
  Linux folds the forking process's RSS into the child's at exec, so every child of the
  harness would report at least the harness's own RSS.
  """
  env = dict(os.environ if env is None else env)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    started_at, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(list(command), stdout=out, stderr=err, env=env, cwd=cwd)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    peak_kib, done = [0], threading.Event()

    def poll():  # Popen returns after the exec: from here on VmHWM is the command's own
      while True:
        peak_kib[0] = max(peak_kib[0], _vm_hwm_kib(proc.pid) or 0)
        if done.wait(0.02):
          return
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
      _, status, usage = os.wait4(proc.pid, 0)
    finally:
      done.set()
      poller.join()
      timer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    out.seek(0)
    err.seek(0)
    stdout, stderr = (f.read().decode("utf-8", "replace") for f in (out, err))
  if proc.returncode == -9 and wall >= timeout:
    stderr += f"\nerror: killed after {timeout:.0f} s"
  return ProcessRun(list(command), started_at, wall, usage.ru_utime + usage.ru_stime,
                    peak_kib[0] / 1024.0 if peak_kib[0] else None, proc.returncode, stdout,
                    stderr)


def binary(name: str) -> List[str]:
  """The console script `tfspeech-NAME` beside this Python, else `python -m tfspeech.bin.NAME`."""
  script = pathlib.Path(sys.executable).parent / f"tfspeech-{name}"
  if script.is_file():
    return [str(script)]
  return [sys.executable, "-m", f"tfspeech.bin.{name}"]


# --- reading the binaries' output ------------------------------------------------------------


def log_times(stderr: str, started_at: float) -> List[tuple]:
  """(seconds since `started_at`, message) of each absl log line (`--alsologtostderr`).

  absl stamps local month, day and time to the microsecond; the year is the spawn's (or the
  next, for a run across New Year).
  """
  spawn = datetime.datetime.fromtimestamp(started_at)
  found = []
  for line in stderr.splitlines():
    match = _ABSL_LINE.match(line.strip())
    if not match:
      continue
    month, day, hour, minute, second, micro = (int(g) for g in match.groups()[1:7])
    for year in (spawn.year, spawn.year + 1):
      try:
        stamp = datetime.datetime(year, month, day, hour, minute, second, micro).timestamp()
      except ValueError:
        continue
      if stamp >= started_at - 1.0:  # absl's clock and ours agree to well under a second
        found.append((stamp - started_at, match.group(8)))
        break
  return found


def _first(logs, prefix: str, what: str) -> float:
  for seconds, message in logs:
    if message.startswith(prefix):
      return seconds
  raise ValueError(f"{what}: no log line starting {prefix!r} (was it run with "
                   "--alsologtostderr?)")


def synthesize_phases(run: ProcessRun) -> Dict[str, float]:
  """Seconds of import, load, warm-up, synthesis and exit of a `tfspeech-synthesize` run."""
  logs = log_times(run.stderr, run.started_at)
  imported = _first(logs, "start-up: TensorFlow and tfspeech imported", "tfspeech-synthesize")
  loaded = _first(logs, "start-up: run loaded", "tfspeech-synthesize")
  match = _SYNTH_RESULT.search(run.stdout)
  if not match:
    raise ValueError("tfspeech-synthesize: no '... of audio in W s ... one-off warm-up X s' "
                     f"line in its output: {run.stdout[-300:]!r}")
  synthesis, warmup = float(match.group(1)), float(match.group(2))
  return {"import": imported, "load": loaded - imported, "warm-up": warmup,
          "synthesis": synthesis,
          "exit": max(run.wall_seconds - loaded - warmup - synthesis, 0.0)}


def train_phases(run: ProcessRun, step: int) -> Dict[str, float]:
  """Seconds to the training loop and of its first step (ending at global step `step`)."""
  logs = log_times(run.stderr, run.started_at)
  loop = _first(logs, "training ", "tfspeech-train")
  done = _first(logs, f"step {step}:", "tfspeech-train")
  return {"to loop": loop, "first step": done - loop, "to first step end": done,
          "exit": max(run.wall_seconds - done, 0.0)}


def torch_phases(run: ProcessRun) -> Dict[str, float]:
  """The phases the reference script prints as its last stdout line (JSON)."""
  lines = [l for l in run.stdout.splitlines() if l.startswith("{")]
  if not lines:
    raise ValueError(f"reference process printed no timings: {run.stderr[-300:]!r}")
  phases = json.loads(lines[-1])
  end_at = phases.pop("end_at", None)
  if end_at is not None:  # from the spawn: Python's own start-up included
    phases["to first step end"] = end_at - run.started_at
    phases["exit"] = max(run.wall_seconds - phases["to first step end"], 0.0)
  else:
    phases["exit"] = max(run.wall_seconds - sum(phases.values()), 0.0)
  return phases


# --- the PyTorch reference, in fresh processes ----------------------------------------------

_TORCH_PRELUDE = """
import time
_t0 = time.perf_counter()
import json, sys
import torch
from benchmarks.torch_reference import grad_tts as ref
phases = {"import": time.perf_counter() - _t0}
_t = time.perf_counter()
args = json.loads(sys.argv[1])
def params(cls, config):
  import dataclasses
  names = {f.name for f in dataclasses.fields(cls)}
  return cls(**{k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                    if isinstance(v, list) else v) for k, v in config.items() if k in names})
model = ref.GradTTS(params(ref.GradTTSParams, args["grad_tts_config"]))
model.load_state_dict(torch.load(args["grad_tts_weights"]))
"""

TORCH_SYNTHESIZE = _TORCH_PRELUDE + """
model.eval()
generator = None
if args.get("hifigan_config"):
  from benchmarks.torch_reference import hifigan
  generator = hifigan.inference_generator(params(hifigan.HifiGanParams, args["hifigan_config"]))
  generator.load_state_dict(torch.load(args["hifigan_weights"]))
phases["load"] = time.perf_counter() - _t
_t = time.perf_counter()
torch.manual_seed(0)
with torch.no_grad():
  ids = torch.tensor([args["ids"]], dtype=torch.long)
  _, mel, _ = model(ids, torch.tensor([ids.shape[1]]), args["n_timesteps"],
                    temperature=args["temperature"])
  if generator is not None:
    audio = generator(mel)
phases["synthesis"] = time.perf_counter() - _t
print(json.dumps(phases))
"""

TORCH_TRAIN_STEP = _TORCH_PRELUDE + """
step = ref.TrainStep(model)
g = torch.Generator().manual_seed(0)
b, t, f = args["batch_size"], args["tokens"], args["frames"]
batch = {"x": torch.randint(1, args["grad_tts_config"]["n_vocab"], (b, t), generator=g),
         "x_lengths": torch.full((b,), t, dtype=torch.long),
         "y": torch.randn(b, args["grad_tts_config"]["n_feats"], f, generator=g),
         "y_lengths": torch.full((b,), f, dtype=torch.long)}
phases["load"] = time.perf_counter() - _t
_t = time.perf_counter()
step(batch)
phases["first step"] = time.perf_counter() - _t
phases["end_at"] = time.time()
print(json.dumps(phases))
"""


def run_torch(script: str, args: dict) -> ProcessRun:
  """A fresh `python -c script json(args)` in the repository root (benchmarks importable).

  Threads as in every torch baseline (benchmarks/torch_reference/__init__.py): torch's
  default count and OMP_WAIT_POLICY=PASSIVE unless the environment sets it; spinning OpenMP
  threads made a 0.15 s tiny Grad-TTS call take 8-15 s on this loaded 2-core machine.
  """
  env = dict(os.environ)
  env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  return run_process([sys.executable, "-c", script, json.dumps(args)], env=env,
                     cwd=str(harness.REPO_ROOT)).check("the PyTorch reference")


# --- set-up ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Setup:
  """The prepared corpus and trained runs (in a folder that outlives one case)."""
  root: pathlib.Path
  data: pathlib.Path
  grad_tts: pathlib.Path
  hifigan: Optional[pathlib.Path]
  seconds: Dict[str, float]
  torch_args: Optional[dict] = None


_SETUPS: Dict[bool, Setup] = {}


def run_config(run_dir) -> dict:
  """A run folder's config.json (model, preset, model_config, ...)."""
  with open(pathlib.Path(run_dir) / "config.json", encoding="utf-8") as f:
    return json.load(f)


def setup(ctx: harness.Context) -> Setup:
  """Prepares the corpus and trains the runs once per process (per --quick setting), or once
  per benchmark run where the run shares a folder between its case processes
  (`harness.SHARED_DIR_ENV`, set by `benchmarks.run --isolate`): the set-up is the same for
  every case that uses it (train/startup, infer/startup, export/export_time), ~1.5 min each."""
  if ctx.quick in _SETUPS and _SETUPS[ctx.quick].grad_tts.is_dir():
    return _SETUPS[ctx.quick]
  shared = os.environ.get(harness.SHARED_DIR_ENV)
  if shared:
    root = pathlib.Path(shared) / ("startup-quick" if ctx.quick else "startup")
    done = root / "setup.json"
  else:
    done = None
    root = pathlib.Path(tempfile.mkdtemp(prefix="tfspeech-startup-"))
    atexit.register(shutil.rmtree, root, True)
  # The folder is per --quick setting, which alone decides whether HiFi-GAN is trained.
  data, grad_tts = root / "data", root / "grad_tts"
  hifigan = None if ctx.quick else root / "hifigan"
  if done is not None and done.is_file():
    ctx.log(f"  startup set-up: reused from an earlier case of this run ({root})")
    seconds = json.loads(done.read_text(encoding="utf-8"))["seconds"]
    _SETUPS[ctx.quick] = Setup(root, data, grad_tts, hifigan, seconds)
    return _SETUPS[ctx.quick]
  if done is not None:
    shutil.rmtree(root, ignore_errors=True)  # a set-up that did not finish
    root.mkdir(parents=True)
  seconds = {}

  def stage(name, command):
    ctx.log(f"  startup set-up: {name} ...")
    run = run_process(command).check(f"set-up {name} ({' '.join(command[:1])})")
    seconds[name] = run.wall_seconds

  stage("prepare", binary("prepare") + [f"--corpus={TINY_CORPUS}", f"--out={data}",
                                        "--workers=1"])
  stage("train grad_tts", binary("train") + [
      "--model=grad_tts", "--preset=tiny", f"--data={data}", f"--workdir={grad_tts}",
      f"--max_steps={GRAD_TTS_STEPS}", "--noprogress"])
  if hifigan is not None:
    stage("train hifigan", binary("train") + [
        "--model=hifigan", "--preset=tiny", f"--data={data}", f"--workdir={hifigan}",
        f"--max_steps={HIFIGAN_STEPS}", "--noprogress"])
  _SETUPS[ctx.quick] = Setup(root, data, grad_tts, hifigan, seconds)
  if done is not None:
    done.write_text(json.dumps({"seconds": seconds}), encoding="utf-8")
  return _SETUPS[ctx.quick]


def _first_batch_lengths(data_dir, batch_size: int, add_blank: bool) -> tuple:
  """(longest ids, longest mel frames) of the first `batch_size` train examples of a corpus."""
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  from tfspeech.data import dataset as dataset_lib
  from tfspeech.data import records
  from tfspeech.data.corpus_info import CorpusInfo
  info = CorpusInfo.load(str(data_dir), require=("mel_config",))
  tokens, frames = [], []
  for shard in dataset_lib.shard_files(str(data_dir), "train"):
    for record in tf.data.TFRecordDataset(shard).take(batch_size - len(tokens)):
      example = records.parse_example(record, n_mels=info.n_mels)
      ids = int(tf.shape(example["text_ids"])[0])
      tokens.append(2 * ids + 1 if add_blank else ids)
      frames.append(int(tf.shape(example["mel"])[0]))
    if len(tokens) >= batch_size:
      break
  return max(tokens), max(frames)


def torch_args(s: Setup) -> Optional[dict]:
  """The reference's configs, state dict files, the sentence's ids and the train batch's size.

  The state dicts hold the trained runs' weights (copied from tfspeech), so that both
  predict the same durations, hence mels of the same length. None without torch.
  """
  if s.torch_args is not None:
    return s.torch_args
  # pylint: disable=import-outside-toplevel
  try:
    import torch
    from benchmarks.torch_reference import grad_tts as ref
  except ImportError:
    return None
  from tfspeech import training
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  run = training.load_run(str(s.grad_tts), tasks=registry.get)
  ids = synthesize_lib.text_front_end(run).encode(SENTENCE, on_unknown="drop")
  stored = run_config(s.grad_tts)
  model = ref.load_tfspeech_weights(ref.GradTTS(ref.params_from_tfspeech(run.task.config)),
                                    run.modules["grad_tts"])
  batch_size = int(stored["train"]["batch_size"])
  tokens, frames = _first_batch_lengths(s.data, batch_size,
                                        bool(stored["model_config"].get("add_blank")))
  args = {"grad_tts_config": stored["model_config"],
          "grad_tts_weights": str(s.root / "grad_tts.pt"), "ids": [int(i) for i in ids],
          "n_timesteps": N_TIMESTEPS, "temperature": TEMPERATURE, "batch_size": batch_size,
          "tokens": tokens, "frames": frames}
  torch.save(model.state_dict(), args["grad_tts_weights"])
  if s.hifigan is not None:
    from benchmarks.torch_reference import hifigan
    h_run = training.load_run(str(s.hifigan), tasks=registry.get)
    generator = hifigan.load_tfspeech_generator(
        hifigan.inference_generator(hifigan.params_from_tfspeech(h_run.task.config)),
        h_run.modules["generator"])
    args.update(hifigan_config=run_config(s.hifigan)["model_config"],
                hifigan_weights=str(s.root / "hifigan.pt"))
    torch.save(generator.state_dict(), args["hifigan_weights"])
  s.torch_args = args
  return args


# --- cases -----------------------------------------------------------------------------------


def _phase_note(phases: Sequence[Dict[str, float]], names: Sequence[str]) -> str:
  import numpy as np  # pylint: disable=import-outside-toplevel
  return "; ".join(f"{n} {np.median([p[n] for p in phases]):.1f} s" for n in names)


def _measurement(name, runs, phases, names, group, baseline=False, device="CPU", note=""):
  import numpy as np  # pylint: disable=import-outside-toplevel
  walls = [r.wall_seconds for r in runs]
  rss = max((r.peak_rss_mb for r in runs if r.peak_rss_mb is not None), default=float("nan"))
  cpu = float(np.median([r.cpu_seconds for r in runs]))
  text = (f"fresh process; median {_phase_note(phases, names)}; CPU {cpu:.1f} s; "
          f"peak RSS {rss:.0f} MB" + (f"; {note}" if note else ""))
  return harness.Measurement(
      name, walls, baseline=baseline, group=group, device=device, note=text,
      extra={"phases_s": phases, "cpu_s": [r.cpu_seconds for r in runs],
             "peak_rss_mb": [r.peak_rss_mb for r in runs]})


@harness.case("infer", "startup")
def synthesize_startup(ctx):
  """Fresh tfspeech-synthesize of one sentence (tiny Grad-TTS) vs a fresh PyTorch reference."""
  harness.require_model("grad_tts", "Grad-TTS")
  s = setup(ctx)
  args = torch_args(s)
  repeats = ctx.repeats(2, quick=1)  # the reference's 2 s processes
  # tfspeech's (8-10 s each): one in --suite=all (its 30 minutes, issue #22), two --extended.
  fresh_repeats = ctx.repeats(2 if ctx.extended else 1, quick=1)
  vocoders = [("Griffin-Lim", None)] + ([("HiFi-GAN tiny", s.hifigan)] if s.hifigan else [])
  names = ("import", "load", "warm-up", "synthesis", "exit")
  measurements = []
  for label, vocoder in vocoders:
    group = f"one sentence, {label}"
    if args is not None:
      torch_runs = []
      for _ in range(repeats):
        job = dict(args) if vocoder else {k: v for k, v in args.items()
                                          if not k.startswith("hifigan")}
        torch_runs.append(run_torch(TORCH_SYNTHESIZE, job))
      measurements.append(_measurement(
          "PyTorch reference (fresh python -c)", torch_runs,
          [torch_phases(r) for r in torch_runs], ("import", "load", "synthesis"), group,
          baseline=True, note=("text→mel only (no Griffin-Lim, no files)" if vocoder is None
                               else "text→mel→audio, no files")))
    runs, phases = [], []
    for index in range(fresh_repeats):
      out = ctx.tmp_dir / f"synth_{len(measurements)}_{index}"
      command = binary("synthesize") + [f"--workdir={s.grad_tts}", f"--text={SENTENCE}",
                                        f"--out={out}", "--alsologtostderr"]
      if vocoder is not None:
        command.append(f"--vocoder={vocoder}")
      runs.append(run_process(command).check("tfspeech-synthesize"))
      phases.append(synthesize_phases(runs[-1]))
      ctx.log(f"  startup synthesize ({label}): {runs[-1].wall_seconds:.1f} s "
              f"({_phase_note(phases[-1:], names)})")
    measurements.append(_measurement(f"tfspeech-synthesize ({label})", runs, phases, names,
                                     group, device=ctx.device_label,
                                     note=HISTORICAL if vocoder is None else ""))
  return measurements


@harness.case("train", "startup")
def train_startup(ctx):
  """Fresh tfspeech-train resume to the end of its first step vs a fresh PyTorch reference."""
  harness.require_model("grad_tts", "Grad-TTS")
  s = setup(ctx)
  args = torch_args(s)
  # The reference's samples are 5 s fresh processes, tfspeech's ~30 s: one of those in
  # --suite=all (its 30 minutes), two with --extended.
  repeats = ctx.repeats(2, quick=1)
  fresh_repeats = ctx.repeats(2 if ctx.extended else 1, quick=1)
  group = "tiny Grad-TTS, first step of a resume"
  measurements = []
  if args is not None:
    torch_runs = [run_torch(TORCH_TRAIN_STEP, args) for _ in range(repeats)]
    torch_phase_list = [torch_phases(r) for r in torch_runs]
    baseline = _measurement(
        "PyTorch reference (fresh python -c)", torch_runs, torch_phase_list,
        ("import", "load", "first step"), group, baseline=True,
        note=f"random batch of the corpus's first batch's size ({args['tokens']} ids, "
             f"{args['frames']} frames per item), no data loading; time = to the end of "
             "the step")
    baseline.samples = [p["to first step end"] for p in torch_phase_list]
    measurements.append(baseline)
  step = GRAD_TTS_STEPS + 1
  # A resume calls the step its run traced before (WORKDIR/trace_cache, written by the
  # set-up's training); --notrace_cache traces it again, as a run's very first start does.
  for label, flags, expect in (
      ("tfspeech-train (resume, --max_steps=N+1)", [], "trace cache: loaded"),
      ("tfspeech-train (resume, --notrace_cache: traced again)", ["--notrace_cache"], None)):
    runs, phases = [], []
    for index in range(fresh_repeats):
      workdir = ctx.tmp_dir / f"resume_{index}"
      shutil.copytree(s.grad_tts, workdir)
      run = run_process(binary("train") + [
          "--model=grad_tts", f"--workdir={workdir}", f"--max_steps={step}", "--noprogress",
          "--alsologtostderr"] + flags).check("tfspeech-train")
      shutil.rmtree(workdir, ignore_errors=True)
      if expect and expect not in run.stderr:
        raise RuntimeError(f"{label}: no {expect!r} line: the set-up's run kept no traced "
                           "step, or it could not be used")
      runs.append(run)
      phases.append(train_phases(run, step))
      ctx.log(f"  startup train{' '.join([''] + flags)}: step {step} ends "
              f"{phases[-1]['to first step end']:.1f} s after start ({run.wall_seconds:.1f} s "
              "wall)")
    # The sample is the time to the end of the first step (the process then saves, exits).
    measurement = _measurement(label, runs, phases, ("to loop", "first step", "exit"), group,
                               device=ctx.device_label, note="time = to the end of the step")
    measurement.samples = [p["to first step end"] for p in phases]
    measurement.extra["process_wall_s"] = [r.wall_seconds for r in runs]
    measurements.append(measurement)
  measurements[-1].extra["setup_s"] = dict(s.seconds)
  return measurements

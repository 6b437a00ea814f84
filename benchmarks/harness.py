"""Benchmark machinery: case registry, timing statistics, memory, environment facts, reports.

A *case* is one small function registered in a *suite*. It receives a `Context`
and returns `Measurement`s: seconds per call (one sample per timed repeat) for
each variant, one of which is the baseline of its group. The harness turns the
samples into median and spread, divides the baseline's median by each
variant's (the speed-up: > 1 means faster than the baseline, both measured in
the same run on the same inputs), measures the case's peak memory, and writes
`results.json`, `results.md` and `ratios.png`.

A Measurement may carry `flops`, the floating-point operations of one call (counted from the
traced graph by `benchmarks/flops.py`; a baseline doing the same work on the same inputs gets the
same figure). The run then measures this CPU's (or GPU's) float32 peak once, the best of a few
large `tf.linalg.matmul`s (`measure_peak`), and reports each such variant's achieved GFLOP/s
and its fraction of that peak: how far a case is from what the machine can do.

Every case also measures the machine's speed just before and just after itself (2048²
float32 matmuls, `probe_speed`, ~0.5 s each on 2 cores), so that a case run while the machine
was slowed (a busy host's neighbours: the same code was measured up to 2x slower within one
evening) says so in the report instead of passing for a regression or a speed-up.

  @harness.case("infer", "hifigan")
  def hifigan_infer(ctx):
    harness.require_model("hifigan", "HiFi-GAN")
    mels, seconds = ...                             # the same inputs for every variant
    return [
        harness.Measurement("reference (torch)", ctx.time(lambda: ref(mels)),
                            baseline=True, device="CPU", work=seconds, work_unit="audio s"),
        harness.Measurement("tfspeech (XLA)", ctx.time(lambda: ours(mels).numpy()),
                            work=seconds, work_unit="audio s"),
    ]

A case raises `Skip("why")` to be reported as skipped; any other exception is
reported as an error and the run goes on with the next case.
"""

import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

SUITE_NAMES = ("ops", "train", "infer", "export", "prepare")
# A folder that every case process of one `benchmarks.run` shares (for set-ups that several
# cases use alike, e.g. benchmarks/startup.py's trained runs); unset outside such a run.
SHARED_DIR_ENV = "TFSPEECH_BENCH_SHARED_DIR"
# 2: measurements gained flops / gflops_per_s / fraction_of_peak, the environment float32_peak
# (absent from version 1 documents, which `to_markdown` still reads). 3: each case's
# machine_speed and the environment's machine_speed_median (absent from older documents).
SCHEMA_VERSION = 3
# The matmul size of the per-case speed probe (one of `measure_peak`'s sizes, so the run's
# peak measurement is one more probe).
SPEED_PROBE_SIZE = 2048
# A case whose slower probe falls under this fraction of the run's median probe ran on a
# slowed machine: the report names it. (The median, not the fastest: one lucky probe would
# flag most cases; the probes of one quiet run spread by ~10%.)
SLOWED_BELOW = 0.8
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_MIB = 1024.0 * 1024.0


class Skip(Exception):
  """Raised by a case that cannot run here; the message says why (and what would fix it)."""


@dataclasses.dataclass
class Measurement:
  """Timings of one variant of a case.

  Attributes:
    name: the variant, e.g. "tfspeech (XLA)" or "librosa.pyin".
    samples: seconds per call, one per timed repeat (after warm-up).
    baseline: whether this is the baseline of its group (at most one per group).
    group: variants are compared with the baseline of the same group (e.g. an input size).
    device: where it ran ("CPU", "GPU"); None means the run's device.
    work: units of work per call (e.g. seconds of audio), for throughput = work / median.
    work_unit: the unit of `work`, e.g. "audio s".
    note: a short remark shown in the Markdown table.
    extra: further facts kept in results.json (numbers or strings).
    flops: floating-point operations per call (2 × multiply-adds), or None.
  """
  name: str
  samples: Sequence[float]
  baseline: bool = False
  group: str = ""
  device: Optional[str] = None
  work: Optional[float] = None
  work_unit: str = ""
  note: str = ""
  extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
  flops: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Case:
  """A registered benchmark case.

  Attributes:
    suite: one of `SUITE_NAMES`.
    name: unique within the suite.
    fn: `fn(ctx: Context) -> list[Measurement]`.
    description: one line for the report.
    placeholder: a stand-in that a real case of the same suite and name replaces.
  """
  suite: str
  name: str
  fn: Callable[["Context"], List[Measurement]]
  description: str = ""
  placeholder: bool = False
  # Not part of a suite's default selection (it explores options rather than measuring what
  # users run, or it is too slow for --suite=all's budget): runs only when named by --cases.
  on_request: bool = False


_REGISTRY: Dict[tuple, Case] = {}


def register(new_case: Case) -> Case:
  """Adds `new_case`; a real case replaces a placeholder of the same suite and name."""
  if new_case.suite not in SUITE_NAMES:
    raise ValueError(f"case {new_case.name!r}: unknown suite {new_case.suite!r}; "
                     f"use one of {SUITE_NAMES}")
  key = (new_case.suite, new_case.name)
  existing = _REGISTRY.get(key)
  if existing is not None and not existing.placeholder and existing.fn is not new_case.fn:
    if new_case.placeholder:
      return existing  # the real case is already there
    raise ValueError(f"benchmark case {key} is already registered by "
                     f"{existing.fn.__module__}.{existing.fn.__qualname__}")
  _REGISTRY[key] = new_case
  return new_case


def unregister(suite: str, name: str) -> None:
  """Removes a case (for tests that register throwaway cases)."""
  _REGISTRY.pop((suite, name), None)


def case(suite: str, name: str, description: str = "", placeholder: bool = False,
         on_request: bool = False):
  """Decorator registering `fn(ctx) -> list[Measurement]` as a case of `suite`."""
  def decorator(fn):
    register(Case(suite, name, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                  placeholder, on_request))
    return fn
  return decorator


def not_requested(c: Case) -> Case:
  """A stand-in for on-request case `c` that a default selection reports as skipped."""
  def skip(ctx):
    del ctx
    raise Skip(f"runs on request only: --suite={c.suite} --cases={c.name}, or --extended")
  return Case(c.suite, c.name, skip, c.description, c.placeholder, on_request=True)


def cases(suites: Iterable[str]) -> List[Case]:
  """The registered cases of `suites`, suites in `SUITE_NAMES` order, cases in registration order."""
  wanted = set(suites)
  unknown = wanted - set(SUITE_NAMES)
  if unknown:
    raise ValueError(f"unknown suite(s) {sorted(unknown)}; use {SUITE_NAMES} or 'all'")
  return [c for suite in SUITE_NAMES if suite in wanted
          for (s, _), c in _REGISTRY.items() if s == suite]


def require_model(name: str, label: str):
  """Raises `Skip` unless model `name` (any spelling of `_`/`-`) is in the model registry."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  squash = lambda n: n.lower().replace("_", "").replace("-", "")
  known = registry.names()
  if squash(name) not in {squash(n) for n in known}:
    raise Skip(f"not yet implemented: needs the {label} task (model {name!r} is not in "
               f"tfspeech.models.registry.names() = {known})")


# --- timing and statistics -----------------------------------------------------------------


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> List[float]:
  """Seconds of each of `repeats` calls of `fn`, after `warmup` untimed calls.

  `fn` must wait for its result (e.g. call `.numpy()` on a tensor) so that
  asynchronous device work is inside the timing.
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  for _ in range(warmup):
    fn()  # tracing, XLA compilation, JIT, caches
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - start)
  return samples


def summarize(samples: Sequence[float]) -> Dict[str, float]:
  """Median, quartiles (linear interpolation), min and max of non-negative durations."""
  values = np.asarray(list(samples), dtype=np.float64)
  if values.size == 0:
    raise ValueError("no timing samples: a measurement needs at least one timed call")
  if not np.all(np.isfinite(values)) or np.any(values < 0):
    raise ValueError(f"timing samples must be finite and >= 0, got {values.tolist()}")
  q1, median, q3 = np.percentile(values, [25, 50, 75])
  return {"n": int(values.size), "median_s": float(median), "q1_s": float(q1),
          "q3_s": float(q3), "iqr_s": float(q3 - q1), "min_s": float(values.min()),
          "max_s": float(values.max())}


# --- memory --------------------------------------------------------------------------------


def _status_kib(pid, field):
  try:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except (OSError, ValueError):
    pass
  return None


def _descendants(pid):
  """Process ids of every descendant of `pid` (Linux /proc; [] elsewhere)."""
  found, pending = [], [pid]
  while pending:
    parent = pending.pop()
    try:
      tasks = os.listdir(f"/proc/{parent}/task")
    except OSError:
      continue
    for task in tasks:
      try:
        with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as f:
          children = [int(c) for c in f.read().split()]
      except (OSError, ValueError):
        continue
      found.extend(children)
      pending.extend(children)
  return found


class MemoryProbe:
  """Peak memory of the code run inside `with MemoryProbe(gpu) as probe:`; see `probe.result`.

  Host: the process's own peak RSS, exact per case on Linux (VmHWM after
  resetting it through /proc/self/clear_refs), else `ru_maxrss` (the peak
  since the process started). Child processes (e.g. corpus workers) are
  sampled every `interval` seconds; the largest sum of their RSS is reported.
  GPU: `tf.config.experimental.get_memory_info("GPU:0")["peak"]`, reset first.
  """

  def __init__(self, gpu: bool = False, interval: float = 0.1):
    self.gpu = gpu
    self.interval = interval
    self.result: Dict[str, Any] = {}
    self._stop = threading.Event()
    self._children_peak_kib = 0
    self._stage_peaks_kib = []  # peaks of the stages ended by `stage_peak_mb`
    self._thread = None
    self._method = ""

  def stage_peak_mb(self) -> Optional[float]:
    """Peak RSS since the previous call (or the probe's start), then starts the next stage.

    None where VmHWM cannot be reset. The case's peak (`result`) stays the largest of all.
    """
    if not self._method.startswith("VmHWM"):
      return None
    peak_kib = _status_kib("self", "VmHWM")
    try:
      with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    except OSError:
      return None
    self._stage_peaks_kib.append(peak_kib or 0)
    return _kib_to_mb(peak_kib)

  def _sample_children(self):
    pid = os.getpid()
    while not self._stop.wait(self.interval):
      total = sum(_status_kib(child, "VmRSS") or 0 for child in _descendants(pid))
      self._children_peak_kib = max(self._children_peak_kib, total)

  def __enter__(self):
    self.result = {"host_rss_before_mb": _kib_to_mb(_status_kib("self", "VmRSS"))}
    try:
      with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # resets VmHWM (peak RSS) to the current RSS
      self._method = "VmHWM, reset per case"
    except OSError:
      self._method = "ru_maxrss (peak since process start)"
    if self.gpu:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      tf.config.experimental.reset_memory_stats("GPU:0")
    if os.path.isdir("/proc/self/task"):
      self._thread = threading.Thread(target=self._sample_children, daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc_info):
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
    peak_kib = _status_kib("self", "VmHWM") if self._method.startswith("VmHWM") else None
    if peak_kib is not None:
      peak_kib = max([peak_kib] + self._stage_peaks_kib)
    else:
      rusage_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
      peak_kib = rusage_kib // 1024 if sys.platform == "darwin" else rusage_kib  # bytes on macOS
    self.result.update(host_peak_rss_mb=_kib_to_mb(peak_kib), host_peak_method=self._method,
                       children_peak_rss_mb=(_kib_to_mb(self._children_peak_kib)
                                             if self._children_peak_kib else None),
                       gpu_peak_mb=None)
    if self.gpu:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      self.result["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / _MIB
    return False


def _kib_to_mb(kib):
  return None if kib is None else kib / 1024.0


# --- running -------------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
  """What a case gets: the run's settings and a scratch directory.

  Attributes:
    device: "cpu" or "gpu" (TensorFlow sees GPUs only with "gpu").
    quick: run a tiny configuration (about a minute for every suite).
    repeats_override: --repeats, or None for each case's default.
    tmp_dir: an empty directory, deleted after the case.
    log: prints a progress line.
    extended: --extended: also the variants that --suite=all leaves out for its 30 minutes
      (rows that no open target names, e.g. batch 16 of a model whose targets are met).
  """
  device: str
  quick: bool
  repeats_override: Optional[int]
  tmp_dir: pathlib.Path
  log: Callable[[str], None] = print
  extended: bool = False

  @property
  def device_label(self) -> str:
    return self.device.upper()

  def repeats(self, default: int, quick: int = 2) -> int:
    """Timed repeats: --repeats if given, else `quick` with --quick, else `default`."""
    if self.repeats_override is not None:
      return self.repeats_override
    return quick if self.quick else default

  def time(self, fn: Callable[[], Any], repeats: Optional[int] = None,
           warmup: int = 1) -> List[float]:
    """`time_calls(fn, repeats or self.repeats(5), warmup)`."""
    return time_calls(fn, repeats if repeats is not None else self.repeats(5), warmup)


def _measurement_records(measurements, default_device):
  if not isinstance(measurements, (list, tuple)) or not all(
      isinstance(m, Measurement) for m in measurements):
    raise TypeError(f"a case must return a list of harness.Measurement, got {measurements!r}")
  baselines = {}
  for m in measurements:
    if m.baseline:
      if m.group in baselines:
        raise ValueError(f"group {m.group!r} has two baselines: {baselines[m.group].name!r} "
                         f"and {m.name!r}")
      baselines[m.group] = m
  records = []
  for m in measurements:
    stats = summarize(m.samples)
    base = baselines.get(m.group)
    speedup = None
    if base is not None:
      base_median = float(np.median(base.samples))
      speedup = base_median / stats["median_s"] if stats["median_s"] > 0 else None
    records.append({
        "name": m.name, "group": m.group, "device": m.device or default_device,
        "baseline": m.baseline, "baseline_name": base.name if base is not None else None,
        **stats, "samples_s": [float(s) for s in m.samples],
        "work": m.work, "work_unit": m.work_unit,
        "throughput": (m.work / stats["median_s"] if m.work is not None and stats["median_s"] > 0
                       else None),
        "speedup_vs_baseline": speedup, "note": m.note, "extra": dict(m.extra),
        "flops": m.flops,
        "gflops_per_s": (m.flops / stats["median_s"] / 1e9
                         if m.flops and stats["median_s"] > 0 else None),
        "fraction_of_peak": None,  # set by run_cases once the peak is measured
    })
  return records


def run_case(c: Case, device: str = "cpu", quick: bool = False,
             repeats: Optional[int] = None, log: Callable[[str], None] = print,
             extended: bool = False,
             speed: Optional[Callable[[str], float]] = None) -> Dict[str, Any]:
  """Runs one case; never raises except for KeyboardInterrupt/SystemExit.

  `speed(device)` measures the machine's speed in GFLOP/s (default `probe_speed`) just before
  the case and, unless it was skipped, just after it.

  Returns:
    dict with `suite`, `case`, `description`, `status` ("ok", "skipped" or
    "error"), `message`, `wall_seconds`, `memory` (see `MemoryProbe`), `measurements`
    (per variant: statistics, throughput, speed-up) and `machine_speed` ({"before",
    "after"}: GFLOP/s, None where the probe failed).
  """
  record = {"suite": c.suite, "case": c.name, "description": c.description, "status": "ok",
            "message": "", "wall_seconds": None, "memory": {}, "measurements": []}
  machine_speed = {}

  def probe_machine(when):
    try:
      machine_speed[when] = (speed or probe_speed)(device)
    except Exception:  # pylint: disable=broad-except
      machine_speed[when] = None  # a missing probe must not cost the case's results
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="tfspeech-bench-") as tmp:
    probe = MemoryProbe(gpu=device == "gpu")
    stages = []

    def log_with_peak(message):
      # Each progress line reports the work done since the line before it, so the peak RSS
      # since then is that work's: it shows which variant (or which library) a case's peak
      # memory belongs to.
      peak = probe.stage_peak_mb()
      if peak is None:
        log(message)
        return
      stages.append({"line": message.strip(), "peak_rss_mb": peak})
      log(f"{message} [peak RSS {peak / 1024:.1f} GB]")

    try:
      with probe:
        probe_machine("before")
        measurements = c.fn(Context(device, quick, repeats, pathlib.Path(tmp), log_with_peak,
                                    extended))
      record["measurements"] = _measurement_records(measurements, device.upper())
    except Skip as e:
      record.update(status="skipped", message=str(e))
    except Exception as e:  # pylint: disable=broad-except
      # One broken case must not cost the results of all the others.
      record.update(status="error", message=f"{type(e).__name__}: {e}",
                    traceback=traceback.format_exc())
  record["wall_seconds"] = time.perf_counter() - start
  record["memory"] = dict(probe.result, stages=stages)
  if record["status"] != "skipped":
    probe_machine("after")
  record["machine_speed"] = machine_speed
  return record


def failed_record(c: Case, message: str, wall_seconds: float) -> Dict[str, Any]:
  """The record of a case that never returned one (e.g. its process was killed)."""
  return {"suite": c.suite, "case": c.name, "description": c.description, "status": "error",
          "message": message, "wall_seconds": wall_seconds, "memory": {}, "measurements": []}


def matmul_rate(n: int, device: str = "cpu", repeats: int = 3, warmup: int = 1) -> float:
  """The best GFLOP/s of `repeats` n×n float32 `tf.linalg.matmul`s under tf.function, after
  `warmup` untimed calls."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  matmul = tf.function(tf.linalg.matmul)
  with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
    a = tf.random.stateless_uniform([n, n], [0, n])
    b = tf.random.stateless_uniform([n, n], [1, n])
    # The sum makes the timing wait for the product on any device, at O(n²) cost.
    best = min(time_calls(lambda: tf.reduce_sum(matmul(a, b)).numpy(), repeats, warmup))
  return 2.0 * n ** 3 / best / 1e9


def probe_speed(device: str = "cpu") -> float:
  """The machine's speed now in GFLOP/s: the best of 5 `SPEED_PROBE_SIZE`² matmuls after 2
  untimed ones (a fresh process's first products run slower: thread pool, page faults)."""
  return matmul_rate(SPEED_PROBE_SIZE, device, repeats=5, warmup=2)


def measure_peak(device: str = "cpu", sizes: Sequence[int] = (SPEED_PROBE_SIZE, 4096),
                 repeats: int = 3) -> Dict[str, Any]:
  """This machine's float32 matmul peak: the best GFLOP/s of `repeats` n×n `tf.linalg.matmul`s
  per size in `sizes`, each under tf.function after a warm-up call (`matmul_rate`).

  Returns:
    {"gflops_per_s": the best, "per_size": {n: best GFLOP/s}, "method": a sentence}.
  """
  per_size = {str(n): matmul_rate(n, device, repeats) for n in sizes}
  return {"gflops_per_s": max(per_size.values()), "per_size": per_size,
          "method": (f"best of {repeats} float32 tf.linalg.matmul (tf.function) per size "
                     f"{', '.join(f'{n}²' for n in sizes)} on {device.upper()}, after the cases")}


def _add_machine_speed(records, peak):
  """Each record's machine_speed["fraction_of_median"]: its slower probe over the median of
  the run's probes (the cases' and the peak's matmul of the same size); returns that median."""
  probes = [(r.get("machine_speed") or {}).get(when) for r in records
            for when in ("before", "after")]
  probes.append(((peak or {}).get("per_size") or {}).get(str(SPEED_PROBE_SIZE)))
  probes = [v for v in probes if v]
  if not probes:
    return None
  median = float(np.median(probes))
  for record in records:
    speed = record.get("machine_speed") or {}
    measured = [speed.get(when) for when in ("before", "after") if speed.get(when)]
    if measured:
      speed["fraction_of_median"] = min(measured) / median
  return median


def _add_fractions_of_peak(records, peak):
  for record in records:
    for m in record.get("measurements", []):
      if m.get("gflops_per_s") is not None and peak:
        m["fraction_of_peak"] = m["gflops_per_s"] / peak


def run_cases(selected: Sequence[Case], device: str = "cpu", quick: bool = False,
              repeats: Optional[int] = None, log: Callable[[str], None] = print,
              options: Optional[dict] = None,
              peak: Optional[Callable[[str], Dict[str, Any]]] = None,
              partial: Optional[Callable[[Dict[str, Any]], Any]] = None,
              runner: Optional[Callable[[Case], Dict[str, Any]]] = None,
              extended: bool = False,
              speed: Optional[Callable[[str], float]] = None) -> Dict[str, Any]:
  """Runs `selected` in order and returns the whole results document (see `write_results`).

  `runner(case)` returns one case's record (default: `run_case` in this process;
  `benchmarks.run` gives each case a process of its own).

  When a measurement carries `flops`, the machine's float32 peak is measured once after the
  cases (`peak(device)`, default `measure_peak`: ~5 s on 2 cores) into
  `environment["float32_peak"]` and each such row gets its `fraction_of_peak`.
  `speed`: the per-case machine-speed probe (`run_case`; default `probe_speed`); each
  record's `machine_speed` gains `fraction_of_median` (its slower probe over the median of
  the run's probes, `environment["machine_speed_median"]`).
  `partial(document)`, if given, receives the document of the cases so far after each case
  (no peak yet; `options["partial"]` true), so a run that dies keeps what it measured (a
  46-minute `--suite=all` was killed for memory in its 19th case and wrote nothing).
  """
  started = datetime.datetime.now(datetime.timezone.utc)
  load_before = _load_average()
  records = []

  def document(float32_peak, **more_options):
    finished = datetime.datetime.now(datetime.timezone.utc)
    env = environment(device)
    env["float32_peak"] = float32_peak
    env["load_average_before"], env["load_average_after"] = load_before, _load_average()
    env["machine_speed_median"] = _add_machine_speed(records, float32_peak)
    return {"schema_version": SCHEMA_VERSION,
            "options": dict(options or {}, device=device, quick=quick, repeats=repeats,
                            extended=extended,
                            **more_options),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "wall_seconds": (finished - started).total_seconds(),
            "environment": env, "cases": list(records)}

  for index, c in enumerate(selected, 1):
    log(f"[{index}/{len(selected)}] {c.suite}/{c.name} ...")
    record = (runner(c) if runner is not None
              else run_case(c, device, quick, repeats, log, extended, speed))
    log(f"[{index}/{len(selected)}] {c.suite}/{c.name}: {record['status']} "
        f"({record['wall_seconds']:.1f} s){': ' + record['message'] if record['message'] else ''}")
    records.append(record)
    if partial is not None and index < len(selected):
      partial(document(None, partial=True))
  float32_peak = None
  if any(m.get("flops") for r in records for m in r.get("measurements", [])):
    log("measuring the float32 matmul peak ...")
    try:
      float32_peak = (peak or measure_peak)(device)
    except Exception as e:  # pylint: disable=broad-except
      float32_peak = {"gflops_per_s": None, "error": f"{type(e).__name__}: {e}"}
    _add_fractions_of_peak(records, float32_peak.get("gflops_per_s"))
  return document(float32_peak)


# --- environment ---------------------------------------------------------------------------


def _load_average():
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def _version(package):
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def _cpu_model():
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _ram_gib():
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
  except (ValueError, OSError, AttributeError):
    return None


def _git(*args):
  try:
    out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=10, check=True)
    return out.stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


def _gpus():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  gpus = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    gpus.append({"name": details.get("device_name", gpu.name),
                 "compute_capability": details.get("compute_capability")})
  return gpus


def environment(device: str = "cpu") -> Dict[str, Any]:
  """Hardware and software facts of this run (CPU, cores, RAM, GPUs, versions, git commit)."""
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--untracked-files=no")
  try:
    usable_cores = len(os.sched_getaffinity(0))
  except AttributeError:
    usable_cores = os.cpu_count()
  try:
    gpus = _gpus()
  except Exception as e:  # pylint: disable=broad-except
    gpus = [{"error": f"{type(e).__name__}: {e}"}]
  return {
      "device": device,
      "cpu_model": _cpu_model(),
      "cpu_cores": os.cpu_count(),
      "usable_cores": usable_cores,
      "ram_gib": _ram_gib(),
      "gpus": gpus,
      "platform": platform.platform(),
      "python": platform.python_version(),
      "versions": {p: _version(p) for p in (
          "tensorflow", "keras", "numpy", "librosa", "scipy", "torch", "tfspeech",
          "monotonic-alignment-search")},
      "git_commit": commit,
      "git_dirty": bool(status) if status is not None else None,
  }


# --- reports -------------------------------------------------------------------------------


def _duration(seconds):
  if seconds is None:
    return ""
  if seconds < 1e-3:
    return f"{seconds * 1e6:.1f} µs"
  if seconds < 1:
    return f"{seconds * 1e3:.2f} ms"
  return f"{seconds:.2f} s"


def _number(value, digits=3):
  if value is None:
    return ""
  if value == 0 or 1e-2 <= abs(value) < 1e5:
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
  return f"{value:.2e}"


def _cell(text):
  return str(text).replace("|", "\\|").replace("\n", " ")


def _fewer_computed(m):
  """Whether a row's FLOPs are the network's as written while it computes fewer (a case sets
  `extra["flops_as_written"]`; Winograd's F(4, 3))."""
  return bool((m.get("extra") or {}).get("flops_as_written")) and m.get("flops") is not None


def _gflops(m):
  """"123 (38%)": achieved GFLOP/s and fraction of peak; "" without a count (or schema 1)."""
  value = m.get("gflops_per_s")
  if value is None:
    return ""
  fraction = m.get("fraction_of_peak")
  return (f"{_number(value)}" + (f" ({fraction:.0%})" if fraction is not None else "")
          + ("\u2020" if _fewer_computed(m) else ""))


def _peak_line(peak):
  if not peak:
    return "- float32 peak: not measured (no case counted FLOPs)"
  if peak.get("gflops_per_s") is None:
    return f"- float32 peak: not measured ({peak.get('error')})"
  sizes = ", ".join(f"{n}²: {v:.0f}" for n, v in peak["per_size"].items())
  return (f"- float32 peak: {peak['gflops_per_s']:.0f} GFLOP/s ({peak['method']}; "
          f"GFLOP/s per size {sizes})")


def _machine_speed_lines(results):
  """The per-case speed probes' range, and the cases that ran on a slowed machine."""
  median = results["environment"].get("machine_speed_median")
  probed = [r for r in results["cases"]
            if any((r.get("machine_speed") or {}).get(when) for when in ("before", "after"))]
  if not median or not probed:
    return []  # an older document, or no probe succeeded
  values = [v for r in probed for when, v in r["machine_speed"].items()
            if when in ("before", "after") and v]
  slowed = [r for r in probed
            if r["machine_speed"].get("fraction_of_median", 1) < SLOWED_BELOW]
  line = (f"- machine speed ({SPEED_PROBE_SIZE}² float32 matmul, best of 5, just before and "
          f"after each case): {min(values):.0f}–{max(values):.0f} GFLOP/s, median "
          f"{median:.0f}; ")
  if not slowed:
    return [line + f"no case's probes under {SLOWED_BELOW:.0%} of the median"]

  def probes(speed):
    return " / ".join(f"{speed[when]:.0f}" if speed.get(when) else "–"
                      for when in ("before", "after"))
  named = ", ".join(f"{r['suite']}/{r['case']} ({probes(r['machine_speed'])})" for r in slowed)
  return [line + f"**{len(slowed)} case(s) ran under {SLOWED_BELOW:.0%} of the median: "
          f"{named}**; their times (and ratios, where the compared calls did not "
          "meet the same minutes) are of a slowed machine"]


def to_markdown(results: Dict[str, Any]) -> str:
  """The results as a Markdown document: environment summary and one table row per variant."""
  env = results["environment"]
  gpus = ", ".join(g.get("name", g.get("error", "?")) for g in env.get("gpus") or []) or "none"
  versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
  commit = (env.get("git_commit") or "unknown")[:12] + (" (dirty)" if env.get("git_dirty") else "")
  measurements = [m for r in results["cases"] for m in r.get("measurements", [])]
  lines = [
      "# tfspeech benchmarks", "",
      f"- run: {results['started_at']} → {results['finished_at']} "
      f"({results['wall_seconds']:.0f} s), device `{env['device']}`, "
      f"quick={results['options'].get('quick')}, repeats={results['options'].get('repeats')}",
      f"- CPU: {env['cpu_model']}, {env['cpu_cores']} cores ({env['usable_cores']} usable), "
      f"RAM {env['ram_gib']:.1f} GiB; GPU: {gpus}" if env.get("ram_gib") else
      f"- CPU: {env['cpu_model']}, {env['cpu_cores']} cores; GPU: {gpus}",
      f"- load average (1, 5, 15 min) before {env.get('load_average_before')}, "
      f"after {env.get('load_average_after')}",
      f"- Python {env['python']}, {versions}; commit {commit}",
      _peak_line(env.get("float32_peak")),
      *_machine_speed_lines(results),
      *(["- **a row above 100% of the peak**: the peak's matmuls were slowed (a busy machine?); "
         "read the fractions as unreliable"]
        if any((m.get("fraction_of_peak") or 0) > 1 and not _fewer_computed(m)
               for m in measurements) else []),
      *(["- GFLOP/s marked \u2020 count the network's multiply-adds as written, which tfspeech "
         "computes in fewer (Winograd's F(4, 3) over the batch's real steps, "
         "`tfspeech.ops.winograd`): they may pass 100% of the peak"]
        if any(_fewer_computed(m) for m in measurements) else []), "",
      "Speed-up = baseline median time / variant median time, both measured in this run on the "
      "same inputs (> 1: faster than the baseline). Spread: interquartile range (IQR) and "
      "min–max over the timed repeats, after warm-up. Peak RSS is the harness process's peak "
      "during the case (Δ over its RSS before the case); workers: summed RSS of child processes. "
      "GFLOP/s: FLOPs per call counted from the traced graph (matmuls and convolutions, "
      "benchmarks/flops.py; the baseline of a group does the same work) / median time, and its "
      "% of the float32 matmul peak measured in this run.",
      "",
      "| suite | case | variant | device | median | IQR | min – max | n | throughput | "
      "speed-up vs baseline | GFLOP/s (% of peak) | peak RSS MB (Δ) | workers RSS MB | "
      "GPU peak MB | notes |",
      "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ]
  for record in results["cases"]:
    memory = record.get("memory") or {}
    peak, before = memory.get("host_peak_rss_mb"), memory.get("host_rss_before_mb")
    rss = f"{peak:.0f} ({peak - before:+.0f})" if peak is not None and before is not None else ""
    workers, gpu = memory.get("children_peak_rss_mb"), memory.get("gpu_peak_mb")
    workers = "" if workers is None else f"{workers:.0f}"
    gpu = "" if gpu is None else f"{gpu:.0f}"
    if record["status"] != "ok":
      lines.append(f"| {record['suite']} | {_cell(record['case'])} | — | | | | | | | | | {rss} | "
                   f"{workers} | {gpu} | **{record['status']}**: {_cell(record['message'])} |")
      continue
    for m in record["measurements"]:
      throughput = (f"{_number(m['throughput'])} {m['work_unit']}/s"
                    if m["throughput"] is not None else "")
      if m["baseline"]:
        speedup = "1 (baseline)"
      elif m["speedup_vs_baseline"] is not None:
        speedup = f"{_number(m['speedup_vs_baseline'])}×"
      else:
        speedup = "n/a"
      case_name = record["case"] + (f" [{m['group']}]" if m["group"] else "")
      lines.append(
          f"| {record['suite']} | {_cell(case_name)} | {_cell(m['name'])} | {m['device']} | "
          f"{_duration(m['median_s'])} | {_duration(m['iqr_s'])} | "
          f"{_duration(m['min_s'])} – {_duration(m['max_s'])} | {m['n']} | {throughput} | "
          f"{speedup} | {_gflops(m)} | {rss} | {workers} | {gpu} | {_cell(m['note'])} |")
  return "\n".join(lines) + "\n"


def ratio_rows(results: Dict[str, Any]) -> List[tuple]:
  """(suite/case [group], baseline name, variant, speed-up) of every compared variant."""
  rows = []
  for record in results["cases"]:
    for m in record.get("measurements", []):
      if not m["baseline"] and m["speedup_vs_baseline"] is not None:
        group = f" [{m['group']}]" if m["group"] else ""
        rows.append((f"{record['suite']}/{record['case']}{group}", m["baseline_name"],
                     m["name"], float(m["speedup_vs_baseline"])))
  return rows


def _shorten(text, width=60):
  return text if len(text) <= width else text[:width - 1] + "…"


def plot_ratios(results: Dict[str, Any], path: os.PathLike) -> None:
  """Writes a horizontal bar chart of every speed-up (log scale, 1 = baseline) to `path`.

  Bars are grouped under a heading naming the case and its baseline.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  labels, values, headings = [], [], []
  last_heading = None
  for heading, baseline, variant, value in ratio_rows(results):
    heading = f"{heading} vs {baseline}"
    if heading != last_heading:
      headings.append(len(labels))
      labels.append(_shorten(heading, 90))
      values.append(None)
      last_heading = heading
    labels.append(_shorten(variant))
    values.append(value)
  fig, ax = plt.subplots(figsize=(12, 1.6 + 0.3 * max(1, len(labels))))
  if labels:
    positions = np.arange(len(labels))[::-1]
    for position, value in zip(positions, values):
      if value is None:
        continue
      ax.barh(position, value, color="tab:green" if value >= 1 else "tab:red")
      ax.text(value, position, f" {value:.3g}×", va="center", fontsize=7)
    ax.set_yticks(positions, labels, fontsize=7)
    for index in headings:
      ax.get_yticklabels()[index].set_fontweight("bold")
    ax.set_xscale("log")
    finite = [v for v in values if v]
    ax.set_xlim(min(finite + [1.0]) / 2, max(finite + [1.0]) * 4)  # room for the value text
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed-up vs the baseline in bold, measured in the same run "
                  "(log scale; > 1 = faster)")
  else:
    ax.text(0.5, 0.5, "no ratios: every case was skipped or failed", ha="center", va="center")
    ax.set_axis_off()
  env = results["environment"]
  ax.set_title(f"tfspeech benchmarks, --device={env['device']}, {env['cpu_model']} "
               f"({env['cpu_cores']} cores), {results['started_at'][:16]}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_results(results: Dict[str, Any], out_dir: os.PathLike,
                  plot: bool = True) -> Dict[str, Optional[str]]:
  """Writes results.json, results.md and ratios.png into `out_dir` (created if needed).

  The plot needs matplotlib (`pip install .[bench]`); without it (or with `plot=False`, as
  the partial writes after each case do: drawing took ~2 s a case) the other two files are
  still written and the returned "plot" path is None.

  Returns:
    dict "json", "markdown", "plot" → path written (or None).
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"json": out / "results.json", "markdown": out / "results.md", "plot": out / "ratios.png"}
  if not plot:
    paths["plot"] = None
  else:
    try:
      plot_ratios(results, paths["plot"])
    except ImportError as e:
      print(f"not writing {paths['plot']}: {e}; install matplotlib (`pip install .[bench]`)",
            file=sys.stderr)
      paths["plot"] = None
  results = dict(results, files={k: (p.name if p else None) for k, p in paths.items()})
  paths["json"].write_text(json.dumps(results, indent=2, allow_nan=True) + "\n", encoding="utf-8")
  paths["markdown"].write_text(to_markdown(results), encoding="utf-8")
  return {k: (str(p) if p else None) for k, p in paths.items()}


def parse_suites(names):
  """--suite values → suite names in canonical order; 'all' means every suite."""
  names = [n.strip().lower() for n in names if n.strip()]
  if not names:
    raise ValueError("--suite is empty; pass e.g. --suite=ops,prepare or --suite=all")
  if "all" in names:
    return list(SUITE_NAMES)
  unknown = sorted(set(names) - set(SUITE_NAMES))
  if unknown:
    raise ValueError(f"--suite: unknown suite(s) {unknown}; choose from "
                     f"{', '.join(SUITE_NAMES)} or all")
  return [s for s in SUITE_NAMES if s in names]

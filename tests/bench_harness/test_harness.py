"""The benchmark harness machinery on fake cases: statistics, memory, registry, report files.

No real suite runs here and no timing is asserted: the fake cases return fixed samples.
"""
import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _import_benchmarks():
  """The repository's `benchmarks` package, a top-level folder that is not installed.

  The repository root goes at the *end* of sys.path so the installed tfspeech
  still wins over the source tree. (This folder is not named `benchmarks`:
  pytest's importlib mode would register it under that name.)
  """
  if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))
  return importlib.import_module("benchmarks.harness")


harness = _import_benchmarks()


def _fixed_case(ctx):
  del ctx
  return [harness.Measurement("reference", [2.0, 2.2, 1.8], baseline=True, device="CPU",
                              work=10.0, work_unit="audio s"),
          harness.Measurement("ours", [1.0, 1.1, 0.9], work=10.0, work_unit="audio s",
                              note="fake"),
          harness.Measurement("other group, no baseline", [3.0], group="g")]


def _timed_case(ctx):
  calls = []
  samples = ctx.time(lambda: calls.append(1), repeats=3, warmup=2)
  assert len(calls) == 5
  return [harness.Measurement("noop", samples, baseline=True)]


def _skipped_case(ctx):
  raise harness.Skip("not yet implemented: needs the Fake task")


def _failing_case(ctx):
  raise RuntimeError("boom")


def _bad_return_case(ctx):
  return {"not": "a list of measurements"}


FAKE_CASES = [harness.Case("ops", "fixed", _fixed_case, "fixed samples"),
              harness.Case("ops", "failing", _failing_case),
              harness.Case("ops", "timed", _timed_case),
              harness.Case("train", "skipped", _skipped_case),
              harness.Case("infer", "bad return", _bad_return_case)]


@pytest.fixture(scope="module", autouse=True)
def _fast_speed_probe():
  """The fake cases' machine-speed probes (a 2048² matmul each) as a constant; the probe itself
  is tested in test_each_case_reports_the_machine_speed_around_it."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(harness, "probe_speed", lambda device: 100.0)
    yield


@pytest.fixture(scope="module")
def results():
  return harness.run_cases(FAKE_CASES, device="cpu", quick=True, log=lambda _: None,
                           options={"suites": ["ops", "train", "infer"]})


def test_summarize_median_quartiles_and_range():
  stats = harness.summarize([5.0, 1.0, 4.0, 2.0, 3.0])
  assert stats == {"n": 5, "median_s": 3.0, "q1_s": 2.0, "q3_s": 4.0, "iqr_s": 2.0,
                   "min_s": 1.0, "max_s": 5.0}
  with pytest.raises(ValueError, match="at least one"):
    harness.summarize([])
  with pytest.raises(ValueError, match="finite"):
    harness.summarize([1.0, float("nan")])


def test_every_case_runs_and_failures_do_not_stop_the_run(results):
  statuses = {(r["suite"], r["case"]): r["status"] for r in results["cases"]}
  assert statuses == {("ops", "fixed"): "ok", ("ops", "failing"): "error",
                      ("ops", "timed"): "ok", ("train", "skipped"): "skipped",
                      ("infer", "bad return"): "error"}
  by_name = {r["case"]: r for r in results["cases"]}
  assert by_name["failing"]["message"] == "RuntimeError: boom"
  assert "RuntimeError: boom" in by_name["failing"]["traceback"]
  assert "list of harness.Measurement" in by_name["bad return"]["message"]
  assert by_name["skipped"]["message"] == "not yet implemented: needs the Fake task"
  assert by_name["skipped"]["measurements"] == []


def test_ratios_and_throughput_come_from_the_baseline_of_the_same_group(results):
  fixed = next(r for r in results["cases"] if r["case"] == "fixed")
  reference, ours, other = fixed["measurements"]
  assert reference["baseline"] and reference["speedup_vs_baseline"] == pytest.approx(1.0)
  assert ours["median_s"] == pytest.approx(1.0)
  assert ours["speedup_vs_baseline"] == pytest.approx(2.0)
  assert ours["baseline_name"] == "reference"
  assert ours["throughput"] == pytest.approx(10.0)
  assert (ours["min_s"], ours["max_s"]) == pytest.approx((0.9, 1.1))
  assert ours["device"] == "CPU" and ours["samples_s"] == [1.0, 1.1, 0.9]
  assert other["speedup_vs_baseline"] is None and other["baseline_name"] is None


def test_two_baselines_in_one_group_is_an_error():
  two = harness.Case("ops", "two baselines", lambda ctx: [
      harness.Measurement("a", [1.0], baseline=True), harness.Measurement("b", [1.0], baseline=True)])
  record = harness.run_case(two, log=lambda _: None)
  assert record["status"] == "error" and "two baselines" in record["message"]


def test_results_json_markdown_and_plot(results, tmp_path):
  pytest.importorskip("matplotlib", reason="ratios.png needs matplotlib (pip install .[bench])")
  paths = harness.write_results(results, tmp_path / "out")
  document = json.loads(pathlib.Path(paths["json"]).read_text(encoding="utf-8"))
  assert document["schema_version"] == harness.SCHEMA_VERSION
  assert set(document) >= {"options", "environment", "cases", "started_at", "finished_at",
                           "wall_seconds", "files"}
  env = document["environment"]
  for key in ("cpu_model", "cpu_cores", "ram_gib", "gpus", "python", "git_commit",
              "load_average_before"):
    assert key in env, key
  assert env["versions"]["numpy"] and env["versions"]["tensorflow"]
  for record in document["cases"]:
    assert set(record) >= {"suite", "case", "status", "message", "wall_seconds", "memory",
                           "measurements"}
    assert record["memory"]["host_peak_rss_mb"] > 0

  markdown = pathlib.Path(paths["markdown"]).read_text(encoding="utf-8")
  rows = [line for line in markdown.splitlines() if line.startswith("| ")]
  header = rows[0].split("|")
  assert "median" in rows[0] and "IQR" in rows[0] and "speed-up vs baseline" in rows[0]
  assert all(len(row.split("|")) == len(header) for row in rows)  # no broken cells
  ours = next(row for row in rows if "| ours |" in row)
  assert "| 2× |" in ours and "1.00 s" in ours and "10 audio s/s" in ours and "fake" in ours
  assert any("**skipped**: not yet implemented: needs the Fake task" in row for row in rows)
  assert any("**error**: RuntimeError: boom" in row for row in rows)

  png = pathlib.Path(paths["plot"]).read_bytes()
  assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_plot_with_no_ratios_still_writes_a_png(tmp_path):
  skipped_only = harness.run_cases([FAKE_CASES[3]], log=lambda _: None)
  pytest.importorskip("matplotlib", reason="ratios.png needs matplotlib (pip install .[bench])")
  harness.plot_ratios(skipped_only, tmp_path / "empty.png")
  assert (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_json_and_markdown_are_still_written(results, tmp_path, monkeypatch):
  def no_matplotlib(*args):
    raise ImportError("No module named 'matplotlib'")
  monkeypatch.setattr(harness, "plot_ratios", no_matplotlib)
  paths = harness.write_results(results, tmp_path)
  assert paths["plot"] is None
  assert json.loads(pathlib.Path(paths["json"]).read_text(encoding="utf-8"))["files"]["plot"] is None
  assert pathlib.Path(paths["markdown"]).stat().st_size > 0


def test_memory_probe_reports_this_case_peak_and_child_processes():
  with harness.MemoryProbe(interval=0.02) as probe:
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"\x01" * len(block[::4096])  # touch every page so it is resident
    subprocess.run([sys.executable, "-c",
                    "import time; b = bytearray(96 << 20); b[::4096] = b'1' * len(b[::4096]); "
                    "time.sleep(0.3)"], check=True)
    del block
  memory = probe.result
  if not memory["host_peak_method"].startswith("VmHWM"):
    pytest.skip("per-case peak RSS needs Linux /proc/self/clear_refs")
  assert memory["host_peak_rss_mb"] - memory["host_rss_before_mb"] >= 60
  assert memory["children_peak_rss_mb"] >= 90
  with harness.MemoryProbe() as probe:  # the peak was reset: a small case reports a small peak
    pass
  assert probe.result["host_peak_rss_mb"] - probe.result["host_rss_before_mb"] < 30


def test_registry_placeholders_are_replaced_by_real_cases():
  def placeholder(ctx):
    raise harness.Skip("stand-in")

  def real(ctx):
    return []
  try:
    harness.register(harness.Case("export", "fake model", placeholder, placeholder=True))
    harness.case("export", "fake model")(real)
    assert [c.fn for c in harness.cases(["export"]) if c.name == "fake model"] == [real]
    harness.register(harness.Case("export", "fake model", placeholder, placeholder=True))
    assert [c.fn for c in harness.cases(["export"]) if c.name == "fake model"] == [real]
    with pytest.raises(ValueError, match="already registered"):
      harness.case("export", "fake model")(lambda ctx: [])
  finally:
    harness.unregister("export", "fake model")
  with pytest.raises(ValueError, match="unknown suite"):
    harness.case("nonsense", "x")(real)
  with pytest.raises(ValueError, match="unknown suite"):
    harness.cases(["ops", "nonsense"])


def test_suite_flag_parsing():
  assert harness.parse_suites(["prepare", "ops"]) == ["ops", "prepare"]
  assert harness.parse_suites(["all"]) == list(harness.SUITE_NAMES)
  with pytest.raises(ValueError, match="unknown suite"):
    harness.parse_suites(["ops", "speed"])
  # Model suites always have cases, so --suite=all completes before the models exist.
  # (benchmarks.run defines absl flags, so it is imported in a fresh process.)
  code = ("import benchmarks.run; from benchmarks import harness; "
          "print(sorted({(c.suite, c.name) for s in ('train', 'infer', 'export') "
          "for c in harness.cases([s])}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(REPO_ROOT), timeout=120, check=True).stdout
  for suite in ("train", "infer", "export"):
    for model in ("grad_tts", "hifigan"):
      assert repr((suite, model)) in out, out


def _flops_case(ctx):
  del ctx
  # 1e9 FLOPs per call: 2 GFLOP/s at 0.5 s, 1 GFLOP/s at 1 s; the peak below is 4 GFLOP/s.
  return [harness.Measurement("reference", [1.0, 1.0], baseline=True, flops=1e9),
          harness.Measurement("ours", [0.5, 0.5], flops=1e9),
          harness.Measurement("uncounted", [0.5])]


def test_flops_give_gflops_and_fraction_of_the_peak_measured_once(tmp_path):
  peaks = []

  def fake_peak(device):
    peaks.append(device)
    return {"gflops_per_s": 4.0, "per_size": {"64": 4.0}, "method": "fake"}
  results = harness.run_cases([harness.Case("train", "flops", _flops_case),
                               harness.Case("infer", "flops too", _flops_case)],
                              log=lambda _: None, peak=fake_peak)
  assert peaks == ["cpu"]  # one peak for the run, however many cases count FLOPs
  assert results["environment"]["float32_peak"]["gflops_per_s"] == 4.0
  reference, ours, uncounted = results["cases"][0]["measurements"]
  assert (reference["gflops_per_s"], reference["fraction_of_peak"]) == pytest.approx((1.0, 0.25))
  assert (ours["gflops_per_s"], ours["fraction_of_peak"]) == pytest.approx((2.0, 0.5))
  assert uncounted["gflops_per_s"] is None and uncounted["fraction_of_peak"] is None
  markdown = harness.to_markdown(results)
  assert "| 2 (50%) |" in next(l for l in markdown.splitlines() if "| ours |" in l)
  assert "float32 peak: 4 GFLOP/s" in markdown
  # A schema-1 document (no flops fields, no peak) still renders, with empty cells.
  old = json.loads(json.dumps(results))
  old["schema_version"] = 1
  del old["environment"]["float32_peak"]
  for record in old["cases"]:
    for m in record["measurements"]:
      for key in ("flops", "gflops_per_s", "fraction_of_peak"):
        del m[key]
  rows = [l for l in harness.to_markdown(old).splitlines() if l.startswith("| ")]
  assert all(len(r.split("|")) == len(rows[0].split("|")) for r in rows)
  assert "float32 peak: not measured" in harness.to_markdown(old)


def test_rows_counting_more_than_they_compute_are_marked_not_taken_for_a_slow_peak():
  def case(ctx):
    del ctx
    # 1e9 FLOPs as written in 0.2 s: 5 GFLOP/s against a 4 GFLOP/s peak.
    return [harness.Measurement("reference", [1.0], baseline=True, flops=1e9),
            harness.Measurement("ours", [0.2], flops=1e9, extra={"flops_as_written": True})]

  def fake_peak(device):
    del device
    return {"gflops_per_s": 4.0, "per_size": {"64": 4.0}, "method": "fake"}
  results = harness.run_cases([harness.Case("infer", "winograd", case)], log=lambda _: None,
                              peak=fake_peak)
  markdown = harness.to_markdown(results)
  assert "| 5 (125%)\u2020 |" in next(l for l in markdown.splitlines() if "| ours |" in l)
  assert "marked \u2020" in markdown and "a row above 100% of the peak" not in markdown
  # Without the mark, a row above the peak still flags the peak as unreliable.
  del results["cases"][0]["measurements"][1]["extra"]["flops_as_written"]
  markdown = harness.to_markdown(results)
  assert "a row above 100% of the peak" in markdown and "\u2020" not in markdown


def test_no_flops_no_peak_and_measure_peak_is_a_matmul_rate():
  results = harness.run_cases([harness.Case("ops", "fixed", _fixed_case)], log=lambda _: None,
                              peak=lambda device: pytest.fail("no case counted FLOPs"))
  assert results["environment"]["float32_peak"] is None
  peak = harness.measure_peak(sizes=(64, 128), repeats=2)
  assert set(peak["per_size"]) == {"64", "128"}
  assert peak["gflops_per_s"] == max(peak["per_size"].values()) > 0


def test_partial_documents_follow_each_case_but_the_last(tmp_path):
  documents = []
  final = harness.run_cases(FAKE_CASES[:3], log=lambda _: None, partial=documents.append)
  names = [[c["case"] for c in d["cases"]] for d in documents]
  assert names == [["fixed"], ["fixed", "failing"]]
  assert all(d["options"]["partial"] for d in documents) and "partial" not in final["options"]
  assert [c["status"] for c in documents[1]["cases"]] == ["ok", "error"]
  # A partial document renders and writes like a whole one (what a killed run leaves).
  paths = harness.write_results(documents[-1], tmp_path)
  assert "failing" in pathlib.Path(paths["markdown"]).read_text(encoding="utf-8")


def test_isolated_cases_return_the_record_their_process_wrote_or_how_it_died():
  # benchmarks.run defines absl flags, so it is imported in a fresh process.
  code = """
import json, sys
from absl import flags
import benchmarks.run as run
from benchmarks import harness
flags.FLAGS(["run"])
case = harness.Case("ops", "fake", lambda ctx: [], "a fake case")
run._case_command = lambda c, path: [sys.executable, "-c",
    "import os, signal, sys; print('dying', file=sys.stderr); os.kill(os.getpid(), signal.SIGKILL)"]
print(json.dumps(run._run_isolated(case)))
run._case_command = lambda c, path: [sys.executable, "-c",
    "import json, os; json.dump({'case': 'fake', 'status': 'ok', 'from': 'child', "
    f"'mmap': os.environ.get('MALLOC_MMAP_THRESHOLD_')}}, open({path!r}, 'w'))"]
print(json.dumps(run._run_isolated(case)))
"""
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(REPO_ROOT), timeout=120, check=True).stdout.splitlines()
  died, wrote = json.loads(out[-2]), json.loads(out[-1])
  assert died["status"] == "error" and died["case"] == "fake" and died["measurements"] == []
  assert "killed by SIGKILL" in died["message"] and "out-of-memory" in died["message"]
  assert "dying" in died["message"]  # the end of the child's stderr
  # Case processes keep large allocations in glibc's heap (see torch_reference.ALLOCATOR_ENV).
  mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", str(2 ** 40))
  assert wrote == {"case": "fake", "status": "ok", "from": "child", "mmap": mmap}


def test_case_command_runs_one_case_alone_with_the_run_settings():
  code = """
from absl import flags
import benchmarks.run as run
from benchmarks import harness
flags.FLAGS(["run", "--quick", "--repeats=3", "--device=cpu", "--extended"])
print(run._case_command(harness.Case("infer", "pitch (YIN)", lambda ctx: []), "/tmp/r.json"))
"""
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(REPO_ROOT), timeout=120, check=True).stdout
  for arg in ("'-m', 'benchmarks.run'", "'--suite=infer'", "'--cases=pitch (YIN)'",
              "'--noisolate'", "'--record_to=/tmp/r.json'", "'--quick'", "'--repeats=3'",
              "'--device=cpu'", "'--extended'"):
    assert arg in out, out


def test_extended_reaches_the_case_and_on_request_cases_say_how_to_run_them():
  seen = []
  record = harness.run_case(harness.Case("ops", "sees", lambda ctx: seen.append(ctx.extended)
                                         or []), extended=True)
  assert record["status"] == "ok" and seen == [True]
  harness.run_case(harness.Case("ops", "sees", lambda ctx: seen.append(ctx.extended) or []))
  assert seen == [True, False]
  stand_in = harness.not_requested(harness.Case("prepare", "tiny corpus", lambda ctx: []))
  record = harness.run_case(stand_in)
  assert record["status"] == "skipped"
  assert "--cases=tiny corpus" in record["message"] and "--extended" in record["message"]


def test_each_progress_line_reports_the_peak_memory_of_its_own_stage():
  def two_stages(ctx):
    block = bytearray(128 * 1024 * 1024)
    block[::4096] = b"\x01" * len(block[::4096])
    del block
    ctx.log("big stage")
    small = bytearray(1024 * 1024)
    del small
    ctx.log("small stage")
    return []
  lines = []
  record = harness.run_case(harness.Case("ops", "stages", two_stages), log=lines.append)
  stages = record["memory"]["stages"]
  if not stages:
    pytest.skip("per-stage peak RSS needs Linux /proc/self/clear_refs")
  assert [s["line"] for s in stages] == ["big stage", "small stage"]
  assert stages[0]["peak_rss_mb"] - stages[1]["peak_rss_mb"] >= 100
  assert lines[0].startswith("big stage [peak RSS ") and lines[0].endswith(" GB]")
  # The case's peak is the largest stage's, though each line reset the kernel's counter.
  assert record["memory"]["host_peak_rss_mb"] >= stages[0]["peak_rss_mb"]


def test_an_on_request_case_is_a_skipped_row_unless_named():
  ran = []
  real = harness.Case("ops", "explore", lambda ctx: ran.append(1) or [], on_request=True)
  record = harness.run_case(harness.not_requested(real), log=lambda _: None)
  assert record["status"] == "skipped" and not ran
  assert "--suite=ops --cases=explore" in record["message"]
  assert harness.run_case(real, log=lambda _: None)["status"] == "ok" and ran == [1]


def test_each_case_reports_the_machine_speed_around_it():
  # Probes in call order: fixed (before, after), failing (before, after), skipped (before
  # only), timed (before fails, after); the peak's 2048² matmul is one more probe (320).
  # Median of 300, 290, 280, 150, 310, 305, 320: 300.
  speeds = iter([300.0, 290.0, 280.0, 150.0, 310.0, RuntimeError("probe died"), 305.0])

  def fake_speed(device):
    assert device == "cpu"
    value = next(speeds)
    if isinstance(value, Exception):
      raise value
    return value

  def fake_peak(device):
    del device
    return {"gflops_per_s": 450.0, "per_size": {"2048": 320.0, "4096": 450.0}, "method": "fake"}

  def flops_case(ctx):
    del ctx
    return [harness.Measurement("reference", [1.0], baseline=True, flops=1e9)]
  cases = [harness.Case("ops", "fixed", flops_case), harness.Case("ops", "failing", _failing_case),
           harness.Case("train", "skipped", _skipped_case),
           harness.Case("ops", "timed", _timed_case)]
  results = harness.run_cases(cases, log=lambda _: None, peak=fake_peak, speed=fake_speed)
  speed = {r["case"]: r["machine_speed"] for r in results["cases"]}
  assert results["environment"]["machine_speed_median"] == 300.0
  assert speed["fixed"] == pytest.approx({"before": 300, "after": 290,
                                          "fraction_of_median": 290 / 300})
  assert speed["failing"] == pytest.approx({"before": 280, "after": 150,
                                            "fraction_of_median": 0.5})
  assert speed["skipped"] == pytest.approx({"before": 310, "fraction_of_median": 310 / 300})
  # A failed probe is None and costs nothing else: the case's results stand.
  assert speed["timed"] == pytest.approx({"before": None, "after": 305,
                                          "fraction_of_median": 305 / 300})
  assert results["cases"][3]["status"] == "ok" and results["cases"][3]["measurements"]
  line = next(l for l in harness.to_markdown(results).splitlines() if "machine speed" in l)
  assert "150–310 GFLOP/s, median 300" in line
  assert "1 case(s) ran under 80% of the median: ops/failing (280 / 150)" in line

  # On a steady machine the line says so; older documents (no probes) get no line.
  quiet = harness.run_cases(cases[:1], log=lambda _: None, peak=fake_peak,
                            speed=lambda device: 290.0)
  line = next(l for l in harness.to_markdown(quiet).splitlines() if "machine speed" in l)
  assert "290–290 GFLOP/s, median 290" in line and "no case's probes under 80%" in line
  for record in quiet["cases"]:
    del record["machine_speed"]
  del quiet["environment"]["machine_speed_median"]
  assert "machine speed" not in harness.to_markdown(quiet)
  # The real probe is a matmul rate.
  assert harness.matmul_rate(64, repeats=2, warmup=2) > 0


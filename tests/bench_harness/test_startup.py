"""The start-up benchmark cases (benchmarks/startup.py): registration, output parsing, wiring.

No training and no binary runs here: the processes the cases would start are replaced by
canned `ProcessRun`s whose output has the binaries' format (the format strings are checked
against the binaries' source, so a reworded line fails here rather than in a long run).
"""

import ast
import datetime
import importlib
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))  # after the installed tfspeech, as test_harness.py does
harness = importlib.import_module("benchmarks.harness")
startup = importlib.import_module("benchmarks.startup")

SPAWN = datetime.datetime(2026, 12, 5, 13, 39, 0).timestamp()
SYNTH_STDOUT = (
    "/tmp/x/0000.wav  (190 frames)  The quick brown fox jumps over the lazy dog.\n"
    "2.21 s of audio in 0.44 s: real-time factor 0.199, 5.0x faster than real time (vocoder: "
    "griffin_lim; one-off warm-up 3.5 s not counted)\n")


def _absl(seconds_after_spawn, message, level="I"):
  stamp = datetime.datetime.fromtimestamp(SPAWN + seconds_after_spawn)
  return (f"{level}{stamp:%m%d %H:%M:%S.%f} 140369863637888 synthesize.py:158] {message}")


def _process(stdout="", stderr="", wall=10.0, rss=700.0, code=0):
  return startup.ProcessRun(["tfspeech-x"], SPAWN, wall, wall * 0.8, rss, code, stdout, stderr)


def test_run_lists_the_module_and_it_registers_both_cases():
  tree = ast.parse((REPO_ROOT / "benchmarks" / "run.py").read_text(encoding="utf-8"))
  modules = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") ==
                 "CASE_MODULES")
  assert "benchmarks.startup" in modules
  found = {(c.suite, c.name): c for c in harness.cases(["train", "infer"])}
  for key in (("infer", "startup"), ("train", "startup")):
    assert found[key].fn.__module__ == "benchmarks.startup" and not found[key].placeholder


def test_the_binaries_print_what_the_parsers_read():
  synthesize = (REPO_ROOT / "tfspeech" / "bin" / "synthesize.py").read_text(encoding="utf-8")
  assert "start-up: TensorFlow and tfspeech imported" in synthesize
  assert "start-up: run loaded" in synthesize
  assert "s of audio in {result.wall_seconds:.2f} s: real-time" in synthesize
  warmup = "one-off warm-up \"\n        f\"{result.first_call_seconds:.1f} s not counted"
  assert warmup in synthesize
  loop = (REPO_ROOT / "tfspeech" / "training" / "loop.py").read_text(encoding="utf-8")
  assert 'logging.info("training %s from step %d to %d' in loop
  assert 'logging.info("step %d: %s, %.2f steps/s"' in loop


def test_synthesize_phases_split_the_wall_from_logs_and_output():
  stderr = "\n".join(["2026-12-05 13:39:00.1: I tensorflow/core/util/port.cc:153] oneDNN",
                      _absl(4.25, "start-up: TensorFlow and tfspeech imported"),
                      _absl(5.0, "start-up: run loaded (/r/ckpt-2, step 2)")])
  phases = startup.synthesize_phases(_process(SYNTH_STDOUT, stderr, wall=10.0))
  assert phases["import"] == pytest.approx(4.25, abs=1e-5)
  assert phases["load"] == pytest.approx(0.75, abs=1e-5)
  assert phases["warm-up"] == 3.5 and phases["synthesis"] == 0.44
  assert phases["exit"] == pytest.approx(10.0 - 5.0 - 3.5 - 0.44, abs=1e-5)
  with pytest.raises(ValueError, match="alsologtostderr"):
    startup.synthesize_phases(_process(SYNTH_STDOUT, "", wall=10.0))
  with pytest.raises(ValueError, match="one-off warm-up"):
    startup.synthesize_phases(_process("nothing\n", stderr, wall=10.0))


def test_train_phases_end_at_the_first_step_of_the_resume():
  stderr = "\n".join([_absl(6.0, "restored /r/checkpoints/ckpt-2 (step 2)"),
                      _absl(7.5, "training grad_tts from step 2 to 3 (1 replica(s), chief)"),
                      _absl(20.0, "step 30: x=1, 1.00 steps/s"),  # not step 3
                      _absl(21.5, "step 3: diff=0.9, prior=2.1, 0.07 steps/s")])
  phases = startup.train_phases(_process(stderr=stderr, wall=24.0), step=3)
  assert phases["to loop"] == pytest.approx(7.5, abs=1e-5)
  assert phases["first step"] == pytest.approx(14.0, abs=1e-5)
  assert phases["to first step end"] == pytest.approx(21.5, abs=1e-5)
  assert phases["exit"] == pytest.approx(2.5, abs=1e-5)


def test_torch_phases_time_the_step_end_from_the_spawn():
  line = ('{"import": 1.5, "load": 0.25, "first step": 2.0, "end_at": %r}' % (SPAWN + 4.0))
  phases = startup.torch_phases(_process("noise\n" + line + "\n", wall=4.5))
  assert phases["to first step end"] == pytest.approx(4.0) and phases["exit"] == pytest.approx(0.5)
  phases = startup.torch_phases(_process('{"import": 1.0, "synthesis": 2.0}\n', wall=3.5))
  assert phases["exit"] == pytest.approx(0.5)


def test_run_process_reports_the_child_peak_rss_and_output():
  small = startup.run_process([sys.executable, "-c", "print('done')"])
  # The child holds its peak for 0.2 s: a poll every 20 ms misses a peak only in a process's
  # last 20 ms (a loaded machine measured 199.5 MB here without the pause).
  big = startup.run_process([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); "
                             "time.sleep(0.2); print('done', len(b))"])
  assert big.returncode == 0 and big.stdout.strip() == f"done {200 * 2**20}"
  # The child's own peak, not the forking pytest process's RSS (hundreds of MB with TF).
  assert 0 < small.peak_rss_mb < 100, small.peak_rss_mb
  assert 200 <= big.peak_rss_mb < 300, big.peak_rss_mb
  assert big.wall_seconds > 0 and big.cpu_seconds >= 0
  failed = startup.run_process([sys.executable, "-c",
                                "import sys; print('error: bad flag', file=sys.stderr); "
                                "sys.exit(2)"])
  with pytest.raises(RuntimeError, match="exited with 2: error: bad flag"):
    failed.check("tfspeech-x")


@pytest.fixture
def canned(monkeypatch, tmp_path):
  """The cases with set-up, torch and every process replaced by canned runs."""
  setup = startup.Setup(tmp_path, tmp_path / "data", tmp_path / "gt", tmp_path / "hg",
                        {"prepare": 1.0})
  (tmp_path / "gt").mkdir()
  (tmp_path / "gt" / "config.json").write_text("{}")
  monkeypatch.setattr(startup, "setup", lambda ctx: setup)
  monkeypatch.setattr(startup, "torch_args",
                      lambda s: {"hifigan_config": {}, "tokens": 119, "frames": 227})
  monkeypatch.setattr(harness, "require_model", lambda *a: None)
  commands = []

  def fake_process(command, **unused):
    commands.append(list(command))
    text = " ".join(command)
    if "--max_steps=" in text:
      if "--notrace_cache" in text:  # the step traced again
        stderr = "\n".join([_absl(5.0, "training grad_tts from step 2 to 3"),
                            _absl(12.0, "step 3: diff=1")])
        return _process(stderr=stderr, wall=14.0, rss=900.0)
      stderr = "\n".join([_absl(4.9, "trace cache: loaded train_step in 0.07 s (no tracing)"),
                          _absl(5.0, "training grad_tts from step 2 to 3"),
                          _absl(8.0, "step 3: diff=1")])
      return _process(stderr=stderr, wall=10.0, rss=900.0)
    stderr = "\n".join([_absl(4.0, "start-up: TensorFlow and tfspeech imported"),
                        _absl(4.5, "start-up: run loaded (x, step 2)")])
    return _process(SYNTH_STDOUT, stderr, wall=9.0)

  def fake_torch(script, args):
    commands.append(["torch", "hifigan" if "hifigan_config" in args else "griffin-lim"])
    if script is startup.TORCH_TRAIN_STEP:
      return _process('{"import": 2, "load": 1, "first step": 3, "end_at": %r}' % (SPAWN + 6.5),
                      wall=7.0)
    return _process('{"import": 2, "load": 1, "synthesis": 1}', wall=4.5)
  monkeypatch.setattr(startup, "run_process", fake_process)
  monkeypatch.setattr(startup, "run_torch", fake_torch)
  return commands


def test_synthesize_case_compares_each_vocoder_with_its_baseline(canned):
  record = harness.run_case(harness.Case("infer", "startup", startup.synthesize_startup),
                            quick=True, log=lambda _: None)
  assert record["status"] == "ok", record.get("traceback")
  rows = {(m["group"], m["name"]): m for m in record["measurements"]}
  assert sorted({g for g, _ in rows}) == ["one sentence, Griffin-Lim",
                                          "one sentence, HiFi-GAN tiny"]
  ours = rows[("one sentence, HiFi-GAN tiny", "tfspeech-synthesize (HiFi-GAN tiny)")]
  assert ours["samples_s"] == [9.0] and ours["speedup_vs_baseline"] == pytest.approx(0.5)
  assert ours["extra"]["phases_s"][0]["warm-up"] == 3.5 and ours["extra"]["peak_rss_mb"] == [700]
  assert "import 4.0 s; load 0.5 s; warm-up 3.5 s" in ours["note"]
  assert ["torch", "griffin-lim"] in canned and ["torch", "hifigan"] in canned
  vocoded = [c for c in canned if any(a.startswith("--vocoder=") for a in c)]
  assert len(vocoded) == 1 and "--alsologtostderr" in vocoded[0]


def test_train_case_times_the_resume_to_the_end_of_its_first_step(canned):
  record = harness.run_case(harness.Case("train", "startup", startup.train_startup),
                            quick=True, log=lambda _: None)
  assert record["status"] == "ok", record.get("traceback")
  baseline, cached, traced = record["measurements"]
  assert baseline["baseline"] and baseline["samples_s"] == [pytest.approx(6.5)]
  assert "--notrace_cache" not in cached["name"] and "--notrace_cache" in traced["name"]
  assert cached["samples_s"] == [pytest.approx(8.0)] and cached["extra"]["process_wall_s"] == [10.0]
  assert traced["samples_s"] == [pytest.approx(12.0)]
  assert traced["speedup_vs_baseline"] == pytest.approx(6.5 / 12.0)
  resumes = [c for c in canned if "--max_steps=3" in c]
  assert len(resumes) == 2 and ["--notrace_cache" in c for c in resumes] == [False, True]
  assert all("--model=grad_tts" in c and not any(a.startswith("--preset") for a in c)
             for c in resumes)


def test_train_case_is_an_error_when_the_resume_did_not_use_the_trace_cache(canned,
                                                                           monkeypatch):
  # A row labelled "resume" that silently traced would report the slow start as the fast one.
  fake = startup.run_process

  def traced_anyway(command, **kwargs):
    run = fake(command, **kwargs)
    run.stderr = "\n".join(l for l in run.stderr.splitlines() if "trace cache" not in l)
    return run
  monkeypatch.setattr(startup, "run_process", traced_anyway)
  record = harness.run_case(harness.Case("train", "startup", startup.train_startup),
                            quick=True, log=lambda _: None)
  assert record["status"] == "error" and "trace cache: loaded" in record["traceback"]

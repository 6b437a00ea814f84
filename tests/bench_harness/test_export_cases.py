"""The export benchmark suite (benchmarks/export.py): registration, helpers, one quick case.

The case test runs export/hifigan with --quick (tiny generator, 2 s of mel) in TF and the
three TFLite precisions; TFJS is switched off through `TFSPEECH_TFJS_CONVERTER` so the test
needs neither the converter's virtualenv nor Node (tests/export covers those), and checks
that the skip is reported rather than silent.
"""

import importlib
import inspect
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))  # after the installed tfspeech, as test_harness.py does
harness = importlib.import_module("benchmarks.harness")
export_cases = importlib.import_module("benchmarks.export")


def test_run_registers_the_export_cases_instead_of_the_placeholders():
  # benchmarks.run defines absl flags, so it is imported in a fresh process.
  code = ("import benchmarks.run as run; from benchmarks import harness; "
          "run._import_case_modules(); "
          "print(sorted((c.name, c.placeholder, c.fn.__module__) "
          "for c in harness.cases(['export'])))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(REPO_ROOT), timeout=300, check=True).stdout
  assert "('grad_tts', False, 'benchmarks.export')" in out, out
  assert "('hifigan', False, 'benchmarks.export')" in out, out


def test_errors_compare_the_common_region():
  reference = np.array([[1.0, -4.0, 2.0]])
  assert export_cases.errors(reference + [[0.0, 0.5, 0.0]], reference) == (0.5, 0.125)
  # A quantized Grad-TTS may give a frame more: only the common frames are compared.
  longer = np.concatenate([reference, [[100.0, 100.0, 100.0]]])[None]
  assert export_cases.errors(longer, reference[None]) == (0.0, 0.0)


def test_node_backends_follow_the_runner_signature(monkeypatch):
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  if "backend" in inspect.signature(tfjs.run_in_node).parameters:
    assert "cpu" in export_cases.node_backends()
  monkeypatch.setattr(tfjs, "run_in_node", lambda model_dir, inputs, repeat=1, warmup=0: None)
  assert export_cases.node_backends() == [None]
  monkeypatch.setattr(tfjs, "run_in_node",
                      lambda model_dir, inputs, repeat=1, warmup=0, backend="cpu": None)
  assert set(export_cases.node_backends()) >= {"cpu"}


def test_repeats_fit_the_time_budget(tmp_path):
  ctx = harness.Context(device="cpu", quick=False, repeats_override=None, tmp_dir=tmp_path)
  budget = export_cases.REPEAT_BUDGET_SECONDS
  assert export_cases._repeats(ctx, 0.01) == 3  # pylint: disable=protected-access
  assert export_cases._repeats(ctx, budget / 2) == 2  # pylint: disable=protected-access
  assert export_cases._repeats(ctx, budget * 5) == 1  # pylint: disable=protected-access
  forced = harness.Context(device="cpu", quick=False, repeats_override=4, tmp_dir=tmp_path)
  assert export_cases._repeats(forced, budget * 5) == 4  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def hifigan_record():
  monkeypatch = pytest.MonkeyPatch()
  monkeypatch.setenv("TFSPEECH_TFJS_CONVERTER", str(REPO_ROOT / "no-such-converter"))
  try:
    case = harness.Case("export", "hifigan", export_cases.hifigan_export)
    yield harness.run_case(case, quick=True, repeats=1, log=lambda _: None)
  finally:
    monkeypatch.undo()


def test_quick_hifigan_case_measures_tf_and_every_tflite_precision(hifigan_record):
  record = hifigan_record
  assert record["status"] == "ok", record.get("traceback")
  by_name = {m["name"]: m for m in record["measurements"]}
  baseline = by_name.pop("TF (tf.function)")
  assert baseline["baseline"] and "TFJS not measured" in baseline["note"]
  tflite = {name: m for name, m in by_name.items() if m["extra"]["runtime"] == "tflite"}
  assert sorted(m["extra"]["precision"] for m in tflite.values()) == [
      "dynamic_range", "float16", "float32"]
  # LiteRT.js rows (float32, converted at the run's shapes) where Node / Chromium are here.
  litertjs = {name: m for name, m in by_name.items() if m["extra"]["runtime"] == "litertjs"}
  assert set(by_name) == set(tflite) | set(litertjs), sorted(by_name)
  for m in by_name.values():
    assert m["group"] == baseline["group"] and m["speedup_vs_baseline"] > 0
    assert m["work"] == pytest.approx(2.0, rel=0.01) and m["work_unit"] == "audio s"
    # LiteRT.js converts at static shapes, which folds the output's sample positions (the
    # length mask's range) into a float constant: 4 bytes per sample (~0.18 MB at 2 s).
    positions_mb = 4 * 2.0 * 22050 / 1e6 if m["extra"]["runtime"] == "litertjs" else 0.0
    assert 0 < m["extra"]["size_mb"] < baseline["extra"]["size_mb"] * 2 + positions_mb, m["name"]
  for m in by_name.values():
    if m["extra"]["precision"] == "float32":
      assert m["extra"]["relative_error"] <= 1e-4, m["name"]
    else:
      assert 0 < m["extra"]["relative_error"] <= 0.15, m["name"]
  for name, m in litertjs.items():
    assert name.startswith("LiteRT.js float32 (") and m["extra"]["precision"] == "float32"

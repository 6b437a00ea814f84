"""tfspeech-align's command line: --help, and flag mistakes as one `error:` line (exit 2) found
before TensorFlow starts and before anything is created.

Rows run as subprocesses, concurrently (each a Python start-up: the checks come before any
TensorFlow import). Aligning itself, and the per-file errors (missing WAV, wrong sample rate,
empty transcript), are tested in-process on the session's run in tests/inference/test_align.py:
the binary's module cannot be imported beside tfspeech-synthesize's (both define --text, --out).
"""
import concurrent.futures
import json
import subprocess
import sys

import pytest

# Which models align is the registry's answer (tasks declaring `serving_aligns`), known only
# once their packages (and TensorFlow) are imported: checked after the rows' mistakes.
OTHER_MODEL = ["--run=fastpitch", "--wav=a.wav", "--text=Hi."]
ROWS = [
    ([], "--run is required"),
    (["--run=run"], "pass either --wav"),
    (["--run=run", "--wav=missing.wav", "--text=Hi."], "--wav=missing.wav does not exist"),
    (["--run=run", "--wav=a.wav", "--text=  "], "--text is empty"),
    (["--run=run", "--corpus=run", "--text=Hi."], "--text goes with --wav"),
    (["--run=run", "--wav=a.wav", "--text=Hi.", "--out=a.wav"], "--out=a.wav is a file"),
    (["--run=run", "--export=out", "--wav=a.wav"], "--export writes the align graph"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
  """(argv, returncode, stdout, stderr, files after) per row, and of --help."""
  root = tmp_path_factory.mktemp("align_binary")
  (root / "run").mkdir()
  (root / "run" / "config.json").write_text(json.dumps({"model": "grad_tts"}))
  (root / "fastpitch").mkdir()
  (root / "fastpitch" / "config.json").write_text(json.dumps({"model": "fastpitch"}))
  (root / "a.wav").write_bytes(b"RIFF")
  before = sorted(p.name for p in root.iterdir())

  def call(argv):
    done = subprocess.run([sys.executable, "-m", "tfspeech.bin.align", *argv], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr, sorted(p.name for p in root.iterdir())
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = list(pool.map(call, [argv for argv, _ in ROWS] + [["--help"], OTHER_MODEL]))
  return before, results


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[" ".join(a) or "none" for a, _ in ROWS])
def test_flag_mistake_is_one_error_line(outcomes, index):
  before, results = outcomes
  code, _, stderr, after = results[index]
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert code == 2 and len(errors) == 1 and ROWS[index][1] in errors[0], stderr
  assert "Traceback" not in stderr and "tensorflow" not in stderr.lower(), stderr
  assert after == before  # Nothing created.


def test_help_lists_the_flags(outcomes):
  code, stdout, _, _ = outcomes[1][-2]
  assert code in (0, 1)  # absl exits 1 after printing help.
  assert "Forced alignment" in stdout
  for flag in ("--run", "--wav", "--text", "--corpus", "--out", "--export", "--format"):
    assert flag in stdout, flag


def test_a_run_of_a_model_that_cannot_align_is_one_error_line(outcomes):
  before, results = outcomes
  code, _, stderr, after = results[-1]
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert code == 2 and len(errors) == 1, stderr
  assert "a run of model 'fastpitch'; pass a run of grad_tts" in errors[0], stderr
  assert "Traceback" not in stderr and after == before, stderr

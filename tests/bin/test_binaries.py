"""The command-line binaries: --help everywhere, and the train/info/prepare contract end to end."""
import json
import re
import os
import subprocess
import sys

import pytest

BINARIES = ["prepare", "train", "synthesize", "export", "info", "vocode", "demo"]


def _run(module, *args, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", f"tfspeech.bin.{module}", *args],
                        capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("binary", BINARIES)
def test_help_lists_every_flag(binary):
  import importlib.util
  if importlib.util.find_spec(f"tfspeech.bin.{binary}") is None:
    pytest.skip(f"tfspeech.bin.{binary} not written yet")
  result = _run(binary, "--helpshort")
  assert result.returncode in (0, 1), result.stderr  # absl exits 1 after printing help.
  assert f"tfspeech/bin/{binary}.py" in result.stdout
  # Every flag the module defines appears with a help text.
  # Flag lines are indented by two spaces; wrapped help continues at four.
  flag_lines = [l for l in result.stdout.splitlines() if re.match(r"  --\S", l)]
  assert flag_lines, result.stdout
  undocumented = [l for l in flag_lines if not re.match(r"  --(\[no\])?\w+: \S", l)]
  assert not undocumented, undocumented
  if binary in ("train", "info"):
    assert "--model:" in result.stdout and "--override:" in result.stdout


def test_info_prints_config_and_parameter_table():
  result = _run("info", "--model=toy", "--preset=tiny")
  assert result.returncode == 0, result.stderr
  config_text, table = result.stdout.split("\n\n", 1)
  config = json.loads(config_text)
  assert config["model"] == "toy" and config["preset"] == "tiny"
  assert "total" in table and "net" in table


def test_train_resumes_and_refuses_conflicting_config(tmp_path):
  workdir = str(tmp_path / "run")
  first = _run("train", "--model=toy", "--preset=tiny", f"--workdir={workdir}",
               "--max_steps=20", "--noprogress")
  assert first.returncode == 0, first.stderr
  assert "finished at step 20" in first.stdout
  # Same workdir, a larger budget: resumes from step 20.
  second = _run("train", "--model=toy", f"--workdir={workdir}", "--max_steps=30",
                "--noprogress")
  assert second.returncode == 0, second.stderr
  assert "finished at step 30 (started at 20)" in second.stdout
  # An architecture change is refused with a readable diff and no traceback.
  refused = _run("train", "--model=toy", f"--workdir={workdir}", "--override=hidden=32",
                 "--noprogress")
  assert refused.returncode == 2
  assert "hidden" in refused.stderr and "8" in refused.stderr and "32" in refused.stderr
  assert "Traceback" not in refused.stderr
  # A safe change is refused unless named, then accepted.
  lr = _run("train", "--model=toy", f"--workdir={workdir}", "--override=learning_rate=0.5",
            "--noprogress")
  assert lr.returncode == 2 and "learning_rate" in lr.stderr
  allowed = _run("train", "--model=toy", f"--workdir={workdir}", "--override=learning_rate=0.5",
                 "--allow_changes=learning_rate", "--max_steps=35", "--noprogress")
  assert allowed.returncode == 0, allowed.stderr
  assert "finished at step 35 (started at 30)" in allowed.stdout
  # Repeated --override flags add up (the last one used to replace the others silently).
  repeated = _run("train", "--model=toy", f"--workdir={workdir}", "--override=learning_rate=0.25",
                  "--override=log_every=3", "--allow_changes=learning_rate,log_every",
                  "--max_steps=38", "--noprogress")
  assert repeated.returncode == 0, repeated.stderr
  assert "finished at step 38 (started at 35)" in repeated.stdout
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    stored = json.load(f)
  assert stored["train"]["learning_rate"] == 0.25 and stored["train"]["log_every"] == 3, stored


def test_prepare_reports_bad_entries_and_keeps_good_ones(tiny_corpus, tmp_path):
  import shutil
  corpus = tmp_path / "corpus"
  shutil.copytree(tiny_corpus, corpus)
  lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
  (corpus / "wavs" / "TINY-0001.wav").unlink()                     # missing file
  (corpus / "wavs" / "TINY-0002.wav").write_bytes(b"not audio at all")  # non-audio
  first_id = lines[3].split("|")[0]
  lines[3] = f"{first_id}||"                                       # empty transcript
  (corpus / "metadata.csv").write_text("\n".join(lines[:12]) + "\n", encoding="utf-8")
  out = tmp_path / "prepared"
  result = _run("prepare", f"--corpus={corpus}", f"--out={out}", "--workers=1",
                "--noprogress", "--validation_count=2", "--num_shards=2")
  assert result.returncode == 0, result.stderr
  report = json.loads((out / "report.json").read_text())
  reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
  assert reasons == {"TINY-0001": "missing_file", "TINY-0002": "unreadable_audio",
                     first_id: "empty_transcript"}
  assert report["num_train"] + report["num_validation"] == 12 - 3
  assert "skipped 3 entries" in result.stdout and "report.json" in result.stdout

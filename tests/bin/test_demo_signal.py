"""tfspeech-demo: Ctrl-C while training keeps the checkpoint and ends the demo there."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ctrl_c_while_training_saves_and_skips_synthesis_and_export(tmp_path):
  out = tmp_path / "demo"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  child = subprocess.Popen(
      [sys.executable, "-m", "tfspeech.bin.demo", f"--out={out}", "--max_steps=1000000",
       "--noprogress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=env)
  try:
    # The traced train step is written on its first call, inside the loop that turns
    # SIGINT into a stop (before it, SIGINT would be a KeyboardInterrupt).
    trace_cache = out / "run" / "trace_cache"
    deadline = time.monotonic() + 180
    while not (trace_cache.is_dir() and any(trace_cache.iterdir())):
      assert child.poll() is None, child.communicate()[1][-3000:]
      assert time.monotonic() < deadline, "training did not start in 180 s"
      time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
  finally:
    if child.poll() is None:
      child.kill()
  assert child.returncode == 0, stderr[-3000:]
  assert "=== 2/4 train" in stdout and "stopped by SIGINT at step" in stdout, stdout
  assert "run the same command again" in stdout
  assert "3/4 synthesize" not in stdout and not (out / "wavs").exists()
  assert not (out / "saved_model").exists()
  checkpoints = [name for name in os.listdir(out / "run" / "checkpoints")
                 if name.endswith(".index")]
  assert checkpoints, os.listdir(out / "run")

"""SIGTERM saves a checkpoint and exits cleanly; SIGKILL loses only steps since the last one."""
import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from tfspeech import training

CHILD = """
import json, sys
from tfspeech import training
result = training.train("toy", "tiny", workdir=sys.argv[1], progress=False, overrides=dict(
    max_steps=10**7, checkpoint_every=20, log_every=10, eval_every=0, summary_every=0))
print(json.dumps({"final_step": result.final_step, "signal": result.stopped_by_signal,
                  "checkpoint": result.checkpoint}))
"""


def start_child(workdir):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return subprocess.Popen([sys.executable, "-c", CHILD, workdir], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def latest_step(workdir):
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return int(path.rsplit("-", 1)[1]) if path else None


def wait_for_checkpoint(child, workdir, at_least, timeout=90):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    step = latest_step(workdir)
    if step is not None and step >= at_least:
      return step
    if child.poll() is not None:
      raise AssertionError(f"child exited early:\n{child.stderr.read()[-3000:]}")
    time.sleep(0.1)
  child.kill()
  raise AssertionError("no checkpoint appeared in time")


def resume(workdir, steps):
  start = latest_step(workdir)
  result = training.train("toy", workdir=workdir, stop_at_step=start + steps, progress=False,
                          handle_signals=False)
  return start, result


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  workdir = str(tmp_path)
  child = start_child(workdir)
  wait_for_checkpoint(child, workdir, at_least=20)
  child.send_signal(signal.SIGTERM)
  out, err = child.communicate(timeout=60)
  assert child.returncode == 0, err[-3000:]
  report = json.loads(out.strip().splitlines()[-1])
  assert report["signal"] == "SIGTERM"
  assert report["final_step"] >= 20
  assert report["checkpoint"].endswith(f"ckpt-{report['final_step']}")
  assert latest_step(workdir) == report["final_step"]
  start, result = resume(workdir, 3)
  assert result.start_step == start == report["final_step"]
  assert result.final_step == start + 3


def test_sigkill_loses_only_steps_since_last_checkpoint(tmp_path):
  workdir = str(tmp_path)
  child = start_child(workdir)
  seen = wait_for_checkpoint(child, workdir, at_least=40)
  child.send_signal(signal.SIGKILL)
  child.communicate(timeout=60)
  assert child.returncode == -signal.SIGKILL
  last = latest_step(workdir)
  assert last >= seen and last % 20 == 0
  start, result = resume(workdir, 3)
  assert result.start_step == last
  assert result.final_step == last + 3

"""One run per workdir: a second process is refused with the holder's pid/host; kill -9 frees it."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.models import registry
from tfspeech.training import workdir_lock

# Holds the lock from a second process without importing TensorFlow (fast to start).
HOLDER = f"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("workdir_lock", {workdir_lock.__file__!r})
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
with lock.hold_workdir(sys.argv[1]):
  print("held", flush=True)
  time.sleep(300)
"""

SMALL = dict(max_steps=4, log_every=2, checkpoint_every=2, eval_every=0, summary_every=0)


@pytest.fixture
def holder(tmp_path):
  """A separate process holding tmp_path/run's lock; yields (workdir, Popen)."""
  workdir = str(tmp_path / "run")
  child = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  line = child.stdout.readline()
  assert line.strip() == "held", child.stderr.read()
  yield workdir, child
  if child.poll() is None:
    child.kill()
  child.communicate(timeout=30)


def test_second_process_is_refused_with_pid_and_host(holder):
  workdir, child = holder
  with pytest.raises(training.WorkdirLockedError) as error:
    training.train("toy", "tiny", tasks=registry.get, workdir=workdir, overrides=SMALL,
                   progress=False, handle_signals=False)
  message = str(error.value)
  assert f"pid {child.pid} on host {socket.gethostname()}" in message
  assert workdir in message
  # Refused before touching anything: no config.json, no checkpoints, no events.
  assert sorted(os.listdir(workdir)) == [".lock"]


def test_binary_turns_the_lock_into_one_error_line(holder):
  workdir, child = holder
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, "-m", "tfspeech.bin.train", "--model=toy",
                         "--preset=tiny", f"--workdir={workdir}", "--max_steps=2"],
                        capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and f"pid {child.pid}" in errors[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


def test_kill_9_leaves_a_stale_record_that_does_not_block_resume(holder):
  workdir, child = holder
  # Unrelated workdirs are independent.
  training.train("toy", "tiny", tasks=registry.get, workdir=os.path.join(workdir, "..", "other"),
                 overrides=SMALL, progress=False, handle_signals=False)
  child.send_signal(signal.SIGKILL)
  child.wait(timeout=30)
  with open(os.path.join(workdir, ".lock"), encoding="utf-8") as f:
    assert json.load(f)["pid"] == child.pid  # the record survives; the flock does not
  result = training.train("toy", "tiny", tasks=registry.get, workdir=workdir, overrides=SMALL,
                          progress=False, handle_signals=False)
  assert result.final_step == 4
  with open(os.path.join(workdir, ".lock"), encoding="utf-8") as f:
    assert f.read() == ""  # cleared on release


def test_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
  workdir = str(tmp_path)
  seen = []

  def other_thread():
    try:
      with workdir_lock.hold_workdir(workdir):
        seen.append("entered")
    except training.WorkdirLockedError as e:
      seen.append(str(e))

  with workdir_lock.hold_workdir(workdir):
    with workdir_lock.hold_workdir(workdir):  # train() → fit() nests like this
      pass
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert "another thread" in seen[0]
    # Still held after the inner exit: a second process is refused.
    probe = subprocess.run([sys.executable, "-c", HOLDER, workdir], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode != 0 and "WorkdirLockedError" in probe.stderr
  # Released: another process can take it now.
  child = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE,
                           text=True)
  try:
    assert child.stdout.readline().strip() == "held"
  finally:
    child.kill()
    child.communicate(timeout=30)
  assert tf.io.gfile.exists(os.path.join(workdir, ".lock"))

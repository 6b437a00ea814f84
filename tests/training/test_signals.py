"""SIGTERM saves a checkpoint and exits cleanly; SIGKILL loses only steps since the last one."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.models.toy.regression import ToyTask

CHILD = """
import gc, json, sys, threading
from tfspeech import training
from tfspeech.models import registry

def on_signal_stop(result):
  # Still inside train(): another thread finds the workdir locked.
  found = []
  def try_lock():
    try:
      with training.hold_workdir(sys.argv[1]):
        found.append("free")
    except training.WorkdirLockedError:
      found.append("locked")
  thread = threading.Thread(target=try_lock)
  thread.start()
  thread.join()
  print(json.dumps({"hook_step": result.final_step, "workdir": found[0],
                    "frozen": gc.get_freeze_count() > 0}))

result = training.train("toy", "tiny", workdir=sys.argv[1], tasks=registry.get, progress=False,
                        on_signal_stop=on_signal_stop, overrides=dict(
    max_steps=10**7, checkpoint_every=20, log_every=10, eval_every=0, summary_every=0))
print(json.dumps({"final_step": result.final_step, "signal": result.stopped_by_signal,
                  "checkpoint": result.checkpoint, "frozen_after": gc.get_freeze_count()}))
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
  sent = time.monotonic()
  child.send_signal(signal.SIGTERM)
  out, err = child.communicate(timeout=60)
  assert child.returncode == 0, err[-3000:]
  assert time.monotonic() - sent < 10  # container runtimes SIGKILL after ~10 s
  hook, report = [json.loads(line) for line in out.strip().splitlines()[-2:]]
  # The hook a binary exits from runs before train() lets go of the workdir and the trainer,
  # with the live objects exempt from garbage collection; a caller that goes on gets it back.
  assert hook == {"hook_step": report["final_step"], "workdir": "locked", "frozen": True}
  assert report["frozen_after"] == 0
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


def test_save_path_is_warmed_up_before_the_first_step(tmp_path, caplog):
  # The first save in a process traced the non-finite check and built the saver
  # (7–11 s on a GPU host), so a SIGTERM took longer than a container's grace period.
  task = ToyTask(ToyTask.preset("tiny"))
  config = ToyTask.default_train_config("tiny")
  trainer = training.Trainer(task, config)
  # On the absl logger itself: a binary run in-process earlier may have set its verbosity.
  caplog.set_level("INFO", logger="absl")
  training.fit(trainer, task.dataset("", "train", config), str(tmp_path / "fit"),
               stop_at_step=1, progress=False, handle_signals=True)
  messages = [r.getMessage() for r in caplog.records]
  warmed = [i for i, m in enumerate(messages) if "checkpoint saving warmed up" in m]
  started = [i for i, m in enumerate(messages) if m.startswith("training ")]
  assert warmed and started and warmed[0] < started[0], messages

  trainer = training.Trainer(task, config)
  checkpoints = training.Checkpoints(trainer, str(tmp_path))
  checkpoints.warm_up()
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))  # scratch copy only
  checkpoints.save(1)
  checkpoints.save(2)
  assert os.path.basename(checkpoints.latest) == "ckpt-2"


@pytest.mark.slow
def test_train_binary_sigterm_saves_and_exits_well_within_10_seconds(tmp_path, tiny_prepared):
  # What a container runs. Its grace period covers the step in flight, the save and the
  # exit; TF's teardown of the traced graphs alone once took 19 s on a busy CI host.
  workdir = str(tmp_path / "run")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  child = subprocess.Popen(
      [sys.executable, "-m", "tfspeech.bin.train", "--model=grad_tts", "--preset=tiny",
       f"--data={tiny_prepared}", f"--workdir={workdir}", "--noprogress",
       f"--export_weights={tmp_path / 'weights'}",
       "--override=max_steps=10000000,log_every=1,checkpoint_every=1000000,eval_every=0,"
       "summary_every=0"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
  try:
    log = []
    for line in child.stderr:  # "I… step 1: …" once the first step has run
      log.append(line)
      if "step 1:" in line:
        break
    assert "step 1:" in log[-1] and child.poll() is None, "".join(log)[-3000:]
    assert any("checkpoint saving warmed up" in line for line in log)
    sent = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
  finally:
    if child.poll() is None:
      child.kill()
  took = time.monotonic() - sent
  assert child.returncode == 0 and "stopped by SIGTERM" in out, err[-3000:]
  assert "--export_weights skipped" in out and not os.path.exists(tmp_path / "weights")
  assert took < 8, f"SIGTERM to exit took {took:.1f} s:\n{err[-3000:]}"
  step = latest_step(workdir)
  assert step is not None and step >= 1
  loaded = training.load_run(workdir)  # the signal's checkpoint restores
  assert loaded.step == step


def test_a_stop_signal_exempts_the_live_objects_from_garbage_collection_until_thawed():
  import gc  # pylint: disable=import-outside-toplevel
  from tfspeech.training.signals import StopRequested  # pylint: disable=import-outside-toplevel
  gc.unfreeze()
  try:
    with StopRequested() as stop:
      assert gc.get_freeze_count() == 0
      stop._handle(signal.SIGTERM, None)  # pylint: disable=protected-access
      assert stop.requested and gc.get_freeze_count() > 0
    stop.thaw()
    assert gc.get_freeze_count() == 0
    # A freeze the process made itself (a pre-fork server, say) is left as it was.
    gc.freeze()
    frozen = gc.get_freeze_count()
    with StopRequested() as stop:
      stop._handle(signal.SIGTERM, None)  # pylint: disable=protected-access
    stop.thaw()
    assert gc.get_freeze_count() >= frozen > 0
  finally:
    gc.unfreeze()

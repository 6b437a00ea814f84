"""--strategy=multi_worker: two `tfspeech-train` processes on localhost, one workdir.

The scenario runs once (module fixture): both workers train the toy task until the
chief has a checkpoint, SIGTERM goes to the non-chief worker, both stop after the same
step; then both restart and resume. The chief's logged losses and final weights must
equal a one-process run with the same global batch, step for step across the restart.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tfspeech import training
from tfspeech.models import registry
from tfspeech.testing import summary_events
from tfspeech.training import multi_worker

# noise_std=0: the noise is drawn per replica, so it differs from a one-process run's.
# No media summaries (summary_every=0): tracing them costs the chief seconds, and the
# single-process tests cover them.
OVERRIDES = "noise_std=0.0,checkpoint_every=3,log_every=1,eval_every=3,summary_every=0"


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def start_workers(workdir, max_steps, scratch, logs):
  """Two workers (worker 0 is the chief); stderr goes to files: a full pipe would block."""
  ports = free_ports(2)
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  workers = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", TMPDIR=scratch,
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    log = os.path.join(logs, f"worker{index}-{time.monotonic_ns()}.log")
    with open(log, "w", encoding="utf-8") as stderr:
      worker = subprocess.Popen(
          [sys.executable, "-m", "tfspeech.bin.train", "--model=toy", "--preset=tiny",
           f"--workdir={workdir}", "--strategy=multi_worker", "--noprogress",
           f"--max_steps={max_steps}", f"--override={OVERRIDES}"],
          stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    worker.log = log
    workers.append(worker)
  return workers


def tail(worker):
  with open(worker.log, encoding="utf-8") as f:
    return f"worker log {worker.log}:\n" + f.read()[-4000:]


def finish(workers, timeout=120):
  """Waits for both workers to exit 0; returns their stdout."""
  outputs = []
  try:
    for worker in workers:
      out, _ = worker.communicate(timeout=timeout)
      assert worker.returncode == 0, tail(worker)
      outputs.append(out)
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
  return outputs


def latest_step(workdir):
  path = training.checkpoints.latest_checkpoint(workdir)
  return training.checkpoints.checkpoint_step(path) if path else None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
  root = tmp_path_factory.mktemp("multi_worker")
  workdir, scratch, logs = str(root / "run"), str(root / "tmp"), str(root / "logs")
  os.makedirs(scratch)
  os.makedirs(logs)
  report = {"workdir": workdir, "scratch": scratch}
  workers = start_workers(workdir, 10**6, scratch, logs)
  report["pids"] = [w.pid for w in workers]
  try:
    deadline = time.monotonic() + 120
    while (latest_step(workdir) or 0) < 3:
      for worker in workers:
        assert worker.poll() is None, tail(worker)
      assert time.monotonic() < deadline, "no checkpoint from the chief in 120 s"
      time.sleep(0.1)
    with open(os.path.join(workdir, ".lock"), encoding="utf-8") as f:
      report["lock_holder"] = json.loads(f.read())["pid"]
    workers[1].send_signal(signal.SIGTERM)  # the non-chief: the chief must stop too
  finally:
    report["stopped"] = finish(workers)
  report["stop_step"] = latest_step(workdir)
  report["event_files"] = glob.glob(os.path.join(workdir, "*", "events*"))
  resume_to = report["stop_step"] + 3
  report["resumed"] = finish(start_workers(workdir, resume_to, scratch, logs))
  report["scratch_left"] = [n for n in os.listdir(scratch) if n.startswith("tfspeech-")]
  # The reference: one process, the default strategy, the same global batch.
  reference = str(root / "reference")
  training.train("toy", "tiny", workdir=reference, tasks=registry.get, progress=False,
                 handle_signals=False,
                 overrides=dict(training.parse_overrides(OVERRIDES), max_steps=resume_to))
  report["reference"] = reference
  return report


@pytest.mark.slow
def test_a_signal_on_one_worker_stops_both_after_the_same_step(scenario):
  step = scenario["stop_step"]
  chief, worker = scenario["stopped"]
  assert step >= 3
  assert f"stopped by SIGTERM at step {step} " in worker, worker
  assert f"stopped by peer at step {step} " in chief, chief
  assert f"checkpoint: {scenario['workdir']}/checkpoints/ckpt-{step}" in chief


@pytest.mark.slow
def test_only_the_chief_writes_into_the_workdir(scenario):
  chief_pid = scenario["pids"][0]
  assert scenario["lock_holder"] == chief_pid
  # TensorBoard names event files …<host>.<pid>.<n>.v2.
  assert scenario["event_files"]
  assert all(f".{chief_pid}." in os.path.basename(f) for f in scenario["event_files"])
  assert scenario["scratch_left"] == []  # the other worker deleted its scratch saves


@pytest.mark.slow
def test_both_resume_and_match_a_one_process_run(scenario):
  step = scenario["stop_step"]
  for out in scenario["resumed"]:
    assert f"finished at step {step + 3} (started at {step})" in out, out
  ours = summary_events(scenario["workdir"], "train")["losses/loss"]
  theirs = summary_events(scenario["reference"], "train")["losses/loss"]
  assert sorted(ours) == sorted(theirs) == list(range(1, step + 4))
  np.testing.assert_allclose([ours[s] for s in sorted(ours)],
                             [theirs[s] for s in sorted(theirs)], rtol=1e-5, atol=1e-6)
  # Validation runs collectives on every worker; the chief logs it.
  ours = summary_events(scenario["workdir"], "eval")["losses/loss"]
  theirs = summary_events(scenario["reference"], "eval")["losses/loss"]
  assert sorted(ours) == sorted(theirs) and len(ours) >= 2
  np.testing.assert_allclose([ours[s] for s in sorted(ours)],
                             [theirs[s] for s in sorted(theirs)], rtol=1e-5, atol=1e-6)
  ours = training.load_run(scenario["workdir"], tasks=registry.get)
  theirs = training.load_run(scenario["reference"], tasks=registry.get)
  assert ours.step == theirs.step == step + 3
  for a, b in zip(ours.modules["net"].weights, theirs.modules["net"].weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value,says", [
    (None, "TF_CONFIG is not set"),
    ("{cluster", "is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'has no "task"'),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}',
     "names jobs ['ps']"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
     "index 1 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job"),
])
def test_bad_tf_config_says_what_to_set(value, says):
  environ = {} if value is None else {"TF_CONFIG": value}
  with pytest.raises(multi_worker.ClusterConfigError, match="set it on every machine") as e:
    multi_worker.check_tf_config(environ)
  assert says in str(e.value)


def test_good_tf_config_and_roles():
  spec = multi_worker.check_tf_config(
      {"TF_CONFIG": '{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, '
                    '"task": {"type": "worker", "index": 0}}'})
  assert spec["task"] == {"type": "worker", "index": 0}
  assert multi_worker.worker_role(None) == multi_worker.WorkerRole()  # one process: chief
  assert multi_worker.make_strategy("default") is None
  with pytest.raises(ValueError, match="unknown strategy"):
    multi_worker.make_strategy("multiworker")


def test_multi_worker_strategy_after_tensorflow_started_says_so(monkeypatch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.constant(1.0) + 1.0  # this process's runtime is up (pytest ran TF before anyway)
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
                                  '"task": {"type": "worker", "index": 0}}')
  with pytest.raises(multi_worker.ClusterConfigError, match="before TensorFlow runs anything"):
    training.train("toy", "tiny", workdir="/nonexistent/never-created", strategy="multi_worker",
                   tasks=registry.get)


def test_train_binary_without_tf_config_fails_with_one_error_line(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  done = subprocess.run(
      [sys.executable, "-m", "tfspeech.bin.train", "--model=toy", "--preset=tiny",
       f"--workdir={tmp_path / 'run'}", "--strategy=multi_worker"],
      capture_output=True, text=True, env=env, timeout=60)
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert lines[-1].startswith("error: --strategy=multi_worker: TF_CONFIG is not set"), lines
  assert "TF_CONFIG='{\"cluster\"" in lines[-1]
  assert not os.path.exists(tmp_path / "run")

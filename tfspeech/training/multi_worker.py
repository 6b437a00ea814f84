"""Training on several machines: `MultiWorkerMirroredStrategy` from TF_CONFIG, and roles.

Every machine runs the same command with its own TF_CONFIG (TensorFlow's cluster
description; the JSON below for the second of two workers):

  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
              "task": {"type": "worker", "index": 1}}' \
      tfspeech-train --strategy=multi_worker --model=toy --preset=tiny --workdir=/shared/run

Roles. The chief (task type "chief", or worker 0 when the cluster has no chief)
holds WORKDIR/.lock and writes config.json, the checkpoints and the TensorBoard
summaries. Every other worker reads config.json and resumes from WORKDIR's newest
checkpoint, so WORKDIR must be one shared file system (NFS, a bucket mount) seen
at the same path by every worker. A checkpoint save takes part in collectives, so
the other workers save too, into a local scratch directory that they delete.

Data. Every worker builds the same dataset of *global* batches (same seed) and
each replica trains on its contiguous 1/N of each batch (`Trainer` slices by the
replica's id in the whole cluster), so the losses and weights equal a
one-process run with the same global batch. That is tf.data's DATA auto-shard
policy at batch granularity: each worker reads the whole global batch, which is
cheap next to a TTS model's step; MirroredStrategy's distributed iterators cannot
be checkpointed in TF 2.17 (see `checkpoints`), and the plain iterator can.

Stopping. SIGINT/SIGTERM on any worker is put to a vote inside the next train step
(one scalar all-reduce), so all workers stop after the same step and save together.
A worker that dies (SIGKILL, lost machine) makes the others fail in their next
collective (`tfspeech-train` then prints one `error:` line naming the newest checkpoint
and exits 1, within a second on localhost); the chief's checkpoints are written
atomically and stay restorable, so starting every worker again resumes from it.
"""

import dataclasses
import json
import os
from typing import Optional, Union

STRATEGIES = ("default", "mirrored", "multi_worker")
TASK_TYPES = ("chief", "worker")

EXAMPLE_TF_CONFIG = ('{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                     '"task": {"type": "worker", "index": 0}}')


class ClusterConfigError(ValueError):
  """TF_CONFIG is missing or does not describe a chief/worker cluster."""


def _fail(problem: str):
  raise ClusterConfigError(
      f"TF_CONFIG {problem}. --strategy=multi_worker reads the cluster from the TF_CONFIG "
      "environment variable; set it on every machine to the same cluster and that "
      f"machine's own task, e.g. TF_CONFIG='{EXAMPLE_TF_CONFIG}' (index 1 on the second)")


def check_tf_config(environ=None) -> dict:
  """Validates TF_CONFIG for `MultiWorkerMirroredStrategy` (no TensorFlow needed).

  Args:
    environ: mapping to read TF_CONFIG from (default `os.environ`).

  Returns:
    The parsed TF_CONFIG dict.

  Raises:
    ClusterConfigError: missing, not JSON, or not a chief/worker cluster with a
      valid task; the message says what to set.
  """
  text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
  if not text.strip():
    _fail("is not set")
  try:
    spec = json.loads(text)
  except ValueError as e:
    _fail(f"is not valid JSON ({e})")
  if not isinstance(spec, dict):
    _fail(f"must be a JSON object, got {type(spec).__name__}")
  cluster, task = spec.get("cluster"), spec.get("task")
  if not isinstance(cluster, dict) or not cluster:
    _fail('has no "cluster" object of job name → list of "host:port"')
  others = sorted(set(cluster) - set(TASK_TYPES))
  if others:
    _fail(f"names jobs {others}: multi-worker training uses only {list(TASK_TYPES)}")
  for job, addresses in cluster.items():
    if (not isinstance(addresses, list) or not addresses
        or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)):
      _fail(f'job "{job}" must be a non-empty list of "host:port" strings, got {addresses!r}')
  if len(cluster.get("chief", [])) > 1:
    _fail(f'lists {len(cluster["chief"])} chiefs; there can be at most one')
  if not isinstance(task, dict):
    _fail('has no "task" object, e.g. {"type": "worker", "index": 0}')
  task_type, index = task.get("type"), task.get("index", 0)
  if task_type not in cluster:
    _fail(f'task type {task_type!r} is not a job of the cluster ({sorted(cluster)})')
  if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
    _fail(f'task index {index!r} is out of range for job "{task_type}" '
          f"({len(cluster[task_type])} address(es))")
  return spec


def make_strategy(name: Union[str, None, "tf.distribute.Strategy"]):  # noqa: F821
  """The `tf.distribute.Strategy` named by `name` (None for "default").

  Args:
    name: "default", "mirrored" (all local GPUs), "multi_worker" (TF_CONFIG's
      cluster), or a strategy object (returned as is).

  Raises:
    ClusterConfigError: "multi_worker" with a missing or malformed TF_CONFIG, or
      TensorFlow already started in this process (the strategy must come first).
    ValueError: an unknown name.
  """
  if name is None or not isinstance(name, str):
    return name
  if name not in STRATEGIES:
    raise ValueError(f"unknown strategy {name!r}; use one of {list(STRATEGIES)}")
  if name == "default":
    return None
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  check_tf_config()
  from tensorflow.python.eager import context  # pylint: disable=import-outside-toplevel
  if context.context()._initialized:  # pylint: disable=protected-access
    # Its collective ops and server can only be set up before the runtime starts.
    raise ClusterConfigError(
        "the multi_worker strategy must be created before TensorFlow runs anything in "
        "this process: call training.train(strategy='multi_worker') (or "
        "tfspeech.training.multi_worker.make_strategy('multi_worker')) first thing")
  return tf.distribute.MultiWorkerMirroredStrategy()


@dataclasses.dataclass(frozen=True)
class WorkerRole:
  """This process's place in a (possibly one-process) training cluster.

  Attributes:
    is_chief: writes config.json, checkpoints and summaries and holds the lock.
    task_type: "chief" or "worker" (None in a one-process run).
    task_id: index within `task_type`.
    num_workers: processes in the cluster (1 in a one-process run).
  """
  is_chief: bool = True
  task_type: Optional[str] = None
  task_id: int = 0
  num_workers: int = 1

  @property
  def multi_worker(self) -> bool:
    return self.num_workers > 1

  def __str__(self):
    if not self.multi_worker:
      return "single process"
    return (f"{self.task_type} {self.task_id} of {self.num_workers} workers"
            f"{' (chief)' if self.is_chief else ''}")


def worker_role(strategy) -> WorkerRole:
  """The `WorkerRole` of this process under `strategy` (None: the default strategy)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  extended = getattr(strategy, "extended", None)
  num_workers = getattr(extended, "_num_workers", 1)
  if resolver is None or num_workers <= 1 or not resolver.task_type:
    return WorkerRole()
  return WorkerRole(is_chief=bool(extended.should_checkpoint), task_type=resolver.task_type,
                    task_id=int(resolver.task_id or 0), num_workers=int(num_workers))

"""`Trainer`: builds a task's modules and optimizers under a strategy and runs traced steps.

The trainer owns no files; `tfspeech.training.loop.fit` adds checkpoints,
summaries, signals and the progress bar on top.

  strategy = tf.distribute.MirroredStrategy()
  trainer = Trainer(task, train_config, strategy)     # enters strategy.scope() itself
  step_fn = trainer.train_step_fn(dataset.element_spec)
  for batch in dataset:
    metrics = step_fn(batch)                          # dict tag → scalar tensor
"""


import keras
import tensorflow as tf
from absl import logging

from tfspeech.training import checkpoints as checkpoints_lib
from tfspeech.training import multi_worker
from tfspeech.training import optimizers as optimizers_lib
from tfspeech.training.config import TrainConfig
from tfspeech.training.precision import dtype_policy
from tfspeech.training.step_context import StepContext
from tfspeech.training.task import Task


def relaxed_spec(element_spec):
  """`element_spec` with every dimension unknown (rank kept), for input_signature."""
  def relax(spec):
    if isinstance(spec, tf.TensorSpec):
      shape = tf.TensorShape([None] * spec.shape.rank) if spec.shape.rank is not None \
          else tf.TensorShape(None)
      return tf.TensorSpec(shape, spec.dtype, spec.name)
    return spec
  return tf.nest.map_structure(relax, element_spec)


def _replica_slice(batch, num_replicas: int):
  """This replica's contiguous 1/N share of a global batch (split on axis 0)."""
  if num_replicas == 1:
    return batch
  replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group

  def take(x):
    per_replica = tf.shape(x)[0] // num_replicas
    return x[replica_id * per_replica:(replica_id + 1) * per_replica]
  return tf.nest.map_structure(take, batch)


def _first_leaf(batch):
  return tf.nest.flatten(batch)[0]


class TrainingDivergedError(RuntimeError):
  """Too many consecutive steps had non-finite losses or gradients."""


class Trainer:
  """Creates a task's modules/optimizers under `strategy` and runs its steps.

  Attributes:
    task: the `Task`, with `task.modules` built.
    config: the `TrainConfig`.
    strategy: the `tf.distribute.Strategy`.
    optimizers: name → Keras optimizer (a `LossScaleOptimizer` under float16).
    optimizer_modules: optimizer name → names of the modules it updates.
    step: int64 variable, number of batches consumed (skipped steps included).
    skipped_steps: int64 variable, steps where any optimizer skipped its update.
    consecutive_skips: int64 variable, current run of skipped steps.
    rng: `tf.random.Generator`, seeded by `config.seed`, exposed as `ctx.rng`.
    role: this process's `multi_worker.WorkerRole` (chief or not, number of workers).
  """

  def __init__(self, task, config: TrainConfig, strategy: tf.distribute.Strategy = None):
    self.task = task
    self.config = config
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_replicas = self.strategy.num_replicas_in_sync
    self.role = multi_worker.worker_role(self.strategy)
    if config.batch_size % self.num_replicas:
      raise ValueError(f"batch_size {config.batch_size} does not divide evenly over "
                       f"{self.num_replicas} replicas")
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(config.mixed_precision), self.strategy.scope():
      self.modules = task.build_modules()
      specs = task.optimizers(config)
      if not specs:
        raise ValueError(f"{type(task).__name__}.optimizers() declared no optimizer")
      self.optimizers, self.optimizer_variables, self.clip_norms = {}, {}, {}
      self.optimizer_configs, self.optimizer_modules = {}, {}
      for name, spec in specs.items():
        opt_config = spec.config or config.optimizer_config()
        self.optimizer_configs[name] = opt_config
        self.optimizer_modules[name] = tuple(spec.modules or self.modules)
        variables = self._variables_of(name, spec.modules)
        optimizer = optimizers_lib.make_optimizer(opt_config, name, config.mixed_precision)
        # Slots must exist before the first trace (tf.function creates
        # variables only on its first call, once per function).
        optimizer.build(variables)
        self.optimizers[name] = optimizer
        self.optimizer_variables[name] = variables
        self.clip_norms[name] = opt_config.clip_norm
      counter = dict(dtype=tf.int64, trainable=False,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.step = tf.Variable(0, name="global_step", **counter)
      self.skipped_steps = tf.Variable(0, name="skipped_steps", **counter)
      self.consecutive_skips = tf.Variable(0, name="consecutive_skips", **counter)
      self.best_metric = tf.Variable(float("inf"), name="best_metric", trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.rng = tf.random.Generator.from_seed(config.seed)
    # This worker's vote to stop (multi-worker only), summed over the cluster inside the
    # train step. Made outside the scope: a mirrored variable would take worker 0's value.
    self._stop_vote = tf.Variable(0.0, trainable=False, name="stop_vote") \
        if self.role.multi_worker else None
    self._train_fn = None
    self._eval_fn = None

  def _variables_of(self, optimizer_name, module_names):
    names = list(self.modules) if module_names is None else list(module_names)
    unknown = [n for n in names if n not in self.modules]
    if unknown:
      raise ValueError(f"optimizer {optimizer_name!r} names unknown modules {unknown}; "
                       f"modules are {sorted(self.modules)}")
    seen, variables = set(), []
    for name in names:
      for v in self.modules[name].trainable_variables:
        if id(v) not in seen:
          seen.add(id(v))
          variables.append(v)
    if not variables:
      raise ValueError(f"optimizer {optimizer_name!r} has no trainable variables")
    return variables

  # ------------------------------------------------------------------ train
  def _context(self, training):
    return StepContext(step=tf.convert_to_tensor(self.step), rng=self.rng,
                       optimizers=self.optimizers, optimizer_variables=self.optimizer_variables,
                       clip_norms=self.clip_norms, num_replicas=self.num_replicas,
                       training=training)

  def _replica_train_step(self, batch):
    ctx = self._context(training=True)
    outputs = self.task.train_step(_replica_slice(batch, self.num_replicas), ctx)
    if not isinstance(outputs, dict):
      raise TypeError(f"{type(self.task).__name__}.train_step must return a dict of "
                      f"scalars, got {type(outputs).__name__}")
    if not ctx.applied:
      raise ValueError(f"{type(self.task).__name__}.train_step never called ctx.apply()")
    losses = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    return losses, ctx.applied

  def train_step_fn(self, element_spec):
    """The traced global train step for batches matching `element_spec`.

    Args:
      element_spec: the train dataset's `element_spec` (global batches).

    Returns:
      A `tf.function` mapping a batch to a flat dict of scalar metrics:
      `losses/<name>`, `grad_norm/<opt>`, `learning_rate/<opt>`,
      `skipped/<opt>`, `loss_scale/<opt>` (float16 only), `skipped_steps`,
      `consecutive_skips`, `items` (global batch size); with several workers also
      `stop_votes` (> 0 when some worker asked to stop before this step, see
      `request_stop`).
    """
    replica_fn = self._replica_train_step
    if self.config.xla:
      replica_fn = tf.function(replica_fn, jit_compile=True, reduce_retracing=True)
    step_fn = replica_fn
    if self._stop_vote is not None:
      def step_fn(batch):
        losses, applied = replica_fn(batch)
        # Every local replica reads the same vote, so each worker counts num_local_replicas
        # times; only "> 0" matters. tf.identity puts the read on the replica's device (a
        # convert_to_tensor read leaves the all-reduce no destination).
        votes = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.identity(self._stop_vote))
        return losses, applied, votes

    @tf.function(input_signature=[relaxed_spec(element_spec)], reduce_retracing=True)
    def train_fn(batch):
      outputs = self.strategy.run(step_fn, args=(batch,))
      losses, applied = outputs[:2]
      metrics = {}
      for name, value in losses.items():
        metrics[f"losses/{name}"] = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM, value, axis=None)
      any_skipped = tf.constant(False)
      for name, info in applied.items():
        # Identical on every replica (computed from all-reduced gradients).
        grad_norm = self.strategy.experimental_local_results(info["grad_norm"])[0]
        skipped = self.strategy.experimental_local_results(info["skipped"])[0]
        any_skipped = tf.logical_or(any_skipped, skipped)
        metrics[f"grad_norm/{name}"] = grad_norm
        metrics[f"skipped/{name}"] = tf.cast(skipped, tf.float32)
        optimizer = self.optimizers[name]
        metrics[f"learning_rate/{name}"] = optimizers_lib.current_learning_rate(optimizer)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
          metrics[f"loss_scale/{name}"] = tf.convert_to_tensor(optimizer.dynamic_scale)
      self.step.assign_add(1)
      self.skipped_steps.assign_add(tf.cast(any_skipped, tf.int64))
      self.consecutive_skips.assign(
          tf.where(any_skipped, self.consecutive_skips + 1, tf.zeros([], tf.int64)))
      metrics["skipped_steps"] = tf.identity(self.skipped_steps)
      metrics["consecutive_skips"] = tf.identity(self.consecutive_skips)
      metrics["items"] = tf.cast(tf.shape(_first_leaf(batch))[0], tf.float32)
      if self._stop_vote is not None:
        metrics["stop_votes"] = self.strategy.experimental_local_results(outputs[2])[0]
      return metrics

    self._train_fn = train_fn
    return train_fn

  def request_stop(self):
    """Votes to stop the cluster (multi-worker): the next step's `stop_votes` is > 0 on
    every worker, so all of them stop after that same step and save together."""
    if self._stop_vote is not None:
      self._stop_vote.assign(1.0)

  # ------------------------------------------------------------------ eval
  def _replica_eval_step(self, batch):
    ctx = self._context(training=False)
    outputs = self.task.eval_step(_replica_slice(batch, self.num_replicas), ctx)
    return {k: tf.cast(v, tf.float32) for k, v in (outputs or {}).items()}

  def eval_step_fn(self, element_spec):
    """The traced validation step: batch → dict name → scalar (summed over replicas)."""
    @tf.function(input_signature=[relaxed_spec(element_spec)], reduce_retracing=True)
    def eval_fn(batch):
      outputs = self.strategy.run(self._replica_eval_step, args=(batch,))
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
              for k, v in outputs.items()}
    self._eval_fn = eval_fn
    return eval_fn

  def has_eval(self) -> bool:
    """Whether the task overrides `eval_step`."""
    return type(self.task).eval_step is not Task.eval_step

  # ------------------------------------------------------------------ state
  def reset_constant_learning_rates(self):
    """Sets constant learning rates from the config, after a checkpoint restore.

    A constant rate is an optimizer variable, so restoring a checkpoint brings
    back the old value; a resumed run that was allowed to change the rate must
    see the new one. (Schedules are recomputed from the config anyway.)
    """
    for name, optimizer in self.optimizers.items():
      opt_config = self.optimizer_configs[name]
      if opt_config.schedule == "constant":
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        inner.learning_rate = opt_config.learning_rate  # assigns the variable

  def checkpoint_objects(self) -> dict:
    """Trackables saved in a training checkpoint (the iterator is added by the loop)."""
    return {
        "modules": checkpoints_lib.modules_checkpoint(self.modules),
        "optimizers": tf.train.Checkpoint(**self.optimizers),
        "step": self.step,
        "skipped_steps": self.skipped_steps,
        "consecutive_skips": self.consecutive_skips,
        "best_metric": self.best_metric,
        "rng": self.rng,
    }

  def named_variables(self):
    """(name, variable) for every float variable of the modules and optimizers."""
    seen = set()
    for group, owners in (("modules", self.modules), ("optimizers", self.optimizers)):
      for owner_name, owner in owners.items():
        for v in owner.variables:
          key = id(v)
          if key in seen:
            continue
          seen.add(key)
          dtype = tf.as_dtype(getattr(v, "dtype", "float32"))
          if dtype.is_floating:
            name = getattr(v, "path", None) or v.name
            yield f"{group}/{owner_name}/{name}", v

  def nonfinite_variables(self) -> list[str]:
    """Names of module/optimizer variables holding NaN or Inf (empty when all finite)."""
    named = list(self.named_variables())
    # Eager, a few small ops per variable (0.08 s for FastPitch ljspeech's 543, 0.12 s for
    # HiFi-GAN V1's 1180, per save): a traced check cost ~1 s of tracing at every start
    # (the save path is warmed up before the first step).
    flags = tf.stack([tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))
                      for _, v in named]).numpy()  # graph-ok: host-side check before saving.
    bad = [name for (name, _), ok in zip(named, flags) if not ok]
    if bad:
      logging.error("non-finite variables: %s", bad)
    return bad

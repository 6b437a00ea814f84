"""Trainer mechanics: graph purity, retracing, XLA, the GAN step order, schedules, errors."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.models import registry
from tfspeech.models.toy.gan import ToyGanTask
from tfspeech.models.toy.regression import ToyTask
from tfspeech.testing import assert_no_python_ops
from tfspeech.training import Trainer
from tfspeech.training.config import OptimizerConfig
from tfspeech.training.optimizers import make_schedule


def make(task_class, model_changes=None, **changes):
  model_config = dataclasses.replace(task_class.preset("tiny"), **(model_changes or {}))
  task = task_class(model_config)
  config = dataclasses.replace(task_class.default_train_config("tiny"), **changes)
  return task, config, Trainer(task, config)


def xla_compiled_functions(concrete):
  """Names of the library functions of a traced graph marked for XLA compilation."""
  library = concrete.graph.as_graph_def().library.function
  return [f.signature.name for f in library
          if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]


@pytest.mark.parametrize("task_class", [ToyTask, ToyGanTask])
def test_traced_steps_have_no_python_ops_and_unknown_dims(task_class):
  task, config, trainer = make(task_class)
  data = task.dataset("", "train", config)
  concrete = trainer.train_step_fn(data.element_spec).get_concrete_function()
  assert_no_python_ops(concrete)
  for spec in tf.nest.flatten(concrete.structured_input_signature):
    assert all(d is None for d in spec.shape.as_list()), spec
  if trainer.has_eval():
    eval_data = task.dataset("", "eval", config)
    assert_no_python_ops(trainer.eval_step_fn(eval_data.element_spec).get_concrete_function())


def test_variable_length_batches_do_not_retrace():
  task, config, trainer = make(ToyTask)
  data = task.dataset("", "train", config)
  step = trainer.train_step_fn(data.element_spec)
  lengths = set()
  for batch in data.take(5):
    lengths.add(int(batch["inputs"].shape[1]))
    step(batch)
  assert len(lengths) > 1
  assert step.experimental_get_tracing_count() == 1


def test_xla_matches_plain_graph():
  results = []
  for xla in (False, True):
    # noise_std=0: XLA draws a different (equally valid) random stream.
    task, config, trainer = make(ToyTask, {"noise_std": 0.0}, xla=xla)
    data = task.dataset("", "train", config)
    step = trainer.train_step_fn(data.element_spec)
    losses = [float(step(batch)["losses/loss"]) for batch in data.take(3)]
    # (Keras compiles some convolutions with XLA on its own; look for our step.)
    compiled = xla_compiled_functions(step.get_concrete_function())
    assert any("replica_train_step" in name for name in compiled) == xla, compiled
    results.append((losses, [v.numpy() for v in trainer.modules["net"].trainable_variables]))
  (loss_a, weights_a), (loss_b, weights_b) = results
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5, atol=1e-6)
  for a, b in zip(weights_a, weights_b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gan_generator_update_goes_through_updated_discriminator():
  lr = 0.5
  task, config, trainer = make(ToyGanTask, optimizer="sgd", beta_1=0.0, learning_rate=lr,
                               lr_schedule="constant", weight_decay=0.0)
  generator, discriminator = task.modules["generator"], task.modules["discriminator"]
  batch = next(iter(task.dataset("", "train", config)))
  initial = [v.numpy() for v in generator.variables + discriminator.variables]
  trainer.train_step_fn(task.dataset("", "train", config).element_spec)(batch)
  got = [v.numpy() for v in generator.trainable_variables]

  def manual(update_discriminator_first):
    for v, value in zip(generator.variables + discriminator.variables, initial):
      v.assign(value)
    cond, real = batch["cond"], batch["signal"]
    score = lambda x: discriminator(tf.concat([x, cond], -1))
    with tf.GradientTape() as g_tape:
      fake = generator(cond)
    with tf.GradientTape() as d_tape:
      d_loss = tf.reduce_mean(tf.square(score(real) - 1) + tf.square(score(tf.stop_gradient(fake))))
    d_grads = d_tape.gradient(d_loss, discriminator.trainable_variables)
    if update_discriminator_first:
      for v, g in zip(discriminator.trainable_variables, d_grads):
        v.assign_sub(lr * g)
    with g_tape:
      g_loss = tf.reduce_mean(tf.square(score(fake) - 1)) + \
          task.config.recon_weight * tf.reduce_mean(tf.abs(fake - real))
    g_grads = g_tape.gradient(g_loss, generator.trainable_variables)
    return [(v - lr * g).numpy() for v, g in zip(generator.trainable_variables, g_grads)]

  for a, b in zip(got, manual(update_discriminator_first=True)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  stale = manual(update_discriminator_first=False)
  assert max(np.max(np.abs(a - b)) for a, b in zip(got, stale)) > 1e-4


@pytest.mark.parametrize("schedule,reference", [
    ("constant", lambda s: 0.1),
    ("exponential", lambda s: max(0.1 * 0.5 ** (s / 10), 0.02)),
    ("cosine", lambda s: 0.1 * (s + 1) / 5 if s < 5 else
     0.02 + 0.5 * 0.08 * (1 + np.cos(np.pi * min((s - 5) / 10, 1.0)))),
    ("noam", lambda s: 0.1 * 5 ** 0.5 * min((s + 1) * 5 ** -1.5, (s + 1) ** -0.5)),
])
def test_schedules_match_closed_form(schedule, reference):
  config = OptimizerConfig(learning_rate=0.1, schedule=schedule, warmup_steps=5,
                           decay_steps=10, decay_rate=0.5, min_learning_rate=0.02)
  lr = make_schedule(config)
  for step in (0, 3, 5, 9, 14, 40):
    value = float(lr(step)) if callable(lr) else lr
    assert value == pytest.approx(reference(step), rel=1e-5), step


def test_logged_learning_rate_follows_each_optimizers_schedule():
  task, config, trainer = make(ToyGanTask, model_changes={"discriminator_lr_scale": 0.5},
                               learning_rate=0.1, lr_schedule="exponential", decay_steps=2,
                               decay_rate=0.5)
  data = task.dataset("", "train", config)
  step = trainer.train_step_fn(data.element_spec)
  for i, batch in enumerate(data.take(3)):
    metrics = step(batch)
  # After 3 updates each optimizer's next rate is lr · 0.5^(3/2).
  assert float(metrics["learning_rate/generator"]) == pytest.approx(0.1 * 0.5 ** 1.5, rel=1e-5)
  assert float(metrics["learning_rate/discriminator"]) == pytest.approx(0.05 * 0.5 ** 1.5,
                                                                        rel=1e-5)


class TwiceTask(ToyTask):
  def train_step(self, batch, ctx):
    with tf.GradientTape(persistent=True) as tape:
      loss = ctx.mean(tf.square(self.modules["net"](batch["inputs"])))
    ctx.apply("main", loss, tape)
    ctx.apply("main", loss, tape)
    return {"loss": loss}


class WrongNameTask(ToyTask):
  def train_step(self, batch, ctx):
    with tf.GradientTape() as tape:
      loss = ctx.mean(tf.square(self.modules["net"](batch["inputs"])))
    ctx.apply("generator", loss, tape)
    return {"loss": loss}


class NoGradientTask(ToyTask):
  def train_step(self, batch, ctx):
    with tf.GradientTape() as tape:
      loss = ctx.mean(tf.square(batch["inputs"]))
    ctx.apply("main", loss, tape)
    return {"loss": loss}


@pytest.mark.parametrize("task_class,message", [
    (TwiceTask, "applied twice in one step"),
    (WrongNameTask, r"unknown optimizer 'generator'; the task declares \['main'\]"),
    (NoGradientTask, "has no gradient with respect to .*kernel"),
])
def test_step_context_misuse_fails_at_trace_time(task_class, message):
  task, config, trainer = make(task_class)
  data = task.dataset("", "train", config)
  with pytest.raises(ValueError, match=message):
    trainer.train_step_fn(data.element_spec).get_concrete_function()


def test_batch_size_must_divide_over_replicas():
  task = ToyTask(ToyTask.preset("tiny"))
  config = dataclasses.replace(ToyTask.default_train_config("tiny"), batch_size=3)
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  assert Trainer(task, config, strategy).num_replicas == 1
  assert registry.get("toy") is ToyTask


def _apply_function(optimizer, variables):
  @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
  def step(seed):
    optimizer.apply([tf.random.stateless_normal(v.shape, tf.stack([seed, i]))
                     for i, v in enumerate(variables)], variables)
  return step


def _five_traced_applies(build, initial):
  """Builds an optimizer over Keras variables set to `initial`, applies five random gradients
  with one traced function; returns (the traced graph's ops, variables + both slots)."""
  import keras  # pylint: disable=import-outside-toplevel
  variables = [keras.Variable(value) for value in initial]
  optimizer = build()
  optimizer.build(variables)
  step = _apply_function(optimizer, variables)
  for seed in range(5):
    step(tf.constant(seed))
  graph = step.get_concrete_function().graph
  return (graph.get_operations(),
          [v.numpy() for v in variables + optimizer._momentums + optimizer._velocities])


_SHAPES = [(3, 4), (5,), (2, 1, 3)]


@pytest.mark.parametrize("name,decay", [("adam", 0.0), ("adamw", 0.01)])
def test_fused_adam_updates_like_keras_adam_with_one_op_per_variable(name, decay):
  """make_optimizer's Adam/AdamW update each variable with one ResourceApplyAdam (Keras's own
  update is ~35 ops per variable, half of a GAN step's traced graph) and give Keras's values
  and slots over several steps of a traced apply."""
  import keras  # pylint: disable=import-outside-toplevel
  from tfspeech.training import optimizers  # pylint: disable=import-outside-toplevel
  config = OptimizerConfig(name=name, learning_rate=1e-2, beta_1=0.8, beta_2=0.99,
                           epsilon=1e-7, weight_decay=decay)
  keras_class = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW}[name]
  rng = np.random.default_rng(0)
  initial = [rng.standard_normal(shape).astype(np.float32) for shape in _SHAPES]
  builds = (lambda: optimizers.make_optimizer(config, "main"),
            lambda: keras_class(learning_rate=1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-7,
                                **({"weight_decay": decay} if decay else {})))
  (fused_graph, fused), (keras_graph, reference) = [_five_traced_applies(build, initial)
                                                    for build in builds]
  assert [op.type for op in fused_graph].count("ResourceApplyAdam") == len(initial)
  assert len(fused_graph) < len(keras_graph) - 15 * len(initial), (len(fused_graph),
                                                                   len(keras_graph))
  for got, expected in zip(fused, reference):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_fused_lamb_updates_like_keras_lamb_in_two_xla_calls_per_variable(decay):
  """make_optimizer's LAMB updates each variable, decay included, with two XLA calls (the
  moments and direction; the final update) and the norms as two L2Loss ops (Keras: 62 graph
  ops per variable, 68 with the decay) and gives Keras's values and slots, the trust ratio's
  zero-norm cases included (a zero variable)."""
  import keras  # pylint: disable=import-outside-toplevel
  from tfspeech.training import optimizers  # pylint: disable=import-outside-toplevel
  config = OptimizerConfig(name="lamb", learning_rate=1e-2, beta_1=0.8, beta_2=0.99,
                           epsilon=1e-6, weight_decay=decay)
  rng = np.random.default_rng(0)
  initial = [rng.standard_normal(shape).astype(np.float32) for shape in _SHAPES]
  initial[1][:] = 0.0  # |w| = 0: ratio 1
  builds = (lambda: optimizers.make_optimizer(config, "main"),
            lambda: keras.optimizers.Lamb(learning_rate=1e-2, beta_1=0.8, beta_2=0.99,
                                          epsilon=1e-6, weight_decay=decay or None))
  (fused_graph, fused), (keras_graph, reference) = [_five_traced_applies(build, initial)
                                                    for build in builds]
  # Two calls of XLA-compiled element-wise work and two norms per variable; the rest of the
  # update works on scalars or on one vector entry per variable, and is not repeated per
  # variable.
  calls = [op for op in fused_graph if op.type == "StatefulPartitionedCall"]
  assert len(calls) == 2 * len(initial)
  assert all(op.get_attr("_XlaMustCompile") for op in calls)
  types = [op.type for op in fused_graph]
  assert types.count("L2Loss") == 2 * len(initial)
  elementwise = [op for op in fused_graph
                 if op.type in {"Mul", "Sub", "AddV2", "RealDiv", "Sqrt", "Square", "Cast"}
                 and "stateless_random_normal" not in op.name]
  assert all(op.outputs[0].shape in ([], [len(initial)]) for op in elementwise)
  assert len(elementwise) < 2 * len(initial) + 10, [op.name for op in elementwise]
  assert len(fused_graph) < len(keras_graph) - 15 * len(initial), (len(fused_graph),
                                                                   len(keras_graph))
  for got, expected in zip(fused, reference):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

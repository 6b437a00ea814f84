"""Model registry, presets, parameter counts and load_run."""
import dataclasses

import keras
import numpy as np
import pytest

from tfspeech.models import registry
from tfspeech.models.toy import ToyConfig, ToyGanTask, ToyTask
from tfspeech.training import api


def test_builtin_toy_tasks_resolve_and_list():
  assert registry.get("toy") is ToyTask and registry.get("toy_gan") is ToyGanTask
  assert {"toy", "toy_gan"} <= set(registry.names())
  with pytest.raises(KeyError, match="unknown model 'nope'; registered models: .*'toy'"):
    registry.get("nope")
  with pytest.raises(KeyError, match=r"no preset 'huge'; available: \['small', 'tiny'\]"):
    ToyTask.preset("huge")


def test_register_validates_tasks():
  with pytest.raises(TypeError, match="expects a Task subclass"):
    registry.register("bad")(object)

  class NoTiny(ToyTask):
    presets = {"small": ToyConfig()}
  with pytest.raises(TypeError, match="'tiny' preset"):
    registry.register("no_tiny")(NoTiny)

  class Other(ToyTask):
    pass
  with pytest.raises(ValueError, match="'toy' is already registered"):
    registry.register("toy")(Other)
  try:
    assert registry.register("other_toy")(Other) is Other
    assert registry.get("other_toy") is Other and Other.name == "other_toy"
  finally:
    registry.unregister("other_toy")


def test_unbuilt_module_is_rejected():
  class Lazy(ToyTask):
    def build(self):
      return {"net": keras.layers.Dense(3)}
  with pytest.raises(ValueError, match="module 'net' has no variables yet"):
    Lazy(ToyTask.preset("tiny")).build_modules()


def test_count_parameters_matches_layer_arithmetic():
  config = ToyTask.preset("tiny")
  counts = api.count_parameters(ToyTask(config).build_modules())
  conv = config.kernel_size * config.in_channels * config.hidden + config.hidden
  dense = config.hidden * config.out_channels + config.out_channels
  assert counts == {"net": {"trainable": conv + dense, "non_trainable": 0}}

  gan = ToyGanTask.preset("tiny")
  counts = api.count_parameters(ToyGanTask(gan).build_modules(), depth=1)
  h, c, s = gan.hidden, gan.cond_dim, gan.signal_dim
  assert counts["generator"]["trainable"] == (c * h + h) + (h * h + h) + (h * s + s)
  assert counts["discriminator"]["trainable"] == ((s + c) * h + h) + (h + 1)
  assert counts["generator/out"]["trainable"] == h * s + s
  table = api.format_parameter_table(counts)
  total = counts["generator"]["trainable"] + counts["discriminator"]["trainable"]
  assert f"{total:,}" in table.splitlines()[-1]


def test_load_run_restores_trained_weights(tmp_path):
  workdir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="not a tfspeech run directory"):
    api.load_run(workdir)
  result = api.train("toy_gan", "tiny", workdir=workdir, overrides={"max_steps": 3},
                     progress=False, handle_signals=False)
  loaded = api.load_run(workdir)
  assert loaded.step == 3 and loaded.checkpoint == result.checkpoint
  assert loaded.config.model == "toy_gan" and loaded.config.train.max_steps == 3
  fresh = api.load_run(workdir, restore=False)
  moved = [not np.array_equal(a.numpy(), b.numpy())
           for a, b in zip(loaded.modules["generator"].weights, fresh.modules["generator"].weights)]
  assert any(moved)  # restored weights are the trained ones, not a fresh init
  again = api.load_run(workdir, result.checkpoint)
  for a, b in zip(loaded.modules["generator"].weights, again.modules["generator"].weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_default_optimizer_covers_all_modules():
  specs = ToyTask(ToyTask.preset("tiny")).optimizers(ToyTask.default_train_config("tiny"))
  assert specs == {"main": registry.OptimizerSpec()}
  gan = ToyGanTask(dataclasses.replace(ToyGanTask.preset("tiny"), discriminator_lr_scale=0.5))
  specs = gan.optimizers(ToyGanTask.default_train_config("tiny"))
  assert specs["discriminator"].config.learning_rate == 0.5 * specs["generator"].config.learning_rate

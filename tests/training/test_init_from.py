"""Fine-tuning is trainer code: `TrainConfig.init_from=WORKDIR[:modules]` for any task."""
import dataclasses
import json
import os

import numpy as np
import pytest

from tfspeech import config as cfg
from tfspeech import training
from tfspeech.models import registry
from tfspeech.training import Trainer, init_from
from tfspeech.training.config import RunConfig, canonical_key, load_run_config

SMALL = {"log_every": 1, "eval_every": 0, "summary_every": 0, "checkpoint_every": 1000}


def source_run(workdir, model="toy_gan", steps=3, **model_changes):
  """Trains `steps` steps of `model` in `workdir`; returns {weight path: value} after them."""
  task_class = registry.get(model)
  overrides = dict(SMALL, max_steps=steps, **model_changes)
  training.train(model, "tiny", workdir=workdir, overrides=overrides, progress=False,
                 handle_signals=False)
  loaded = training.load_run(workdir)
  assert type(loaded.task) is task_class
  return weights(loaded.modules)


def weights(modules):
  return {f"{n}/{i}": v.numpy() for n, m in modules.items() for i, v in enumerate(m.weights)}


def new_trainer(model="toy_gan", **train_changes):
  task_class = registry.get(model)
  config = dataclasses.replace(task_class.default_train_config("tiny"), **SMALL,
                               **train_changes)
  return Trainer(task_class(task_class.preset("tiny")), config)


def assert_loaded(got, want, fresh, loaded_modules):
  for key in want:
    expected = want[key] if key.split("/")[0] in loaded_modules else fresh[key]
    np.testing.assert_array_equal(got[key], expected, err_msg=key)
  # The source moved away from a fresh initialisation, so equality is informative.
  assert any(not np.array_equal(want[k], fresh[k]) for k in want)


def test_parse_spec():
  assert init_from.parse("runs/a") == ("runs/a", None)
  assert init_from.parse("runs/a:generator") == ("runs/a", ("generator",))
  assert init_from.parse("runs/a:generator, mpd") == ("runs/a", ("generator", "mpd"))
  assert init_from.parse("runs/a:mpd+msd") == ("runs/a", ("mpd", "msd"))
  assert init_from.parse("gs://bucket/run") == ("gs://bucket/run", None)


@pytest.fixture(scope="module")
def gan_source(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("source"))
  return workdir, source_run(workdir)


def test_every_module_and_optionally_the_optimizers(gan_source):
  source, want = gan_source
  trainer = new_trainer(init_from=source)
  fresh = weights(trainer.modules)
  assert init_from.initialize(trainer).endswith("ckpt-3")
  assert_loaded(weights(trainer.modules), want, fresh, ("generator", "discriminator"))
  assert int(trainer.optimizers["generator"].iterations.numpy()) == 0

  trainer = new_trainer(init_from=source, init_optimizers=True, learning_rate=0.123)
  init_from.initialize(trainer)
  assert int(trainer.optimizers["generator"].iterations.numpy()) == 3
  # The schedule continues from the source's step, with this run's peak rate.
  settings = trainer.optimizer_configs["generator"]
  assert settings.learning_rate == 0.123 and settings.schedule != "constant"
  # A constant rate is an optimizer variable: the source's optimizers (scheduled) hold
  # other variables, and loading them would fill the wrong slots.
  with pytest.raises(init_from.InitFromError, match="optimizer 'discriminator': 9 variables "
                     "in the source, 10 in this run"):
    init_from.initialize(new_trainer(init_from=source, init_optimizers=True,
                                     lr_schedule="constant"))


def test_named_modules_only(gan_source):
  source, want = gan_source
  trainer = new_trainer(init_from=f"{source}:generator")
  fresh = weights(trainer.modules)
  init_from.initialize(trainer)
  assert_loaded(weights(trainer.modules), want, fresh, ("generator",))


def test_nothing_to_do_without_init_from():
  trainer = new_trainer()
  fresh = weights(trainer.modules)
  assert init_from.initialize(trainer) is None
  for key, value in weights(trainer.modules).items():
    np.testing.assert_array_equal(value, fresh[key])


def test_refusals_name_the_problem(gan_source, tmp_path):
  source, _ = gan_source
  with pytest.raises(init_from.InitFromError, match=r"no module\(s\) \['mpd'\]"):
    init_from.initialize(new_trainer(init_from=f"{source}:mpd"))
  with pytest.raises(FileNotFoundError, match="neither a run directory nor a checkpoint"):
    init_from.initialize(new_trainer(init_from=str(tmp_path / "missing")))
  with pytest.raises(FileNotFoundError, match="no checkpoint in"):
    init_from.initialize(new_trainer(init_from=str(tmp_path)))
  with pytest.raises(init_from.InitFromError, match=r"\['discriminator'\] also update modules"):
    init_from.initialize(new_trainer(init_from=f"{source}:generator", init_optimizers=True))
  with pytest.raises(ValueError, match="init_optimizers=true needs init_from"):
    new_trainer(init_optimizers=True)


def test_shape_mismatch_is_refused_before_anything_is_assigned(gan_source, tmp_path):
  source, _ = gan_source
  wide = str(tmp_path / "wide")
  source_run(wide, steps=1, hidden=12)
  trainer = new_trainer(init_from=wide)
  fresh = weights(trainer.modules)
  with pytest.raises(init_from.InitFromError) as error:
    init_from.initialize(trainer)
  message = str(error.value)
  assert "generator/generator/dense_0/kernel: (4, 12) in the source, (4, 8) in this run" \
      in message
  assert "discriminator/discriminator/out/kernel: (12, 1) in the source, (8, 1)" in message
  assert "init_from=WORKDIR:module+module" in message
  for key, value in weights(trainer.modules).items():
    np.testing.assert_array_equal(value, fresh[key], err_msg=key)
  # A checkpoint prefix serves as well as a workdir.
  checkpoint = os.path.join(source, "checkpoints", "ckpt-3")
  assert init_from.initialize(new_trainer(init_from=checkpoint)) == checkpoint


def test_train_initialises_new_runs_only(gan_source, tmp_path, monkeypatch):
  source, want = gan_source
  calls = []
  original = init_from.initialize
  monkeypatch.setattr(init_from, "initialize", lambda t: calls.append(original(t)))
  workdir = str(tmp_path / "finetune")
  training.train("toy_gan", "tiny", workdir=workdir, progress=False, handle_signals=False,
                 overrides=dict(SMALL, max_steps=1, init_from=source, learning_rate=1e-6))
  assert len(calls) == 1 and calls[0].endswith("ckpt-3")
  got = weights(training.load_run(workdir).modules)
  for key in want:  # One step at a tiny rate from the source weights.
    np.testing.assert_allclose(got[key], want[key], atol=1e-4, err_msg=key)
  training.train("toy_gan", workdir=workdir, progress=False, handle_signals=False,
                 overrides={"max_steps": 2}, allow_changes=("max_steps",))
  assert len(calls) == 1  # The resume restored its own checkpoint.


def test_a_missing_source_fails_before_the_workdir_is_written(tmp_path):
  workdir = tmp_path / "new"
  with pytest.raises(FileNotFoundError, match="neither a run directory nor a checkpoint"):
    training.train("toy", "tiny", workdir=str(workdir), progress=False, handle_signals=False,
                   overrides=dict(SMALL, max_steps=1, init_from=str(tmp_path / "typo")))
  assert not (workdir / "config.json").exists()


def test_old_hifigan_finetune_keys_read_as_init_from(tmp_path):
  hifigan = registry.get("hifigan")
  run = RunConfig(model="hifigan", preset="tiny", model_config=hifigan.preset("tiny"),
                  train=hifigan.default_train_config("tiny"))
  data = run.to_dict()
  # config.json of a run started before fine-tuning moved into the trainer.
  data["model_config"].update(finetune_from="runs/pretrained", finetune_optimizers=True)
  del data["train"]["init_from"], data["train"]["init_optimizers"]
  os.makedirs(tmp_path / "old")
  (tmp_path / "old" / "config.json").write_text(json.dumps(data))
  loaded = load_run_config(str(tmp_path / "old"), lambda name: registry.get(name).config_class)
  assert (loaded.train.init_from, loaded.train.init_optimizers) == ("runs/pretrained", True)
  assert loaded.model_config == hifigan.preset("tiny")
  # The old override key still works, and lands in the train config.
  assert canonical_key("finetune_from", hifigan.config_class) == "train.init_from"
  resolved = training.resolve_config("hifigan", "tiny", overrides={"finetune_from": "runs/x"})
  assert resolved.run.train.init_from == "runs/x"
  # Both names with different values: refused, not silently resolved.
  data["train"]["init_from"] = "runs/other"
  with pytest.raises(cfg.ConfigError, match="disagree"):
    RunConfig.from_dict(data, hifigan.config_class)

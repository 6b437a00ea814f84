"""Configs: exact JSON round trip, override parsing, resume refusal with a diff."""
import dataclasses
import json
from typing import Optional

import pytest

from tfspeech import config as cfg
from tfspeech.models import registry
from tfspeech.training import api
from tfspeech.training.config import (ConfigMismatchError, RunConfig, TrainConfig,
                                      apply_run_overrides, load_run_config,
                                      resolve_run_config, write_run_config)


@dataclasses.dataclass(frozen=True)
class Nested:
  rates: tuple[int, ...] = (8, 8, 2, 2)
  dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5))
  gain: float = 0.1
  name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Outer:
  inner: Nested = Nested()
  flag: bool = True
  scale: float = cfg.safe_field(1.0 / 3.0)


def test_round_trip_is_exact_for_nested_tuples_and_odd_floats():
  config = Outer(Nested(rates=(5, 4), gain=0.1 + 0.2, name="x"), flag=False, scale=1e-300)
  text = cfg.to_json(config)
  back = cfg.from_json(Outer, text)
  assert back == config
  assert isinstance(back.inner.rates, tuple) and isinstance(back.inner.dilations[0], tuple)
  assert back.inner.gain == 0.1 + 0.2  # not 0.3: repr round-trips the float exactly


@pytest.mark.parametrize("model", ["toy", "toy_gan"])
def test_every_preset_run_config_round_trips(model):
  task = registry.get(model)
  for preset, model_config in task.presets.items():
    run = RunConfig(model=model, preset=preset, model_config=model_config,
                    train=task.default_train_config(preset), data_dir="/data/x")
    back = RunConfig.from_dict(json.loads(run.to_json()), task.config_class)
    assert back == run
    assert back.to_json() == run.to_json()


def test_from_dict_rejects_wrong_types_and_unknown_fields():
  with pytest.raises(cfg.ConfigError, match=r"inner.rates\[1\]: expected an integer"):
    cfg.from_dict(Outer, {"inner": {"rates": [1, "x"]}})
  with pytest.raises(cfg.ConfigError, match="unknown field.*'bogus'.*valid fields"):
    cfg.from_dict(Outer, {"bogus": 1})
  with pytest.raises(cfg.ConfigError, match="flag: expected true/false"):
    cfg.from_dict(Outer, {"flag": 1})


def test_parse_overrides_keeps_commas_inside_brackets():
  parsed = cfg.parse_overrides("inner.rates=(8, 8,2),scale=0.5, inner.name='a,b'")
  assert parsed == {"inner.rates": "(8, 8,2)", "scale": "0.5", "inner.name": "'a,b'"}
  config = cfg.apply_overrides(Outer(), parsed)
  assert config.inner.rates == (8, 8, 2) and config.scale == 0.5 and config.inner.name == "a,b"
  assert cfg.apply_overrides(Outer(), {"inner.name": "none", "flag": "false"}) == \
      Outer(Nested(name=None), flag=False)
  with pytest.raises(cfg.ConfigError, match="not of the form key=value"):
    cfg.parse_overrides("scale")


def test_unknown_override_names_valid_fields_and_suggests():
  run = _run()
  with pytest.raises(cfg.ConfigError) as error:
    apply_run_overrides(run, {"learning_rat": "1e-3"})
  message = str(error.value)
  assert "Did you mean 'learning_rate'" in message and "batch_size" in message
  with pytest.raises(cfg.ConfigError, match="train.batch_size: expected an integer"):
    apply_run_overrides(run, {"batch_size": "eight"})
  with pytest.raises(cfg.ConfigError, match="'sgdx' is not one of"):
    apply_run_overrides(run, {"optimizer": "sgdx"})
  changed = apply_run_overrides(run, {"model.hidden": "5", "train.batch_size": 4,
                                      "lr_schedule": "cosine"})
  assert (changed.model_config.hidden, changed.train.batch_size) == (5, 4)
  assert changed.train.lr_schedule == "cosine"


def test_invalid_values_fail_with_field_name():
  with pytest.raises(ValueError, match="batch_size must be > 0"):
    TrainConfig(batch_size=0)
  with pytest.raises(cfg.ConfigError, match="noam schedule needs warmup_steps"):
    apply_run_overrides(_run(), {"lr_schedule": "noam"})


def _run(**train):
  task = registry.get("toy")
  return RunConfig(model="toy", preset="tiny", model_config=task.preset("tiny"),
                   train=dataclasses.replace(task.default_train_config("tiny"), **train))


def test_resume_refuses_conflicts_with_readable_diff():
  stored = _run()
  requested = apply_run_overrides(stored, {"batch_size": "4", "learning_rate": "0.5",
                                           "model.hidden": "99"})
  with pytest.raises(ConfigMismatchError) as error:
    resolve_run_config(stored, requested, allow_changes=("learning_rate", "hidden"))
  message = str(error.value)
  assert "train.batch_size: 8 → 4  [fixed for the life of a run]" in message
  assert "model.hidden: 8 → 99  [fixed for the life of a run]" in message
  assert "train.learning_rate: 0.01 → 0.5\n" in message + "\n"
  assert "start a new workdir" in message


def test_safe_change_needs_explicit_consent():
  stored = _run()
  requested = apply_run_overrides(stored, {"learning_rate": "0.5", "max_steps": "999"})
  with pytest.raises(ConfigMismatchError, match="--allow_changes=max_steps,learning_rate"):
    resolve_run_config(stored, requested)
  with pytest.raises(ConfigMismatchError, match=r"--allow_changes=max_steps\)"):
    resolve_run_config(stored, requested, allow_changes=("learning_rate",))
  run, changes = resolve_run_config(stored, requested,
                                    allow_changes=("train.learning_rate", "max_steps"))
  assert run == requested
  assert [c.path for c in changes] == ["train.max_steps", "train.learning_rate"]
  assert resolve_run_config(stored, stored) == (stored, [])


def test_resolve_config_against_workdir(tmp_path):
  workdir = str(tmp_path)
  fresh = api.resolve_config("toy", "tiny", workdir=workdir, overrides={"batch_size": "4"})
  assert not fresh.resumed and fresh.run.train.batch_size == 4
  write_run_config(workdir, fresh.run)
  assert load_run_config(workdir, lambda name: registry.get(name).config_class) == fresh.run
  # Resuming needs neither the preset nor the original overrides.
  resumed = api.resolve_config("toy", workdir=workdir)
  assert resumed.resumed and resumed.run == fresh.run
  with pytest.raises(ConfigMismatchError, match="preset: \"tiny\" → \"small\""):
    api.resolve_config("toy", "small", workdir=workdir)
  with pytest.raises(ConfigMismatchError, match="model_name: 'toy' → 'toy_gan'"):
    api.resolve_config("toy_gan", "tiny", workdir=workdir)
  with pytest.raises(ConfigMismatchError, match="train.batch_size: 4 → 8"):
    api.resolve_config("toy", workdir=workdir, overrides={"batch_size": 8},
                       allow_changes=("batch_size",))
  ok = api.resolve_config("toy", workdir=workdir, overrides={"max_steps": 7},
                          allow_changes=api.parse_allow_changes("max_steps"))
  assert ok.run.train.max_steps == 7 and len(ok.changes) == 1


def test_override_keys_lists_safety():
  keys = api.override_keys("toy")
  assert "train.learning_rate (safe)" in keys and "train.batch_size" in keys
  assert "model.hidden" in keys and "model.noise_std (safe)" in keys

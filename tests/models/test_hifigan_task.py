"""The "hifigan" task: config, data checks, the traced GAN step, training, resume, fine-tuning."""
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import config as cfg
from tfspeech import training
from tfspeech.models import hifigan
from tfspeech.models import registry
from tfspeech.models.hifigan import hifigan_presets
from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.models.hifigan.hifigan_task import HifiGanTask, HifiGanTaskConfig
from tfspeech.testing import assert_no_python_ops
from tfspeech.training import Trainer, init_from
from tfspeech.training.checkpoints import Checkpoints
from tfspeech.training.config import RunConfig, write_run_config

# One MPD period instead of five: the same step, half the graph to trace.
SMALL = {"mpd_periods": (2,)}


@pytest.fixture(scope="module")
def prepared(tiny_prepared):
  """The bundled corpus prepared with the tfspeech-prepare defaults (english_characters):
  the session's copy, which these tests only read."""
  return tiny_prepared


def make_task(**changes):
  return HifiGanTask(dataclasses.replace(HifiGanTask.preset("tiny"), **changes))


def train_config(**changes):
  defaults = dict(log_every=1, eval_every=0, summary_every=0, checkpoint_every=1000)
  defaults.update(changes)
  return dataclasses.replace(HifiGanTask.default_train_config("tiny"), **defaults)


def read_scalars(logdir):
  """{tag: {step: value}} from every event file in `logdir`."""
  scalars = {}
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "scalars":
          scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def summary_tags(logdir):
  tags = set()
  for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


def trainer_state(trainer):
  values = {f"module/{n}/{i}": v.numpy() for n, m in trainer.modules.items()
            for i, v in enumerate(m.weights)}
  for name, optimizer in trainer.optimizers.items():
    for i, v in enumerate(optimizer.variables):
      values[f"optimizer/{name}/{i}/{v.name}"] = v.numpy()
  return values


# --------------------------------------------------------------------------- config


def test_one_config_class_and_one_preset_table():
  assert registry.get("hifigan") is HifiGanTask
  # The task's presets are the model's preset table, not a copy that could drift.
  assert HifiGanTask.presets is hifigan_presets.PRESETS is hifigan.PRESETS
  assert HifiGanTask.config_class is HifiGanConfig is HifiGanTaskConfig
  assert set(HifiGanTask.presets) == {"tiny", "v1", "v2", "v3"}
  for name, config in HifiGanTask.presets.items():
    assert cfg.from_dict(HifiGanConfig, cfg.to_dict(config)) == config
    assert hifigan.get_preset(name) is config and getattr(hifigan, name)() is config
    # Training settings live in TrainConfig only: no field of both.
    both = {f.name for f in dataclasses.fields(config)} & set(cfg.field_paths(
        training.TrainConfig))
    assert not both, both
  assert HifiGanTask.preset("v1").segment_size == 8192
  # TFRecord corpora resume with a fresh shuffle, unless asked for the exact iterator.
  assert HifiGanTask(HifiGanTask.preset("v1")).data_checkpoint == "reseed"
  assert make_task(data_checkpoint="symbolic").data_checkpoint == "symbolic"


def test_default_train_config_is_the_reference_recipe():
  assert HifiGanTask.default_train_config("v2") == HifiGanTask.default_train_config("v3") == \
      hifigan_presets.reference_train_config()
  config = HifiGanTask.default_train_config("v1")
  # jik876/hifi-gan config_v1.json + train.py: AdamW(2e-4, betas 0.8/0.99, torch's default
  # weight decay 0.01), ExponentialLR(0.999) per epoch of 12950 // 16 = 809 steps.
  assert (config.optimizer, config.learning_rate, config.beta_1, config.beta_2,
          config.weight_decay, config.batch_size) == ("adamw", 2e-4, 0.8, 0.99, 0.01, 16)
  assert (config.lr_schedule, config.decay_rate, config.decay_steps) == (
      "exponential", 0.999, 809)
  task = HifiGanTask(HifiGanTask.preset("v1"))
  specs = task.optimizers(config)
  assert specs["generator"].modules == ("generator",)
  assert specs["discriminator"].modules == ("mpd", "msd")


def test_override_keys_are_unambiguous():
  # Training settings live only in TrainConfig, so bare keys resolve.
  resolved = training.resolve_config(
      "hifigan", "tiny", overrides={"batch_size": "4", "upsample_initial_channel": "32",
                                    "init_from": "runs/x"})
  assert resolved.run.train.batch_size == 4
  assert resolved.run.model_config.upsample_initial_channel == 32
  assert resolved.run.train.init_from == "runs/x"


def test_old_run_config_json_still_loads(tmp_path):
  # config.json `model_config` of a run started before the task and network configs
  # merged (HifiGanTaskConfig then had these keys, fine-tuning included).
  old = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
         "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
         "resblock_dilation_sizes": [[1, 3]], "num_mels": 80, "segment_size": 2048,
         "mpd_periods": [2, 3, 5, 7, 11], "mpd_channels": [4, 8, 16, 16, 16],
         "msd_channels": [8, 8, 16, 16, 16, 16, 16], "msd_groups": [1, 4, 4, 4, 4, 4, 1],
         "eval_segment_size": None, "shuffle_buffer_size": 256, "data_checkpoint": "reseed",
         "finetune_from": "", "finetune_optimizers": False}
  data = RunConfig(model="hifigan", preset="tiny", model_config=HifiGanTask.preset("tiny"),
                   train=HifiGanTask.default_train_config("tiny")).to_dict()
  data["model_config"] = old
  for key in ("init_from", "init_optimizers"):
    del data["train"][key]
  run = RunConfig.from_dict(data, HifiGanConfig)
  assert run.model_config == HifiGanTask.preset("tiny")
  assert run.train == HifiGanTask.default_train_config("tiny")


def test_config_and_data_problems_name_the_fix(prepared):
  with pytest.raises(ValueError, match="eval_segment_size=1000 must be a positive multiple"):
    dataclasses.replace(HifiGanTask.preset("tiny"), eval_segment_size=1000)
  with pytest.raises(ValueError, match="segment_size=1000 must be a multiple"):
    dataclasses.replace(HifiGanTask.preset("tiny"), segment_size=1000)
  config = train_config()
  with pytest.raises(ValueError, match=r"80-bin mels .* --override=num_mels=80"):
    make_task(num_mels=64).dataset(prepared, "train", config)
  with pytest.raises(ValueError, match="hop length 256 .* prod\\(upsample_rates\\)=128"):
    make_task(upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4)).dataset(
        prepared, "train", config)
  with pytest.raises(ValueError, match="needs prepared data: pass --data"):
    make_task().dataset("", "train", config)


def test_corpus_facts_are_read_and_recorded_through_corpus_info(prepared, tmp_path):
  task = make_task()
  facts = task.data_info(prepared)
  raw = json.loads(open(os.path.join(prepared, "dataset.json"), encoding="utf-8").read())
  assert set(facts) == {"sample_rate", "hop_length", "n_mels", "mel_config", "mel_pad_value",
                        "counts"}
  for key in facts:
    assert facts[key] == raw[key], key
  assert task.sample_rate == raw["sample_rate"]
  # A dataset.json without its mel convention is refused naming the file.
  broken = tmp_path / "broken"
  broken.mkdir()
  del raw["mel_config"]
  (broken / "dataset.json").write_text(json.dumps(raw))
  with pytest.raises(ValueError, match=r"broken/dataset.json: does not record "
                     r"\['mel_config'\]"):
    make_task().data_info(str(broken))


def test_dataset_gives_aligned_segments(prepared):
  task = make_task()
  config = train_config()
  batch = next(iter(task.dataset(prepared, "train", config)))
  assert batch["audio"].shape == (config.batch_size, 2048)
  assert batch["mel"].shape == (config.batch_size, 2048 // 256, 80)
  info = task.data_info(prepared)
  assert info["mel_config"]["hop_length"] == 256 and info["counts"]["train"] > 0
  # Full validation utterances: mel frames cover the audio.
  eval_batch = next(iter(task.dataset(prepared, "eval", config)))
  assert eval_batch["audio"].shape[1] >= eval_batch["mel"].shape[1] * 256 > 2048
  # Or long segments, the same on every evaluation.
  task = make_task(eval_segment_size=4096)
  first, again = (next(iter(task.dataset(prepared, "eval", config))) for _ in range(2))
  assert first["audio"].shape == (2, 4096) and first["mel"].shape == (2, 16, 80)
  np.testing.assert_array_equal(first["audio"], again["audio"])


# --------------------------------------------------------------------------- steps


def test_traced_train_and_eval_steps_have_no_python_ops(prepared):
  task = make_task(**SMALL)
  config = train_config()
  trainer = Trainer(task, config)
  train_data = task.dataset(prepared, "train", config)
  concrete = trainer.train_step_fn(train_data.element_spec).get_concrete_function()
  assert_no_python_ops(concrete)
  for spec in tf.nest.flatten(concrete.structured_input_signature):
    assert all(d is None for d in spec.shape.as_list()), spec
  # Both optimisers update inside the one step.
  outputs = concrete.structured_outputs
  assert {"grad_norm/generator", "grad_norm/discriminator", "losses/d_loss", "losses/g_adv",
          "losses/g_feature_matching", "losses/g_mel", "losses/g_total",
          "losses/mel_l1"} <= set(outputs)
  eval_data = task.dataset(prepared, "eval", config)
  assert_no_python_ops(trainer.eval_step_fn(eval_data.element_spec).get_concrete_function())


@pytest.mark.slow
def test_tiny_preset_trains_with_falling_mel_error(prepared, tmp_path, fast_graphs):
  steps = 60
  workdir = str(tmp_path / "run")
  result = training.train(
      "hifigan", "tiny", data_dir=prepared, workdir=workdir,
      overrides={"max_steps": steps, "log_every": 1, "eval_every": steps,
                 "summary_every": steps, "checkpoint_every": steps},
      progress=False, handle_signals=False)
  assert result.final_step == steps and result.skipped_steps == 0
  mel_l1 = read_scalars(os.path.join(workdir, "train"))["losses/mel_l1"]
  curve = np.array([mel_l1[s] for s in range(1, steps + 1)])
  early, late = curve[:10].mean(), curve[-10:].mean()
  assert late < 0.7 * early, (early, late)
  for tag in ("d_loss", "g_adv", "g_feature_matching", "g_mel", "g_total"):
    assert np.isfinite(result.losses[tag]), tag
  # Validation on full held-out utterances, and the media summaries.
  assert 0 < result.eval_metrics["mel_l1"] < early
  tags = summary_tags(os.path.join(workdir, "eval"))
  assert {"audio/real", "audio/generated", "images/mel_input",
          "images/mel_generated", "losses/mel_l1"} <= tags


@pytest.mark.slow
def test_resume_restores_both_optimizers_exactly(prepared, tmp_path, fast_graphs):
  n = 3
  # "symbolic": the resumed run replays the exact batches (within the first epoch, where
  # TF 2.17 restores TFRecord iterators correctly), so curves can match value for value.
  overrides = {"max_steps": 2 * n, "log_every": 1, "checkpoint_every": n, "eval_every": 0,
               "summary_every": 0, "data_checkpoint": "symbolic", **SMALL}

  def run(workdir, stop):
    result = training.train("hifigan", "tiny", data_dir=prepared, workdir=workdir,
                            overrides=overrides, stop_at_step=stop, progress=False,
                            handle_signals=False)
    return result

  straight = str(tmp_path / "straight")
  assert run(straight, 2 * n).final_step == 2 * n
  split = str(tmp_path / "split")
  assert (run(split, n).start_step, run(split, 2 * n).start_step) == (0, n)

  curves = [read_scalars(os.path.join(d, "train")) for d in (straight, split)]
  tags = [t for t in curves[0] if t.startswith(("losses/", "learning_rate/", "grad_norm/"))]
  assert len(tags) > 8
  for tag in tags:
    assert curves[1][tag] == curves[0][tag], tag

  states = []
  for workdir in (straight, split):
    loaded = training.load_run(workdir)
    trainer = Trainer(loaded.task, loaded.config.train)
    Checkpoints(trainer, workdir).checkpoint.read(loaded.checkpoint).expect_partial()
    states.append(trainer_state(trainer))
    for optimizer in trainer.optimizers.values():
      assert int(optimizer.iterations.numpy()) == 2 * n
  assert sorted(states[0]) == sorted(states[1])
  assert sum(k.startswith("optimizer/discriminator") for k in states[0]) > 10
  for key in states[0]:
    np.testing.assert_array_equal(states[1][key], states[0][key], err_msg=key)


# --------------------------------------------------------------------------- fine-tuning


def save_source_run(workdir, data_info=None, steps=7, **changes):
  """A hifigan run with random (non-initial) weights and optimiser state, no training."""
  task = make_task(**changes)
  config = train_config()
  trainer = Trainer(task, config)
  rng = np.random.default_rng(0)
  for _, variable in trainer.named_variables():
    variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.1)
  for optimizer in trainer.optimizers.values():
    optimizer.iterations.assign(steps)
  write_run_config(workdir, RunConfig(model="hifigan", preset="tiny",
                                      model_config=task.config, train=config,
                                      data_info=data_info or {}))
  Checkpoints(trainer, workdir).save(steps)
  return trainer_state(trainer)


@pytest.mark.parametrize("with_optimizers", [False, True])
def test_init_from_copies_weights_and_optionally_optimizers(tmp_path, with_optimizers):
  source = str(tmp_path / "source")
  want = save_source_run(source)
  task = make_task()
  trainer = Trainer(task, train_config(init_from=source, init_optimizers=with_optimizers))
  fresh = trainer_state(trainer)
  assert init_from.initialize(trainer).endswith("ckpt-7")
  got = trainer_state(trainer)
  for key in want:
    # This run's learning rate stays; weights (and moments, on request) come from the source.
    copied = key.startswith("module/") or (with_optimizers and "learning_rate" not in key)
    np.testing.assert_array_equal(got[key], want[key] if copied else fresh[key], err_msg=key)
  assert int(trainer.optimizers["generator"].iterations.numpy()) == (7 if with_optimizers
                                                                      else 0)


def test_init_from_refuses_incompatible_sources(tmp_path, prepared):
  other = str(tmp_path / "other")
  save_source_run(other, upsample_initial_channel=32)
  trainer = Trainer(make_task(), train_config(init_from=other))
  with pytest.raises(init_from.InitFromError) as error:
    init_from.initialize(trainer)
  assert "generator/conv_pre/kernel: (7, 80, 32) in the source, (7, 80, 16) in this run" in \
      str(error.value) and "... and 23 more" in str(error.value)
  # Trained on another mel convention than the fine-tuning data.
  mel = str(tmp_path / "mel")
  info = make_task().data_info(prepared)
  info["mel_config"] = dict(info["mel_config"], fmax=11025.0)
  save_source_run(mel, data_info=info)
  task = make_task()
  task.dataset(prepared, "train", train_config())
  trainer = Trainer(task, train_config(init_from=mel))
  with pytest.raises(ValueError, match=r"trained on mels of another convention.*\n  "
                     r"mel_config.fmax: 11025.0"):
    init_from.initialize(trainer)


def assert_started_from(workdir, source_weights):
  """After one step from the source weights the generator is near them, far from a fresh init."""
  weights = training.load_run(workdir).modules["generator"].weights
  moved = [np.abs(v.numpy() - source_weights[f"module/generator/{i}"]).max()
           for i, v in enumerate(weights)]
  assert max(moved) < 0.05  # One AdamW step at lr 2e-3; the source differs by O(0.1).


def test_gta_finetuning_through_train(tmp_path, prepared, fast_graphs):
  source = str(tmp_path / "source")
  want = save_source_run(source, **SMALL)
  workdir = str(tmp_path / "finetune")
  # The old spelling of the recipe (a HiFi-GAN model override) reaches the trainer's field.
  training.train("hifigan", "tiny", data_dir=prepared, workdir=workdir,
                 overrides={"finetune_from": source, "max_steps": 1, "eval_every": 0,
                            "summary_every": 0, **SMALL},
                 progress=False, handle_signals=False)
  assert training.load_run(workdir).config.train.init_from == source
  assert_started_from(workdir, want)

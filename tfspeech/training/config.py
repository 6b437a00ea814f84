"""Training configuration, the stored run config, and the resume compatibility check.

`WORKDIR/config.json` holds a `RunConfig`: model name, preset, the model's
config, the `TrainConfig` and the data directory. Resuming in that workdir
starts from the stored config; the caller's overrides are applied on top and
every differing field must be marked `safe` *and* named in `allow_changes`,
otherwise the run is refused with a diff (`field: stored → requested`).
"""

import dataclasses
import json
import os
from typing import Any, Literal, Mapping, Optional

from tfspeech import config as cfg

MixedPrecision = Literal["none", "mixed_float16", "mixed_bfloat16"]
Schedule = Literal["constant", "exponential", "cosine", "noam"]
OptimizerName = Literal["adamw", "adam", "lamb", "sgd"]


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Everything needed to build one optimizer and its learning-rate schedule.

  A task derives one per optimizer from `TrainConfig.optimizer_config()`
  (a GAN may `dataclasses.replace` the discriminator's learning rate).

  Attributes:
    name: "adamw" | "adam" | "lamb" | "sgd" (Keras 3 optimizers).
    learning_rate: peak learning rate.
    schedule: "constant"; "exponential" (lr · decay_rate^(step/decay_steps),
      continuous, HiFi-GAN's per-epoch decay with decay_steps = steps/epoch);
      "cosine" (linear warmup to `learning_rate` over `warmup_steps`, then
      cosine decay to `min_learning_rate` over `decay_steps`); "noam"
      (lr · min(step/warmup^1.5, step^-0.5) · warmup^0.5, Transformer/FastPitch).
    warmup_steps: linear warmup length (cosine, noam).
    decay_steps: steps per decay period (exponential) or decay length (cosine).
    decay_rate: multiplicative decay per `decay_steps` (exponential).
    min_learning_rate: floor of the decayed learning rate (exponential, cosine).
    beta_1, beta_2, epsilon: Adam/AdamW/LAMB moments; `beta_1` is SGD momentum.
    weight_decay: decoupled weight decay (AdamW, LAMB); 0 disables it.
    clip_norm: clip gradients to this global norm (computed over the
      all-reduced, unscaled gradients of this optimizer); None disables.
  """
  name: OptimizerName = "adamw"
  learning_rate: float = 2e-4
  schedule: Schedule = "constant"
  warmup_steps: int = 0
  decay_steps: int = 1000
  decay_rate: float = 1.0
  min_learning_rate: float = 0.0
  beta_1: float = 0.9
  beta_2: float = 0.999
  epsilon: float = 1e-8
  weight_decay: float = 0.0
  clip_norm: Optional[float] = None

  def __post_init__(self):
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
    if self.warmup_steps < 0 or self.decay_steps <= 0:
      raise ValueError("warmup_steps must be >= 0 and decay_steps > 0, got "
                       f"{self.warmup_steps}, {self.decay_steps}")
    if self.schedule == "noam" and self.warmup_steps <= 0:
      raise ValueError("the noam schedule needs warmup_steps > 0")
    if self.clip_norm is not None and not self.clip_norm > 0:
      raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train (model-independent). Fields marked safe may change on resume.

  Attributes:
    batch_size: global batch size (all replicas together); must divide evenly
      by the number of replicas.
    max_steps: total optimisation steps of the run (safe).
    seed: seeds the model initialisation, the step RNG and the data order.
    optimizer: "adamw" | "adam" | "lamb" | "sgd".
    learning_rate: peak learning rate (safe).
    lr_schedule: "constant" | "exponential" | "cosine" | "noam" (see
      `OptimizerConfig`).
    warmup_steps, decay_steps, decay_rate, min_learning_rate: schedule
      parameters (safe), see `OptimizerConfig`.
    beta_1, beta_2, epsilon, weight_decay: optimizer hyperparameters.
    clip_norm: global-norm gradient clipping per optimizer; None disables (safe).
    mixed_precision: "none" | "mixed_float16" (float16 compute with dynamic
      loss scaling) | "mixed_bfloat16" (no loss scaling needed).
    xla: compile the per-replica step with XLA (`jit_compile=True`) (safe; XLA
      draws a different random stream from `ctx.rng`, so a resume that toggles
      it is not bit-identical). With several replicas XLA needs GPUs (the CPU
      MirroredStrategy path uses merge_call, which XLA cannot compile).
    log_every: write scalar summaries and update the progress line every N
      steps (safe).
    checkpoint_every: save a checkpoint every N steps (safe).
    keep_checkpoints: how many recent checkpoints to retain (safe).
    keep_every_n_hours: additionally keep one checkpoint per this many hours
      for the life of the run; None disables (safe).
    keep_every_steps: additionally keep the checkpoint of every step that is a
      multiple of this, for the life of the run, in WORKDIR/kept/ (hard links:
      no extra disk while it is also among the newest); a multiple of
      checkpoint_every; None disables (safe).
    keep_best: eval metric name (e.g. "loss"); when set, the checkpoint with the
      lowest value of that eval metric is kept in WORKDIR/best/ (safe).
    eval_every: run the validation loop every N steps; 0 disables (safe).
    eval_batches: number of validation batches per evaluation (safe).
    summary_every: write image/audio summaries every N steps; 0 disables (safe).
    max_consecutive_skips: stop with an error after this many consecutive steps
      whose loss or gradients were non-finite; checked at every log step, so
      the stop comes at most `log_every` steps late (safe).
    init_from: start a *new* run from another run's weights (fine-tuning):
      "WORKDIR" (its newest checkpoint), "WORKDIR:module+module" (only those
      modules, e.g. "runs/hifigan:generator"), or a checkpoint path
      (".../checkpoints/ckpt-N") in place of WORKDIR. Every variable loaded must
      exist in the source with the same shape. Ignored on resume; "" starts
      from a fresh initialisation (safe). See `tfspeech.training.init_from`.
    init_optimizers: with `init_from`, also load the state (moments, step
      counts, hence a schedule's position) of every optimizer whose modules are
      all loaded; this run's learning-rate settings stay in force (safe).
  """
  batch_size: int = 16
  max_steps: int = cfg.safe_field(100_000)
  seed: int = 1234
  optimizer: OptimizerName = "adamw"
  learning_rate: float = cfg.safe_field(2e-4)
  lr_schedule: Schedule = "constant"
  warmup_steps: int = cfg.safe_field(0)
  decay_steps: int = cfg.safe_field(1000)
  decay_rate: float = cfg.safe_field(1.0)
  min_learning_rate: float = cfg.safe_field(0.0)
  beta_1: float = 0.9
  beta_2: float = 0.999
  epsilon: float = 1e-8
  weight_decay: float = 0.0
  clip_norm: Optional[float] = cfg.safe_field(None)
  mixed_precision: MixedPrecision = "none"
  xla: bool = cfg.safe_field(False)
  log_every: int = cfg.safe_field(100)
  checkpoint_every: int = cfg.safe_field(5000)
  keep_checkpoints: int = cfg.safe_field(5)
  keep_every_n_hours: Optional[float] = cfg.safe_field(None)
  keep_every_steps: Optional[int] = cfg.safe_field(None)
  keep_best: Optional[str] = cfg.safe_field(None)
  eval_every: int = cfg.safe_field(5000)
  eval_batches: int = cfg.safe_field(10)
  summary_every: int = cfg.safe_field(5000)
  max_consecutive_skips: int = cfg.safe_field(100)
  init_from: str = cfg.safe_field("")
  init_optimizers: bool = cfg.safe_field(False)

  def __post_init__(self):
    positive = ("batch_size", "max_steps", "log_every", "checkpoint_every",
                "keep_checkpoints", "eval_batches", "max_consecutive_skips")
    for name in positive:
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
    for name in ("eval_every", "summary_every"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0 (0 disables), got {getattr(self, name)}")
    if self.keep_every_steps is not None and (
        self.keep_every_steps <= 0 or self.keep_every_steps % self.checkpoint_every):
      raise ValueError(f"keep_every_steps={self.keep_every_steps} must be a positive multiple "
                       f"of checkpoint_every={self.checkpoint_every} (only saved steps can be "
                       "kept), or None")
    self.optimizer_config()  # Validates the optimizer fields.
    if self.init_optimizers and not self.init_from:
      raise ValueError("init_optimizers=true needs init_from=WORKDIR (the run whose optimizer "
                       "state to start from)")

  def optimizer_config(self) -> OptimizerConfig:
    """The optimizer settings of this config as an `OptimizerConfig`."""
    return OptimizerConfig(
        name=self.optimizer, learning_rate=self.learning_rate,
        schedule=self.lr_schedule, warmup_steps=self.warmup_steps,
        decay_steps=self.decay_steps, decay_rate=self.decay_rate,
        min_learning_rate=self.min_learning_rate, beta_1=self.beta_1,
        beta_2=self.beta_2, epsilon=self.epsilon, weight_decay=self.weight_decay,
        clip_norm=self.clip_norm)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The full, resolved configuration of one training run (WORKDIR/config.json).

  Attributes:
    model: registry name of the model task.
    preset: name of the model preset the run started from.
    model_config: the task's config dataclass instance.
    train: the `TrainConfig`.
    data_dir: directory the task's `dataset` hook reads (safe: data may move).
    data_info: free-form facts about the data recorded at the start of the run
      (from the task's `data_info` hook), e.g. number of utterances.
  """
  model: str
  preset: str
  model_config: Any
  train: TrainConfig
  data_dir: str = cfg.safe_field("")
  data_info: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

  def to_dict(self) -> dict:
    return {"format_version": FORMAT_VERSION, "model": self.model, "preset": self.preset,
            "model_config": cfg.to_dict(self.model_config),
            "train": cfg.to_dict(self.train), "data_dir": self.data_dir,
            "data_info": dict(self.data_info)}

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2) + "\n"

  @classmethod
  def from_dict(cls, data: Mapping, model_config_class) -> "RunConfig":
    data = dict(data)
    version = data.pop("format_version", None)
    if version != FORMAT_VERSION:
      raise cfg.ConfigError(f"config format_version {version!r} is not supported "
                            f"(expected {FORMAT_VERSION})")
    unknown = sorted(set(data) - {"model", "preset", "model_config", "train", "data_dir",
                                  "data_info"})
    if unknown:
      raise cfg.ConfigError(f"unknown top-level config keys {unknown}")
    model_dict, train_dict = _move_to_train(model_config_class, data.get("model_config", {}),
                                            data.get("train", {}))
    return cls(
        model=cfg.coerce(str, data.get("model"), "model"),
        preset=cfg.coerce(str, data.get("preset"), "preset"),
        model_config=cfg.from_dict(model_config_class, model_dict, path="model"),
        train=cfg.from_dict(TrainConfig, train_dict, path="train"),
        data_dir=cfg.coerce(str, data.get("data_dir", ""), "data_dir"),
        data_info=dict(data.get("data_info") or {}))

  def diff(self, other: "RunConfig") -> list[cfg.Change]:
    """Differences `self → other`, with paths `model.*`, `train.*`, top-level."""
    changes = []
    for name in ("model", "preset"):
      if getattr(self, name) != getattr(other, name):
        label = "model_name" if name == "model" else name
        changes.append(cfg.Change(label, getattr(self, name), getattr(other, name), False))
    if type(self.model_config) is type(other.model_config):
      changes += cfg.diff(self.model_config, other.model_config, prefix="model.")
    changes += cfg.diff(self.train, other.train, prefix="train.")
    if self.data_dir != other.data_dir:
      changes.append(cfg.Change("data_dir", self.data_dir, other.data_dir, True))
    return changes


def moved_to_train(model_config_class) -> Mapping[str, str]:
  """Old model-config keys that are `TrainConfig` fields now: {old key: train field}.

  A model config class declares them as `MOVED_TO_TRAIN` (a ClassVar), so that
  config.json files written before the move still load and old override keys work.
  """
  return dict(getattr(model_config_class, "MOVED_TO_TRAIN", None) or {})


def _move_to_train(model_config_class, model_dict, train_dict):
  """(model_config, train) dicts with moved keys carried from the first to the second."""
  moved = moved_to_train(model_config_class)
  if not moved or not isinstance(model_dict, Mapping) or not isinstance(train_dict, Mapping):
    return model_dict, train_dict
  model_dict, train_dict = dict(model_dict), dict(train_dict)
  for old, new in moved.items():
    if old in model_dict:
      value = model_dict.pop(old)
      if train_dict.get(new) not in (None, "", False) and train_dict[new] != value:
        raise cfg.ConfigError(f"model.{old}={value!r} (an older name of train.{new}) and "
                              f"train.{new}={train_dict[new]!r} disagree; keep one")
      train_dict[new] = value
  return model_dict, train_dict


FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"


class ConfigMismatchError(cfg.ConfigError):
  """Resuming with a config that differs from the stored one was refused."""


def override_paths(model_config_class) -> dict[str, tuple[Any, bool]]:
  """Every field an override may name: `model.<field>` and `train.<field>`."""
  paths = {"model." + k: v for k, v in cfg.field_paths(model_config_class).items()}
  paths.update({"train." + k: v for k, v in cfg.field_paths(TrainConfig).items()})
  return paths


def canonical_key(key: str, model_config_class) -> str:
  """Resolves an override key to `model.<field>` or `train.<field>`.

  A bare field name is accepted when it names exactly one field of the model
  config or the train config; `model.`/`train.` prefixes disambiguate.

  Raises:
    ConfigError: unknown or ambiguous key, listing the valid keys.
  """
  paths = override_paths(model_config_class)
  if key in paths:
    return key
  old = key[len("model."):] if key.startswith("model.") else key
  if old in moved_to_train(model_config_class):  # e.g. hifigan's finetune_from
    return "train." + moved_to_train(model_config_class)[old]
  matches = [p for p in paths if p.split(".", 1)[1] == key]
  if len(matches) == 1:
    return matches[0]
  if len(matches) > 1:
    raise cfg.ConfigError(f"override key {key!r} is ambiguous: use one of {matches}")
  bare = sorted({p.split(".", 1)[1] for p in paths} | set(paths))
  raise cfg.ConfigError(cfg.unknown_field_message(key, bare))


def apply_run_overrides(run: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
  """Applies `{key: value}` overrides (strings are parsed by field type)."""
  model_over, train_over = {}, {}
  for key, value in overrides.items():
    full = canonical_key(key, type(run.model_config))
    scope, field = full.split(".", 1)
    (model_over if scope == "model" else train_over)[field] = value
  model_config = cfg.apply_overrides(run.model_config, model_over, path_prefix="model.")
  train = cfg.apply_overrides(run.train, train_over, path_prefix="train.")
  return dataclasses.replace(run, model_config=model_config, train=train)


def resolve_run_config(stored: Optional[RunConfig], requested: RunConfig,
                       allow_changes=()) -> tuple[RunConfig, list[cfg.Change]]:
  """Decides the config of a (possibly resumed) run.

  Args:
    stored: the config in WORKDIR/config.json, or None for a new run.
    requested: the config the caller asks for (stored config + overrides when
      resuming).
    allow_changes: keys (bare or `train.`/`model.`-prefixed) of safe fields the
      caller consents to change.

  Returns:
    (config to run with, accepted changes).

  Raises:
    ConfigMismatchError: with a diff listing every refused change.
  """
  if stored is None:
    return requested, []
  changes = stored.diff(requested)
  if not changes:
    return stored, []
  allowed = set()
  for key in allow_changes:
    if key in ("data_dir",):
      allowed.add(key)
    else:
      allowed.add(canonical_key(key, type(stored.model_config)))
  unsafe = [c for c in changes if not c.safe]
  unconsented = [c for c in changes if c.safe and c.path not in allowed]
  if unsafe or unconsented:
    lines = ["the workdir holds a run whose config differs from the requested one "
             "(stored → requested):", cfg.format_diff(changes)]
    if unsafe:
      lines.append("Fields marked [fixed for the life of a run] change variable shapes or "
                   "the meaning of the checkpoint and can never change on resume: start a "
                   "new workdir instead.")
    if unconsented:
      names = ",".join(c.path.split(".", 1)[-1] if "." in c.path else c.path
                       for c in unconsented)
      lines.append(f"To accept the safe change(s), name them in allow_changes "
                   f"(tfspeech-train --allow_changes={names})")
    raise ConfigMismatchError("\n".join(lines))
  return requested, changes


def load_run_config(workdir: str, model_config_class_for) -> Optional[RunConfig]:
  """Reads WORKDIR/config.json; None when absent.

  Args:
    workdir: the run directory.
    model_config_class_for: callable mapping a model name to its config class.
  """
  import tensorflow as tf
  path = os.path.join(workdir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path, "r") as f:
    text = f.read()
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise cfg.ConfigError(f"{path} is not valid JSON ({e}); restore it or start a new "
                          "workdir") from e
  if not isinstance(data, dict) or "model" not in data:
    raise cfg.ConfigError(f"{path} has no 'model' entry; it was not written by tfspeech")
  try:
    return RunConfig.from_dict(data, model_config_class_for(data["model"]))
  except cfg.ConfigError as e:
    raise cfg.ConfigError(f"{path}: {e}") from e


def write_run_config(workdir: str, run: RunConfig, changes=(), step: int = 0):
  """Atomically writes WORKDIR/config.json; logs accepted changes to config_changes.jsonl."""
  import tensorflow as tf
  tf.io.gfile.makedirs(workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(run.to_json())
  tf.io.gfile.rename(tmp, path, overwrite=True)
  if changes:
    record = {"step": int(step),
              "changes": {c.path: [c.old, c.new] for c in changes}}
    log_path = os.path.join(workdir, CHANGES_FILE)
    old = ""
    if tf.io.gfile.exists(log_path):
      with tf.io.gfile.GFile(log_path, "r") as f:
        old = f.read()
    with tf.io.gfile.GFile(log_path, "w") as f:
      f.write(old + json.dumps(record) + "\n")

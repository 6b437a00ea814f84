"""Registry of trainable model "tasks" and the `Task` interface the trainer drives.

A task bundles one model family: its config class and presets, how to build
its Keras modules, which optimizers update which modules, the per-step loss
computation and the dataset hook. The trainer owns everything else
(distribution, precision, clipping, NaN guard, checkpoints, summaries).

Minimal task:

  @registry.register("my_model")
  class MyTask(registry.Task):
    config_class = MyConfig
    presets = {"tiny": MyConfig(channels=8), "paper": MyConfig()}

    def build(self):
      net = MyNet(self.config)
      net.build((None, None, 80))          # create variables now
      return {"net": net}

    def dataset(self, data_dir, split, train_config):
      ...                                  # batched tf.data.Dataset; train repeats forever

    def train_step(self, batch, ctx):
      with tf.GradientTape() as tape:
        pred = self.modules["net"](batch["x"], training=True)
        loss = ctx.mean(tf.reduce_mean(tf.abs(pred - batch["y"]), axis=[1, 2]))
      ctx.apply("main", loss, tape)
      return {"loss": loss}

A GAN declares two optimizers in `optimizers()` and calls `ctx.apply` twice
in one `train_step` (see `tfspeech/models/toy/gan.py`).
"""

import dataclasses
import importlib
from typing import Any, Mapping, Optional

# Built-in tasks, imported on first use so `get("toy")` works without an import.
# Model authors add their package here when it lands.
_BUILTIN_MODULES = {
    "toy": "tfspeech.models.toy",
    "toy_gan": "tfspeech.models.toy",
    "grad_tts": "tfspeech.models.grad_tts",
    "hifigan": "tfspeech.models.hifigan",
}

_REGISTRY: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """Which modules one optimizer updates, and with what settings.

  Attributes:
    modules: names of entries of `Task.build()`'s dict whose trainable
      variables this optimizer owns; None means every module.
    config: a `tfspeech.training.config.OptimizerConfig`; None means
      `train_config.optimizer_config()`.
  """
  modules: Optional[tuple[str, ...]] = None
  config: Any = None


class Task:
  """Base class of a registered model family. Subclass and `@register(name)` it.

  Class attributes:
    config_class: the frozen dataclass type of the model config.
    presets: preset name → config instance. Must contain "tiny".
    sample_rate: audio sample rate used by audio summaries.

  Instance attributes:
    config: the model config.
    modules: dict name → Keras layer/model, set by `build_modules()`.
  """
  name: str = ""
  config_class: type = None
  presets: Mapping[str, Any] = {}
  sample_rate: int = 22050
  # How a resumed run finds its place in the training data (see
  # `tfspeech.training.loop.DATA_CHECKPOINT_MODES`): "symbolic" saves the
  # tf.data iterator position, so a resume sees exactly the batches an
  # uninterrupted run would; right for in-memory or small pipelines. "reseed"
  # saves no iterator: the resumed run rebuilds the dataset with
  # `seed + step` and starts a fresh shuffled pass, so the batches after a
  # resume differ from an uninterrupted run's (the cut pass is not finished:
  # some items come round again before others it had not reached); right
  # for large TFRecord corpora, whose shuffle
  # buffers hold whole utterances (TF 2.17 also mis-restores symbolic
  # positions of repeated TFRecord readers past the first epoch).
  data_checkpoint: str = "symbolic"

  def __init__(self, config):
    if self.config_class is not None and not isinstance(config, self.config_class):
      raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, "
                      f"got {type(config).__name__}")
    self.config = config
    self.modules: dict[str, Any] = {}

  # ------------------------------------------------------------------ presets
  @classmethod
  def preset(cls, name: str):
    """The model config of preset `name`."""
    if name not in cls.presets:
      raise KeyError(f"model {cls.name!r} has no preset {name!r}; "
                     f"available: {sorted(cls.presets)}")
    return cls.presets[name]

  @classmethod
  def default_train_config(cls, preset: str):
    """The recommended `TrainConfig` for `preset` (override for paper settings)."""
    from tfspeech.training.config import TrainConfig
    del preset
    return TrainConfig()

  # ------------------------------------------------------------------ modules
  def build(self) -> dict:
    """Creates the trainable Keras modules, with their variables already built.

    Returns:
      dict name → keras.Layer (e.g. {"generator": G, "mpd": D1, "msd": D2}).
    """
    raise NotImplementedError

  def build_modules(self) -> dict:
    """Calls `build()`, checks that every module owns variables, stores `self.modules`."""
    modules = dict(self.build())
    if not modules:
      raise ValueError(f"{type(self).__name__}.build() returned no modules")
    for name, module in modules.items():
      if not getattr(module, "built", True) or not module.weights:
        raise ValueError(
            f"{type(self).__name__}.build(): module {name!r} has no variables yet; build it "
            "(call it on a dummy batch or `module.build(shape)`) inside build() so every "
            "variable exists before the train step is traced")
    self.modules = modules
    return modules

  def warm_start(self, trainer) -> Optional[str]:
    """Initializes a *new* run before its first step (not called on resume).

    Override to start from another run's weights, e.g. a vocoder fine-tuned on
    an acoustic model's ground-truth-aligned mels (`finetune_from`). Load into
    `trainer.modules` (and `trainer.optimizers` if wanted).

    Returns:
      The checkpoint loaded from, or None when nothing was loaded.
    """
    del trainer
    return None

  def optimizers(self, train_config) -> dict[str, OptimizerSpec]:
    """Optimizer name → `OptimizerSpec`. Default: one optimizer "main" for all modules."""
    del train_config
    return {"main": OptimizerSpec()}

  # ------------------------------------------------------------------ data
  def dataset(self, data_dir: str, split: str, train_config):
    """Returns a batched `tf.data.Dataset` of global batches for `split`.

    Args:
      data_dir: the run's data directory.
      split: "train" (must repeat forever; shuffle with `train_config.seed`
        *before* loading audio so the checkpointed shuffle buffer stays small)
        or "eval" (finite; may return None when there is no validation data).
      train_config: the run's `TrainConfig` (batch_size is the global batch).

    The pipeline must be built from TF ops (no Python generators) so its
    iterator position can be checkpointed.
    """
    raise NotImplementedError

  def data_info(self, data_dir: str) -> dict:
    """Facts about the data recorded in config.json at the start of a run."""
    del data_dir
    return {}

  # ------------------------------------------------------------------ steps
  def train_step(self, batch, ctx) -> dict:
    """Computes the losses of one (per-replica) batch and applies gradients.

    Runs inside the traced, distributed train step. Use `ctx.mean` /
    `ctx.masked_mean` for losses (they divide by the *global* batch), then
    `ctx.apply(optimizer_name, loss, tape)` once per optimizer.

    Returns:
      dict name → scalar tensor; each is a per-replica contribution (as given
      by `ctx.mean`) and is summed over replicas for logging.
    """
    raise NotImplementedError

  def eval_step(self, batch, ctx) -> Optional[dict]:
    """Validation metrics of one batch (same conventions as `train_step`, no apply).

    Return None (the default) to disable validation.
    """
    del batch, ctx
    return None

  def summaries(self, batch) -> Optional[dict]:
    """Images and audio for TensorBoard, computed on one (global) batch.

    Returns:
      None, or a dict with "images/<tag>" → `[k, height, width, channels]`
      (float in [0, 1] or uint8; see `tfspeech.training.summaries.matrix_image`)
      and "audio/<tag>" → `[k, samples]` float in [-1, 1] at `self.sample_rate`.
    """
    del batch
    return None


def register(name: str, *, overwrite: bool = False):
  """Class decorator registering a `Task` subclass under `name`."""
  def decorator(cls):
    if not (isinstance(cls, type) and issubclass(cls, Task)):
      raise TypeError(f"@register({name!r}) expects a Task subclass, got {cls!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls and not overwrite:
      raise ValueError(f"model name {name!r} is already registered by "
                       f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}")
    if cls.config_class is None or not dataclasses.is_dataclass(cls.config_class):
      raise TypeError(f"{cls.__name__}.config_class must be a dataclass")
    if "tiny" not in cls.presets:
      raise TypeError(f"{cls.__name__}.presets must contain a 'tiny' preset")
    for preset, config in cls.presets.items():
      if not isinstance(config, cls.config_class):
        raise TypeError(f"{cls.__name__}.presets[{preset!r}] is not a "
                        f"{cls.config_class.__name__}")
    cls.name = name
    _REGISTRY[name] = cls
    return cls
  return decorator


def unregister(name: str):
  """Removes `name` (for tests that register throwaway tasks)."""
  _REGISTRY.pop(name, None)


def get(name: str) -> type:
  """The `Task` class registered as `name` (importing built-in packages on demand)."""
  if name not in _REGISTRY and name in _BUILTIN_MODULES:
    importlib.import_module(_BUILTIN_MODULES[name])
  if name not in _REGISTRY:
    raise KeyError(f"unknown model {name!r}; registered models: {names()}")
  return _REGISTRY[name]


def names() -> list[str]:
  """Every model name that `get` accepts."""
  return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))

"""The `Task` interface the trainer drives, and how a model name becomes a `Task` class.

A task bundles one model family: its config class and presets, how to build
its Keras modules, which optimizers update which modules, the per-step loss
computation and the dataset hook. The trainer owns everything else
(distribution, precision, clipping, the NaN guard, checkpoints, summaries,
starting from another run's weights).

Minimal task (registered on the model floor, `tfspeech.models.registry`):

  @registry.register("my_model")
  class MyTask(registry.Task):              # registry.Task is this Task
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

This module sits on the trainer's floor and imports no model and no
TensorFlow: the training entry points (`tfspeech.training.api`) take a `Task`
class, or a model name plus a `TaskLookup` callable. `tfspeech.models.registry`
installs its `get` as the default lookup when it is imported.
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional, Union


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
  # The `TrainConfig.mixed_precision` policies the train step is written and tested for,
  # besides "none" (float32); `train` refuses the others before anything is written.
  mixed_precisions: tuple = ()

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

  def check_init_source(self, source: Mapping[str, Any], where: str) -> None:
    """Refuses a run to start from (`TrainConfig.init_from`) when its data does not fit.

    The trainer has already checked that every variable it loads exists in the
    source checkpoint with the same shape; override to check what shapes cannot
    show, e.g. a vocoder's mel convention. Called after `dataset()`.

    Args:
      source: the source run's config.json as a dict ("model", "model_config",
        "data_info", ...), or {} when the source is a bare checkpoint.
      where: names the source in messages (e.g. "init_from=runs/hifigan").

    Raises:
      ValueError: naming `where`, the difference and the fix.
    """
    del source, where

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


# A callable mapping a registered model name to its `Task` class (raises KeyError
# for unknown names), e.g. `tfspeech.models.registry.get`.
TaskLookup = Callable[[str], type]

_default_lookup: Optional[TaskLookup] = None

def set_default_lookup(lookup: Optional[TaskLookup]) -> None:
  """Sets the lookup used when a training entry point gets a name and no `tasks`."""
  global _default_lookup
  _default_lookup = lookup


def resolve_task(model: Union[str, type], tasks: Optional[TaskLookup] = None) -> type:
  """The `Task` class of `model`: a `Task` subclass itself, or a name looked up in `tasks`.

  Raises:
    KeyError: unknown model name (from the lookup).
    LookupError: a name with neither `tasks` nor a default lookup installed (this
      floor never imports the model registry itself; importing it installs its lookup).
    TypeError: `model` is neither a name nor a `Task` subclass.
  """
  if isinstance(model, type):
    if not issubclass(model, Task):
      raise TypeError(f"expected a model name or a Task subclass, got {model!r}")
    return model
  if not isinstance(model, str):
    raise TypeError(f"expected a model name or a Task subclass, got {model!r}")
  lookup = tasks or _default_lookup
  if lookup is None:
    raise LookupError(f"no model lookup to find {model!r}: import tfspeech.models (its "
                      "registry installs itself), or pass tasks=tfspeech.models.registry.get "
                      "or the Task class itself")
  return lookup(model)

r"""The "hifigan" training task: GAN vocoder training on prepared (or GTA) TFRecords.

  tfspeech-prepare --corpus=LJSpeech-1.1 --out=data/ljspeech
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech --workdir=runs/hifigan
  # Fine-tuning on ground-truth-aligned mels of an acoustic model (same record schema);
  # `HifiGanTask.warm_start` loads the source run before step 0 of the new run:
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech_gta --workdir=runs/hifigan_ft \
      --override=finetune_from=runs/hifigan

One step (jik876/hifi-gan train.py): the generator makes audio from random
`segment_size`-sample crops' mels; the discriminators (MPD + MSD) take an AdamW
step on the detached fake; then the generator takes an AdamW step on LS-GAN +
2 x feature matching + 45 x mel L1 *through the updated discriminators*. Both
updates sit in the one traced train step (`ctx.apply` twice). Each discriminator
sees real and generated audio in one call on their concatenation, which halves
the traced graph (and its trace and grappler time) against two calls; the only
difference from the reference's two calls is that MSD's spectral norm makes one
power iteration per update instead of two.

Optimisers (reference): AdamW, lr 2e-4, betas (0.8, 0.99), weight decay 0.01
(torch's AdamW default; the reference passes none), and `ExponentialLR(0.999)`
stepped once per *epoch*. Here that decay is the per-step schedule
lr * 0.999^(step / decay_steps) with decay_steps = steps per epoch: 809 for the
reference LJSpeech split (12,950 training clips // batch 16). It is continuous
rather than a staircase (the two agree at every epoch boundary). A run on
another corpus should set `--override=decay_steps=N` with N = train clips //
batch size; the task logs the value for its data when the two differ.

The run's `data_info` records the corpus' mel convention (`mel_config`), which
inference (`tfspeech.inference.vocode_lib`) checks against the mels it is given.
"""

import dataclasses
import os
from typing import Literal, Optional

import tensorflow as tf
from absl import logging

from tfspeech import audio as audio_lib
from tfspeech import config as cfg
from tfspeech.data import dataset as dataset_lib
from tfspeech.models import registry
from tfspeech.models.hifigan import hifigan_presets
from tfspeech.models.hifigan.discriminators import build_discriminators
from tfspeech.models.hifigan.generator import HifiGanGenerator
from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.models.hifigan.losses import (MEL_LOSS_WEIGHT, MelReconstructionLoss,
                                            discriminator_loss, feature_matching_loss,
                                            generator_loss)
from tfspeech.training import checkpoints as checkpoints_lib
from tfspeech.training import summaries as summaries_lib
from tfspeech.training.config import TrainConfig

# jik876/hifi-gan LJSpeech-1.1/training.txt holds 12,950 clips; with batch 16 and
# drop_last=True an epoch is 809 steps.
REFERENCE_TRAIN_CLIPS = 12950
# 3100 epochs (train.py --training_epochs) * 809 steps: the paper's 2.5M steps.
REFERENCE_MAX_STEPS = 2_500_000
# HifiGanConfig fields that are training settings: they live in TrainConfig.
_TRAINING_FIELDS = ("batch_size", "learning_rate", "adam_b1", "adam_b2", "adam_weight_decay",
                    "lr_decay", "seed")


@dataclasses.dataclass(frozen=True)
class HifiGanTaskConfig:
  """A HiFi-GAN run's model settings: the network shape plus how the task feeds it.

  The network fields mean what they mean in `HifiGanConfig` (they are typed here
  so that config.json round-trips); its optimiser fields (batch size, learning
  rate, betas, decay, seed) are `TrainConfig` fields of the run instead.

  Attributes:
    segment_size: training crop in samples (a multiple of the hop length).
    eval_segment_size: validation crop in samples; None validates on full
      utterances (the reference) (safe).
    shuffle_buffer_size: records in the training shuffle buffer (after the
      shard order is shuffled); each holds a whole clip's audio and mel.
    data_checkpoint: how a resumed run finds its place in the data (see
      `registry.Task.data_checkpoint`). "reseed" (default) rebuilds the pipeline
      with seed + step: no data in checkpoints and correct past the first
      epoch. "symbolic" saves the iterator, so a resume replays exactly the
      batches of an uninterrupted run, but the checkpoint then holds the
      shuffle buffer's records (measured 1-2.7x their size: ~0.5-1.3 MB per
      LJSpeech clip) and TF 2.17 restores repeated TFRecord readers wrongly
      past the first epoch; use it for short runs and tests.
    finetune_from: workdir of a trained hifigan run; a *new* run starts from its
      newest generator and discriminator weights (the fine-tuning recipe:
      pretrain on ground truth, fine-tune on GTA mels). Ignored on resume (safe).
    finetune_optimizers: also start both optimisers' moments and step counts
      (hence a schedule's decayed learning rate) from that run, as the
      reference's fine-tuning does by resuming its checkpoint; this run's
      learning rate settings stay in force (safe).
  """
  resblock: Literal["1", "2"]
  upsample_rates: tuple[int, ...]
  upsample_kernel_sizes: tuple[int, ...]
  upsample_initial_channel: int
  resblock_kernel_sizes: tuple[int, ...]
  resblock_dilation_sizes: tuple[tuple[int, ...], ...]
  num_mels: int = 80
  segment_size: int = 8192
  mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
  mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
  msd_channels: tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
  msd_groups: tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)
  eval_segment_size: Optional[int] = cfg.safe_field(None)
  shuffle_buffer_size: int = 256
  data_checkpoint: Literal["reseed", "symbolic"] = "reseed"
  finetune_from: str = cfg.safe_field("")
  finetune_optimizers: bool = cfg.safe_field(False)

  def __post_init__(self):
    network = self.network_config()  # Validates the network fields.
    if self.eval_segment_size is not None and (
        self.eval_segment_size <= 0 or self.eval_segment_size % network.hop_length):
      raise ValueError(f"eval_segment_size={self.eval_segment_size} must be a positive multiple "
                       f"of the hop length {network.hop_length}, or None for full utterances")
    if self.shuffle_buffer_size < 1:
      raise ValueError(f"shuffle_buffer_size must be >= 1, got {self.shuffle_buffer_size}")

  @classmethod
  def from_network(cls, network: HifiGanConfig, **task_fields) -> "HifiGanTaskConfig":
    """The task config of a `HifiGanConfig` (its training fields dropped)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {f.name: getattr(network, f.name) for f in dataclasses.fields(network)
              if f.name in names}
    return cls(**values, **task_fields)

  def network_config(self) -> HifiGanConfig:
    """The `HifiGanConfig` the networks are built from."""
    names = {f.name for f in dataclasses.fields(HifiGanConfig)}
    return HifiGanConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                            if f.name in names})

  @property
  def hop_length(self) -> int:
    return self.network_config().hop_length


# Fields a fine-tuning source must share with the new run (they shape variables).
_ARCHITECTURE_FIELDS = tuple(f.name for f in dataclasses.fields(HifiGanTaskConfig)
                             if f.name in {g.name for g in dataclasses.fields(HifiGanConfig)}
                             and f.name != "segment_size")

PRESETS = {name: HifiGanTaskConfig.from_network(make()) for name, make in
           hifigan_presets.PRESETS.items()}


def reference_train_config(preset: str) -> TrainConfig:
  """The jik876/hifi-gan optimiser settings of `preset` as a `TrainConfig`."""
  network = hifigan_presets.get_preset(preset)
  return TrainConfig(
      batch_size=network.batch_size, max_steps=REFERENCE_MAX_STEPS, seed=network.seed,
      optimizer="adamw", learning_rate=network.learning_rate, lr_schedule="exponential",
      decay_steps=REFERENCE_TRAIN_CLIPS // network.batch_size, decay_rate=network.lr_decay,
      beta_1=network.adam_b1, beta_2=network.adam_b2, weight_decay=network.adam_weight_decay,
      log_every=100, checkpoint_every=5000, eval_every=1000, eval_batches=10,
      summary_every=5000)


def _run_config(workdir: str):
  from tfspeech.training import config as run_config  # pylint: disable=import-outside-toplevel
  return run_config.load_run_config(workdir, lambda name: registry.get(name).config_class)


@registry.register("hifigan")
class HifiGanTask(registry.Task):
  """Generator "generator", discriminators "mpd" and "msd"; optimisers "generator" and
  "discriminator" (over mpd + msd), each AdamW with the run's optimiser settings."""
  config_class = HifiGanTaskConfig
  presets = PRESETS
  serving_role = "vocoder"

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[dict] = None
    self._data_dir: Optional[str] = None
    self._loss_mel: Optional[MelReconstructionLoss] = None
    self._input_mel: Optional[audio_lib.MelSpectrogram] = None

  @property
  def data_checkpoint(self):
    return self.config.data_checkpoint

  @classmethod
  def default_train_config(cls, preset):
    config = reference_train_config(preset)
    if preset == "tiny":
      # A CPU smoke model: a higher rate shows the mel error falling within ~100 steps
      # on the bundled corpus; decay off (its "epoch" is a couple of steps).
      return dataclasses.replace(
          config, max_steps=2000, learning_rate=2e-3, lr_schedule="constant", log_every=10,
          checkpoint_every=500, eval_every=100, eval_batches=1, summary_every=500)
    return config

  # ------------------------------------------------------------------ modules
  def build(self):
    network = self.config.network_config()
    generator = HifiGanGenerator(network, weight_norm=True, name="generator")
    mpd, msd = build_discriminators(network)
    return {"generator": generator, "mpd": mpd, "msd": msd}

  def serving(self, modules, data_info):
    """The `Vocoder` for inference and export: the generator, weight norm folded."""
    from tfspeech.models.hifigan import hifigan_serving  # pylint: disable=import-outside-toplevel
    return hifigan_serving.HifiGanServing.from_data_info(modules["generator"], data_info)

  def optimizers(self, train_config):
    settings = train_config.optimizer_config()
    if self._info is not None and settings.schedule == "exponential":
      steps_per_epoch = max(int(self._info["counts"]["train"]) // train_config.batch_size, 1)
      if steps_per_epoch != settings.decay_steps:
        logging.warning(
            "hifigan: the learning rate decays by %g every decay_steps=%d steps, but an epoch "
            "of %s is %d steps; pass --override=decay_steps=%d to decay once per epoch as "
            "the reference does", settings.decay_rate, settings.decay_steps, self._data_dir,
            steps_per_epoch, steps_per_epoch)
    return {"discriminator": registry.OptimizerSpec(("mpd", "msd"), settings),
            "generator": registry.OptimizerSpec(("generator",), settings)}

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> dict:
    """Reads dataset.json once, checks it against the config, sets up the mel losses."""
    if self._info is not None and data_dir == self._data_dir:
      return self._info
    if not data_dir:
      raise ValueError("hifigan needs prepared data: pass --data=DIR (the output of "
                       "tfspeech-prepare, or of tfspeech-synthesize --gta for fine-tuning)")
    info = dataset_lib.load_dataset_info(data_dir)
    c = self.config
    if int(info["n_mels"]) != c.num_mels:
      raise ValueError(f"hifigan: the corpus in {data_dir} has {info['n_mels']}-bin mels but "
                       f"the generator takes num_mels={c.num_mels}; pass "
                       f"--override=num_mels={info['n_mels']} or re-prepare the corpus")
    if int(info["hop_length"]) != c.hop_length:
      raise ValueError(
          f"hifigan: the corpus in {data_dir} has hop length {info['hop_length']} but the "
          f"generator makes prod(upsample_rates)={c.hop_length} samples per frame; choose "
          "upsample_rates whose product is the hop length, or re-prepare the corpus")
    if not int(info.get("counts", {}).get("train", 0)):
      raise ValueError(f"hifigan: the corpus in {data_dir} has no train utterances")
    mel_config = audio_lib.MelConfig(**info["mel_config"])
    # Reference: the loss compares mels up to Nyquist (fmax_for_loss=None) with the
    # input mel's other settings.
    self._loss_mel = MelReconstructionLoss(mel_config.replace(fmax=None))
    self._input_mel = audio_lib.MelSpectrogram(mel_config)
    self.sample_rate = int(info["sample_rate"])
    self._info, self._data_dir = info, data_dir
    return info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = ("sample_rate", "hop_length", "n_mels", "mel_config", "mel_pad_value", "counts",
            "gta")
    return {k: info[k] for k in keys if k in info}

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    c = self.config
    if split == "train":
      return dataset_lib.make_dataset(
          data_dir, "train", batch_size=train_config.batch_size, features=("audio", "mel"),
          shuffle=True, seed=train_config.seed, repeat=True, segment_samples=c.segment_size,
          drop_remainder=True, shuffle_buffer_size=c.shuffle_buffer_size)
    if not int(info.get("counts", {}).get("validation", 0)):
      return None
    return dataset_lib.make_dataset(
        data_dir, "validation", batch_size=train_config.batch_size, features=("audio", "mel"),
        shuffle=False, seed=train_config.seed, repeat=False, bucket_boundaries=False,
        segment_samples=c.eval_segment_size)

  # ------------------------------------------------------------------ steps
  def _loss_mel_fn(self) -> MelReconstructionLoss:
    if self._loss_mel is None:
      raise ValueError("hifigan: call dataset() (or data_info()) with the prepared data "
                       "before the train/eval step: the mel loss follows the data's mel config")
    return self._loss_mel

  def _mel(self, batch):
    # The trainer relaxes every input dimension; the mel bins are static.
    return tf.ensure_shape(batch["mel"], [None, None, self.config.num_mels])

  @staticmethod
  def _discriminate(discriminator, real, fake):
    """One call on `concat([real, fake])` (half the graph of two calls), split back.

    Returns:
      (real_logits, fake_logits, real_maps, fake_maps), lists as the discriminators give.
    """
    count = tf.shape(real)[0]
    logits, maps = discriminator(tf.concat([real, fake], axis=0), training=True)
    real_maps = [[m[:count] for m in sub] for sub in maps]
    fake_maps = [[m[count:] for m in sub] for sub in maps]
    return [x[:count] for x in logits], [x[count:] for x in logits], real_maps, fake_maps

  def train_step(self, batch, ctx):
    generator = self.modules["generator"]
    discriminators = (self.modules["mpd"], self.modules["msd"])
    loss_mel = self._loss_mel_fn()
    mel = self._mel(batch)
    real = batch["audio"][:, :tf.shape(mel)[1] * self.config.hop_length]
    with tf.GradientTape() as g_tape:
      fake = generator(mel, training=True)
    # Discriminator update on the detached fake.
    with tf.GradientTape() as d_tape:
      d_parts = []
      for discriminator in discriminators:
        real_logits, fake_logits, _, _ = self._discriminate(
            discriminator, real, tf.stop_gradient(fake))
        d_parts.append(discriminator_loss(real_logits, fake_logits)[0])
      d_loss = ctx.mean(tf.add_n(d_parts))
    ctx.apply("discriminator", d_loss, d_tape)
    # Generator update through the *updated* discriminators: re-entering g_tape
    # continues the recording of the generator's forward pass.
    with g_tape:
      adversarial, feature_matching = [], []
      for discriminator in discriminators:
        _, fake_logits, real_maps, fake_maps = self._discriminate(discriminator, real, fake)
        adversarial.append(generator_loss(fake_logits)[0])
        feature_matching.append(feature_matching_loss(real_maps, fake_maps))
      g_adv = ctx.mean(tf.add_n(adversarial))
      g_fm = ctx.mean(tf.add_n(feature_matching))
      g_mel = ctx.mean(loss_mel(real, fake))
      g_loss = g_adv + g_fm + g_mel
    ctx.apply("generator", g_loss, g_tape)
    # Per-replica shares (ctx.mean of a scalar divides by the replica count).
    return {"d_loss": d_loss, "d_mpd": ctx.mean(d_parts[0]), "d_msd": ctx.mean(d_parts[1]),
            "g_total": g_loss, "g_adv": g_adv, "g_feature_matching": g_fm, "g_mel": g_mel,
            # The reference's "Mel-Spec. Error": the unweighted L1.
            "mel_l1": g_mel / MEL_LOSS_WEIGHT}

  def eval_step(self, batch, ctx):
    """Mel L1 (unweighted, loss mel convention) over the valid frames of held-out clips."""
    loss_mel = self._loss_mel_fn().mel_spectrogram
    mel = self._mel(batch)
    frames = tf.shape(mel)[1]
    samples = frames * self.config.hop_length
    fake = self.modules["generator"](mel, training=False)
    real = batch["audio"][:, :samples]
    # Padded batches: records may hold up to hop - 1 samples past their last frame.
    real = tf.pad(real, [[0, 0], [0, samples - tf.shape(real)[1]]])
    difference = tf.abs(loss_mel(real) - loss_mel(fake))
    valid = tf.sequence_mask(batch["mel_lengths"], tf.shape(difference)[1], tf.float32)
    return {"mel_l1": ctx.masked_mean(difference, valid[..., None])}

  def summaries(self, batch):
    """The first clip of `batch`: real and generated audio, input and generated mels."""
    mel = self._mel(batch)
    frames = batch["mel_lengths"][0]
    generated = self.modules["generator"](mel[:1, :frames], training=False)
    real = batch["audio"][:1, :frames * self.config.hop_length]
    results = {"audio/real": real, "audio/generated": generated,
               "images/mel_input": summaries_lib.mel_image(mel[0, :frames])}
    if self._input_mel is not None:
      results["images/mel_generated"] = summaries_lib.mel_image(self._input_mel(generated)[0])
    return results

  # ------------------------------------------------------------------ fine-tuning
  def warm_start(self, trainer) -> Optional[str]:
    """Initialises a *new* run from `config.finetune_from` (no-op when it is empty).

    The hook a training loop calls once, after finding no checkpoint of the run
    itself and before the first step (`Task.warm_start(trainer)`); callers of
    `Trainer` + `fit` may call it themselves in the same place.

    Loads the source run's newest generator and discriminator weights into
    `trainer.modules` and, with `finetune_optimizers`, both optimisers' states.
    Meant to run once before step 0 of a fresh run (never on resume, which
    restores the run's own checkpoint).

    Returns:
      The checkpoint path read, or None.

    Raises:
      FileNotFoundError: the source is not a run directory or has no checkpoint.
      ValueError: the source is not a hifigan run, its networks differ in shape,
        or it was trained on another mel convention than this run's data.
    """
    source = self.config.finetune_from
    if not source:
      return None
    where = f"hifigan: finetune_from={source}"
    run = _run_config(source)
    if run is None:
      raise FileNotFoundError(f"{where}: no config.json there; pass the workdir of a trained "
                              "hifigan run")
    if run.model != "hifigan":
      raise ValueError(f"{where} is a run of model {run.model!r}, not hifigan")
    differences = [f"{name}: {getattr(run.model_config, name)!r} → "
                   f"{getattr(self.config, name)!r}" for name in _ARCHITECTURE_FIELDS
                   if getattr(run.model_config, name) != getattr(self.config, name)]
    if differences:
      raise ValueError(f"{where}: its networks differ from this run's (source → this run):\n  "
                       + "\n  ".join(differences) + f"\nStart the new run with "
                       f"--preset={run.preset} and the source run's model overrides")
    source_mel = (run.data_info or {}).get("mel_config")
    if self._info is not None and source_mel is not None \
        and source_mel != self._info["mel_config"]:
      raise ValueError(f"{where}: it was trained on mels {source_mel} but {self._data_dir} "
                       f"holds mels {self._info['mel_config']}; fine-tune on data prepared "
                       "with the source run's mel config")
    checkpoint = checkpoints_lib.latest_checkpoint(source)
    if checkpoint is None:
      raise FileNotFoundError(f"{where}: no checkpoint in {os.path.join(source, 'checkpoints')}")
    # The same object layout as a training checkpoint (Trainer.checkpoint_objects).
    objects = {"modules": checkpoints_lib.modules_checkpoint(trainer.modules)}
    # A constant learning rate is an optimizer *variable*; keep this run's value.
    learning_rates = []
    if self.config.finetune_optimizers:
      objects["optimizers"] = tf.train.Checkpoint(**trainer.optimizers)
      learning_rates = [(v, v.numpy()) for optimizer in trainer.optimizers.values()  # graph-ok
                        for v in optimizer.variables if v.name == "learning_rate"]
    status = tf.train.Checkpoint(**objects).read(checkpoint)
    status.expect_partial()
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise ValueError(f"{where}: {checkpoint} does not hold every variable of this run "
                       f"({e})") from e
    for variable, value in learning_rates:
      variable.assign(value)
    logging.info("hifigan: initialised %s from %s", "modules and optimizers"
                 if self.config.finetune_optimizers else "modules", checkpoint)
    return checkpoint

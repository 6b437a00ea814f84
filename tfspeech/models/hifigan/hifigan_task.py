r"""The "hifigan" training task: GAN vocoder training on prepared (or GTA) TFRecords.

  tfspeech-prepare --corpus=LJSpeech-1.1 --out=data/ljspeech
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech --workdir=runs/hifigan
  # Fine-tuning on ground-truth-aligned mels of an acoustic model (same record schema):
  # the trainer loads the source run's weights before step 0 of the new run (`init_from`,
  # a TrainConfig field; `init_optimizers=true` also takes both optimisers' state, as the
  # reference's fine-tuning does by resuming its checkpoint):
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech_gta --workdir=runs/hifigan_ft \
      --override=init_from=runs/hifigan

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

from typing import Any, Mapping, Optional

import tensorflow as tf
from absl import logging

from tfspeech import audio as audio_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import VOCODER_RUN_FACTS, MEL_CONVENTION, CorpusInfo
from tfspeech.models import registry
from tfspeech.models.hifigan import hifigan_presets
from tfspeech.models.hifigan.discriminators import build_discriminators
from tfspeech.models.hifigan.generator import HifiGanGenerator
from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.models.hifigan.hifigan_config import HifiGanTaskConfig  # noqa: F401 (old name)
from tfspeech.models.hifigan.losses import (MEL_LOSS_WEIGHT, MelReconstructionLoss,
                                            discriminator_loss, feature_matching_loss,
                                            generator_loss)
from tfspeech.training import summaries as summaries_lib
from tfspeech.training.config import TrainConfig

# The one preset table (hifigan_presets); the task adds no fields of its own.
PRESETS = hifigan_presets.PRESETS
REFERENCE_TRAIN_CLIPS = hifigan_presets.REFERENCE_TRAIN_CLIPS
REFERENCE_MAX_STEPS = hifigan_presets.REFERENCE_MAX_STEPS


def reference_train_config(preset: str) -> TrainConfig:
  """The jik876/hifi-gan optimiser settings as a `TrainConfig` (the same for every preset)."""
  hifigan_presets.get_preset(preset)
  return hifigan_presets.reference_train_config()


@registry.register("hifigan")
class HifiGanTask(registry.Task):
  """Generator "generator", discriminators "mpd" and "msd"; optimisers "generator" and
  "discriminator" (over mpd + msd), each AdamW with the run's optimiser settings."""
  config_class = HifiGanConfig
  presets = PRESETS
  serving_role = "vocoder"
  serving_precisions = ("float32", "bfloat16")  # tests/inference/test_vocode.py
  # Training policies besides float32 (tests/training/test_mixed_precision.py).
  mixed_precisions = ("mixed_bfloat16", "mixed_float16")

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None
    self._data_dir: Optional[str] = None
    self._loss_mel: Optional[MelReconstructionLoss] = None
    self._input_mel: Optional[audio_lib.MelSpectrogram] = None

  @property
  def data_checkpoint(self):
    return self.config.data_checkpoint

  @classmethod
  def default_train_config(cls, preset):
    return hifigan_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    generator = HifiGanGenerator(self.config, weight_norm=True, name="generator")
    mpd, msd = build_discriminators(self.config)
    return {"generator": generator, "mpd": mpd, "msd": msd}

  def serving(self, modules, data_info):
    """The `Vocoder` for inference and export: the generator, weight norm folded."""
    from tfspeech.models.hifigan import hifigan_serving  # pylint: disable=import-outside-toplevel
    return hifigan_serving.HifiGanServing.from_data_info(modules["generator"], data_info)

  def optimizers(self, train_config):
    settings = train_config.optimizer_config()
    if self._info is not None and settings.schedule == "exponential":
      steps_per_epoch = max(self._info.count("train") // train_config.batch_size, 1)
      if steps_per_epoch != settings.decay_steps:
        logging.warning(
            "hifigan: the learning rate decays by %g every decay_steps=%d steps, but an epoch "
            "of %s is %d steps; pass --override=decay_steps=%d to decay once per epoch as "
            "the reference does", settings.decay_rate, settings.decay_steps, self._data_dir,
            steps_per_epoch, steps_per_epoch)
    return {"discriminator": registry.OptimizerSpec(("mpd", "msd"), settings),
            "generator": registry.OptimizerSpec(("generator",), settings)}

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    """Reads dataset.json once, checks it against the config, sets up the mel losses."""
    if self._info is not None and data_dir == self._data_dir:
      return self._info
    if not data_dir:
      raise ValueError("hifigan needs prepared data: pass --data=DIR (the output of "
                       "tfspeech-prepare, or of tfspeech-synthesize --gta for fine-tuning)")
    info = CorpusInfo.load(data_dir, require=("mel_config",))
    c = self.config
    if info.n_mels != c.num_mels:
      raise ValueError(f"hifigan: the corpus in {data_dir} has {info.n_mels}-bin mels but "
                       f"the generator takes num_mels={c.num_mels}; pass "
                       f"--override=num_mels={info.n_mels} or re-prepare the corpus")
    if info.hop_length != c.hop_length:
      raise ValueError(
          f"hifigan: the corpus in {data_dir} has hop length {info.hop_length} but the "
          f"generator makes prod(upsample_rates)={c.hop_length} samples per frame; choose "
          "upsample_rates whose product is the hop length, or re-prepare the corpus")
    if not info.count("train"):
      raise ValueError(f"hifigan: the corpus in {data_dir} has no train utterances")
    mel_config = info.mel_config
    # Reference: the loss compares mels up to Nyquist (fmax_for_loss=None) with the
    # input mel's other settings.
    self._loss_mel = MelReconstructionLoss(mel_config.replace(fmax=None))
    self._input_mel = audio_lib.MelSpectrogram(mel_config)
    self.sample_rate = info.sample_rate
    self._info, self._data_dir = info, data_dir
    return info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = VOCODER_RUN_FACTS
    return info.to_dict(keys)

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    c = self.config
    if split == "train":
      return dataset_lib.make_dataset(
          data_dir, "train", batch_size=train_config.batch_size, features=("audio", "mel"),
          shuffle=True, seed=train_config.seed, repeat=True, segment_samples=c.segment_size,
          drop_remainder=True, shuffle_buffer_size=c.shuffle_buffer_size)
    if not info.count("validation"):
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

  def _generate(self, mel, training):
    """`[batch, frames, mels]` -> `[batch, samples]` float32 audio under any dtype policy
    (mixed-precision training computes the generator in bfloat16/float16; the mel loss's
    STFT and the discriminators' inputs take float32)."""
    return tf.cast(self.modules["generator"](mel, training=training), tf.float32)

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
    discriminators = (self.modules["mpd"], self.modules["msd"])
    loss_mel = self._loss_mel_fn()
    mel = self._mel(batch)
    real = batch["audio"][:, :tf.shape(mel)[1] * self.config.hop_length]
    with tf.GradientTape() as g_tape:
      fake = self._generate(mel, training=True)
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
    fake = self._generate(mel, training=False)
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
    generated = self._generate(mel[:1, :frames], training=False)
    real = batch["audio"][:1, :frames * self.config.hop_length]
    results = {"audio/real": real, "audio/generated": generated,
               "images/mel_input": summaries_lib.mel_image(mel[0, :frames])}
    if self._input_mel is not None:
      results["images/mel_generated"] = summaries_lib.mel_image(self._input_mel(generated)[0])
    return results

  # ------------------------------------------------------------------ fine-tuning
  def check_init_source(self, source: Mapping[str, Any], where: str) -> None:
    """Refuses to fine-tune from a run trained on another mel convention than this data.

    The trainer (`TrainConfig.init_from`) has checked the variable shapes; a
    vocoder's weights also encode the mels it learned from, which shapes cannot show.
    """
    data_info = (source or {}).get("data_info") or {}
    if self._info is None or not data_info.get("mel_config"):
      return
    differences = CorpusInfo.from_dict(data_info, source=where).differences(
        self._info, MEL_CONVENTION)
    if differences:
      raise ValueError(f"{where}: it was trained on mels of another convention than "
                       f"{self._data_dir} holds:\n  " + "\n  ".join(differences) +
                       "\nFine-tune on data prepared with the source run's mel config")

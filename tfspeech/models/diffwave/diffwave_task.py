r"""The "diffwave" training task: the denoising objective on random crops of prepared TFRecords.

  tfspeech-prepare --corpus=LJSpeech-1.1 --out=data/ljspeech
  tfspeech-train --model=diffwave --preset=base --data=data/ljspeech --workdir=runs/diffwave \
      --keep_checkpoints=3 --keep_every_steps=100000

One step (lmnt-com/diffwave learner.py): per clip a training step t ~ U{0..T-1} and noise
eps ~ N(0, 1); x_t = sqrt(talpha_cum_t) x_0 + sqrt(1 - talpha_cum_t) eps; the network predicts
eps from (x_t, t, mel); the loss is the L1 between the two (mean over samples and clips). Adam,
lr 2e-4, batch 16, no clipping (params.py). The trainer adds everything else (resume, the
non-finite guard, checkpoints and their retention, summaries).

Deviations from the reference, each named:
- Mels are the prepared corpus' (the HiFi-GAN log-mel convention, recorded in `data_info`),
  not the reference's own normalised 20 log10 mels: a DiffWave run vocodes the mels its
  corpus was prepared with, as every tfspeech vocoder does.
- Crops: `crop_mel_frames` (62) frames from `tfspeech.data.make_dataset(segment_samples=...)`;
  clips shorter than the crop are zero-padded, where the reference drops them.
- Validation reports the same L1 on fixed crops with fixed steps and noise (stateless seeds),
  so its value is comparable across evaluations.
- Summaries: the first clip's crop vocoded with the fast 6-step process.
"""

from typing import Any, Mapping, Optional

import tensorflow as tf

from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import VOCODER_RUN_FACTS, MEL_CONVENTION, CorpusInfo
from tfspeech.models import registry
from tfspeech.models.diffwave import diffusion, diffwave_presets
from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig
from tfspeech.models.diffwave.diffwave_model import build_model
from tfspeech.models.diffwave.diffwave_serving import CONTROLS, DiffWaveServing
from tfspeech.training import summaries as summaries_lib

PRESETS = diffwave_presets.PRESETS
# Fixed seeds of the validation steps/noise and of the summary's reverse-process noise.
EVAL_SEED = (19, 0)
SUMMARY_SEED = (19, 1)


@registry.register("diffwave")
class DiffWaveTask(registry.Task):
  """Module "diffwave" (the noise predictor); one Adam optimiser "main"."""
  config_class = DiffWaveConfig
  presets = PRESETS
  serving_role = "vocoder"
  serving_controls = CONTROLS
  # Prepared TFRecord corpora: the shuffle buffer holds whole clips (see Task.data_checkpoint).
  data_checkpoint = "reseed"
  # Training policies besides float32 (tests/training/test_mixed_precision.py).
  mixed_precisions = ("mixed_bfloat16", "mixed_float16")

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None
    self._data_dir: Optional[str] = None

  @classmethod
  def default_train_config(cls, preset):
    return diffwave_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    return {"diffwave": build_model(self.config)}

  def serving(self, modules, data_info):
    """The `Vocoder` for inference and export."""
    return DiffWaveServing.from_data_info(modules["diffwave"], data_info)

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    """Reads dataset.json once and checks it against the config."""
    if self._info is not None and data_dir == self._data_dir:
      return self._info
    if not data_dir:
      raise ValueError("diffwave needs prepared data: pass --data=DIR (the output of "
                       "tfspeech-prepare)")
    info = CorpusInfo.load(data_dir, require=("mel_config",))
    c = self.config
    if not c.unconditional and info.n_mels != c.n_mels:
      raise ValueError(f"diffwave: the corpus in {data_dir} has {info.n_mels}-bin mels but the "
                       f"model takes n_mels={c.n_mels}; pass --override=n_mels={info.n_mels} "
                       "or re-prepare the corpus")
    if info.hop_length != c.hop_length:
      raise ValueError(
          f"diffwave: the corpus in {data_dir} has hop length {info.hop_length} but the "
          f"upsampler makes upsample_stride**2={c.hop_length} samples per frame; choose "
          "upsample_stride with upsample_stride**2 = the hop length, or re-prepare the corpus")
    if not info.count("train"):
      raise ValueError(f"diffwave: the corpus in {data_dir} has no train utterances")
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
        shuffle=False, seed=train_config.seed, repeat=False, segment_samples=c.segment_size)

  # ------------------------------------------------------------------ steps
  def _crop(self, batch):
    """(audio `[b, frames * hop]`, mel `[b, frames, n_mels]`) of a cropped batch."""
    mel = tf.ensure_shape(batch["mel"], [None, None, self.config.n_mels])
    audio = batch["audio"][:, :tf.shape(mel)[1] * self.config.hop_length]
    return audio, (None if self.config.unconditional else mel)

  def _loss(self, audio, mel, steps, noise, training):
    talpha_cum = diffusion.noise_levels(self.config.noise_schedule)
    noisy = diffusion.training_noise(audio, steps, noise, talpha_cum)
    predicted = self.modules["diffwave"]((noisy, steps, mel), training=training)
    # The L1 in float32 under a mixed-precision policy (the network computes in bfloat16 or
    # float16 there).
    return tf.reduce_mean(tf.abs(noise - tf.cast(predicted, tf.float32)), axis=1)  # [batch]

  def train_step(self, batch, ctx):
    audio, mel = self._crop(batch)
    count = tf.shape(audio)[0]
    steps = ctx.rng.uniform([count], 0, self.config.diffusion_steps, dtype=tf.int32)
    noise = ctx.rng.normal(tf.shape(audio))
    with tf.GradientTape() as tape:
      loss = ctx.mean(self._loss(audio, mel, steps, noise, training=True))
    ctx.apply("main", loss, tape)
    return {"loss": loss}

  def eval_step(self, batch, ctx):
    """The training L1 with fixed steps and noise per batch position."""
    audio, mel = self._crop(batch)
    count = tf.shape(audio)[0]
    steps = tf.random.stateless_uniform([count], EVAL_SEED, 0, self.config.diffusion_steps,
                                        dtype=tf.int32)
    noise = tf.random.stateless_normal(tf.shape(audio), EVAL_SEED)
    return {"loss": ctx.mean(self._loss(audio, mel, steps, noise, training=False))}

  def summaries(self, batch):
    """The first clip's crop: real audio, audio from the fast 6-step process, input mel."""
    audio, mel = self._crop(batch)
    frames = tf.shape(batch["mel"])[1]
    vocoder = DiffWaveServing(self.modules["diffwave"], self.sample_rate).in_process()
    noise = tf.random.stateless_normal(
        [1, frames * self.config.hop_length, vocoder.noise_channels], SUMMARY_SEED)
    generated = vocoder.vocode(batch["mel"][:1], frames[None], noise,
                               steps=len(self.config.inference_noise_schedule))["audio"]
    results = {"audio/real": audio[:1], "audio/generated": generated}
    if mel is not None:
      results["images/mel_input"] = summaries_lib.mel_image(mel[0])
    return results

  # ------------------------------------------------------------------ fine-tuning
  def check_init_source(self, source: Mapping[str, Any], where: str) -> None:
    """Refuses to fine-tune from a run trained on another mel convention than this data."""
    data_info = (source or {}).get("data_info") or {}
    if self._info is None or not data_info.get("mel_config"):
      return
    differences = CorpusInfo.from_dict(data_info, source=where).differences(
        self._info, MEL_CONVENTION)
    if differences:
      raise ValueError(f"{where}: it was trained on mels of another convention than "
                       f"{self._data_dir} holds:\n  " + "\n  ".join(differences) +
                       "\nFine-tune on data prepared with the source run's mel config")

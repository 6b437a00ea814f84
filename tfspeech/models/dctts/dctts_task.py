"""The "dctts" training task: Text2Mel, SSRN or both, chosen by the `stage` config field.

  tfspeech-prepare --corpus=tests/data/ljspeech_tiny --out=data/tiny --workers=1
  tfspeech-train --model=dctts --preset=tiny --data=data/tiny --workdir=runs/t2m
  tfspeech-train --model=dctts --preset=tiny --data=data/tiny --workdir=runs/dctts \
      --override=stage=ssrn --override=init_from=runs/t2m:text2mel

Every run builds both networks ("text2mel" and "ssrn" modules), so a run serves whole; the
stage picks the one optimizer's modules: "text2mel", "ssrn" or both ("joint"). Train Text2Mel,
then SSRN initialised with that run's Text2Mel (above): the SSRN run then holds both trained
networks. A resumed run refuses a changed stage as it refuses any changed setting.

Targets (paper; Kyubyong/dc_tts): coarse mels are every r-th frame of the prepared mel, and
linear magnitudes are computed in the step from the prepared audio with the corpus' STFT
(`MelConfig`: window, hop, padding); both in dB normalised to [0, 1] (`DCTTSConfig.ref_db`,
`max_db`). Losses, each a mean over this replica's share of the global batch's valid frames:
- text2mel: L1 + binary divergence of the mels + guided attention (g = 0.2, each item's own
  N and T); Text2Mel reads the true mels shifted by `chunk_size` frames (one parallel pass).
- ssrn: L1 + binary divergence of the magnitudes, SSRN reading the true coarse mels.
- joint: both; SSRN reads Text2Mel's teacher-forced mels (so its loss reaches Text2Mel).
`diagonality` (logged, not trained) is the share of the attention inside the guided band.
"""

from typing import Optional

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import ACOUSTIC_RUN_FACTS, CorpusInfo
from tfspeech.models import registry
from tfspeech.models.dctts import dctts_model
from tfspeech.models.dctts import dctts_presets
from tfspeech.models.dctts import dctts_serving
from tfspeech.models.dctts import losses as losses_lib
from tfspeech.models.dctts.dctts_config import DCTTSConfig
from tfspeech.training import summaries as summaries_lib
from tfspeech.training.task import OptimizerSpec

PRESETS = dctts_presets.PRESETS
_SYMBOL_PRESETS = ("english_characters", "english_arpabet")
# Peak level of the Griffin-Lim preview in TensorBoard (dBFS).
_PREVIEW_PEAK_DB = -1.0
# The free-running TensorBoard sample may run this many times the target's coarse frames.
_SUMMARY_LENGTH_FACTOR = 2


def check_corpus(config: DCTTSConfig, info: CorpusInfo, data_dir: str) -> None:
  """Fails with the fix when the prepared corpus does not fit the config.

  Raises:
    ValueError: naming the override (or `tfspeech-prepare` flag) that fixes it.
  """
  def refuse(problem, fix):
    raise ValueError(f"dctts: {problem} (corpus prepared in {data_dir}); {fix}.")

  mel = info.mel_config
  if info.n_mels != config.n_mels:
    refuse(f"the corpus has {info.n_mels}-bin mels but the model predicts n_mels="
           f"{config.n_mels}", f"pass --override=n_mels={info.n_mels}")
  if info.sample_rate != config.sample_rate:
    refuse(f"the corpus is at {info.sample_rate} Hz but the model's sample_rate is "
           f"{config.sample_rate}", f"pass --override=sample_rate={info.sample_rate} (hop and "
           "FFT sizes follow unless set)")
  if mel.hop_length != config.hop:
    refuse(f"the corpus' mel hop is {mel.hop_length} samples, the model's {config.hop}",
           f"pass --override=hop_length={mel.hop_length}")
  if mel.n_fft != config.fft_size:
    refuse(f"the corpus' STFT has n_fft={mel.n_fft}, the model predicts {config.n_linear} "
           f"bins (n_fft={config.fft_size})", f"pass --override=n_fft={mel.n_fft}")
  if info.num_speakers > 1:
    refuse(f"the corpus has {info.num_speakers} speakers but DC-TTS is single-speaker",
           "prepare one speaker's recordings")
  count = len(info.symbols)
  if count != config.n_symbols:
    fixes = [f"train with --override=n_symbols={count} (a new model for this corpus)"]
    fits = [name for name in _SYMBOL_PRESETS
            if len(text_lib.get_symbol_table(name)) == config.n_symbols]
    if fits:
      fixes.append(f"re-prepare the corpus with tfspeech-prepare --symbols={fits[0]}")
    refuse(f"the model embeds n_symbols={config.n_symbols} ids but the corpus uses symbol "
           f"table {info.symbols.name!r} with {count} symbols", ", or ".join(fixes))


@registry.register("dctts")
class DCTTSTask(registry.Task):
  """DC-TTS: modules "text2mel" and "ssrn"; one Adam optimizer ("main") over the stage's."""
  config_class = DCTTSConfig
  presets = PRESETS
  data_checkpoint = "reseed"
  serving_role = "acoustic"
  serving_controls = dctts_serving.CONTROLS

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None
    self._spectra: Optional[audio_lib.MelConfig] = None

  @classmethod
  def default_train_config(cls, preset):
    return dctts_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    return {"text2mel": dctts_model.Text2Mel(self.config, name="text2mel"),
            "ssrn": dctts_model.SSRN(self.config, name="ssrn")}

  def optimizers(self, train_config):
    del train_config
    modules = {"text2mel": ("text2mel",), "ssrn": ("ssrn",), "joint": ("text2mel", "ssrn")}
    return {"main": OptimizerSpec(modules=modules[self.config.stage])}

  def serving(self, modules, data_info):
    """The `AcousticModel` for inference and export (see `dctts_serving`)."""
    mel_config = None
    if data_info and data_info.get("mel_config"):
      mel_config = CorpusInfo.from_dict(data_info, require=("mel_config",)).mel_config
    return dctts_serving.DCTTSServing(modules["text2mel"], modules["ssrn"], mel_config)

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    if self._info is None:
      if not data_dir:
        raise ValueError("dctts needs prepared data: pass --data=DIR (the output of "
                         "tfspeech-prepare)")
      info = CorpusInfo.load(data_dir, require=("symbols", "mel_config"))
      check_corpus(self.config, info, data_dir)
      self._info = info
      self.sample_rate = info.sample_rate
    return self._info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = ACOUSTIC_RUN_FACTS
    recorded = info.replace(add_blank=info.symbols.blank is not None, blank_id=None)
    return recorded.to_dict(keys + ("add_blank", "blank_id"))

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    training = split == "train"
    if not training and not info.count("validation"):
      return None
    # Audio only where magnitudes are trained (it is the heaviest feature).
    features = ("text_ids", "mel") + (("audio",) if self.config.trains_ssrn else ())
    return dataset_lib.make_dataset(
        data_dir, "train" if training else "validation", batch_size=train_config.batch_size,
        features=features, shuffle=training, seed=train_config.seed, repeat=training,
        bucket_boundaries=None if training else False, drop_remainder=training)

  # ------------------------------------------------------------------ steps
  def _targets(self, batch):
    """Coarse mel targets, their lengths and mask (and magnitudes when SSRN trains)."""
    config, info = self.config, self._info
    mel = tf.ensure_shape(batch["mel"], [None, None, config.n_mels])
    mel_lengths = tf.cast(batch["mel_lengths"], tf.int32)
    coarse = dctts_model.mel_targets(mel, info.mel_config, config)
    lengths = dctts_model.coarse_lengths(mel_lengths, config.reduction)
    targets = {"coarse": coarse, "lengths": lengths,
               "mask": dctts_model.sequence_mask3(lengths, tf.shape(coarse)[1])}
    if config.trains_ssrn:
      frames = tf.shape(coarse)[1] * config.reduction
      targets["magnitudes"] = dctts_model.magnitude_targets(
          tf.cast(batch["audio"], tf.float32), info.mel_config, config, frames)
      targets["full_mask"] = dctts_model.sequence_mask3(mel_lengths, frames)
    return targets

  def _losses(self, batch, ctx, training, seed):
    config = self.config
    targets = self._targets(batch)
    results, total = {}, 0.0
    coarse_input = targets["coarse"]
    if config.trains_text2mel:
      out = self.modules["text2mel"].teacher_forced(
          batch["text_ids"], batch["text_lengths"], targets["coarse"], training, seed)
      l1, divergence = losses_lib.spectral_losses(out["logits"], targets["coarse"],
                                                  targets["mask"], ctx.masked_mean)
      attention = losses_lib.guided_attention_loss(
          out["alignments"], batch["text_lengths"], targets["lengths"],
          config.guided_attention_g, ctx.masked_mean)
      diagonal = losses_lib.diagonality(out["alignments"], batch["text_lengths"],
                                        targets["lengths"], config.guided_attention_g)
      results.update(mel_l1=l1, mel_divergence=divergence, attention_loss=attention,
                     diagonality=diagonal / tf.cast(ctx.num_replicas, tf.float32))
      total += l1 + divergence + attention
      coarse_input = out["mel"]
    if config.trains_ssrn:
      logits = self.modules["ssrn"](coarse_input, targets["lengths"], training=training,
                                    seed=seed)
      l1, divergence = losses_lib.spectral_losses(logits, targets["magnitudes"],
                                                  targets["full_mask"], ctx.masked_mean)
      results.update(magnitude_l1=l1, magnitude_divergence=divergence)
      total += l1 + divergence
    results["loss"] = total
    return results

  def train_step(self, batch, ctx):
    # Dropout comes from the trainer's checkpointed RNG (a resumed run draws the same).
    seed = ctx.rng.uniform_full_int([2], dtype=tf.int32)
    with tf.GradientTape() as tape:
      losses = self._losses(batch, ctx, training=True, seed=seed)
    ctx.apply("main", losses["loss"], tape)
    return losses

  def eval_step(self, batch, ctx):
    return self._losses(batch, ctx, training=False, seed=None)

  def summaries(self, batch):
    """The first item: teacher-forced attention and mels, free decoding through SSRN, and its
    Griffin-Lim audio."""
    config = self.config
    targets = self._targets({k: v[:1] for k, v in batch.items()})
    length = targets["lengths"][0]
    text_length = batch["text_lengths"][:1]
    text_ids = batch["text_ids"][:1, :text_length[0]]
    coarse = targets["coarse"][:, :length]
    forced = self.modules["text2mel"].teacher_forced(text_ids, text_length, coarse)
    acoustic = dctts_serving.DCTTSServing(self.modules["text2mel"], self.modules["ssrn"],
                                          self._info.mel_config)
    free = acoustic.synthesize(
        text_ids, text_length,
        max_decoder_steps=(length * _SUMMARY_LENGTH_FACTOR + config.chunk_size - 1)
        // config.chunk_size)
    free_length = free["mel_lengths"][0]
    free_coarse = free_length // config.reduction
    audio = audio_lib.griffin_lim(free["magnitudes"][:, :free_length], self._info.mel_config,
                                  n_iter=32, power=1.0, seed=0)
    return {
        "images/alignment": summaries_lib.alignment_image(tf.transpose(forced["alignments"][0])),
        "images/target_mel": summaries_lib.mel_image(coarse[0]),
        "images/teacher_forced_mel": summaries_lib.mel_image(forced["mel"][0]),
        "images/inferred_alignment": summaries_lib.alignment_image(
            tf.transpose(free["alignments"][0, :free_coarse])),
        "images/inferred_mel": summaries_lib.mel_image(free["mel"][0, :free_length]),
        "audio/inferred_griffin_lim": audio_lib.normalize_peak(audio, _PREVIEW_PEAK_DB),
    }

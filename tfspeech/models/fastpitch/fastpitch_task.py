"""The "fastpitch" training task: prepared TFRecords with pitch and energy → FastPitch 1.1 losses.

  tfspeech-prepare --corpus=tests/data/ljspeech_tiny --out=data/tiny --pitch --workers=1
  tfspeech-train --model=fastpitch --preset=tiny --data=data/tiny --workdir=runs/fastpitch

The corpus must carry per-frame `pitch` (Hz, 0 = unvoiced), and `dataset.json` its
voiced-frame pitch statistics (`stats.pitch.mean/std`); a corpus
prepared without `--pitch` fails at start with that fix. The model's `n_symbols` must equal
the prepared symbol table's size (`ljspeech`: `english_arpabet`, 148; `tiny`: the default
`english_characters`, 64).

One train step: the input pipeline adds the beta-binomial alignment prior per batch (its
shape follows the longest item, so the traced step keeps static shapes for XLA); inside the
traced step, the alignment encoder's soft alignment, hard durations by `maximum_path`,
per-token pitch/energy targets over them, then
  loss = mel MSE + 0.1 duration + 0.1 pitch + 0.1 energy + 1.0 attention CTC
         + w(step) binarization,
with w ramping linearly from 0 at `kl_loss_start_step` to `kl_loss_weight` over
`kl_loss_warmup_steps` (reference train.py). Each term is this replica's share of its
global-batch mean (`ctx.masked_mean` / `ctx.mean`), so the sum over replicas equals the
single-device value.

Logged with the losses, not trained on (masked means over valid frames, from the step's own
soft and hard alignments, so no extra forward pass): `alignment_diagonality`, the soft
alignment's mass within 0.1 of the text of the length-scaled diagonal (as Tacotron 2's,
`alignment_metrics.diagonal_band_mass`), and `alignment_sharpness`, the soft alignment's
mean probability on the MAS path (`alignment_metrics.path_probability`): 1/tokens for a
uniform attention, 1 once the soft attention is as hard as MAS's.

Energy per frame is the L2 norm of the log-mel frame (`frame_energy`), as the reference's
loader computes it from the mel; the records' `energy` (the linear STFT magnitude's norm)
is not read.
"""

from typing import Optional

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import ACOUSTIC_RUN_FACTS, CorpusInfo
from tfspeech.models import alignment_metrics
from tfspeech.models import registry
from tfspeech.models.fastpitch import fastpitch_presets
from tfspeech.models.fastpitch import fastpitch_serving
from tfspeech.models.fastpitch import losses as losses_lib
from tfspeech.models.fastpitch.fastpitch_config import FastPitchConfig
from tfspeech.models.fastpitch.fastpitch_model import FastPitch, batch_prior, frame_energy
from tfspeech.ops.sequence import sequence_mask
from tfspeech.training import summaries as summaries_lib

PRESETS = fastpitch_presets.PRESETS
# Loss names reported by train_step / eval_step.
LOSS_NAMES = ("mel_loss", "duration_loss", "pitch_loss", "energy_loss", "attn_loss",
              "binarization_loss", "loss", "alignment_diagonality", "alignment_sharpness")
_PITCH_FIX = "re-prepare the corpus with pitch: tfspeech-prepare --pitch ..."


def pitch_statistics(info: CorpusInfo, data_dir: str) -> dict:
  """{"mean", "std"} in Hz of the corpus's voiced frames, from dataset.json `stats.pitch`.

  Raises:
    ValueError: the corpus was prepared without pitch (names the file and the fix).
  """
  where = info.source or f"{data_dir}/dataset.json"
  stats = (info.extras.get("stats") or {}).get("pitch")
  if not stats:
    raise ValueError(f"fastpitch: {where} records no pitch statistics (stats.pitch), so the "
                     f"corpus in {data_dir} has no pitch/energy per frame; {_PITCH_FIX}")
  try:
    mean, std = float(stats["mean"]), float(stats["std"])
  except (KeyError, TypeError, ValueError):
    raise ValueError(f"fastpitch: {where}: stats.pitch={stats!r} must hold numbers 'mean' "
                     f"and 'std' (Hz); {_PITCH_FIX}") from None
  if not std > 0:
    raise ValueError(f"fastpitch: {where}: stats.pitch.std={std} must be > 0 (no voiced "
                     f"frames?); {_PITCH_FIX}")
  return {"mean": mean, "std": std}


def contour_image(target, predicted, height: int = 64):
  """Two per-token contours as one image: target in green, prediction in red.

  Args:
    target, predicted: `[tokens]` values (normalised pitch).

  Returns:
    `[1, height, tokens, 3]` float image in [0, 1], high values at the top.
  """
  values = tf.stack([target, predicted])
  low, high = tf.reduce_min(values), tf.reduce_max(values)
  rows = tf.cast(tf.round((values - low) / tf.maximum(high - low, 1e-6) * (height - 1)),
                 tf.int32)
  dots = tf.one_hot(height - 1 - rows, height, axis=1)  # [2, height, tokens]
  image = tf.stack([dots[1], dots[0], tf.zeros_like(dots[0])], axis=-1)
  return image[None]


@registry.register("fastpitch")
class FastPitchTask(registry.Task):
  """FastPitch 1.1 with one optimizer ("main") over the whole model."""
  config_class = FastPitchConfig
  presets = PRESETS
  data_checkpoint = "reseed"
  serving_role = "acoustic"
  serving_precisions = ("float32", "bfloat16")  # tests/models/test_fastpitch.py
  # Training policies besides float32 (tests/training/test_mixed_precision.py).
  mixed_precisions = ("mixed_bfloat16", "mixed_float16")
  serving_controls = fastpitch_serving.CONTROLS

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None
    self._pitch: Optional[dict] = None

  @classmethod
  def default_train_config(cls, preset):
    return fastpitch_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    return {"fastpitch": FastPitch(self.config, name="fastpitch")}

  def serving(self, modules, data_info):
    """The `AcousticModel` for inference and export (see `fastpitch_serving`)."""
    stats = (data_info or {}).get("pitch_stats")
    if not stats:
      raise ValueError("fastpitch: the run's config.json data_info has no pitch_stats; it "
                       "was not trained by this task (retrain, or add "
                       "\"pitch_stats\": {\"mean\": Hz, \"std\": Hz} to its data_info)")
    return fastpitch_serving.FastPitchServing(modules["fastpitch"], stats["mean"],
                                              stats["std"])

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    """Reads dataset.json once and checks it against the config."""
    if self._info is not None:
      return self._info
    if not data_dir:
      raise ValueError("fastpitch needs prepared data with pitch: pass --data=DIR (the "
                       "output of tfspeech-prepare --pitch)")
    info = CorpusInfo.load(data_dir, require=("symbols", "mel_config"))
    c = self.config
    if info.n_mels != c.n_mel_channels:
      raise ValueError(
          f"fastpitch: the corpus in {data_dir} has {info.n_mels}-bin mels but the model "
          f"predicts n_mel_channels={c.n_mel_channels}; pass "
          f"--override=n_mel_channels={info.n_mels} or re-prepare with a matching mel config")
    if len(info.symbols) != c.n_symbols:
      raise ValueError(
          f"fastpitch: the model embeds n_symbols={c.n_symbols} ids but the corpus in "
          f"{data_dir} uses symbol table {info.symbols.name!r} with {len(info.symbols)} "
          f"symbols; train with --override=n_symbols={len(info.symbols)} or re-prepare with "
          "the preset's table (ljspeech: --symbols=english_arpabet)")
    if info.num_speakers > c.n_speakers:
      raise ValueError(
          f"fastpitch: the corpus in {data_dir} has {info.num_speakers} speakers but the "
          f"model has n_speakers={c.n_speakers}; pass --override=n_speakers="
          f"{info.num_speakers}")
    self._pitch = pitch_statistics(info, data_dir)
    self._info = info
    self.sample_rate = info.sample_rate
    return info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = ACOUSTIC_RUN_FACTS
    recorded = info.to_dict(keys)
    recorded["pitch_stats"] = dict(self._pitch)
    return recorded

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    training = split == "train"
    if not training and not info.count("validation"):
      return None
    features = ("text_ids", "mel", "pitch")  # energy: `frame_energy` of the mel
    if self.config.n_speakers > 1:
      features += ("speaker",)
    dataset = dataset_lib.make_dataset(
        data_dir, "train" if training else "validation", batch_size=train_config.batch_size,
        features=features, shuffle=training, seed=train_config.seed, repeat=training,
        bucket_boundaries=None if training else False, drop_remainder=training)

    def add_prior(batch):
      # The alignment prior's shape follows the batch's longest item: computed here, the
      # traced step has static shapes for XLA (the reference's loader makes priors too).
      batch = dict(batch)
      batch["prior"] = batch_prior(batch["text_lengths"], batch["mel_lengths"],
                                   tf.shape(batch["text_ids"])[1], tf.shape(batch["mel"])[1])
      return batch
    return dataset.map(add_prior, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  # ------------------------------------------------------------------ steps
  def _speaker(self, batch):
    return batch["speaker"] if self.config.n_speakers > 1 else None

  def _forward(self, batch, training):
    mel = tf.ensure_shape(batch["mel"], [None, None, self.config.n_mel_channels])
    return mel, self.modules["fastpitch"].forward(
        batch["text_ids"], batch["text_lengths"], mel, batch["mel_lengths"],
        batch["pitch"], frame_energy(mel, batch["mel_lengths"]), self._pitch["mean"],
        self._pitch["std"],
        speaker=self._speaker(batch), prior=batch.get("prior"), training=training)

  def _losses(self, batch, ctx, training):
    """Every loss term (this replica's share), their weighted sum "loss", and the alignment
    measures (logged only)."""
    c = self.config
    mel, out = self._forward(batch, training)
    frame_mask = sequence_mask(batch["mel_lengths"], tf.shape(mel)[1])
    token_mask = out["text_mask"]
    losses = {
        "mel_loss": losses_lib.mel_loss(out["mel"], mel, frame_mask, ctx.masked_mean),
        "duration_loss": losses_lib.duration_loss(out["log_durations"], out["durations"],
                                                  token_mask, ctx.masked_mean),
        "pitch_loss": losses_lib.token_loss(out["pitch_predicted"], out["pitch_target"],
                                            token_mask, ctx.masked_mean),
        "attn_loss": ctx.mean(losses_lib.attention_ctc_loss(
            out["log_prob"], batch["text_lengths"], batch["mel_lengths"])),
        "binarization_loss": losses_lib.binarization_loss(out["hard"], out["soft"],
                                                          ctx.masked_mean),
    }
    if c.energy_conditioning:
      losses["energy_loss"] = losses_lib.token_loss(
          out["energy_predicted"], out["energy_target"], token_mask, ctx.masked_mean)
    else:
      losses["energy_loss"] = tf.constant(0.0)
    kl_weight = losses_lib.binarization_weight(ctx.step, c)
    losses["loss"] = (losses["mel_loss"]
                      + c.dur_predictor_loss_scale * losses["duration_loss"]
                      + c.pitch_predictor_loss_scale * losses["pitch_loss"]
                      + c.energy_predictor_loss_scale * losses["energy_loss"]
                      + c.attn_loss_scale * losses["attn_loss"]
                      + kl_weight * losses["binarization_loss"])
    # After the sum: logged, never trained on (the soft alignment gets no gradient from them).
    soft = tf.stop_gradient(out["soft"])
    losses["alignment_diagonality"] = ctx.masked_mean(alignment_metrics.diagonal_band_mass(
        soft, batch["mel_lengths"], batch["text_lengths"]), frame_mask)
    losses["alignment_sharpness"] = ctx.masked_mean(alignment_metrics.path_probability(
        soft, out["hard"], batch["mel_lengths"]), frame_mask)
    return losses

  def train_step(self, batch, ctx):
    model = self.modules["fastpitch"]
    with tf.GradientTape() as tape:
      losses = self._losses(batch, ctx, training=True)
    # The alignment encoder's `attn_proj` is built but unused, as in the reference.
    variables = [v for v in model.trainable_variables if "attn_proj" not in v.path]
    ctx.apply("main", losses["loss"], tape, variables=variables)
    return losses

  def eval_step(self, batch, ctx):
    return self._losses(batch, ctx, training=False)

  def summaries(self, batch):
    model = self.modules["fastpitch"]
    mel, out = self._forward(batch, training=False)
    tokens, frames = batch["text_lengths"][0], batch["mel_lengths"][0]
    speaker = self._speaker(batch)
    synthesized = model.infer(batch["text_ids"][:1, :tokens], batch["text_lengths"][:1],
                              speaker=None if speaker is None else speaker[:1])
    predicted = synthesized["mel"][:, :synthesized["mel_lengths"][0]]
    results = {
        "images/alignment_soft": summaries_lib.alignment_image(
            tf.transpose(out["soft"][0, :frames, :tokens])),
        "images/alignment_hard": summaries_lib.alignment_image(
            tf.transpose(out["hard"][0, :frames, :tokens])),
        "images/pitch_contour": contour_image(out["pitch_target"][0, :tokens],
                                              out["pitch_predicted"][0, :tokens]),
        "images/teacher_forced_mel": summaries_lib.mel_image(out["mel"][0, :frames]),
        "images/predicted_mel": summaries_lib.mel_image(predicted[0]),
        "images/target_mel": summaries_lib.mel_image(mel[0, :frames]),
    }
    if self._info is not None:
      results["audio/predicted_griffin_lim"] = audio_lib.griffin_lim_preview(
          predicted, self._info.mel_config)
    return results

"""The "tacotron2" training task: prepared TFRecords → teacher-forced mel, postnet and gate losses.

  tfspeech-prepare --corpus=tests/data/ljspeech_tiny --out=data/tiny --workers=1
  tfspeech-train --model=tacotron2 --preset=tiny --data=data/tiny --workdir=runs/taco

Vocabulary: `n_symbols` must equal the prepared corpus' symbol table size (Tacotron 2 adds no
blank). `ljspeech` keeps the reference's 148 = `english_arpabet`, so it needs
`tfspeech-prepare --symbols=english_arpabet`; `tiny` fits the default `english_characters`
(64). A mismatch fails before training naming the flag or override that fixes it.

Losses (NVIDIA/tacotron2 loss_function.py), each a mean over this replica's share of the global
batch's valid frames: `mel_loss` = MSE of the decoder mels + MSE of the postnet mels (over
frames x bins), `gate_loss` = BCE-with-logits of the stop gate, whose target is 1 on each
item's last frame (and 0 before it). Padding frames count in neither (the reference's version
counts padded gate frames, forced to "stop", in its mean). `alignment_focus` (logged, not
trained) is the mean over valid frames of the largest attention weight: it rises towards 1 as
the attention sharpens, also when it sharpens on the wrong tokens. `alignment_diagonality`
(logged) is the fraction of attention mass within 0.1 of the text of the diagonal scaled by
each item's text and mel lengths (`tacotron2_model.diagonal_band_mass`): ~0.1-0.2 while the
attention is stuck on the first tokens or spread out, ~0.65 once the attention reads the texts
at an even pace (the tiny run's training items after 200 steps); a diagonal at another pace
(leading silence, a slower reading) scores lower, so compare it within a run.
`guided_attention_loss` is the DC-TTS guided-attention penalty (`guided_attention_penalty`,
g = `guided_attention_g`), logged always and added to `loss` with weight
`guided_attention_weight` (0 in `ljspeech`, the reference recipe; > 0 in `tiny`, whose small
model on a small corpus otherwise never leaves the first tokens).

Teacher forcing is one `tf.while_loop` over the batch's frames; training randomness (prenet
noise, every dropout) comes from stateless seeds drawn from the trainer's checkpointed RNG.
"""

from typing import Optional

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import ACOUSTIC_RUN_FACTS, CorpusInfo
from tfspeech.models import registry
from tfspeech.models.tacotron2 import tacotron2_model
from tfspeech.models.tacotron2 import tacotron2_presets
from tfspeech.models.tacotron2 import tacotron2_serving
from tfspeech.models.tacotron2.tacotron2_config import Tacotron2Config
from tfspeech.models.tacotron2.tacotron2_model import Tacotron2
from tfspeech.training import summaries as summaries_lib

PRESETS = tacotron2_presets.PRESETS
# Symbol-table presets a corpus can be prepared with (`tfspeech-prepare --symbols`).
_SYMBOL_PRESETS = ("english_characters", "english_arpabet")
# The free-running TensorBoard sample may run this many times the target's frames.
_SUMMARY_LENGTH_FACTOR = 2


def check_symbols(config: Tacotron2Config, info: CorpusInfo, data_dir: str) -> None:
  """Fails with the fix when the prepared symbol table does not fit `config.n_symbols`.

  Raises:
    ValueError: naming the `--symbols` to prepare with or the override to train with.
  """
  count = len(info.symbols)
  if count == config.n_symbols:
    return
  fixes = [f"train with --override=n_symbols={count} (a new model for this corpus)"]
  fits = [name for name in _SYMBOL_PRESETS
          if len(text_lib.get_symbol_table(name)) == config.n_symbols]
  if fits:
    fixes.append(f"re-prepare the corpus with tfspeech-prepare --symbols={fits[0]} to match "
                 "the preset")
  raise ValueError(
      f"tacotron2: the model embeds n_symbols={config.n_symbols} ids but the corpus prepared "
      f"in {data_dir} uses symbol table {info.symbols.name!r} with {count} symbols. Either "
      + ", or ".join(fixes) + ".")


@registry.register("tacotron2")
class Tacotron2Task(registry.Task):
  """Tacotron 2 with one Adam optimizer ("main") over the whole model."""
  config_class = Tacotron2Config
  presets = PRESETS
  # Prepared TFRecord corpora: resume with a fresh, step-seeded shuffle (see grad_tts).
  data_checkpoint = "reseed"
  bucketing = True
  serving_role = "acoustic"
  serving_controls = tacotron2_serving.CONTROLS

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None

  @classmethod
  def default_train_config(cls, preset):
    return tacotron2_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    return {"tacotron2": Tacotron2(self.config, name="tacotron2")}

  def serving(self, modules, data_info):
    """The `AcousticModel` for inference and export (see `tacotron2_serving`)."""
    del data_info
    return tacotron2_serving.Tacotron2Serving(modules["tacotron2"])

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    """Reads dataset.json once and checks it against the config."""
    if self._info is None:
      if not data_dir:
        raise ValueError("tacotron2 needs prepared data: pass --data=DIR (the output of "
                         "tfspeech-prepare)")
      info = CorpusInfo.load(data_dir, require=("symbols", "mel_config"))
      if info.n_mels != self.config.n_mel_channels:
        raise ValueError(
            f"tacotron2: the corpus in {data_dir} has {info.n_mels}-bin mels but the model "
            f"predicts n_mel_channels={self.config.n_mel_channels}; pass "
            f"--override=n_mel_channels={info.n_mels} or re-prepare with a matching mel config")
      if info.num_speakers > 1:
        raise ValueError(
            f"tacotron2: the corpus in {data_dir} has {info.num_speakers} speakers but "
            "Tacotron 2 is single-speaker; prepare one speaker's recordings")
      check_symbols(self.config, info, data_dir)
      self._info = info
      self.sample_rate = info.sample_rate
    return self._info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = ACOUSTIC_RUN_FACTS
    # The pipeline intersperses nothing: inputs carry blanks only if the table has one.
    recorded = info.replace(add_blank=info.symbols.blank is not None, blank_id=None)
    return recorded.to_dict(keys + ("add_blank", "blank_id"))

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    training = split == "train"
    if not training and not info.count("validation"):
      return None
    return dataset_lib.make_dataset(
        data_dir, "train" if training else "validation", batch_size=train_config.batch_size,
        features=("text_ids", "mel"), shuffle=training, seed=train_config.seed,
        repeat=training, bucket_boundaries=None if self.bucketing and training else False,
        drop_remainder=training)

  # ------------------------------------------------------------------ steps
  def _mel(self, batch):
    # The trainer relaxes every dimension of the input signature; the mel bins are static.
    return tf.ensure_shape(batch["mel"], [None, None, self.config.n_mel_channels])

  def _losses(self, batch, ctx, training, seed):
    """Mel, gate and total losses (this replica's shares) and the alignment focus."""
    model = self.modules["tacotron2"]
    mel = self._mel(batch)
    mel_lengths = tf.cast(batch["mel_lengths"], tf.int32)
    out = model.teacher_forced(batch["text_ids"], batch["text_lengths"], mel, mel_lengths,
                               training=training, seed=seed)
    frames = tf.shape(mel)[1]
    frame_mask = tf.sequence_mask(mel_lengths, frames, tf.float32)
    bins_mask = frame_mask[..., None]
    mel_loss = (ctx.masked_mean(tf.square(out["mel_before"] - mel), bins_mask)
                + ctx.masked_mean(tf.square(out["mel_after"] - mel), bins_mask))
    gate_target = tf.cast(tf.range(frames)[None] >= (mel_lengths - 1)[:, None], tf.float32)
    gate_loss = ctx.masked_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=gate_target, logits=out["gate_logits"]), frame_mask)
    focus = ctx.masked_mean(tf.reduce_max(out["alignments"], axis=2), frame_mask)
    text_lengths = batch["text_lengths"]
    guided_loss = ctx.masked_mean(tacotron2_model.guided_attention_penalty(
        out["alignments"], mel_lengths, text_lengths, self.config.guided_attention_g),
        frame_mask)
    diagonality = ctx.masked_mean(tacotron2_model.diagonal_band_mass(
        out["alignments"], mel_lengths, text_lengths), frame_mask)
    losses = {"loss": mel_loss + gate_loss, "mel_loss": mel_loss, "gate_loss": gate_loss,
              "guided_attention_loss": guided_loss, "alignment_focus": focus,
              "alignment_diagonality": diagonality}
    if self.config.guided_attention_weight:
      # A Python branch: the reference recipe (weight 0) traces no extra gradient.
      losses["loss"] += self.config.guided_attention_weight * guided_loss
    return losses

  def train_step(self, batch, ctx):
    # Prenet noise and dropout come from the trainer's checkpointed RNG, so a resumed run
    # draws what an uninterrupted one would.
    seed = ctx.rng.uniform_full_int([2], dtype=tf.int32)
    with tf.GradientTape() as tape:
      losses = self._losses(batch, ctx, training=True, seed=seed)
    ctx.apply("main", losses["loss"], tape)
    return losses

  def eval_step(self, batch, ctx):
    # Inference-mode layers; the prenet keeps its dropout, with fixed noise so successive
    # evaluations are comparable.
    return self._losses(batch, ctx, training=False, seed=tf.constant([1234, 0], tf.int32))

  def summaries(self, batch):
    model = self.modules["tacotron2"]
    mel = self._mel(batch)[:1]
    mel_length = tf.cast(batch["mel_lengths"][0], tf.int32)
    text_length = batch["text_lengths"][0]
    text_ids = batch["text_ids"][:1, :text_length]
    seed = tf.constant([0, 0], tf.int32)
    forced = model.teacher_forced(text_ids, batch["text_lengths"][:1], mel[:, :mel_length],
                                  mel_length[None], training=False, seed=seed)
    noise = tf.random.stateless_normal(
        tf.stack([1, mel_length * _SUMMARY_LENGTH_FACTOR, self.config.prenet_noise_channels]),
        seed)
    free = model.infer(text_ids, batch["text_lengths"][:1], noise,
                       max_decoder_steps=mel_length * _SUMMARY_LENGTH_FACTOR)
    free_length = free["mel_lengths"][0]
    results = {
        "images/alignment": summaries_lib.alignment_image(
            tf.transpose(forced["alignments"][0, :mel_length])),
        "images/teacher_forced_mel": summaries_lib.mel_image(forced["mel_after"][0]),
        "images/target_mel": summaries_lib.mel_image(mel[0, :mel_length]),
        "images/inferred_alignment": summaries_lib.alignment_image(
            tf.transpose(free["alignments"][0, :free_length])),
        "images/inferred_mel": summaries_lib.mel_image(free["mel"][0, :free_length]),
    }
    if self._info is not None:
      results["audio/inferred_griffin_lim"] = audio_lib.griffin_lim_preview(
          free["mel"][:, :free_length], self._info.mel_config)
    return results

"""The "grad_tts" training task: prepared TFRecords → MAS + duration/prior/diffusion losses.

  tfspeech-prepare --corpus=tests/data/ljspeech_tiny --out=data/tiny --workers=1
  tfspeech-train --model=grad_tts --preset=tiny --data=data/tiny --workdir=runs/gradtts

Vocabulary: the model's `n_vocab` must equal the ids the prepared corpus produces:
its symbol table, plus one blank id when `add_blank` (the blank is interspersed in the
input pipeline, in graph mode, with id `len(symbols)`, as the reference does). The paper
presets (`ljspeech`, `libritts`) keep the reference 149 = `english_arpabet` (148) + blank,
so they need `tfspeech-prepare --symbols=english_arpabet`. The `tiny` preset is meant for
the default `tfspeech-prepare` output (`english_characters`, 64 symbols) and so has
`n_vocab=65`; `--override=n_vocab=149` trains it on an ARPAbet corpus. A mismatch fails
before training with the flag or override that fixes it.

Losses are those of `GradTTS.compute_losses`, each scaled to this replica's share of the
global-batch value (tokens for the duration loss, mel frames × bins for the prior and
diffusion losses), so their sum over replicas equals the single-device value.
"""

from typing import Mapping, Optional, Union

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import ACOUSTIC_RUN_FACTS, CorpusInfo
from tfspeech.models import registry
from tfspeech.models.grad_tts import grad_tts_presets
from tfspeech.models.grad_tts import grad_tts_serving
from tfspeech.models.grad_tts.grad_tts_backbone import GradTTS
from tfspeech.models.grad_tts.grad_tts_config import GradTTSConfig
from tfspeech.models.grad_tts.grad_tts_config import GradTTSTaskConfig  # noqa: F401 (old name)
from tfspeech.text.tokenizer import intersperse_blank
from tfspeech.training import summaries as summaries_lib

# Symbol-table presets a corpus can be prepared with (`tfspeech-prepare --symbols`).
_SYMBOL_PRESETS = ("english_characters", "english_arpabet")
# Reverse-diffusion steps of the TensorBoard sample.
_SUMMARY_TIMESTEPS = 10
# The one preset table (grad_tts_presets); the task adds no fields of its own.
PRESETS = grad_tts_presets.PRESETS
TINY_VOCAB = grad_tts_presets.TINY_VOCAB


def vocabulary_plan(symbols: Union[text_lib.SymbolTable, Mapping], add_blank: bool) -> dict:
  """How the ids of a prepared corpus reach the model.

  Args:
    symbols: the prepared symbol table (a `SymbolTable`, or its dataset.json dict).
    add_blank: the task config's `add_blank`.

  Returns:
    dict with `n_vocab` (ids the model must embed), `blank_id` (id the pipeline
    intersperses, or None when it intersperses nothing), `pad_id`, `table_name`,
    `num_symbols` and `add_blank` (whether the model's inputs carry blanks).
  """
  if not isinstance(symbols, text_lib.SymbolTable):
    symbols = text_lib.SymbolTable.from_dict(symbols)
  num_symbols = len(symbols)
  has_blank = symbols.blank is not None
  intersperse = add_blank and not has_blank
  return {"n_vocab": num_symbols + (1 if intersperse else 0),
          "blank_id": num_symbols if intersperse else None, "pad_id": symbols.pad_id,
          "table_name": symbols.name, "num_symbols": num_symbols,
          "add_blank": bool(intersperse or has_blank)}


def check_vocabulary(config: GradTTSConfig, info: CorpusInfo, data_dir: str) -> dict:
  """Fails with the fix when the prepared symbols do not fit `config.n_vocab`.

  Returns:
    `vocabulary_plan` of the corpus.

  Raises:
    ValueError: naming the `--symbols` to prepare with or the override to train with.
  """
  plan = vocabulary_plan(info.symbols, config.add_blank)
  if plan["n_vocab"] == config.n_vocab:
    return plan
  blank = " + 1 blank id (add_blank)" if plan["blank_id"] is not None else ""
  fits = [name for name in _SYMBOL_PRESETS
          if len(text_lib.get_symbol_table(name)) + (1 if config.add_blank else 0) == config.n_vocab]
  fixes = [f"train with --override=n_vocab={plan['n_vocab']} (a new model for this corpus)"]
  if fits:
    fixes.append(f"re-prepare the corpus with tfspeech-prepare --symbols={fits[0]} to match "
                 f"the preset")
  raise ValueError(
      f"grad_tts: the model embeds n_vocab={config.n_vocab} ids but the corpus prepared in "
      f"{data_dir} uses symbol table {plan['table_name']!r} with {plan['num_symbols']} "
      f"symbols{blank} = {plan['n_vocab']} ids. Either " + ", or ".join(fixes) + ".")


def _load_info(data_dir: str) -> CorpusInfo:
  if not data_dir:
    raise ValueError("grad_tts needs prepared data: pass --data=DIR (the output of "
                     "tfspeech-prepare)")
  return CorpusInfo.load(data_dir, require=("symbols", "mel_config"))


@registry.register("grad_tts")
class GradTTSTask(registry.Task):
  """Grad-TTS with one Adam optimizer ("main") over the whole model."""
  config_class = GradTTSConfig
  presets = PRESETS
  # Prepared TFRecord corpora: resume with a fresh, step-seeded shuffle rather than
  # checkpointing shuffle buffers full of utterances (see registry.Task.data_checkpoint).
  data_checkpoint = "reseed"
  bucketing = True
  serving_role = "acoustic"
  serving_precisions = ("float32", "bfloat16")  # the U-Net; tests/models/test_grad_tts.py
  # Training policies besides float32 (tests/training/test_mixed_precision.py).
  mixed_precisions = ("mixed_bfloat16", "mixed_float16")
  serving_controls = grad_tts_serving.CONTROLS
  serving_aligns = True  # GradTTSServing.alignment_prior(): tfspeech-align takes its runs

  def __init__(self, config):
    super().__init__(config)
    self._info: Optional[CorpusInfo] = None
    self._plan: Optional[dict] = None

  @classmethod
  def default_train_config(cls, preset):
    return grad_tts_presets.train_config(preset)

  # ------------------------------------------------------------------ modules
  def build(self):
    return {"grad_tts": GradTTS(self.config, name="grad_tts")}

  def serving(self, modules, data_info):
    """The `AcousticModel` for inference and export (see `grad_tts_serving`)."""
    del data_info
    return grad_tts_serving.GradTTSServing(modules["grad_tts"])

  # ------------------------------------------------------------------ data
  def _prepare(self, data_dir: str) -> CorpusInfo:
    """Reads dataset.json once and checks it against the config."""
    if self._info is None:
      info = _load_info(data_dir)
      if info.n_mels != self.config.n_feats:
        raise ValueError(
            f"grad_tts: the corpus in {data_dir} has {info.n_mels}-bin mels but the model "
            f"predicts n_feats={self.config.n_feats}; pass --override=n_feats={info.n_mels} "
            "or re-prepare with a matching mel config")
      speakers = info.num_speakers
      if speakers > self.config.n_spks:
        raise ValueError(
            f"grad_tts: the corpus in {data_dir} has {speakers} speakers but the model has "
            f"n_spks={self.config.n_spks}; pass --override=n_spks={speakers} (or a "
            "multi-speaker preset such as libritts)")
      self._plan = check_vocabulary(self.config, info, data_dir)
      self._info = info
      self.sample_rate = info.sample_rate
    return self._info

  def data_info(self, data_dir):
    info = self._prepare(data_dir)
    keys = ACOUSTIC_RUN_FACTS
    # The run records how its pipeline feeds the model: blanks and the blank id.
    recorded = info.replace(add_blank=self._plan["add_blank"], blank_id=self._plan["blank_id"])
    return recorded.to_dict(keys + ("add_blank", "blank_id"))

  def dataset(self, data_dir, split, train_config):
    info = self._prepare(data_dir)
    training = split == "train"
    record_split = "train" if training else "validation"
    if not training and not info.count("validation"):
      return None
    features = ("text_ids", "mel") + (("speaker",) if self.config.n_spks > 1 else ())
    dataset = dataset_lib.make_dataset(
        data_dir, record_split, batch_size=train_config.batch_size, features=features,
        shuffle=training, seed=train_config.seed, repeat=training,
        # Validation keeps corpus order: bucketing would only reorder it.
        bucket_boundaries=None if self.bucketing and training else False,
        drop_remainder=training)
    blank_id = self._plan["blank_id"]
    if blank_id is None:
      return dataset
    pad_id = self._plan["pad_id"]

    def add_blanks(batch):
      batch = dict(batch)
      batch["text_ids"], batch["text_lengths"] = intersperse_blank(
          batch["text_ids"], batch["text_lengths"], blank_id, pad_id)
      return batch
    return dataset.map(add_blanks, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  # ------------------------------------------------------------------ steps
  def _speaker(self, batch):
    return batch["speaker"] if self.config.n_spks > 1 else None

  def _mel(self, batch):
    # The trainer relaxes every dimension of the input signature; the mel bins are static.
    return tf.ensure_shape(batch["mel"], [None, None, self.config.n_feats])

  def _losses(self, batch, ctx, training, seed):
    """The three losses, each this replica's share of its global-batch value."""
    model = self.modules["grad_tts"]
    losses = model.compute_losses(batch["text_ids"], batch["text_lengths"], self._mel(batch),
                                  batch["mel_lengths"], speaker=self._speaker(batch),
                                  training=training, seed=seed)
    # compute_losses normalises by this replica's tokens / frames; rescale to the global
    # counts so the replica shares add up to the global mean (ctx.masked_mean semantics).
    tokens = tf.cast(tf.reduce_sum(batch["text_lengths"]), tf.float32)
    mel_lengths = tf.cast(batch["mel_lengths"], tf.int32)
    all_frames = tf.cast(tf.reduce_sum(mel_lengths), tf.float32)
    if self.config.out_size is not None:
      mel_lengths = tf.minimum(mel_lengths, self.config.out_size)
    frames = tf.cast(tf.reduce_sum(mel_lengths), tf.float32)
    prior_frames = frames
    if self.config.out_size is not None and not self.config.prior_on_segment:
      prior_frames = all_frames
    share = {"duration_loss": tokens / tf.maximum(ctx.global_sum(tokens), 1.0),
             "prior_loss": prior_frames / tf.maximum(ctx.global_sum(prior_frames), 1.0),
             "diffusion_loss": frames / tf.maximum(ctx.global_sum(frames), 1.0)}
    losses = {name: losses[name] * share[name] for name in share}
    losses["loss"] = losses["duration_loss"] + losses["prior_loss"] + losses["diffusion_loss"]
    return losses

  def train_step(self, batch, ctx):
    # Segment offsets, diffusion times and noise come from the trainer's checkpointed RNG,
    # so a resumed run draws what an uninterrupted one would.
    seed = ctx.rng.uniform_full_int([2], dtype=tf.int32)
    with tf.GradientTape() as tape:
      losses = self._losses(batch, ctx, training=True, seed=seed)
    ctx.apply("main", losses["loss"], tape)
    return losses

  def eval_step(self, batch, ctx):
    # A fixed seed makes successive evaluations comparable (same segments, times, noise).
    return self._losses(batch, ctx, training=False, seed=tf.constant([1234, 0], tf.int32))

  def summaries(self, batch):
    model = self.modules["grad_tts"]
    text_length = batch["text_lengths"][0]
    speaker = self._speaker(batch)
    out = model.synthesize(batch["text_ids"][:1, :text_length], batch["text_lengths"][:1],
                           n_timesteps=_SUMMARY_TIMESTEPS, temperature=1.5,
                           speaker=None if speaker is None else speaker[:1],
                           seed=tf.constant([0, 0], tf.int32))
    frames = out.mel_lengths[0]
    predicted = out.mel_decoded[:, :frames]
    results = {
        "images/prior_mel": summaries_lib.mel_image(out.mel_encoder[0, :frames]),
        "images/predicted_mel": summaries_lib.mel_image(predicted[0]),
        "images/alignment": summaries_lib.alignment_image(out.alignment[0, :, :frames]),
        "images/target_mel": summaries_lib.mel_image(
            self._mel(batch)[0, :batch["mel_lengths"][0]]),
    }
    if self._info is not None:
      results["audio/predicted_griffin_lim"] = audio_lib.griffin_lim_preview(
          predicted, self._info.mel_config)
    return results

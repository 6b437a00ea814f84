"""Text → mel → audio with a trained acoustic-model run, and ground-truth-aligned mels.

  run = tfspeech.training.load_run("runs/tts")
  result = synthesize_texts(run, ["Hello there.", "A longer second sentence."],
                            out_dir="out/", temperature=1.2)
  result.items[0].wav_path, result.real_time_factor

Any run whose task serves as an acoustic model works: the model is driven through
`tfspeech.models.serving.AcousticModel`, and its declared controls (`acoustic_serving(run)
.controls`) are keyword arguments here (`--control=name=value` on the command line).

Texts are cleaned and tokenized with the run's own symbol table and cleaners (recorded in
its config.json at the start of training), batched (texts of different lengths share a
batch), and run through one `tf.function` (per value of the model's static controls) whose input
signature has `None` batch and length dims. Item k of a call draws its noise from the
stateless seed `(seed, k)`, so an item's mel does not depend on what else is in its batch
or on the batch size.

Audio comes from Griffin-Lim (`tfspeech.audio.mel_to_audio`, peak-normalised to -1 dBFS)
until a vocoder run is given (`vocoder=WORKDIR` of a trained run whose task serves as a
vocoder).

Long texts are split (`tfspeech.text.chunking.split_text`: sentence, then clause, then
word boundaries) into chunks of at most `max_tokens` ids; chunks of all texts are batched
like texts, and each text's chunks are joined into one WAV with `chunk_pause` seconds of
silence between them. One model call therefore holds at most `batch_size x max_tokens`
ids however long the input is (peak memory is bounded by that, not by the text length).

Every item carries word timestamps (`SynthesizedItem.timestamps`, see
`tfspeech.text.timestamps`): the model's per-id durations mapped back to the words and
character offsets of the input text, in seconds of its WAV; `write_timestamps` writes them
as `NAME.json` beside `NAME.wav`.

One item that fails (its text has nothing to say, the model or the vocoder fails on it,
its file cannot be written) is reported in `SynthesisResult.failures` with its name and
the error; the other items are still written.

`generate_gta` writes teacher-forced (ground-truth-aligned) mels of a prepared corpus with
the model's `ground_truth_aligned` (e.g. aligned to the true mel, then decoded): the
records are written again with that mel in place of the true one (audio kept) for
fine-tuning a vocoder on the acoustic model's outputs.
"""

import dataclasses
import functools
import logging
import os
import pathlib
import shutil
import time
import weakref
from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import CorpusInfo
from tfspeech.data import records
from tfspeech.inference import serving_runs
from tfspeech.models import serving as serving_lib
from tfspeech.text import chunking

_LOG = logging.getLogger(__name__)

NOISE_ALGORITHM = "philox"
# Ids per chunk of a long text (blanks included: ~200 characters, ~10-15 s of speech,
# the length of the longest LJSpeech utterances the models are trained on).
DEFAULT_MAX_TOKENS = 400
# Silence between the chunks of a long text, in seconds.
DEFAULT_CHUNK_PAUSE = 0.2
# Griffin-Lim previews are scaled to this peak (dBFS) so that write_wav need not clip.
PREVIEW_PEAK_DB = -1.0
# Errors of one item that must not stop the others: graph runtime errors, bad values,
# files that cannot be written.
_ITEM_ERRORS = (tf.errors.OpError, ValueError, OSError)


@dataclasses.dataclass(frozen=True)
class SynthesizedItem:
  """One synthesized text.

  Attributes:
    name: output file stem.
    text: the input text.
    num_ids: token ids fed to the model (blanks included).
    num_frames: mel frames generated.
    mel_path: `NAME.npy`, float32 `[frames, n_mels]` log-mel (chunks joined, the
      pauses between them filled with the log-mel of silence).
    wav_path: `NAME.wav`, 16-bit PCM at the run's sample rate.
    num_chunks: pieces the text was split into (1 unless longer than `max_tokens`).
    text_changes: `tfspeech.text.TextChange`s of cleaning: spans dropped (emoji, ...)
      or transliterated (other scripts); tell the user.
    unknown_symbols: characters or phones missing from the run's symbol table (dropped).
    timestamps: `tfspeech.text.Timestamps`: when each word of `text` (and each id the
      model read) is spoken in the WAV, from the model's durations; chunk pauses included.
  """
  name: str
  text: str
  num_ids: int
  num_frames: int
  mel_path: str
  wav_path: str
  num_chunks: int = 1
  text_changes: tuple = ()
  unknown_symbols: tuple = ()
  timestamps: Optional[text_lib.Timestamps] = None

  def notes(self) -> List[str]:
    """What was dropped or transliterated from the text, one line each (may be empty)."""
    lines = [change.describe() for change in self.text_changes]
    if self.unknown_symbols:
      lines.append("dropped symbols not in the model's symbol table: " +
                   ", ".join(repr(s) for s in self.unknown_symbols))
    return lines


@dataclasses.dataclass(frozen=True)
class SynthesisFailure:
  """A text that could not be synthesized or written (the others were).

  Attributes:
    name: output file stem.
    text: the input text.
    error: what went wrong, one line.
  """
  name: str
  text: str
  error: str

  def describe(self) -> str:
    return f"{self.name}: {self.error}"


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
  """What `synthesize_texts` did.

  Attributes:
    items: one `SynthesizedItem` per text written, in input order.
    audio_seconds: seconds of audio written.
    wall_seconds: wall time of synthesis, vocoding and writing, after warm-up.
    first_call_seconds: one-off time to trace and optimise the graphs (warm-up).
    real_time_factor: `wall_seconds / audio_seconds`, the convention of the TTS and vocoder
      papers and of `vocode_lib.real_time_factor` (< 1 is faster than real time).
    vocoder: "griffin_lim" or the vocoder workdir.
    failures: one `SynthesisFailure` per text that was not written, in input order.
  """
  items: List[SynthesizedItem]
  audio_seconds: float
  wall_seconds: float
  first_call_seconds: float
  real_time_factor: float
  vocoder: str
  failures: List[SynthesisFailure] = dataclasses.field(default_factory=list)

  @property
  def times_real_time(self) -> float:
    """Audio seconds per wall second (`1 / real_time_factor`; > 1 is faster than real time)."""
    return self.audio_seconds / max(self.wall_seconds, 1e-9)


# --------------------------------------------------------------------------- #
# Graph-mode pieces (also used by the SavedModel exporter).


def item_noise(item_seeds, frames, n_feats):
  """Standard normal noise per item from its own stateless seed.

  Philox fills values in row-major order, so the first `f` frames of an item's noise are
  the same for every `frames >= f`: an item gets the same noise however long its batch is.

  Args:
    item_seeds: `[batch, 2]` int32 seeds.
    frames: scalar int, frames to draw.
    n_feats: mel bins.

  Returns:
    `[batch, frames, n_feats]` float32.
  """
  return tf.map_fn(
      lambda s: tf.random.stateless_normal(tf.stack([frames, n_feats]), s,
                                           alg=NOISE_ALGORITHM),
      tf.cast(item_seeds, tf.int32), fn_output_signature=tf.float32)


def seeded_noise(acoustic: serving_lib.AcousticModel, item_seeds, frames):
  """The noise `acoustic` reads, drawn per item from `item_seeds`; None if it draws none."""
  if acoustic.noise_channels is None:
    return None
  return item_noise(item_seeds, frames, acoustic.noise_channels)


def synthesize_mels(acoustic: serving_lib.AcousticModel, text_ids, text_lengths, item_seeds,
                    speaker=None, **controls) -> dict:
  """Batched synthesis whose items do not depend on their batch (traceable).

  Args:
    acoustic: a serving `AcousticModel`.
    text_ids: `[batch, tokens]` int32.
    text_lengths: `[batch]` int32.
    item_seeds: `[batch, 2]` int32 noise seed of each item.
    speaker: `[batch]` int32 ids for multi-speaker models, else None.
    **controls: every control of the model (static ones as Python values).

  Returns:
    {"mel", "mel_lengths", "durations"} (see `tfspeech.models.serving`); float32 mels at
    any compute precision.
  """
  frames = acoustic.frames_bound(text_ids, text_lengths, speaker, **controls)
  noise = seeded_noise(acoustic, item_seeds, frames)
  return serving_lib.float32_outputs(
      acoustic.synthesize(text_ids, text_lengths, noise, speaker, **controls))


# --------------------------------------------------------------------------- #
# Run conventions.


@dataclasses.dataclass(frozen=True)
class TextFrontEnd:
  """How a run turns text into ids, from the facts recorded in its config.json."""
  symbols: text_lib.SymbolTable
  cleaners: tuple
  cmudict: Optional[text_lib.CMUDict]
  add_blank: bool

  def encoding(self, text: str, on_unknown: str = "warn") -> text_lib.Encoding:
    """`text_lib.encode_text` with the run's conventions: ids, unknown symbols, changes."""
    return text_lib.encode_text(text, self.symbols, self.cleaners, cmudict=self.cmudict,
                                on_unknown=on_unknown)

  def alignment(self, text: str, ids: Optional[Sequence[int]] = None
                ) -> text_lib.TextAlignment:
    """Where each id of `text` (or the given `ids` of it) came from: characters and words."""
    return text_lib.align_text(text, self.symbols, self.cleaners, cmudict=self.cmudict,
                               ids=ids)

  def count_tokens(self, text: str) -> int:
    """Ids `text` becomes (0 for no text), without the spoken-content check or warnings."""
    return len(self.encoding(text, on_unknown="drop").ids) if text.strip() else 0

  def encode(self, text: str, on_unknown: str = "warn") -> List[int]:
    """Cleaned, tokenized (and blank-interspersed) ids; ValueError when nothing is left."""
    ids = self.encoding(text, on_unknown).ids
    special = set(self.symbols.special_symbols)
    # Spaces and punctuation alone would make a silent, meaningless utterance.
    spoken = [s for s in map(self.symbols.symbol_of, ids)
              if s not in special and (len(s) > 1 or s.isalnum())]
    if not spoken:
      raise ValueError(f"text {text!r} has no letter or phone of symbol table "
                       f"{self.symbols.name!r} after cleaning with {list(self.cleaners)}; "
                       "nothing to synthesize")
    return ids


def run_facts(loaded_run) -> CorpusInfo:
  """The data facts a run recorded (config.json `data_info`), typed, with a clear error.

  Raises:
    ValueError (`CorpusInfoError`): the run records no symbol table, mel config or sample
      rate (it was not trained on a prepared corpus by a task that records them).
  """
  where = getattr(loaded_run, "workdir", None)
  source = f"{where}/config.json data_info" if where else "the run's config.json data_info"
  info = loaded_run.config.data_info or {}
  missing = [k for k in ("symbols", "mel_config", "sample_rate") if not info.get(k)]
  if missing:
    raise ValueError(f"{source} lacks {missing}; the run was not trained on a prepared "
                     "corpus by a task that records them")
  return CorpusInfo.from_dict(info, source=source)


def text_front_end(loaded_run) -> TextFrontEnd:
  """The `TextFrontEnd` of a trained run."""
  info = run_facts(loaded_run)
  table = info.symbols
  add_blank = bool(info.add_blank)
  if add_blank and table.blank is None:
    # The pipeline interspersed id len(symbols); with_blank appends exactly that id.
    table = table.with_blank()
  cmudict = text_lib.load_cmudict() if info.arpabet else None
  return TextFrontEnd(table, tuple(info.cleaners), cmudict, add_blank)


# task → its serving object, so repeated calls on one run reuse one object (and its traces).
_SERVING = weakref.WeakKeyDictionary()


def acoustic_serving(loaded_run) -> serving_lib.AcousticModel:
  """The `AcousticModel` of a run (its task's `serving()`); ValueError for other runs."""
  task = loaded_run.task
  if task not in _SERVING:
    _SERVING[task] = serving_runs.serving_of_run(loaded_run, serving_lib.ACOUSTIC)
  return _SERVING[task]


def resolve_controls(acoustic: serving_lib.AcousticModel, controls=None, sources=None) -> dict:
  """Every control value of `acoustic`: the given ones checked, defaults for the rest."""
  return serving_lib.resolve_controls(acoustic.controls, controls, sources)


def pad_batch(id_lists: Sequence[Sequence[int]], pad_id: int):
  """Python id lists → (`[batch, max_len]` int32, `[batch]` int32) NumPy arrays."""
  lengths = np.array([len(ids) for ids in id_lists], np.int32)  # graph-ok: host batching
  ids = np.full([len(id_lists), int(lengths.max())], pad_id, np.int32)  # graph-ok
  for row, item in enumerate(id_lists):
    ids[row, :len(item)] = item
  return ids, lengths


# --------------------------------------------------------------------------- #
# Vocoders.


def griffin_lim_audio(mel, mel_config: audio_lib.MelConfig, n_iter: int = 32):
  """Griffin-Lim audio of predicted log-mels that may be out of range.

  An untrained or diverging model can predict log-mels whose exponent overflows (inf, then
  NaN audio); values are clipped to [silence, 1e4 magnitude] and non-finite ones silenced.

  Args:
    mel: `[batch, frames, n_mels]` log-mels in `mel_config`'s convention.
    mel_config: the `MelConfig` of the training data.
    n_iter: Griffin-Lim iterations.

  Any frame count works, down to 0 (see `tfspeech.audio.griffin_lim`).

  Returns:
    `[batch, samples]` float32 audio, each item's peak at `PREVIEW_PEAK_DB` dBFS (silent
    items stay silent); samples = frames * hop_length for uncentred mels (MelConfig.padding).
  """
  floor = audio_lib.log_compress(tf.zeros([]), mel_config)
  ceiling = audio_lib.log_compress(tf.constant(1e4), mel_config)
  mel = tf.where(tf.math.is_finite(mel), mel, floor)
  mel = tf.clip_by_value(mel, floor, ceiling)
  audio = audio_lib.mel_to_audio(mel, mel_config, n_iter=n_iter, seed=0)
  # Griffin-Lim's level follows the predicted magnitudes and often passes full scale (3-6%
  # of the samples of a trained run's preview clipped): a preview is for listening, so
  # each item is scaled to a fixed peak instead.
  return audio_lib.normalize_peak(audio, PREVIEW_PEAK_DB)


@functools.lru_cache(maxsize=8)
def griffin_lim_vocoder(mel_config: audio_lib.MelConfig, n_iter: int = 32) -> Callable:
  """A traced Griffin-Lim vocoder: `[1, frames, n_mels]` log-mel → `[1, samples]`."""
  # autograph=False: Griffin-Lim is plain TF (one tf.while_loop); converting its call stack
  # was most of its warm-up (trace and first call, loaded 2-core host: 2.3 s -> 0.6 s).
  @tf.function(autograph=False,
               input_signature=[tf.TensorSpec([None, None, mel_config.n_mels], tf.float32)])
  def vocode(mel):
    return griffin_lim_audio(mel, mel_config, n_iter)
  return vocode


def load_vocoder(workdir: str, mels, controls: Optional[dict] = None,
                 control_sources: Optional[dict] = None, precision: str = "float32") -> Callable:
  """A trained vocoder run as `vocode(mel [batch, frames, n_mels], item_seeds [batch, 2])`.

  Uses `tfspeech.inference.vocode_lib` (its `in_process()` serving object, traced once);
  a vocoder that draws noise draws item b's from `item_seeds[b]` (see `vocode_lib`).

  Args:
    workdir: the vocoder run.
    mels: the acoustic model's facts (`CorpusInfo`) or `MelConfig`, checked against the
      vocoder's.
    controls: the vocoder's control values; control_sources: the flags that gave them.
    precision: the vocoder's compute precision ("float32" or "bfloat16").

  Returns:
    `vocode(mel, item_seeds) → [batch, samples]` float32.

  Raises:
    ValueError: not a vocoder run, a bad control, or its mel convention differs from the
      acoustic model's.
  """
  from tfspeech.inference import vocode_lib  # pylint: disable=import-outside-toplevel
  vocoder = vocode_lib.load_vocoder(workdir, controls=controls, control_sources=control_sources,
                                    precision=precision)
  vocoder.check_mel_config(mels, source=f"--vocoder={workdir}: the acoustic model's mels")

  def vocode(mel, item_seeds):
    frames = tf.fill(tf.shape(mel)[:1], tf.shape(mel)[1])
    audio, _ = vocoder.vocode(mel, frames, item_seeds)
    return audio
  return vocode


def griffin_lim_as_vocoder(mel_config: audio_lib.MelConfig, n_iter: int = 32) -> Callable:
  """`griffin_lim_vocoder` with the `vocode(mel, item_seeds)` call of `load_vocoder`."""
  vocode = griffin_lim_vocoder(mel_config, n_iter)
  return lambda mel, item_seeds: vocode(mel)


# --------------------------------------------------------------------------- #
# Text → files.


# acoustic model → {static control values: traced synthesis}, so repeated calls reuse graphs.
_SYNTHESIS_FNS = weakref.WeakKeyDictionary()


def _dynamic_specs(acoustic: serving_lib.AcousticModel) -> list:
  return [tf.TensorSpec([], c.tf_dtype, name=c.name) for c in acoustic.controls
          if not c.static]


def _static_key(acoustic: serving_lib.AcousticModel, static: Optional[dict]) -> tuple:
  values = resolve_controls(acoustic, {k: v for k, v in (static or {}).items()})
  return tuple((c.name, values[c.name]) for c in acoustic.controls if c.static)


def make_synthesis_fn(acoustic: serving_lib.AcousticModel, static: Optional[dict] = None):
  """The traced batched synthesis for fixed static controls: every dim `None` (one trace).

  Args:
    acoustic: a serving `AcousticModel`.
    static: values of its static controls (defaults for the missing ones).

  Returns:
    A `tf.function(text_ids [None, None], text_lengths [None], item_seeds [None, 2],
    speaker [None], *dynamic controls as scalars in declaration order)` → {"mel",
    "mel_lengths", "durations"}. Cached per model and static values.
  """
  key = _static_key(acoustic, static)
  cache = _SYNTHESIS_FNS.setdefault(acoustic, {})
  if key not in cache:
    cache[key] = _new_synthesis_fn(acoustic, dict(key))
  return cache[key]


def _new_synthesis_fn(acoustic: serving_lib.AcousticModel, static: dict):
  multi_speaker = acoustic.num_speakers > 1
  dynamic = _dynamic_specs(acoustic)

  # autograph=False: acoustic models are plain TF (loops are explicit tf.while_loops; see the
  # interface in tfspeech.models.serving), and converting their call stacks with autograph was
  # 60% of this trace (tiny Grad-TTS, loaded 2-core host: 5.3 s -> 2.0 s). Every registered
  # acoustic model gives bit-identical outputs either way.
  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None], tf.int32, name="text_ids"),
      tf.TensorSpec([None], tf.int32, name="text_lengths"),
      tf.TensorSpec([None, 2], tf.int32, name="item_seeds"),
      tf.TensorSpec([None], tf.int32, name="speaker")] + dynamic)
  def synthesize(text_ids, text_lengths, item_seeds, speaker, *values):
    controls = dict(static, **{spec.name: v for spec, v in zip(dynamic, values)})
    return synthesize_mels(acoustic, text_ids, text_lengths, item_seeds,
                           speaker if multi_speaker else None, **controls)
  return synthesize


def _dynamic_args(acoustic: serving_lib.AcousticModel, values: dict) -> list:
  """The dynamic control values as scalar tensors, in the traced functions' order."""
  return [tf.constant(values[spec.name], spec.dtype) for spec in _dynamic_specs(acoustic)]


def _one_line(error) -> str:
  """The first line of an exception's message (TF errors carry a long graph trace)."""
  text = getattr(error, "message", None) or str(error)
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  return f"{type(error).__name__}: {lines[0] if lines else 'no details'}"


def _seed_pair(seed: int, chunk) -> list:
  """Chunk j of text k draws its noise (acoustic and vocoder) from `(seed + j, k)`."""
  return [seed + chunk.part, chunk.index]


@dataclasses.dataclass
class _Chunk:
  """One model input: chunk `part` of text `index`, with its ids and noise seed."""
  index: int
  part: int
  ids: List[int]


def _split_and_encode(front_end: TextFrontEnd, text: str, max_tokens: int):
  """(ids per chunk, Encoding of the whole text, TextAlignment per chunk placed in `text`)
  of one text; ValueError if nothing to say.

  A chunk with nothing to say on its own (e.g. "..." cut off at a sentence end) is
  skipped; the text fails only when no chunk has anything to say.
  """
  encoding = front_end.encoding(text, on_unknown="drop")
  if len(encoding.ids) <= max_tokens:
    ids = front_end.encode(text, on_unknown="drop")
    return [ids], encoding, [front_end.alignment(text, ids)]
  chunks, alignments, problem, position = [], [], None, 0
  for piece in chunking.split_text(text, max_tokens, front_end.count_tokens):
    # Chunks are stripped pieces of `text`, in order.
    offset = text.find(piece, position)
    position = offset + len(piece)
    try:
      chunks.append(front_end.encode(piece, on_unknown="drop"))
    except ValueError as e:
      problem = e
      continue
    alignments.append(front_end.alignment(piece, chunks[-1]).shifted(offset))
  if not chunks:
    raise problem or ValueError(f"text {text!r} is empty")
  return chunks, encoding, alignments


def synthesize_texts(loaded_run, texts: Sequence[str], seed: int = 0,
                     batch_size: int = 16, out_dir: str = ".", vocoder: Optional[str] = None,
                     names: Optional[Sequence[str]] = None, speaker: int = 0,
                     griffin_lim_iters: int = 32, max_tokens: int = DEFAULT_MAX_TOKENS,
                     chunk_pause: float = DEFAULT_CHUNK_PAUSE,
                     control_sources: Optional[dict] = None,
                     vocoder_controls: Optional[dict] = None,
                     vocoder_control_sources: Optional[dict] = None,
                     vocoder_precision: str = "float32",
                     **controls) -> SynthesisResult:
  """Synthesizes `texts` with a trained acoustic-model run and writes `NAME.npy` / `NAME.wav`.

  Memory is bounded whatever the length of the texts: a text of more than `max_tokens`
  ids is split at sentence (then clause, then word) boundaries into chunks of at most
  `max_tokens` ids, and one model call takes at most `batch_size` chunks, so it holds at
  most `batch_size x max_tokens` ids (and the frames their durations give). The chunks
  of a text are vocoded one by one and joined with `chunk_pause` seconds of silence.

  Args:
    loaded_run: `tfspeech.training.load_run(workdir)` of an acoustic-model run.
    texts: raw texts (cleaned with the run's cleaners).
    seed: chunk j of text k uses the noise seed `(seed + j, k)` (`(seed, k)` for a text
      that is not split).
    batch_size: chunks per model call (grouped by length, then padded).
    out_dir: where the files go (created).
    vocoder: None for Griffin-Lim, or the workdir of a trained vocoder run.
    names: file stems (default `0000`, `0001`, ...).
    speaker: speaker id for multi-speaker models.
    griffin_lim_iters: Griffin-Lim iterations.
    max_tokens: most ids (blanks included) per chunk of a long text.
    chunk_pause: seconds of silence between the chunks of a text.
    control_sources: control name → how the user gave it (e.g. "--temperature"), so an
      error names the flag.
    vocoder_controls: the vocoder's declared controls by name (defaults for the others;
      needs `vocoder`). A vocoder that draws noise draws chunk j of text k's from the same
      seed pair as the acoustic model (a separate stream, see `vocode_lib`).
    vocoder_control_sources: as `control_sources`, for `vocoder_controls`.
    vocoder_precision: the vocoder's compute precision, "float32" or "bfloat16" (the
      acoustic model's is `loaded_run`'s: `load_run(..., precision=)`).
    **controls: the model's declared controls by name (defaults for the others).

  Returns:
    `SynthesisResult`; texts that failed (nothing to say after cleaning, a model or
    vocoder error, an unwritable file) are in its `failures`, the others were written.

  Raises:
    ValueError: on empty `texts`, bad arguments or names, or when no text has anything
      to say.
  """
  texts = list(texts)
  if not texts:
    raise ValueError("synthesize_texts: no texts given")
  if batch_size < 1:
    raise ValueError(f"synthesize_texts: batch_size ({batch_size}) must be >= 1")
  if max_tokens < 1 or chunk_pause < 0:
    raise ValueError(f"synthesize_texts: max_tokens ({max_tokens}) must be >= 1 and "
                     f"chunk_pause ({chunk_pause}) >= 0")
  names = [f"{i:04d}" for i in range(len(texts))] if names is None else list(names)
  if len(names) != len(texts) or len(set(names)) != len(names):
    raise ValueError("synthesize_texts: names must be unique, one per text")
  bad = [n for n in names if not n or os.sep in n or n.startswith(".")]
  if bad:
    raise ValueError(f"synthesize_texts: names {bad} cannot be file names")
  if vocoder is None and vocoder_controls:
    raise ValueError(f"vocoder controls {sorted(vocoder_controls)} need a vocoder run "
                     "(--vocoder); Griffin-Lim takes none")
  acoustic = acoustic_serving(loaded_run).in_process()
  values = resolve_controls(acoustic, controls, control_sources)
  info = run_facts(loaded_run)
  front_end = text_front_end(loaded_run)
  mel_config = info.mel_config
  sample_rate = int(info.sample_rate)
  hop = mel_config.hop_length

  failures = {}
  encodings, alignments, chunks = {}, {}, []
  for index, text in enumerate(texts):
    try:
      id_lists, encodings[index], alignments[index] = _split_and_encode(front_end, text,
                                                                        max_tokens)
    except ValueError as e:
      failures[index] = SynthesisFailure(names[index], text, str(e))
      continue
    chunks.extend(_Chunk(index, part, ids) for part, ids in enumerate(id_lists))
  if not chunks:
    raise ValueError("; ".join(f.error for f in failures.values()))
  chunk_counts, id_counts = {}, {}
  for chunk in chunks:
    chunk_counts[chunk.index] = chunk_counts.get(chunk.index, 0) + 1
    id_counts[chunk.index] = id_counts.get(chunk.index, 0) + len(chunk.ids)
  os.makedirs(out_dir, exist_ok=True)

  start = time.perf_counter()
  synthesize = make_synthesis_fn(acoustic, serving_lib.split_controls(acoustic.controls,
                                                                    values)[0])
  dynamic = _dynamic_args(acoustic, values)
  vocode = (griffin_lim_as_vocoder(mel_config, griffin_lim_iters) if vocoder is None
            else load_vocoder(vocoder, info, vocoder_controls, vocoder_control_sources,
                              vocoder_precision))
  pad_id = front_end.symbols.pad_id

  def run_model(batch):
    ids, lengths = pad_batch([c.ids for c in batch], pad_id)
    seeds = np.array([_seed_pair(seed, c) for c in batch], np.int32)  # graph-ok: host
    out = synthesize(tf.constant(ids), tf.constant(lengths), tf.constant(seeds),
                     tf.fill([len(batch)], tf.constant(speaker, tf.int32)), *dynamic)
    mels, mel_lengths = out["mel"].numpy(), out["mel_lengths"].numpy()  # graph-ok: files
    durations = out["durations"].numpy()  # graph-ok: host-side timestamps
    return [(mels[row, :mel_lengths[row]], durations[row, :len(chunk.ids)])
            for row, chunk in enumerate(batch)]

  def run_vocoder(mel, chunk):
    seeds = tf.constant([_seed_pair(seed, chunk)], tf.int32)
    return vocode(tf.constant(mel[None]), seeds)[0][:mel.shape[0] * hop].numpy()  # graph-ok

  # Warm-up: trace and optimise both graphs on a real chunk (the shortest, whose mel is
  # the shortest the vocoder will see), so the timing below is steady-state speed. A
  # failure here is not final: the loop below retries and reports per item.
  order = sorted(range(len(chunks)), key=lambda c: len(chunks[c].ids))
  try:
    run_vocoder(run_model([chunks[order[0]]])[0][0], chunks[order[0]])
  except _ITEM_ERRORS as e:
    _LOG.warning("synthesis warm-up failed (%s); items are tried one by one", _one_line(e))
  first_call_seconds = time.perf_counter() - start

  start = time.perf_counter()
  pause_frames = int(round(chunk_pause * sample_rate / hop))
  silence = float(audio_lib.log_compress(tf.zeros([]), mel_config))
  pending = {}  # Text index -> {part: (mel, wav, durations)} until all its chunks are done.
  items, total_samples = {}, 0

  def fail(index, error, part=None):
    if index in failures:
      return
    where = f" (chunk {part + 1} of {chunk_counts[index]})" if chunk_counts[index] > 1 else ""
    failures[index] = SynthesisFailure(names[index], texts[index], f"{error}{where}")
    pending.pop(index, None)

  def finish(index):
    """Joins the chunks of text `index` and writes its files."""
    nonlocal total_samples
    parts = [pending[index][part] for part in range(chunk_counts[index])]
    del pending[index]
    mel_gap = np.full([pause_frames, mel_config.n_mels], silence, np.float32)
    wav_gap = np.zeros([pause_frames * hop], np.float32)
    mel = np.concatenate([x for m, _, _ in parts for x in (mel_gap, m)][1:])
    wav = np.concatenate([x for _, w, _ in parts for x in (wav_gap, w)][1:])
    mel_path = os.path.join(out_dir, names[index] + ".npy")
    wav_path = os.path.join(out_dir, names[index] + ".wav")
    try:
      np.save(mel_path, mel)
      audio_lib.write_wav(wav_path, wav, sample_rate)
    except _ITEM_ERRORS as e:
      fail(index, f"cannot write its files: {_one_line(e)}")
      return
    total_samples += int(wav.shape[0])
    encoding = encodings[index]
    timestamps = text_lib.durations_to_timestamps(
        alignments[index], [d for _, _, d in parts], hop, sample_rate, pause_frames,
        chunk_frames=[m.shape[0] for m, _, _ in parts])
    items[index] = SynthesizedItem(
        names[index], texts[index], id_counts[index],
        int(mel.shape[0]), mel_path, wav_path, num_chunks=chunk_counts[index],
        text_changes=tuple(encoding.changes), unknown_symbols=tuple(sorted(encoding.unknown)),
        timestamps=timestamps)

  # Batching chunks of similar length wastes less compute on padding; chunk j of text k
  # keeps its seed (seed + j, k), so the order changes no output.
  for first in range(0, len(order), batch_size):
    batch = [chunks[c] for c in order[first:first + batch_size]
             if chunks[c].index not in failures]
    if not batch:
      continue
    try:
      results = list(zip(batch, run_model(batch)))
    except _ITEM_ERRORS:
      # Find the culprit: each chunk alone, so only a chunk that fails by itself fails.
      results = []
      for chunk in batch:
        try:
          results.append((chunk, run_model([chunk])[0]))
        except _ITEM_ERRORS as e:
          fail(chunk.index, f"the acoustic model failed: {_one_line(e)}", chunk.part)
    for chunk, (mel, durations) in results:
      if chunk.index in failures:
        continue
      try:
        wav = run_vocoder(mel, chunk)
      except _ITEM_ERRORS as e:
        fail(chunk.index, f"the vocoder failed on {mel.shape[0]} frames: {_one_line(e)}",
             chunk.part)
        continue
      pending.setdefault(chunk.index, {})[chunk.part] = (mel, wav, durations)
      if len(pending[chunk.index]) == chunk_counts[chunk.index]:
        finish(chunk.index)
  wall_seconds = time.perf_counter() - start
  audio_seconds = total_samples / sample_rate
  return SynthesisResult(items=[items[k] for k in sorted(items)], audio_seconds=audio_seconds,
                         wall_seconds=wall_seconds, first_call_seconds=first_call_seconds,
                         real_time_factor=wall_seconds / max(audio_seconds, 1e-9),
                         vocoder=vocoder or "griffin_lim",
                         failures=[failures[k] for k in sorted(failures)])


# --------------------------------------------------------------------------- #
# Ground-truth-aligned mels.


def make_gta_fn(acoustic: serving_lib.AcousticModel, static: Optional[dict] = None):
  """The traced ground-truth-aligned mels of `acoustic` for fixed static controls.

  Returns:
    A `tf.function(text_ids, text_lengths, mel, mel_lengths, item_seeds, speaker,
    *dynamic controls)` → `[batch, frames, n_mels]` mels (0 past each length).
  """
  static = dict(_static_key(acoustic, static))
  multi_speaker = acoustic.num_speakers > 1
  dynamic = _dynamic_specs(acoustic)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None, None, acoustic.n_mels], tf.float32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None, 2], tf.int32), tf.TensorSpec([None], tf.int32)] + dynamic)
  def gta(text_ids, text_lengths, mel, mel_lengths, item_seeds, speaker, *values):
    controls = dict(static, **{spec.name: v for spec, v in zip(dynamic, values)})
    noise = seeded_noise(acoustic, item_seeds, acoustic.gta_noise_frames(tf.shape(mel)[1]))
    mels = acoustic.ground_truth_aligned(text_ids, text_lengths, mel, mel_lengths, noise,
                                         speaker if multi_speaker else None, **controls)
    return tf.cast(mels, tf.float32)
  return gta


@dataclasses.dataclass(frozen=True)
class GtaResult:
  """What `generate_gta` wrote: output dir, examples per split, wall seconds."""
  out_dir: str
  counts: dict
  wall_seconds: float


def generate_gta(loaded_run, data_dir: str, out_dir: str, seed: int = 0, batch_size: int = 16,
                 control_sources: Optional[dict] = None, **controls) -> GtaResult:
  """Rewrites a prepared corpus with ground-truth-aligned mels (an offline tool).

  Every shard of `data_dir` is written under the same name in `out_dir`, each example with
  all its features kept except `mel`, which becomes the acoustic model's teacher-forced mel
  of the same frame count. dataset.json and stats.json are copied (dataset.json gains a
  "gta" entry), so `out_dir` is a prepared corpus for `make_dataset`. `controls` are the
  model's declared controls (see `synthesize_texts`); item k draws its noise from
  `(seed, k)`.

  Raises:
    ValueError: if the model has no ground-truth-aligned mode, or the corpus's conventions
      differ from the run's (symbols, mel config).
  """
  if os.path.abspath(out_dir) == os.path.abspath(data_dir):
    raise ValueError("--gta: --out must differ from --data (the records are rewritten)")
  acoustic = acoustic_serving(loaded_run).in_process()
  if not acoustic.has_ground_truth_aligned:
    raise ValueError(f"--gta: model {loaded_run.config.model!r} has no ground-truth-aligned "
                     "mode; synthesize from text instead")
  values = resolve_controls(acoustic, controls, control_sources)
  facts = run_facts(loaded_run)
  info = CorpusInfo.load(data_dir, require=("symbols", "mel_config"))
  problems = facts.differences(info, ("symbols", "mel_config"))
  if problems:
    raise ValueError(f"--gta: the corpus in {data_dir} follows other conventions than the "
                     f"run was trained on ({'; '.join(problems)}); use the corpus (or one "
                     "prepared alike) the acoustic model was trained on")
  table = info.symbols
  blank_id = facts.blank_id
  gta = make_gta_fn(acoustic, serving_lib.split_controls(acoustic.controls, values)[0])
  dynamic = _dynamic_args(acoustic, values)
  start = time.perf_counter()
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  counts, index = {}, 0
  for split in dataset_lib.SPLITS:
    counts[split] = 0
    for shard in dataset_lib.shard_files(data_dir, split) if info.count(split) else []:
      examples = [records.parse_example(r, n_mels=info.n_mels)
                  for r in tf.data.TFRecordDataset(shard)]
      with tf.io.TFRecordWriter(str(out / os.path.basename(shard))) as writer:
        for first in range(0, len(examples), batch_size):
          batch = examples[first:first + batch_size]
          id_lists = [list(e["text_ids"].numpy()) for e in batch]  # graph-ok: offline tool
          if blank_id is not None:
            id_lists = [text_lib.intersperse(ids, blank_id) for ids in id_lists]
          ids, lengths = pad_batch(id_lists, table.pad_id)
          mels = [e["mel"].numpy() for e in batch]  # graph-ok: offline tool
          mel_lengths = np.array([m.shape[0] for m in mels], np.int32)  # graph-ok
          padded = np.zeros([len(batch), mel_lengths.max(), mels[0].shape[1]], np.float32)
          for row, m in enumerate(mels):
            padded[row, :m.shape[0]] = m
          seeds = np.stack([np.full(len(batch), seed),  # graph-ok: offline tool
                            np.arange(index, index + len(batch))], axis=1)
          index += len(batch)
          decoded = gta(tf.constant(ids), tf.constant(lengths), tf.constant(padded),
                        tf.constant(mel_lengths), tf.constant(seeds, tf.int32),
                        tf.constant([int(e["speaker"]) for e in batch], tf.int32),
                        *dynamic).numpy()  # graph-ok: offline tool
          for row, example in enumerate(batch):
            writer.write(_with_mel(example, decoded[row, :mel_lengths[row]]))
          counts[split] += len(batch)
  shutil.copy(pathlib.Path(data_dir) / dataset_lib.STATS_JSON, out / dataset_lib.STATS_JSON)
  gta_entry = {"acoustic_run": loaded_run.config.model, "checkpoint": loaded_run.checkpoint,
               "step": loaded_run.step, "controls": values, "seed": seed,
               "source": str(data_dir)}
  info.replace(extras=dict(info.extras, gta=gta_entry)).write(out)
  return GtaResult(str(out), counts, time.perf_counter() - start)


def _with_mel(example, mel) -> bytes:
  """Serializes a parsed example again with `mel` replaced (offline tool)."""
  def optional(name):
    value = example[name].numpy()  # graph-ok: offline tool
    return value if value.size else None
  return records.serialize_example(
      id=example["id"].numpy().decode("utf-8"),  # graph-ok: offline tool
      text=example["text"].numpy().decode("utf-8"),  # graph-ok: offline tool
      text_ids=example["text_ids"].numpy(),  # graph-ok: offline tool
      audio=records.quantize_pcm16(example["audio"].numpy()),  # graph-ok: offline tool
      mel=mel, speaker=int(example["speaker"]), pitch=optional("pitch"),
      energy=optional("energy"), durations=optional("durations"))


def write_timestamps(item: SynthesizedItem) -> str:
  """Writes `item.timestamps` as JSON beside its WAV (`NAME.json`); returns the path.

  Layout: {"name", "text", "words": [{"word", "start", "end", "char_start", "char_end"}],
  "tokens": [{"token", "id", "start", "end", "char_start", "char_end", "word"}],
  "seconds_per_frame"}; seconds from the start of the WAV, offsets into "text".
  """
  if item.timestamps is None:
    raise ValueError(f"{item.name}: no timestamps to write")
  path = os.path.splitext(item.wav_path)[0] + ".json"
  with open(path, "w", encoding="utf-8") as f:
    f.write(item.timestamps.to_json(name=item.name, text=item.text) + "\n")
  return path


def read_text_file(path: str):
  """(names, texts) of a text file: one text per line, optionally 'NAME|text'."""
  if not os.path.isfile(path):
    raise ValueError(f"--text_file={path}: no such file")
  names, texts = [], []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      name, sep, text = line.partition("|")
      if not sep:
        name, text = f"{number:04d}", line
      if not text.strip() or not name.strip():
        raise ValueError(f"--text_file={path}:{number}: expected 'text' or 'NAME|text', got "
                         f"{line!r}")
      names.append(name.strip())
      texts.append(text.strip())
  if not texts:
    raise ValueError(f"--text_file={path}: no text in the file")
  if len(set(names)) != len(names):
    raise ValueError(f"--text_file={path}: names must be unique")
  return names, texts

"""Forced alignment: audio + transcript → the seconds of every word and token (`tfspeech-align`).

  from tfspeech.inference import align_lib
  aligner = align_lib.Aligner(training.load_run("runs/grad_tts", tasks=registry.get))
  [result] = aligner.align([align_lib.AlignItem("lj001", "lj001.wav", "Printing, in the ...")])
  result.timestamps.words[0]   # WordTime(word="Printing", start=0.05, end=0.43, ...)

The alignment runs in one graph, the exported `align` graph itself
(`tfspeech.export.align_graph.Align`): log-mel of the samples, text encoder,
log-likelihood of every (token, frame) pair, monotonic alignment search. Here only the
I/O happens on the host: reading WAVs, encoding text (the run's cleaners, ARPAbet, blanks),
batching utterances of similar length, and mapping frames back to the words of the
transcript (`tfspeech.text.align_text` / `durations_to_timestamps`, the mapping
`tfspeech-synthesize --timestamps` uses), so the JSON has the same layout.
"""

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from tfspeech import text as text_lib
from tfspeech.inference import synthesize_lib

__all__ = ["AlignItem", "AlignedItem", "Aligner", "corpus_items", "pause_ids",
           "write_alignment"]


@dataclasses.dataclass(frozen=True)
class AlignItem:
  """One utterance to align: a name (the JSON file's stem), its audio file and transcript."""
  id: str
  audio_path: str
  text: str


@dataclasses.dataclass(frozen=True)
class AlignedItem:
  """The alignment of one `AlignItem`.

  Attributes:
    item: the input.
    timestamps: `tfspeech.text.Timestamps` of its words and tokens, in seconds of the audio.
    durations: mel frames of each token id.
    score: mean log-likelihood per frame and mel bin along the path (see
      `tfspeech.export.align_graph`); higher is a closer fit (compare within one run).
    audio_seconds: length of the audio.
  """
  item: AlignItem
  timestamps: text_lib.Timestamps
  durations: List[int]
  score: float
  audio_seconds: float

  def to_json(self) -> str:
    """{"id", "text", "audio", "audio_seconds", "score", "words", "tokens", "seconds_per_frame"}."""
    return self.timestamps.to_json(id=self.item.id, text=self.item.text,
                                   audio=self.item.audio_path,
                                   audio_seconds=round(self.audio_seconds, 6),
                                   score=round(self.score, 6))


@dataclasses.dataclass
class _Loaded:
  item: AlignItem
  audio: np.ndarray
  ids: List[int]


class Aligner:
  """Aligns utterances with a trained run (Grad-TTS) through the `align` graph.

  Args:
    loaded_run: a `LoadedRun` of an acoustic model with an alignment prior.
    speaker: speaker id for multi-speaker runs.

  Raises:
    ValueError: the run has no alignment prior or records no mel convention.
  """

  def __init__(self, loaded_run, speaker: int = 0):
    from tfspeech.export import align_graph  # pylint: disable=import-outside-toplevel
    facts = synthesize_lib.run_facts(loaded_run)
    self.front_end = synthesize_lib.text_front_end(loaded_run)
    self.graph = align_graph.Align(synthesize_lib.acoustic_serving(loaded_run),
                                   facts.mel_config, pause_ids=pause_ids(self.front_end.symbols))
    self.sample_rate = int(facts.mel_config.sample_rate)
    self.hop_length = int(facts.mel_config.hop_length)
    self.speaker = int(speaker)
    self.step = loaded_run.step

  def load(self, item: AlignItem) -> _Loaded:
    """Reads and checks one utterance; ValueError naming its file for any problem."""
    from tfspeech.audio import wav  # pylint: disable=import-outside-toplevel
    try:
      audio, _ = wav.load_wav(item.audio_path, sample_rate=self.sample_rate, resample=False)
    except wav.AudioError as e:
      raise ValueError(str(e)) from None
    if not item.text.strip():
      raise ValueError(f"{item.audio_path}: the transcript is empty; give the words spoken "
                       "in it")
    try:
      ids = self.front_end.encode(item.text, on_unknown="drop")
    except ValueError as e:
      raise ValueError(f"{item.audio_path}: {e}") from None
    frames = int(self.graph.num_frames(int(audio.shape[0])))
    if frames < len(ids):
      raise ValueError(f"{item.audio_path}: {audio.shape[0] / self.sample_rate:.2f} s of audio "
                       f"is {frames} mel frames, fewer than the transcript's {len(ids)} "
                       "tokens; is it the right transcript?")
    return _Loaded(item, audio.numpy(), ids)  # graph-ok: host-side I/O.

  def _run_batch(self, batch: Sequence[_Loaded]) -> List[AlignedItem]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    samples = max(len(b.audio) for b in batch)
    audio = np.zeros([len(batch), samples], np.float32)
    for row, loaded in enumerate(batch):
      audio[row, :len(loaded.audio)] = loaded.audio
    text_ids, text_lengths = synthesize_lib.pad_batch([b.ids for b in batch],
                                                      self.front_end.symbols.pad_id)
    inputs = {"audio": tf.constant(audio),
              "audio_lengths": tf.constant([len(b.audio) for b in batch], tf.int32),
              "text_ids": tf.cast(text_ids, tf.int32),
              "text_lengths": tf.cast(text_lengths, tf.int32)}
    if self.graph.multi_speaker:
      inputs["speaker"] = tf.fill([len(batch)], self.speaker)
    out = {k: v.numpy() for k, v in self.graph.function(**inputs).items()}  # graph-ok: host.
    results = []
    for row, loaded in enumerate(batch):
      durations = [int(d) for d in out["durations"][row, :len(loaded.ids)]]
      alignment = self.front_end.alignment(loaded.item.text, loaded.ids)
      stamps = text_lib.durations_to_timestamps([alignment], [durations], self.hop_length,
                                                self.sample_rate)
      results.append(AlignedItem(loaded.item, stamps, durations, float(out["score"][row]),
                                 len(loaded.audio) / self.sample_rate))
    return results

  def align(self, items: Sequence[AlignItem], batch_size: int = 8,
            on_done: Optional[Callable[[AlignedItem], None]] = None,
            progress: bool = False) -> List[AlignedItem]:
    """Aligns `items` in batches of similar audio length; results in input order.

    Every item is read and checked before any is aligned, so a bad one fails the call
    (ValueError naming its file) before work is done. `on_done` is called per result as
    its batch finishes (e.g. to write it).
    """
    loaded = [self.load(item) for item in items]
    order = sorted(range(len(loaded)), key=lambda i: len(loaded[i].audio))
    results = [None] * len(loaded)
    bar = None
    if progress:
      import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm.tqdm(total=len(loaded), unit="utt", desc="align")
    for start in range(0, len(order), batch_size):
      indices = order[start:start + batch_size]
      for index, result in zip(indices, self._run_batch([loaded[i] for i in indices])):
        results[index] = result
        if on_done is not None:
          on_done(result)
      if bar is not None:
        bar.update(len(indices))
    if bar is not None:
      bar.close()
    return results


def pause_ids(symbols: text_lib.SymbolTable) -> List[int]:
  """Ids of `symbols` that separate words: space and punctuation (pad, bos, eos too).

  The `align` graph gives silent frames to these (see `tfspeech.export.align_graph`); a
  spoken symbol is a letter, digit or phone (`TextFrontEnd.encode`'s test). The blank is
  left out: it sits between the letters of a word too, and silence given to it there
  would split the word.
  """
  special = set(symbols.special_symbols) - {symbols.blank}
  ids = []
  for symbol_id in range(len(symbols)):
    symbol = symbols.symbol_of(symbol_id)
    if symbol == symbols.blank:
      continue
    if symbol in special or not (len(symbol) > 1 or symbol.isalnum()):
      ids.append(symbol_id)
  return ids


def corpus_items(corpus_dir: str) -> List[AlignItem]:
  """The utterances of an LJSpeech-layout corpus (metadata.csv, wavs/ID.wav).

  The transcript is the normalized column when present (what was spoken), else the text.

  Raises:
    ValueError: no metadata.csv, or a malformed line (named with its line number).
  """
  from tfspeech.data import corpus  # pylint: disable=import-outside-toplevel
  try:
    utterances = corpus.read_ljspeech(corpus_dir)
  except FileNotFoundError as e:
    raise ValueError(str(e)) from None
  if utterances.problems:
    problem = utterances.problems[0]
    raise ValueError(f"{problem.source} line {problem.line_number}: {problem.message}")
  if not utterances:
    raise ValueError(f"{corpus_dir}/metadata.csv lists no utterances")
  return [AlignItem(u.id, u.audio_path, u.text) for u in utterances]


def write_alignment(result: AlignedItem, out_dir: str) -> str:
  """Writes `<out_dir>/<id>.json` (see `AlignedItem.to_json`); returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{result.item.id}.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(result.to_json() + "\n")
  return path

"""Text → mel → audio with a trained acoustic-model run, and ground-truth-aligned mels.

  run = tfspeech.training.load_run("runs/gradtts")
  result = synthesize_texts(run, ["Hello there.", "A longer second sentence."],
                            out_dir="out/")
  result.items[0].wav_path, result.real_time_factor

Texts are cleaned and tokenized with the run's own symbol table and cleaners (recorded in
its config.json at the start of training), batched (texts of different lengths share a
batch), and run through one `tf.function` whose input signature has `None` batch and length
dims. Item k of a call draws its terminal noise from the stateless seed `(seed, k)`, so an
item's mel does not depend on what else is in its batch or on the batch size.

Audio comes from Griffin-Lim (`tfspeech.audio.mel_to_audio`) until a vocoder run is given
(`vocoder=WORKDIR` of a trained vocoder whose task has a "generator" module).

`generate_gta` writes teacher-forced (ground-truth-aligned) mels of a prepared corpus:
MAS aligns the text to the true mel, the decoder runs on the aligned prior, and the records
are written again with that mel in place of the true one (audio kept) for fine-tuning a
vocoder on the acoustic model's outputs.
"""

import dataclasses
import functools
import json
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
from tfspeech.data import records
from tfspeech.ops.sequence import sequence_mask

ACOUSTIC_MODULE = "grad_tts"
VOCODER_MODULE = "generator"
NOISE_ALGORITHM = "philox"


@dataclasses.dataclass(frozen=True)
class SynthesizedItem:
  """One synthesized text.

  Attributes:
    name: output file stem.
    text: the input text.
    num_ids: token ids fed to the model (blanks included).
    num_frames: mel frames generated.
    mel_path: `NAME.npy`, float32 `[frames, n_mels]` log-mel.
    wav_path: `NAME.wav`, 16-bit PCM at the run's sample rate.
  """
  name: str
  text: str
  num_ids: int
  num_frames: int
  mel_path: str
  wav_path: str


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
  """What `synthesize_texts` did.

  Attributes:
    items: one `SynthesizedItem` per text, in input order.
    audio_seconds: seconds of audio written.
    wall_seconds: wall time of synthesis, vocoding and writing, after warm-up.
    first_call_seconds: one-off time to trace and optimise the graphs (warm-up).
    real_time_factor: `wall_seconds / audio_seconds`, the convention of the Grad-TTS and
      HiFi-GAN papers and of `vocode_lib.real_time_factor` (< 1 is faster than real time).
    vocoder: "griffin_lim" or the vocoder workdir.
  """
  items: List[SynthesizedItem]
  audio_seconds: float
  wall_seconds: float
  first_call_seconds: float
  real_time_factor: float
  vocoder: str

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


def frames_upper_bound(model, text_ids, text_lengths, length_scale, speaker=None):
  """An int32 scalar >= the frames `model.synthesize` will need noise for."""
  _, log_durations, text_mask, _ = model.encode(text_ids, text_lengths, speaker)
  durations = tf.math.ceil(tf.exp(log_durations) * text_mask) * length_scale
  longest = tf.math.ceil(tf.reduce_max(tf.reduce_sum(durations, axis=1)))
  # synthesize keeps >= 1 frame and rounds up to the U-Net multiple.
  return tf.cast(longest, tf.int32) + 2 * model.config.frames_multiple


def synthesize_mels(model, text_ids, text_lengths, item_seeds, n_timesteps, temperature,
                    length_scale, speaker=None, unroll=False):
  """Batched Grad-TTS synthesis whose items do not depend on their batch.

  Args:
    model: a `GradTTS`.
    text_ids: `[batch, tokens]` int32.
    text_lengths: `[batch]` int32.
    item_seeds: `[batch, 2]` int32 noise seed of each item.
    n_timesteps: reverse-diffusion steps (Python int when `unroll`, else int or tensor).
    temperature: scalar; divides the terminal noise.
    length_scale: scalar; multiplies durations.
    speaker: `[batch]` int32 ids for multi-speaker models, else None.
    unroll: loop-free decoder graph (see `Diffusion.reverse_diffusion`).

  Returns:
    `SynthesisOutput` (mel_encoder, mel_decoded, mel_lengths, alignment).
  """
  frames = frames_upper_bound(model, text_ids, text_lengths, length_scale, speaker)
  noise = item_noise(item_seeds, frames, model.config.n_feats)
  return model.synthesize(text_ids, text_lengths, n_timesteps=n_timesteps,
                          temperature=temperature, length_scale=length_scale, stoc=False,
                          speaker=speaker, noise=noise, unroll=unroll)


# --------------------------------------------------------------------------- #
# Run conventions.


@dataclasses.dataclass(frozen=True)
class TextFrontEnd:
  """How a run turns text into ids, from the facts recorded in its config.json."""
  symbols: text_lib.SymbolTable
  cleaners: tuple
  cmudict: Optional[text_lib.CMUDict]
  add_blank: bool

  def encode(self, text: str) -> List[int]:
    """Cleaned, tokenized (and blank-interspersed) ids; ValueError when nothing is left."""
    ids = text_lib.encode_text(text, self.symbols, self.cleaners, cmudict=self.cmudict,
                               on_unknown="warn").ids
    special = set(self.symbols.special_symbols)
    # Spaces and punctuation alone would make a silent, meaningless utterance.
    spoken = [s for s in map(self.symbols.symbol_of, ids)
              if s not in special and (len(s) > 1 or s.isalnum())]
    if not spoken:
      raise ValueError(f"text {text!r} has no letter or phone of symbol table "
                       f"{self.symbols.name!r} after cleaning with {list(self.cleaners)}; "
                       "nothing to synthesize")
    return ids


def run_facts(loaded_run) -> dict:
  """The data facts of a run (symbols, mel config, ...), with a clear error when absent."""
  info = dict(loaded_run.config.data_info or {})
  missing = [k for k in ("symbols", "mel_config", "sample_rate") if k not in info]
  if missing:
    raise ValueError(f"the run's config.json lacks data_info {missing}; it was not trained "
                     "on a prepared corpus by a task that records them (e.g. grad_tts)")
  return info


def text_front_end(loaded_run) -> TextFrontEnd:
  """The `TextFrontEnd` of a trained run."""
  info = run_facts(loaded_run)
  table = text_lib.SymbolTable.from_dict(info["symbols"])
  add_blank = bool(info.get("add_blank", False))
  if add_blank and table.blank is None:
    # The pipeline interspersed id len(symbols); with_blank appends exactly that id.
    table = table.with_blank()
  cmudict = text_lib.load_cmudict() if info.get("arpabet") else None
  return TextFrontEnd(table, tuple(info.get("cleaners", ("english_cleaners",))), cmudict,
                      add_blank)


def acoustic_model(loaded_run):
  """The acoustic model of a run; ValueError for runs of other models."""
  if ACOUSTIC_MODULE not in loaded_run.modules:
    raise ValueError(f"run of model {loaded_run.config.model!r} has no {ACOUSTIC_MODULE!r} "
                     f"module (it has {sorted(loaded_run.modules)}); pass a Grad-TTS workdir")
  return loaded_run.modules[ACOUSTIC_MODULE]


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

  Returns:
    `[batch, frames * hop_length]` float32 audio.
  """
  floor = audio_lib.log_compress(tf.zeros([]), mel_config)
  ceiling = audio_lib.log_compress(tf.constant(1e4), mel_config)
  mel = tf.where(tf.math.is_finite(mel), mel, floor)
  mel = tf.clip_by_value(mel, floor, ceiling)
  return audio_lib.mel_to_audio(mel, mel_config, n_iter=n_iter, seed=0)


@functools.lru_cache(maxsize=8)
def griffin_lim_vocoder(mel_config: audio_lib.MelConfig, n_iter: int = 32) -> Callable:
  """A traced Griffin-Lim vocoder: `[1, frames, n_mels]` log-mel → `[1, samples]`."""
  @tf.function(input_signature=[tf.TensorSpec([None, None, mel_config.n_mels], tf.float32)])
  def vocode(mel):
    return griffin_lim_audio(mel, mel_config, n_iter)
  return vocode


def load_vocoder(workdir: str, mel_config: audio_lib.MelConfig) -> Callable:
  """A trained vocoder run as a traced `[batch, frames, n_mels]` → `[batch, samples]` function.

  Uses `tfspeech.inference.vocode_lib` (weight norm folded away for inference).

  Raises:
    ValueError: not a vocoder run, or its mel convention differs from the acoustic model's.
  """
  from tfspeech.inference import vocode_lib  # pylint: disable=import-outside-toplevel
  vocoder = vocode_lib.load_vocoder(workdir)
  vocoder.check_mel_config(mel_config, source=f"--vocoder={workdir}: the acoustic model's mels")

  def vocode(mel):
    frames = tf.fill(tf.shape(mel)[:1], tf.shape(mel)[1])
    audio, _ = vocoder.vocode(mel, frames)
    return audio
  return vocode


# --------------------------------------------------------------------------- #
# Text → files.


# model → its synthesis function, so repeated calls reuse one trace.
_SYNTHESIS_FNS = weakref.WeakKeyDictionary()


def make_synthesis_fn(model):
  """The traced batched synthesis: every dim `None`, `n_timesteps` a tensor (one trace).

  The function is cached per model: later calls with the same model reuse its graph.
  """
  if model not in _SYNTHESIS_FNS:
    _SYNTHESIS_FNS[model] = _new_synthesis_fn(model)
  return _SYNTHESIS_FNS[model]


def _new_synthesis_fn(model):
  multi_speaker = model.config.n_spks > 1

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32, name="text_ids"),
      tf.TensorSpec([None], tf.int32, name="text_lengths"),
      tf.TensorSpec([None, 2], tf.int32, name="item_seeds"),
      tf.TensorSpec([], tf.int32, name="n_timesteps"),
      tf.TensorSpec([], tf.float32, name="temperature"),
      tf.TensorSpec([], tf.float32, name="length_scale"),
      tf.TensorSpec([None], tf.int32, name="speaker")])
  def synthesize(text_ids, text_lengths, item_seeds, n_timesteps, temperature, length_scale,
                 speaker):
    out = synthesize_mels(model, text_ids, text_lengths, item_seeds, n_timesteps,
                          temperature, length_scale,
                          speaker=speaker if multi_speaker else None)
    return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths}
  return synthesize


def synthesize_texts(loaded_run, texts: Sequence[str], n_timesteps: int = 10,
                     temperature: float = 1.5, length_scale: float = 1.0, seed: int = 0,
                     batch_size: int = 16, out_dir: str = ".", vocoder: Optional[str] = None,
                     names: Optional[Sequence[str]] = None, speaker: int = 0,
                     griffin_lim_iters: int = 32) -> SynthesisResult:
  """Synthesizes `texts` with a trained Grad-TTS run and writes `NAME.npy` / `NAME.wav`.

  Args:
    loaded_run: `tfspeech.training.load_run(workdir)` of a grad_tts run.
    texts: raw texts (cleaned with the run's cleaners).
    n_timesteps: reverse-diffusion steps.
    temperature: divides the terminal noise (the reference uses 1.5).
    length_scale: > 1 speaks slower.
    seed: item k uses the noise seed `(seed, k)`.
    batch_size: texts per model call (texts are grouped by length, then padded).
    out_dir: where the files go (created).
    vocoder: None for Griffin-Lim, or the workdir of a trained vocoder run.
    names: file stems (default `0000`, `0001`, ...).
    speaker: speaker id for multi-speaker models.
    griffin_lim_iters: Griffin-Lim iterations.

  Returns:
    `SynthesisResult`.

  Raises:
    ValueError: on empty `texts`, a text without known symbols, bad arguments or names.
  """
  texts = list(texts)
  if not texts:
    raise ValueError("synthesize_texts: no texts given")
  if batch_size < 1 or n_timesteps < 1:
    raise ValueError(f"synthesize_texts: batch_size ({batch_size}) and n_timesteps "
                     f"({n_timesteps}) must be >= 1")
  if temperature <= 0 or length_scale <= 0:
    raise ValueError(f"synthesize_texts: temperature ({temperature}) and length_scale "
                     f"({length_scale}) must be > 0")
  names = [f"{i:04d}" for i in range(len(texts))] if names is None else list(names)
  if len(names) != len(texts) or len(set(names)) != len(names):
    raise ValueError("synthesize_texts: names must be unique, one per text")
  bad = [n for n in names if not n or os.sep in n or n.startswith(".")]
  if bad:
    raise ValueError(f"synthesize_texts: names {bad} cannot be file names")
  model = acoustic_model(loaded_run)
  info = run_facts(loaded_run)
  front_end = text_front_end(loaded_run)
  mel_config = audio_lib.MelConfig(**info["mel_config"])
  sample_rate = int(info["sample_rate"])
  id_lists = [front_end.encode(t) for t in texts]
  os.makedirs(out_dir, exist_ok=True)

  start = time.perf_counter()
  synthesize = make_synthesis_fn(model)
  vocode = (griffin_lim_vocoder(mel_config, griffin_lim_iters) if vocoder is None
            else load_vocoder(vocoder, mel_config))
  # Warm-up: trace and optimise both graphs on a one-token input, so the timing below is
  # steady-state speed.
  pad_id = front_end.symbols.pad_id
  warm = synthesize(tf.constant([[id_lists[0][0]]], tf.int32), tf.constant([1]),
                    tf.constant([[seed, 0]]), tf.constant(1), tf.constant(1.0),
                    tf.constant(1.0), tf.constant([speaker]))
  vocode(warm["mel"])
  first_call_seconds = time.perf_counter() - start

  start = time.perf_counter()
  items, total_samples = [None] * len(texts), 0
  # Batching texts of similar length wastes less compute on padding; item k keeps its seed
  # (seed, k), so the order changes no output.
  order = sorted(range(len(texts)), key=lambda k: len(id_lists[k]))
  for first in range(0, len(texts), batch_size):
    indices = order[first:first + batch_size]
    ids, lengths = pad_batch([id_lists[k] for k in indices], pad_id)
    count = len(indices)
    seeds = np.stack([np.full(count, seed), np.array(indices)], axis=1)  # graph-ok: host batch
    out = synthesize(tf.constant(ids), tf.constant(lengths), tf.constant(seeds, tf.int32),
                     tf.constant(n_timesteps), tf.constant(temperature, tf.float32),
                     tf.constant(length_scale, tf.float32),
                     tf.fill([count], tf.constant(speaker, tf.int32)))
    mels = out["mel"].numpy()  # graph-ok: writing files.
    mel_lengths = out["mel_lengths"].numpy()  # graph-ok: writing files.
    for row, index in enumerate(indices):
      mel = mels[row, :mel_lengths[row]]
      wav = vocode(tf.constant(mel[None]))[0][:mel.shape[0] * mel_config.hop_length]
      mel_path = os.path.join(out_dir, names[index] + ".npy")
      wav_path = os.path.join(out_dir, names[index] + ".wav")
      np.save(mel_path, mel)
      audio_lib.write_wav(wav_path, wav, sample_rate)
      total_samples += int(wav.shape[0])
      items[index] = SynthesizedItem(names[index], texts[index], len(id_lists[index]),
                                     int(mel.shape[0]), mel_path, wav_path)
  wall_seconds = time.perf_counter() - start
  audio_seconds = total_samples / sample_rate
  return SynthesisResult(items=items, audio_seconds=audio_seconds, wall_seconds=wall_seconds,
                         first_call_seconds=first_call_seconds,
                         real_time_factor=wall_seconds / max(audio_seconds, 1e-9),
                         vocoder=vocoder or "griffin_lim")


# --------------------------------------------------------------------------- #
# Ground-truth-aligned mels.


def make_gta_fn(model):
  """Traced teacher forcing: MAS against the true mel, then the decoder on the aligned prior.

  Returns:
    A `tf.function(text_ids, text_lengths, mel, mel_lengths, item_seeds, n_timesteps,
    temperature, speaker)` → `[batch, frames, n_feats]` mels (0 past each length).
  """
  n_feats = model.config.n_feats
  multi_speaker = model.config.n_spks > 1

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None, None, n_feats], tf.float32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None, 2], tf.int32), tf.TensorSpec([], tf.int32),
      tf.TensorSpec([], tf.float32), tf.TensorSpec([None], tf.int32)])
  def gta(text_ids, text_lengths, mel, mel_lengths, item_seeds, n_timesteps, temperature,
          speaker):
    mu_x, _, _, speaker_embedding = model.encode(
        text_ids, text_lengths, speaker if multi_speaker else None)
    path = model.align(mu_x, text_lengths, mel, mel_lengths)
    frames = model.compatible_frames(tf.shape(mel)[1])
    path = tf.pad(path, [[0, 0], [0, 0], [0, frames - tf.shape(mel)[1]]])
    mask = sequence_mask(mel_lengths, frames)
    mu_y = tf.linalg.matmul(path, mu_x, transpose_a=True)
    z = mu_y + item_noise(item_seeds, frames, n_feats) / temperature
    decoded = model.decoder.reverse_diffusion(z, mask, mu_y, n_timesteps,
                                              speaker_embedding=speaker_embedding)
    return decoded[:, :tf.shape(mel)[1]]
  return gta


@dataclasses.dataclass(frozen=True)
class GtaResult:
  """What `generate_gta` wrote: output dir, examples per split, wall seconds."""
  out_dir: str
  counts: dict
  wall_seconds: float


def generate_gta(loaded_run, data_dir: str, out_dir: str, n_timesteps: int = 10,
                 temperature: float = 1.5, seed: int = 0, batch_size: int = 16) -> GtaResult:
  """Rewrites a prepared corpus with ground-truth-aligned mels (an offline tool).

  Every shard of `data_dir` is written under the same name in `out_dir`, each example with
  all its features kept except `mel`, which becomes the acoustic model's teacher-forced mel
  of the same frame count. dataset.json and stats.json are copied (dataset.json gains a
  "gta" entry), so `out_dir` is a prepared corpus for `make_dataset`.

  Raises:
    ValueError: if the corpus's conventions differ from the run's (symbols, mel config).
  """
  if os.path.abspath(out_dir) == os.path.abspath(data_dir):
    raise ValueError("--gta: --out must differ from --data (the records are rewritten)")
  model = acoustic_model(loaded_run)
  facts = run_facts(loaded_run)
  info = dataset_lib.load_dataset_info(data_dir)
  for key in ("symbols", "mel_config"):
    if info.get(key) != facts.get(key):
      raise ValueError(f"--gta: the corpus in {data_dir} has another {key} than the one the "
                       f"run was trained on; use the corpus (or one prepared alike) the "
                       "acoustic model was trained on")
  table = text_lib.SymbolTable.from_dict(info["symbols"])
  blank_id = facts.get("blank_id")
  gta = make_gta_fn(model)
  start = time.perf_counter()
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  counts, index = {}, 0
  for split in dataset_lib.SPLITS:
    counts[split] = 0
    for shard in dataset_lib.shard_files(data_dir, split) if info["counts"].get(split) else []:
      examples = [records.parse_example(r, n_mels=int(info["n_mels"]))
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
                        tf.constant(n_timesteps), tf.constant(temperature, tf.float32),
                        tf.constant([int(e["speaker"]) for e in batch], tf.int32)).numpy()  # graph-ok
          for row, example in enumerate(batch):
            writer.write(_with_mel(example, decoded[row, :mel_lengths[row]]))
          counts[split] += len(batch)
  shutil.copy(pathlib.Path(data_dir) / dataset_lib.STATS_JSON, out / dataset_lib.STATS_JSON)
  info["gta"] = {"acoustic_run": loaded_run.config.model, "checkpoint": loaded_run.checkpoint,
                 "step": loaded_run.step, "n_timesteps": n_timesteps,
                 "temperature": temperature, "seed": seed, "source": str(data_dir)}
  with open(out / dataset_lib.DATASET_JSON, "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2)
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

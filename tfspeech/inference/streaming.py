"""Streaming vocoding: audio chunk by chunk, as it is made, equal to whole-utterance audio.

  for chunk in stream_vocode(vocoder, mels, mel_lengths, chunk_frames=32):
    play(chunk.audio[0, :chunk.lengths[0]])

A chunk of frames [start, end) is vocoded from the window [start - C, end + C) (clipped to
the utterance), C = the vocoder's context in frames (`context_frames`: its receptive
field, e.g. DiffWave's compounded over its reverse steps), and the window's audio is cut
back to the chunk's. No sample of the chunk then depends on anything outside the window,
and at the utterance's ends the window's edge is the utterance's edge (the same zero
padding), so the chunks, concatenated, are the whole utterance's audio (to float rounding:
within 1e-5 of the peak, tests/inference/test_streaming.py), not an approximation with
glitches at chunk edges.

Padded batches: a window keeps each item's length (`mel_lengths - window start`, clipped),
so masks are what whole-utterance vocoding of the same padded batch has; the frames past a
length are passed as they are (HiFi-GAN hears its padding near an item's end, as it does
whole). Noise (DiffWave): drawn once for the whole utterance exactly as
`vocode_lib.make_vocode_fn` draws it, and each window reads its slice
(`Vocoder.stream_noise` turns noise whose draws are not per-sample into noise that is).

Cost: every chunk re-vocodes 2 C frames of context; with C = 8 frames (HiFi-GAN V2) and
32-frame chunks that is 1.5x the work of vocoding the utterance once
(benchmarks/streaming.py measures it). The chunk function is one `tf.function` with `None`
batch and length dims, traced once per vocoder and static controls.
"""

import dataclasses
import math
import struct
import time
import weakref
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfspeech.inference import vocode_lib
from tfspeech.models import serving as serving_lib

DEFAULT_CHUNK_FRAMES = 32
# Each chunk after the first is this many times the one before (rounded up), up to the chunk
# size (plan_chunks; the browser demo's stream_player.js has the same default).
DEFAULT_CHUNK_GROWTH = 1.5


def _serving(vocoder) -> Tuple[serving_lib.Vocoder, dict]:
  """(serving vocoder, its resolved control values) of a serving or `vocode_lib` vocoder."""
  if isinstance(vocoder, vocode_lib.Vocoder):
    return vocoder.serving, dict(vocoder.controls)
  if not isinstance(vocoder, serving_lib.Vocoder):
    raise TypeError(f"streaming: expected a tfspeech vocoder, got {type(vocoder).__name__}")
  return vocoder, serving_lib.resolve_controls(vocoder.controls)


def context_frames(vocoder, controls: Optional[Mapping[str, object]] = None) -> int:
  """Mel frames of context each side of a chunk that make its audio exact.

  The vocoder's `context_frames(**static controls)` (DiffWave's depends on its steps).

  Raises:
    NotImplementedError: the vocoder does not declare `context_frames`.
  """
  served, values = _serving(vocoder)
  if controls is not None:
    values = serving_lib.resolve_controls(served.controls, controls)
  static, _ = serving_lib.split_controls(served.controls, values)
  return int(served.context_frames(**static))


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
  """One chunk: frames [start, end) of the utterance, vocoded from [window_start, window_end)."""
  start: int
  end: int
  window_start: int
  window_end: int

  @property
  def before(self) -> int:
    """Context frames before the chunk (dropped from the window's audio)."""
    return self.start - self.window_start

  @property
  def after(self) -> int:
    """Context frames after the chunk (dropped from the window's audio)."""
    return self.window_end - self.end


def plan_chunks(frames: int, chunk_frames: int, context: int,
                first_chunk_frames: Optional[int] = None,
                growth: float = DEFAULT_CHUNK_GROWTH) -> List[ChunkPlan]:
  """The chunks of `frames` frames: `first_chunk_frames` (default `chunk_frames`), then
  each `growth` times the one before (rounded up), capped at `chunk_frames` (e.g. 16, 24,
  32, 32, ...),
  the last one shorter; each with up to `context` frames each side.

  Why growing: every chunk must be vocoded while the one before plays. A small first chunk
  starts the audio soon but plays only briefly, and a chunk pays its 2 x `context` frames of
  context whatever its size, so a full-size second chunk is not ready in time (a gap in
  playback); growing keeps each chunk's work within the audio already queued. `growth=1`:
  `chunk_frames` after the first.

  Raises:
    ValueError: a chunk size or growth < 1, or a negative context.
  """
  first = chunk_frames if first_chunk_frames is None else first_chunk_frames
  if chunk_frames < 1 or first < 1:
    raise ValueError(f"streaming: chunk_frames ({chunk_frames}) and first_chunk_frames "
                     f"({first}) must be >= 1")
  if growth < 1:
    raise ValueError(f"streaming: growth ({growth}) must be >= 1")
  if context < 0:
    raise ValueError(f"streaming: context ({context}) must be >= 0")
  plans, start, size = [], 0, first
  while start < frames:
    end = min(start + size, frames)
    plans.append(ChunkPlan(start, end, max(start - context, 0), min(end + context, frames)))
    # A first chunk larger than chunk_frames stays the only large one.
    start, size = end, (chunk_frames if growth == 1 else
                        min(math.ceil(size * growth), chunk_frames))
  return plans


# serving vocoder → {static control values: ChunkVocoder}, so repeated streams reuse traces.
_CHUNK_FNS = weakref.WeakKeyDictionary()


class ChunkVocoder:
  """The traced graphs of streaming one vocoder with fixed controls.

  `chunk(mel, mel_lengths, noise, before, after, *dynamic)`: a window `[batch, frames,
  n_mels]` with its `[batch]` lengths (frames inside each item, counted from the window's
  start), its noise `[batch, noise_length(frames), channels]` (vocoders that draw noise),
  and the context frames to drop before and after → (audio `[batch, (frames - before -
  after) * hop]`, zero past each item's length; lengths `[batch]` int32). `noise(mel_lengths,
  item_seeds, frames)`: the whole utterance's noise, sliceable per window.
  """

  def __init__(self, vocoder: serving_lib.Vocoder, values: Mapping[str, object]):
    self.vocoder = vocoder
    self.values = dict(values)
    static, dynamic = serving_lib.split_controls(vocoder.controls, self.values)
    self.static = static
    self.context = context_frames(vocoder, self.values)
    specs = [tf.TensorSpec([], c.tf_dtype, name=c.name) for c in vocoder.controls
             if not c.static]
    self.feeds = [tf.constant(dynamic[spec.name], spec.dtype) for spec in specs]
    hop = int(vocoder.hop_length)
    channels = vocoder.noise_channels
    noisy = channels is not None
    with tf.init_scope():
      self.noise_per_frame = int(vocoder.noise_length(1)) if noisy else 0
    noise_spec = [tf.TensorSpec([None, None, None], tf.float32, name="noise")] if noisy else []

    # autograph=False: vocoders are plain TF (loop-free, or explicit tf.while_loop), and
    # converting a Keras generator's call stack costs a third of the trace (HiFi-GAN V2
    # layout: 20 s → 13 s to the first chunk under load).
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, vocoder.n_mels], tf.float32, name="mel"),
        tf.TensorSpec([None], tf.int32, name="mel_lengths")] + noise_spec + [
            tf.TensorSpec([], tf.int32, name="before"),
            tf.TensorSpec([], tf.int32, name="after")] + specs)
    def chunk(mel, mel_lengths, *rest):
      noise = rest[0] if noisy else None
      before, after = rest[len(noise_spec)], rest[len(noise_spec) + 1]
      named = dict(static, **{s.name: v for s, v in zip(specs, rest[len(noise_spec) + 2:])})
      return chunk_audio(vocoder, mel, mel_lengths, noise, before, after, **named)

    self.chunk = chunk

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.int32, name="mel_lengths"),
                                  tf.TensorSpec([None, 2], tf.int32, name="item_seeds"),
                                  tf.TensorSpec([], tf.int32, name="frames")])
    def draw_noise(mel_lengths, item_seeds, frames):
      return whole_noise(vocoder, vocode_lib.vocoder_noise(vocoder, item_seeds, frames),
                         mel_lengths, frames, **static)

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.int32, name="mel_lengths"),
                                  tf.TensorSpec([None, None, None], tf.float32, name="noise"),
                                  tf.TensorSpec([], tf.int32, name="frames")])
    def given_noise(mel_lengths, noise, frames):
      return whole_noise(vocoder, noise, mel_lengths, frames, **static)

    self.draw_noise = draw_noise if noisy else None
    self.given_noise = given_noise if noisy else None
    del hop

  @classmethod
  def get(cls, vocoder, controls: Optional[Mapping[str, object]] = None) -> "ChunkVocoder":
    """The cached `ChunkVocoder` of a serving or `vocode_lib` vocoder (controls: overrides)."""
    served, values = _serving(vocoder)
    if controls is not None:
      values = serving_lib.resolve_controls(served.controls, controls)
    key = tuple(sorted(values.items()))
    per_vocoder = _CHUNK_FNS.setdefault(served, {})
    if key not in per_vocoder:
      per_vocoder[key] = cls(served, values)
    return per_vocoder[key]


# Plain TF (as the chunk functions above): not converted by autograph, which also once
# resolved this call to another converted function ("tf__get() takes from 2 to 3 positional
# arguments but 6 were given") while exporting mel_chunk_to_audio.
@tf.autograph.experimental.do_not_convert
def chunk_audio(vocoder: serving_lib.Vocoder, mel, mel_lengths, noise, before, after,
                **controls):
  """One window's audio cut to its chunk (graph ops; what `mel_chunk_to_audio` exports).

  Args:
    vocoder: a serving vocoder.
    mel: `[batch, frames, n_mels]` the chunk with `before` frames of context before it and
      `after` after it.
    mel_lengths: `[batch]` int32 frames of each item inside the window (may be 0).
    noise: the window's noise `[batch, noise_length(frames), C]`, or None.
    before, after: int32 scalars, context frames to drop.
    **controls: the vocoder's control values.

  Returns:
    (audio `[batch, (frames - before - after) * hop]` float32, zero past each item's
    length; audio_lengths `[batch]` int32).
  """
  hop = int(vocoder.hop_length)
  frames = tf.shape(mel)[1]
  out = serving_lib.call_vocoder(vocoder, mel, tf.cast(mel_lengths, tf.int32), noise,
                                 **controls)
  keep = (frames - before - after) * hop
  audio = out["audio"][:, before * hop:before * hop + keep]
  lengths = tf.clip_by_value(out["audio_lengths"] - before * hop, 0, keep)
  return audio, lengths


def whole_noise(vocoder: serving_lib.Vocoder, noise, mel_lengths, frames, **static):
  """The utterance's noise `[batch, noise_length(frames), C']` whose time slices are the
  windows' noise: repeated to full length as `vocode` repeats it (`cyclic_frames`), then the
  vocoder's `stream_noise` (e.g. DiffWave's rotated draws)."""
  noise = serving_lib.cyclic_frames(tf.cast(noise, tf.float32), vocoder.noise_length(frames))
  return vocoder.stream_noise(noise, mel_lengths, **static)


@dataclasses.dataclass
class AudioChunk:
  """Audio of frames [start, end) of a batch.

  Attributes:
    audio: `[batch, (end - start) * hop]` float32, zero past each item's length.
    lengths: `[batch]` int32 samples of each item in this chunk (0 once an item ended).
    start, end: the chunk's frames in the utterance.
    seconds: wall time from the call (or the first `next`) to this chunk's audio.
  """
  audio: np.ndarray
  lengths: np.ndarray
  start: int
  end: int
  seconds: float


def stream_vocode(vocoder, mels, mel_lengths=None, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                  first_chunk_frames: Optional[int] = None, item_seeds=None, noise=None,
                  controls: Optional[Mapping[str, object]] = None,
                  context: Optional[int] = None,
                  growth: float = DEFAULT_CHUNK_GROWTH) -> Iterator[AudioChunk]:
  """Vocodes `mels` chunk by chunk, yielding each chunk's audio as soon as it is made.

  The chunks concatenated are `vocode_lib.make_vocode_fn(vocoder)(mels, mel_lengths,
  item_seeds)` (a vocoder that draws noise draws it from `item_seeds` the same way), or
  `vocoder.vocode(mels, mel_lengths, noise)` when `noise` is given.

  Args:
    vocoder: a serving `Vocoder` (its controls at their defaults) or a
      `vocode_lib.Vocoder` (its controls).
    mels: `[batch, frames, n_mels]`; mel_lengths: `[batch]` (default: all frames).
    chunk_frames: frames per chunk (the cap of growing chunks); first_chunk_frames: frames
      of the first (smaller starts the audio sooner); growth: each later chunk is this many
      times the one before, up to `chunk_frames` (`plan_chunks`).
    item_seeds: `[batch, 2]` int32 (default `(0, b)`), for vocoders that draw noise.
    noise: the whole utterance's noise instead of seeds (`[batch, steps, channels]`).
    controls: control values (override those of a `vocode_lib.Vocoder`).
    context: context frames each side (default `context_frames(vocoder)`; smaller is
      faster but no longer exact: for experiments).

  Yields:
    `AudioChunk`s in order.

  Raises:
    ValueError: bad chunk sizes or mel shapes.
  """
  started = time.perf_counter()
  fns = ChunkVocoder.get(vocoder, controls)
  served = fns.vocoder
  mels = tf.convert_to_tensor(mels, tf.float32)
  if mels.shape.rank != 3 or mels.shape[-1] != served.n_mels:
    raise ValueError(f"streaming: mels must be [batch, frames, {served.n_mels}], got "
                     f"{mels.shape}")
  batch, frames = int(mels.shape[0]), int(mels.shape[1])
  if mel_lengths is None:
    mel_lengths = tf.fill([batch], frames)
  mel_lengths = tf.convert_to_tensor(mel_lengths, tf.int32)
  whole = None
  if served.noise_channels is not None:
    if noise is not None:
      whole = fns.given_noise(mel_lengths, tf.convert_to_tensor(noise, tf.float32),
                              tf.constant(frames))
    else:
      seeds = vocode_lib.default_item_seeds(batch) if item_seeds is None else item_seeds
      whole = fns.draw_noise(mel_lengths, tf.convert_to_tensor(seeds, tf.int32),
                             tf.constant(frames))
  steps = fns.noise_per_frame
  for plan in plan_chunks(frames, chunk_frames, fns.context if context is None else context,
                          first_chunk_frames, growth):
    window = mels[:, plan.window_start:plan.window_end]
    lengths = tf.clip_by_value(mel_lengths - plan.window_start, 0,
                               plan.window_end - plan.window_start)
    extra = []
    if whole is not None:
      extra = [whole[:, plan.window_start * steps:plan.window_end * steps]]
    audio, audio_lengths = fns.chunk(window, lengths, *extra, tf.constant(plan.before),
                                     tf.constant(plan.after), *fns.feeds)
    yield AudioChunk(audio.numpy(), audio_lengths.numpy(),  # graph-ok: host playback
                     plan.start, plan.end, time.perf_counter() - started)


# --------------------------------------------------------------------------- #
# WAV files written as the audio arrives.


class StreamingWavWriter:
  """A mono 16-bit PCM WAV file whose header is valid after every `write`.

  Samples are converted as `tf.audio.encode_wav` converts them (x 32768, clipped), so the
  file equals `audio_lib.write_wav` of the concatenated audio.
  """

  def __init__(self, path: str, sample_rate: int):
    self.path = path
    self.sample_rate = int(sample_rate)
    self.samples = 0
    self._file = open(path, "wb")  # pylint: disable=consider-using-with
    self._file.write(self._header())
    self._file.flush()

  def _header(self) -> bytes:
    data = self.samples * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, self.sample_rate, self.sample_rate * 2, 2, 16) +
            b"data" + struct.pack("<I", data))

  def write(self, audio: np.ndarray) -> None:
    """Appends `[samples]` float audio in [-1, 1] and rewrites the header's sizes."""
    # encode_wav's roundf rounds halves away from zero (np.round: to even); float64 keeps
    # |x| + 0.5 exact.
    scaled = np.asarray(audio, np.float32).astype(np.float64) * 32768.0
    pcm = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -32768, 32767)
    self._file.seek(0, 2)
    self._file.write(pcm.astype("<i2").tobytes())
    self.samples += int(pcm.shape[0])
    self._file.seek(0)
    self._file.write(self._header())
    self._file.flush()

  def close(self) -> None:
    self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def concatenate(chunks: Sequence[AudioChunk]) -> Tuple[np.ndarray, np.ndarray]:
  """(audio `[batch, frames * hop]`, lengths `[batch]`) of a whole stream's chunks."""
  audio = np.concatenate([c.audio for c in chunks], axis=1)
  lengths = np.sum([c.lengths for c in chunks], axis=0).astype(np.int32)
  return audio, lengths


# --------------------------------------------------------------------------- #
# Text → audio chunks.


@dataclasses.dataclass
class StreamedAudio:
  """A piece of one text's audio, in order.

  Attributes:
    index: the text's index in `texts`; name: its name.
    audio: `[samples]` float32.
    seconds: wall time from the start of this text (after the warm-up) to this piece.

  A text's pieces end where the next text's begin (or the stream ends): a piece is yielded
  as soon as it is made, never held back to learn whether it is the last.
  """
  index: int
  name: str
  audio: np.ndarray
  seconds: float


def stream_texts(loaded_run, texts: Sequence[str], vocoder=None, *, seed: int = 0,
                 names: Optional[Sequence[str]] = None, speaker: int = 0,
                 max_tokens: Optional[int] = None, chunk_pause: Optional[float] = None,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 first_chunk_frames: Optional[int] = 8, griffin_lim_iters: int = 32,
                 control_sources: Optional[dict] = None,
                 vocoder_controls: Optional[dict] = None,
                 vocoder_control_sources: Optional[dict] = None,
                 vocoder_precision: str = "float32",
                 warm_up: bool = True, **controls) -> Iterator[StreamedAudio]:
  """`synthesize_texts`' audio, text by text, yielded in pieces as the vocoder makes them.

  Each text (split at `max_tokens` as `synthesize_texts` splits it, chunk j of text k
  seeded `(seed + j, k)`) is synthesized one text chunk at a time and its mel streamed
  through the vocoder (`stream_vocode`), so a text's pieces concatenated are the WAV
  `synthesize_texts` writes for it (to float rounding); the pause between text chunks is
  its own piece. Griffin-Lim (`vocoder=None`) is not local in time: it yields each text
  chunk whole.

  Args:
    loaded_run: an acoustic-model run (`tfspeech.training.load_run`).
    texts: raw texts.
    vocoder: a vocoder run's workdir, a `vocode_lib.Vocoder`, or None (Griffin-Lim).
    chunk_frames, first_chunk_frames: see `stream_vocode` (a small first chunk starts the
      audio sooner).
    vocoder_precision: a vocoder run's compute precision ("float32" or "bfloat16").
    warm_up: trace both graphs on the first text chunk before timing (`seconds`).
    Others: as `synthesize_texts`.

  Yields:
    `StreamedAudio` pieces, text after text.

  Raises:
    ValueError: bad arguments, a text with nothing to say, a bad control, or a vocoder
      whose mel convention differs from the acoustic model's.
  """
  from tfspeech.inference import synthesize_lib as lib  # pylint: disable=import-outside-toplevel
  texts = list(texts)
  names = [f"{i:04d}" for i in range(len(texts))] if names is None else list(names)
  if not texts or len(names) != len(texts):
    raise ValueError("stream_texts: give at least one text, and one name per text")
  max_tokens = lib.DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
  chunk_pause = lib.DEFAULT_CHUNK_PAUSE if chunk_pause is None else chunk_pause
  acoustic = lib.acoustic_serving(loaded_run).in_process()
  values = lib.resolve_controls(acoustic, controls, control_sources)
  info = lib.run_facts(loaded_run)
  front_end = lib.text_front_end(loaded_run)
  hop = info.mel_config.hop_length
  if isinstance(vocoder, str):
    vocoder = vocode_lib.load_vocoder(vocoder, controls=vocoder_controls,
                                      control_sources=vocoder_control_sources,
                                      precision=vocoder_precision)
    vocoder.check_mel_config(info, source="the acoustic model's mels")
  elif vocoder is None and vocoder_controls:
    raise ValueError(f"vocoder controls {sorted(vocoder_controls)} need a vocoder")
  griffin_lim = lib.griffin_lim_vocoder(info.mel_config, griffin_lim_iters)
  synthesize = lib.make_synthesis_fn(acoustic, serving_lib.split_controls(acoustic.controls,
                                                                        values)[0])
  dynamic = lib._dynamic_args(acoustic, values)  # pylint: disable=protected-access
  pad_id = front_end.symbols.pad_id
  pause = np.zeros([int(round(chunk_pause * info.sample_rate / hop)) * hop], np.float32)

  def mel_of(chunk):
    ids, lengths = lib.pad_batch([chunk.ids], pad_id)
    seeds = tf.constant([lib._seed_pair(seed, chunk)], tf.int32)  # pylint: disable=protected-access
    out = synthesize(tf.constant(ids), tf.constant(lengths), seeds,
                     tf.constant([speaker], tf.int32), *dynamic)
    return out["mel"][:, :int(out["mel_lengths"][0])], seeds

  def pieces(chunk):
    mel, seeds = mel_of(chunk)
    if vocoder is None:
      yield griffin_lim(mel)[0, :mel.shape[1] * hop].numpy()  # graph-ok: host playback
      return
    for piece in stream_vocode(vocoder, mel, chunk_frames=chunk_frames,
                               first_chunk_frames=first_chunk_frames, item_seeds=seeds):
      yield piece.audio[0]

  encoded = []
  for index, text in enumerate(texts):
    id_lists, _, _ = lib._split_and_encode(front_end, text, max_tokens)  # pylint: disable=protected-access
    encoded.append([lib._Chunk(index, part, ids)  # pylint: disable=protected-access
                    for part, ids in enumerate(id_lists)])
  if warm_up:
    next(pieces(encoded[0][0]))
  for index, chunks in enumerate(encoded):
    started = time.perf_counter()
    for chunk in chunks:
      if chunk.part and pause.size:
        yield StreamedAudio(index, names[index], pause, time.perf_counter() - started)
      for audio in pieces(chunk):
        yield StreamedAudio(index, names[index], audio, time.perf_counter() - started)

"""Reading audio: a graph-mode RIFF/WAVE parser and eager file loaders.

`decode_wav` is pure TensorFlow (usable inside `tf.data` and `tf.function`);
it handles what `tf.audio.decode_wav` does not: 8/24/32-bit PCM, IEEE float
32/64, WAVE_FORMAT_EXTENSIBLE, chunks in any order and odd-sized chunk padding.
`load_wav` / `load_audio` are offline conveniences that turn every problem into
an `AudioError` naming the file.
"""

import logging
import os
import re

import tensorflow as tf

__all__ = ["AudioError", "decode_wav", "load_wav", "load_audio", "SUPPORTED_EXTENSIONS"]

_LOG = logging.getLogger(__name__)

# Little-endian int32 values of the four-character chunk ids.
_RIFF = 0x46464952  # "RIFF"
_WAVE = 0x45564157  # "WAVE"
_FMT = 0x20746D66   # "fmt "
_DATA = 0x61746164  # "data"
_RIFX = 0x58464952  # "RIFX" (big-endian RIFF; rare, unsupported)

_FORMAT_PCM = 1
_FORMAT_FLOAT = 3
_FORMAT_EXTENSIBLE = 0xFFFE

# Prefix of every decode_wav assertion message; load_wav extracts the text after it.
_MSG = "decode_wav: "

# Branch indices of the sample decoders in tf.switch_case.
_UNSUPPORTED, _U8, _S16, _S24, _S32, _F32, _F64 = range(7)

COMPRESSED_EXTENSIONS = (".flac", ".mp3", ".ogg")
SUPPORTED_EXTENSIONS = (".wav", ".wave") + COMPRESSED_EXTENSIONS


class AudioError(ValueError):
  """An audio file could not be read; the message names the file and the problem."""


def _uint(contents, size, offset, num_bytes):
  """Little-endian unsigned integer of `num_bytes` bytes at `offset`, as int64.

  Bytes past the end of `contents` read as zero, so header fields can be read
  before the asserts have run; only those few bytes are copied.
  """
  offset = tf.minimum(tf.cast(offset, tf.int64), size)
  raw = tf.io.decode_raw(
      tf.strings.substr(contents, offset, tf.constant(num_bytes, tf.int64)), tf.uint8)
  raw = tf.pad(tf.cast(raw, tf.int64), [[0, num_bytes - tf.shape(raw)[0]]])
  weights = tf.constant([256**i for i in range(num_bytes)], tf.int64)
  return tf.reduce_sum(raw * weights)


def _decode_samples(payload, sample_format):
  """Decodes a raw sample payload to float32 `[num_values]` in [-1, 1]."""

  def u8():
    # 8-bit WAV is unsigned with 128 as zero, scaled like libsndfile.
    return (tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.float32) - 128.0) / 128.0

  def s16():
    return tf.cast(tf.io.decode_raw(payload, tf.int16, little_endian=True), tf.float32) / 32768.0

  def s24():
    raw = tf.reshape(tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32), [-1, 3])
    unsigned = raw[:, 0] + raw[:, 1] * 256 + raw[:, 2] * 65536
    signed = tf.where(unsigned >= 2**23, unsigned - 2**24, unsigned)
    # |signed| < 2**24, so the float32 conversion and the division are exact.
    return tf.cast(signed, tf.float32) / float(2**23)

  def s32():
    values = tf.io.decode_raw(payload, tf.int32, little_endian=True)
    return tf.cast(values, tf.float32) / float(2**31)

  def f32():
    return tf.io.decode_raw(payload, tf.float32, little_endian=True)

  def f64():
    return tf.cast(tf.io.decode_raw(payload, tf.float64, little_endian=True), tf.float32)

  def unsupported():
    return tf.zeros([0], tf.float32)

  return tf.switch_case(sample_format, [unsupported, u8, s16, s24, s32, f32, f64])


def decode_wav(contents, name=None):
  """Decodes the bytes of a RIFF/WAVE file, in graph mode.

  Supports PCM integer samples of 8 (unsigned), 16, 24 and 32 bits, IEEE float
  32 and 64 bits, WAVE_FORMAT_EXTENSIBLE (its sub-format decides; samples in a
  wider container, e.g. 24 valid bits in 32, are left-justified and scaled by
  the container), chunks in any order (LIST, fact, cue ... are skipped), and
  the pad byte after odd-sized chunks. A data-chunk size of 0xFFFFFFFF (written
  by streaming encoders) means "to the end of the file". A trailing partial
  sample frame is dropped, as libsndfile does.

  Integer samples are scaled by 1 / 2**(bits - 1) (8-bit: (x - 128) / 128), so
  values equal `soundfile.read(..., dtype='float32')`.

  Args:
    contents: scalar `tf.string`, the whole file.
    name: optional name scope.

  Returns:
    audio: `[samples, channels]` float32.
    sample_rate: scalar int32.

  Raises:
    tf.errors.InvalidArgumentError: when the bytes are not a RIFF/WAVE file, lack
      a 'fmt ' or 'data' chunk, use an unsupported format or sample width, or are
      truncated. The message starts with "decode_wav: " and names the problem.
  """
  with tf.name_scope(name or "decode_wav"):
    contents = tf.convert_to_tensor(contents, tf.string)
    size = tf.cast(tf.strings.length(contents), tf.int64)
    field = lambda offset, num_bytes: _uint(contents, size, offset, num_bytes)

    header_checks = [
        tf.debugging.Assert(size > 0, [_MSG + "empty input (0 bytes)"]),
        tf.debugging.Assert(
            tf.logical_or(size >= 12, tf.equal(size, 0)),
            [_MSG + "not a WAV file (only", size, "bytes, shorter than a RIFF header)"]),
        tf.debugging.Assert(
            tf.not_equal(field(0, 4), _RIFX),
            [_MSG + "big-endian RIFX WAV files are not supported; convert with "
             "`sox in.wav -e signed -L out.wav`"]),
        tf.debugging.Assert(
            tf.logical_or(tf.equal(field(0, 4), _RIFF), tf.equal(field(0, 4), _RIFX)),
            [_MSG + "not a WAV file (no RIFF header)"]),
        tf.debugging.Assert(
            tf.equal(field(8, 4), _WAVE),
            [_MSG + "not a WAV file (RIFF form type is not WAVE)"]),
    ]

    # Walks the chunk list once, remembering where 'fmt ' and 'data' start.
    def keep_walking(offset, fmt_at, unused_fmt_size, data_at, unused_data_size):
      both_found = tf.logical_and(fmt_at >= 0, data_at >= 0)
      return tf.logical_and(offset + 8 <= size, tf.logical_not(both_found))

    def next_chunk(offset, fmt_at, fmt_size, data_at, data_size):
      chunk_id = field(offset, 4)
      chunk_size = field(offset + 4, 4)
      is_fmt = tf.logical_and(tf.equal(chunk_id, _FMT), fmt_at < 0)
      is_data = tf.logical_and(tf.equal(chunk_id, _DATA), data_at < 0)
      fmt_at = tf.where(is_fmt, offset + 8, fmt_at)
      fmt_size = tf.where(is_fmt, chunk_size, fmt_size)
      data_at = tf.where(is_data, offset + 8, data_at)
      data_size = tf.where(is_data, chunk_size, data_size)
      # Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
      offset = offset + 8 + chunk_size + chunk_size % 2
      return offset, fmt_at, fmt_size, data_at, data_size

    minus_one = tf.constant(-1, tf.int64)
    with tf.control_dependencies(header_checks):
      start = tf.constant(12, tf.int64)
    _, fmt_at, fmt_size, data_at, data_size = tf.while_loop(
        keep_walking, next_chunk, [start, minus_one, minus_one, minus_one, minus_one])

    chunk_checks = [
        tf.debugging.Assert(fmt_at >= 0, [_MSG + "no fmt chunk (not a valid WAV file)"]),
        tf.debugging.Assert(data_at >= 0, [_MSG + "no data chunk (no audio samples)"]),
        tf.debugging.Assert(
            tf.logical_or(fmt_at < 0, tf.logical_and(fmt_size >= 16, fmt_at + 16 <= size)),
            [_MSG + "fmt chunk is truncated:", fmt_size, "bytes, need at least 16"]),
    ]
    with tf.control_dependencies(chunk_checks):
      fmt_at = tf.maximum(fmt_at, 0)
      data_at = tf.maximum(data_at, 0)
    format_code = field(fmt_at, 2)
    channels = field(fmt_at + 2, 2)
    sample_rate = field(fmt_at + 4, 4)
    block_align = field(fmt_at + 12, 2)
    bits = field(fmt_at + 14, 2)
    is_extensible = tf.logical_and(tf.equal(format_code, _FORMAT_EXTENSIBLE), fmt_size >= 26)
    # The sub-format GUID starts 24 bytes into an extensible 'fmt ' chunk; its
    # first two bytes are the ordinary format code.
    format_code = tf.where(is_extensible, field(fmt_at + 24, 2), format_code)

    bytes_per_sample = tf.where(channels > 0, block_align // tf.maximum(channels, 1), 0)
    is_pcm = tf.equal(format_code, _FORMAT_PCM)
    is_float = tf.equal(format_code, _FORMAT_FLOAT)
    sample_format = tf.cast(
        tf.case(
            [(tf.logical_and(is_pcm, tf.equal(bytes_per_sample, 1)), lambda: _U8),
             (tf.logical_and(is_pcm, tf.equal(bytes_per_sample, 2)), lambda: _S16),
             (tf.logical_and(is_pcm, tf.equal(bytes_per_sample, 3)), lambda: _S24),
             (tf.logical_and(is_pcm, tf.equal(bytes_per_sample, 4)), lambda: _S32),
             (tf.logical_and(is_float, tf.equal(bytes_per_sample, 4)), lambda: _F32),
             (tf.logical_and(is_float, tf.equal(bytes_per_sample, 8)), lambda: _F64)],
            default=lambda: _UNSUPPORTED, exclusive=True), tf.int32)

    available = size - data_at
    data_size = tf.where(tf.equal(data_size, 0xFFFFFFFF), available, data_size)
    format_checks = [
        tf.debugging.Assert(
            tf.logical_or(is_pcm, is_float),
            [_MSG + "unsupported format code", format_code,
             "(supported: 1 = PCM, 3 = IEEE float, 0xFFFE = extensible with one of "
             "these); decode compressed WAVs with sox or ffmpeg first"]),
        tf.debugging.Assert(channels > 0, [_MSG + "fmt chunk says 0 channels"]),
        tf.debugging.Assert(sample_rate > 0, [_MSG + "fmt chunk says sample rate 0"]),
        tf.debugging.Assert(
            tf.logical_or(tf.logical_not(tf.logical_or(is_pcm, is_float)),
                          tf.not_equal(sample_format, _UNSUPPORTED)),
            [_MSG + "unsupported sample width:", bits, "bits per sample in", block_align,
             "byte frames of", channels, "channels (supported: PCM 8/16/24/32-bit, "
             "float 32/64-bit)"]),
        tf.debugging.Assert(
            data_size <= available,
            [_MSG + "truncated data: the data chunk declares", data_size, "bytes but only",
             available, "follow"]),
    ]
    with tf.control_dependencies(format_checks):
      num_frames = data_size // tf.maximum(block_align, 1)
    payload = tf.strings.substr(contents, data_at, num_frames * block_align)
    samples = _decode_samples(payload, sample_format)
    audio = tf.reshape(samples, tf.stack([num_frames, channels]))
    return audio, tf.cast(sample_rate, tf.int32)


def _problem(error):
  """The readable text of a decode_wav assertion, without TF's decoration.

  Eager asserts print their data one item per line (strings as b'..'), graph
  asserts as "[item] [item]" followed by the node name; both become one line.
  """
  text = getattr(error, "message", None) or str(error)
  if _MSG not in text:
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
  rest = text[text.index(_MSG) + len(_MSG):]
  parts = []
  for line in rest.split("\n"):
    line = line.strip()
    if not line or line.startswith("[["):
      continue
    quoted = re.fullmatch(r"b(['\"])(.*)\1", line)
    if quoted:
      line = quoted.group(2)
    elif not parts:  # The first item's opening b' came before _MSG.
      line = line.rstrip("'\"")
    parts.append(line)
  joined = " ".join(parts).replace("] [", " ")
  return re.sub(r"\s+", " ", joined).strip("]'\" ")


def _read_bytes(path):
  """File contents as bytes; AudioError for a missing or empty file."""
  path = os.fspath(path)
  if not tf.io.gfile.exists(path):
    raise AudioError(f"{path}: missing file (no such file)")
  if tf.io.gfile.isdir(path):
    raise AudioError(f"{path}: is a directory, expected an audio file")
  with tf.io.gfile.GFile(path, "rb") as f:
    contents = f.read()
  if not contents:
    raise AudioError(f"{path}: empty file (0 bytes)")
  return contents


def _finish(path, audio, file_rate, sample_rate, mono, resample):
  """Shared tail of the loaders: channel mixing and sample-rate conversion."""
  if mono:
    audio = tf.reduce_mean(audio, axis=-1)
  if sample_rate is not None and int(sample_rate) != file_rate:
    if not resample:
      raise AudioError(
          f"{path}: sample rate {file_rate} Hz, expected {int(sample_rate)}; pass "
          f"resample=True to resample on load or convert the file first "
          f"(e.g. `sox in.wav -r {int(sample_rate)} out.wav`)")
    from tfspeech.ops.resample import resample as resample_fn  # Lazy: optional heavy op.
    if mono:
      audio = resample_fn(audio, file_rate, int(sample_rate))
    else:
      audio = tf.transpose(resample_fn(tf.transpose(audio), file_rate, int(sample_rate)))
    file_rate = int(sample_rate)
  return audio, file_rate


def load_wav(path, sample_rate=None, mono=True, resample=True):
  """Loads a WAV file eagerly (offline / data-preparation convenience).

  Args:
    path: file path (anything `tf.io.gfile` opens).
    sample_rate: wanted rate in Hz, or None to keep the file's rate.
    mono: average the channels to one.
    resample: when `sample_rate` differs from the file's, resample (True) or
      raise `AudioError` (False).

  Returns:
    audio: `[samples]` float32 if `mono` else `[samples, channels]`.
    sample_rate: Python int, the rate of the returned audio.

  Raises:
    AudioError: the message names the file and the problem.
  """
  contents = _read_bytes(path)
  try:
    audio, file_rate = _decode_wav_traced(tf.constant(contents))
  except tf.errors.InvalidArgumentError as e:
    raise AudioError(f"{os.fspath(path)}: {_problem(e)}") from None
  return _finish(os.fspath(path), audio, int(file_rate), sample_rate, mono, resample)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode_wav_traced(contents):
  # Eagerly, decode_wav runs ~300 small ops one by one per file; traced once it is
  # several times faster, which is most of a corpus preparation's time.
  return decode_wav(contents)


def _no_tensorflow_io(path, reason):
  """The one AudioError for a compressed file that tensorflow-io cannot read here."""
  extension = os.path.splitext(path)[1]
  return AudioError(
      f"{path}: reading {extension} files needs tensorflow-io, which {reason}; "
      f"install tfspeech[io] (tensorflow-io 0.37.1, whose ops load only with TensorFlow 2.17: "
      f"`pip install \"tfspeech[io]\"` in a TF 2.17 environment) or convert the file to WAV "
      f"(e.g. `sox in{extension} out.wav`)")


def _import_tfio(path):
  """tensorflow_io with its native ops loaded, or `_no_tensorflow_io`'s AudioError.

  tensorflow-io 0.37.1 (its last release) imports with any TensorFlow, but its op library
  loads only with TF 2.17; with TF >= 2.18 the first op call raises NotImplementedError,
  which would read like an undecodable file. So the library is loaded here, up front.
  """
  try:
    import tensorflow_io as tfio  # Optional dependency; only for compressed formats.
  except ImportError:
    raise _no_tensorflow_io(path, "is not installed") from None
  except Exception as e:  # pylint: disable=broad-except  A broken install, any error.
    raise _no_tensorflow_io(path, f"failed to import ({type(e).__name__})") from None
  try:
    # Touching one op loads libtensorflow_io.so (tfio's LazyLoader); a failure is
    # NotImplementedError (tf.load_op_library's NotFoundError/OSError, rewrapped).
    from tensorflow_io.python.ops import core_ops  # pylint: disable=import-outside-toplevel
    core_ops.io_audio_readable_init  # pylint: disable=pointless-statement
  except Exception as e:  # pylint: disable=broad-except
    raise _no_tensorflow_io(
        path, f"is installed but its ops do not load with TensorFlow {tf.__version__} "
        f"({type(e).__name__})") from None
  return tfio


def check_decodable_here(path):
  """Raises the `AudioError` every file of `path`'s format would raise on this machine.

  A compressed format without a loadable tensorflow-io fails for every such file alike,
  so a corpus tool checks one path up front and stops once, rather than skipping each
  entry with the same message. A no-op for WAV and for formats tensorflow-io reads here.
  """
  path = os.fspath(path)
  if os.path.splitext(path)[1].lower() in COMPRESSED_EXTENSIONS:
    _import_tfio(path)


def _load_compressed(path):
  tfio = _import_tfio(path)
  try:
    source = tfio.audio.AudioIOTensor(path)
    audio = source.to_tensor()
    file_rate = int(source.rate)
  except Exception as e:  # tfio raises assorted errors for undecodable files.
    raise AudioError(f"{path}: could not decode with tensorflow-io ({type(e).__name__}: "
                     f"{str(e).strip().splitlines()[0] if str(e).strip() else 'no details'})") from None
  scale = {tf.int16: 2.0**15, tf.int32: 2.0**31, tf.float32: 1.0}
  if audio.dtype == tf.uint8:
    audio = (tf.cast(audio, tf.float32) - 128.0) / 128.0
  elif audio.dtype in scale:
    audio = tf.cast(audio, tf.float32) / scale[audio.dtype]
  else:
    raise AudioError(f"{path}: tensorflow-io returned unsupported sample type {audio.dtype.name}")
  if audio.shape.rank == 1:
    audio = audio[:, tf.newaxis]
  return audio, file_rate


def load_audio(path, sample_rate=None, mono=True, resample=True):
  """Loads .wav (built-in parser) or .flac/.mp3/.ogg (via tensorflow-io).

  Same arguments, returns and errors as `load_wav`. Compressed formats need the
  optional tensorflow-io package, whose ops load only with TensorFlow 2.17; without a
  loadable one, an `AudioError` names the file and says what to do (install
  tfspeech[io] with TF 2.17, or convert to WAV).
  """
  path = os.fspath(path)
  extension = os.path.splitext(path)[1].lower()
  if extension in (".wav", ".wave"):
    return load_wav(path, sample_rate=sample_rate, mono=mono, resample=resample)
  if extension not in COMPRESSED_EXTENSIONS:
    raise AudioError(f"{path}: unsupported audio extension {extension or '(none)'!r}; "
                     f"supported: {', '.join(SUPPORTED_EXTENSIONS)}")
  _read_bytes(path)  # Missing/empty file errors before tfio's less readable ones.
  audio, file_rate = _load_compressed(path)
  return _finish(path, audio, file_rate, sample_rate, mono, resample)


def write_wav(path, audio, sample_rate: int):
  """Writes `[samples]` float audio in [-1, 1] as a mono 16-bit PCM WAV file.

  Samples outside [-1, 1] are clipped, with a logged warning naming the file and the
  fraction clipped: clipping is audible distortion, so the caller should lower the gain
  (Griffin-Lim previews are peak-normalised for this reason).
  """
  audio = tf.reshape(tf.cast(audio, tf.float32), [-1, 1])
  clipped = int(tf.math.count_nonzero(tf.abs(audio) > 1.0))
  if clipped:
    total = int(tf.size(audio))
    _LOG.warning("%s: clipped %d of %d samples (%.2f%%) outside [-1, 1]; lower the gain "
                 "before writing", os.fspath(path), clipped, total, 100.0 * clipped / total)
  audio = tf.clip_by_value(audio, -1.0, 1.0)
  tf.io.write_file(os.fspath(path), tf.audio.encode_wav(audio, sample_rate))

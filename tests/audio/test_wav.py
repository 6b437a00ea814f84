"""decode_wav / load_wav / load_audio against soundfile (libsndfile) and hand-built files."""
import shutil
import struct
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfspeech.audio import wav
from tfspeech.audio.wav import AudioError, decode_wav, load_audio, load_wav
from tfspeech.testing import assert_no_python_ops

SUBTYPES = ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"]


def _noise(frames, channels, seed=0):
  rng = np.random.default_rng(seed)
  return np.clip(rng.normal(0, 0.4, (frames, channels)), -1, 1)


def _chunk(chunk_id, payload):
  pad = b"\0" if len(payload) % 2 else b""
  return chunk_id + struct.pack("<I", len(payload)) + payload + pad


def _riff(*chunks):
  body = b"WAVE" + b"".join(chunks)
  return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(code, channels, rate, bits, block_align=None, extensible=None):
  block_align = block_align or channels * bits // 8
  payload = struct.pack("<HHIIHH", code, channels, rate, rate * block_align, block_align, bits)
  if extensible is not None:  # (valid_bits, sub_format_code)
    valid_bits, sub_code = extensible
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    payload += struct.pack("<HHI", 22, valid_bits, 0) + struct.pack("<H", sub_code) + guid_tail
  return _chunk(b"fmt ", payload)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_decode_matches_soundfile(tmp_path, subtype, channels, container):
  path = tmp_path / "x.wav"
  soundfile.write(str(path), _noise(997, channels), 16000, subtype=subtype, format=container)
  expected, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
  audio, sample_rate = decode_wav(tf.io.read_file(str(path)))
  assert int(sample_rate) == rate == 16000
  assert audio.dtype == tf.float32 and audio.shape == (997, channels)
  np.testing.assert_allclose(audio.numpy(), expected, rtol=0, atol=1e-7)


def test_extensible_24_bits_in_32_bit_container_odd_chunks_any_order():
  # Hand-built: a LIST chunk and an odd-sized junk chunk (with its pad byte)
  # before 'fmt ', samples with 24 valid bits left-justified in 32-bit words.
  ints = np.array([[0, 1], [-1, 2**23 - 1], [-(2**23), 12345]], np.int32)
  words = (ints << 8).astype("<i4").tobytes()
  contents = _riff(_chunk(b"LIST", b"INFOISFT\x05\0\0\0tfsp\0\0"), _chunk(b"junk", b"abc"),
                   _fmt(0xFFFE, 2, 8000, 32, extensible=(24, 1)), _chunk(b"fact", b"\3\0\0\0"),
                   _chunk(b"data", words))
  audio, rate = decode_wav(contents)
  assert int(rate) == 8000
  np.testing.assert_array_equal(audio.numpy(), ints.astype(np.float64) / 2**23)


def test_data_before_fmt_and_odd_sized_data_chunk():
  # 8-bit mono with 3 samples: an odd data chunk followed by its pad byte, then 'fmt '.
  contents = _riff(_chunk(b"data", bytes([0, 128, 255])), _fmt(1, 1, 11025, 8))
  audio, rate = decode_wav(contents)
  assert int(rate) == 11025
  np.testing.assert_array_equal(audio.numpy()[:, 0], [-1.0, 0.0, 127 / 128])


def test_hand_built_file_agrees_with_soundfile(tmp_path):
  ints = np.arange(-300, 300, 7, dtype=np.int16) * 97
  contents = _riff(_chunk(b"junk", b"x"), _fmt(1, 1, 22050, 16),
                   _chunk(b"data", ints.astype("<i2").tobytes()), _chunk(b"LIST", b"INFO"))
  path = tmp_path / "h.wav"
  path.write_bytes(contents)
  expected, _ = soundfile.read(str(path), dtype="float32")
  np.testing.assert_array_equal(decode_wav(contents)[0].numpy()[:, 0], expected)


def test_streaming_data_size_means_rest_of_file():
  ints = np.array([1000, -1000, 5], "<i2")
  data = b"data" + struct.pack("<I", 0xFFFFFFFF) + ints.tobytes()
  contents = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + _fmt(1, 1, 16000, 16) + data
  np.testing.assert_array_equal(decode_wav(contents)[0].numpy()[:, 0], ints / 32768.0)


def _good_bytes():
  return _riff(_fmt(1, 1, 16000, 16), _chunk(b"data", np.zeros(100, "<i2").tobytes()))


BAD_INPUTS = {
    "not_riff": (b"this is plainly some text and no audio", "no RIFF header"),
    "too_short": (b"RIF", "shorter than a RIFF header"),
    "not_wave": (b"RIFF\x04\0\0\0AVI LIST\0\0\0\0", "RIFF form type is not WAVE"),
    "no_fmt": (_riff(_chunk(b"data", b"\0\0")), "no fmt chunk"),
    "no_data": (_riff(_fmt(1, 1, 16000, 16)), "no data chunk"),
    "short_fmt": (_riff(_chunk(b"fmt ", b"\1\0\1\0"), _chunk(b"data", b"\0\0")),
                  "fmt chunk is truncated"),
    "adpcm": (_riff(_fmt(2, 1, 16000, 4, block_align=256), _chunk(b"data", b"\0" * 256)),
              "unsupported format code 2"),
    "alaw_extensible": (_riff(_fmt(0xFFFE, 1, 8000, 8, extensible=(8, 6)), _chunk(b"data", b"\0")),
                        "unsupported format code 6"),
    "float16": (_riff(_fmt(3, 1, 8000, 16), _chunk(b"data", b"\0\0")),
                "unsupported sample width: 16 bits"),
    "pcm_64": (_riff(_fmt(1, 1, 8000, 64), _chunk(b"data", b"\0" * 8)),
               "unsupported sample width: 64 bits"),
    "zero_channels": (_riff(_fmt(1, 0, 8000, 16, block_align=2), _chunk(b"data", b"\0\0")),
                      "0 channels"),
    "truncated": (_good_bytes()[:120], "truncated data: the data chunk declares 200 bytes but only 76"),
    "rifx": (b"RIFX" + _good_bytes()[4:], "big-endian RIFX"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_errors_name_the_problem(tmp_path, case):
  contents, problem = BAD_INPUTS[case]
  with pytest.raises(tf.errors.InvalidArgumentError, match="decode_wav: "):
    decode_wav(contents)
  path = tmp_path / f"{case}.wav"
  path.write_bytes(contents)
  with pytest.raises(AudioError) as error:
    load_wav(path)
  assert str(error.value).startswith(f"{path}: ")
  assert problem in str(error.value), str(error.value)


def test_bad_input_errors_in_graph_mode():
  decode = tf.function(decode_wav, input_signature=[tf.TensorSpec([], tf.string)])
  for contents, problem in (BAD_INPUTS["not_riff"], BAD_INPUTS["truncated"], BAD_INPUTS["no_data"]):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
      decode(contents)
    assert problem in wav._problem(error.value)  # pylint: disable=protected-access


def test_missing_and_empty_files(tmp_path):
  with pytest.raises(AudioError, match=r"nope\.wav: missing file"):
    load_wav(tmp_path / "nope.wav")
  (tmp_path / "empty.wav").write_bytes(b"")
  with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
    load_wav(tmp_path / "empty.wav")
  with pytest.raises(AudioError, match="is a directory"):
    load_wav(tmp_path)


def test_graph_mode_no_python_ops_and_tf_data(tmp_path):
  decode = tf.function(decode_wav, input_signature=[tf.TensorSpec([], tf.string)])
  concrete = decode.get_concrete_function()
  assert_no_python_ops(concrete)
  assert concrete.output_shapes[0].as_list() == [None, None]
  paths = []
  for i, subtype in enumerate(["PCM_16", "PCM_24", "FLOAT"]):
    path = tmp_path / f"{i}.wav"
    soundfile.write(str(path), _noise(300 + i, 2, seed=i), 24000, subtype=subtype)
    paths.append(str(path))
  dataset = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: decode_wav(tf.io.read_file(p)))
  for path, (audio, rate) in zip(paths, dataset):
    expected, _ = soundfile.read(path, dtype="float32")
    assert int(rate) == 24000
    np.testing.assert_allclose(audio.numpy(), expected, rtol=0, atol=1e-7)


def test_load_wav_mono_mixdown_and_stereo(tmp_path):
  path = tmp_path / "s.wav"
  stereo = _noise(500, 2)
  soundfile.write(str(path), stereo, 22050, subtype="PCM_16")
  expected, _ = soundfile.read(str(path), dtype="float32")
  audio, rate = load_wav(path)
  assert rate == 22050 and audio.shape == (500,)
  np.testing.assert_allclose(audio.numpy(), expected.mean(axis=1), rtol=0, atol=1e-7)
  audio, _ = load_wav(path, mono=False)
  np.testing.assert_allclose(audio.numpy(), expected, rtol=0, atol=1e-7)


def test_load_wav_sample_rate_mismatch_error(tmp_path):
  path = tmp_path / "r.wav"
  soundfile.write(str(path), _noise(160, 1), 16000)
  with pytest.raises(AudioError) as error:
    load_wav(path, sample_rate=22050, resample=False)
  assert str(error.value).startswith(f"{path}: sample rate 16000 Hz, expected 22050; pass ")
  audio, rate = load_wav(path, sample_rate=16000, resample=False)  # Same rate: no error.
  assert rate == 16000 and audio.shape == (160,)


def test_load_wav_resamples_with_tfspeech_ops(tmp_path):
  pytest.importorskip("tfspeech.ops.resample", reason="resampler (ops/resample.py) not present")
  path = tmp_path / "tone.wav"
  t = np.arange(16000) / 16000.0
  soundfile.write(str(path), 0.5 * np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
  audio, rate = load_wav(path, sample_rate=22050)
  assert rate == 22050
  assert audio.shape == (22050,)  # ceil(16000 * 22050 / 16000)
  # Away from the edges the result is the same 440 Hz tone sampled at 22050 Hz.
  expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050.0)
  np.testing.assert_allclose(audio.numpy()[2000:-2000], expected[2000:-2000], atol=1e-3)
  stereo, _ = load_wav(path, sample_rate=22050, mono=False)
  assert stereo.shape == (22050, 1)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed (apt-get install sox)")
def test_load_audio_flac_via_tensorflow_io(tmp_path):
  pytest.importorskip("tensorflow_io", reason="tensorflow-io not installed (tfspeech[io])")
  if not tf.__version__.startswith("2.17."):  # test_load_audio_errors checks the error then.
    pytest.skip(f"tensorflow-io 0.37.1's ops do not load with TensorFlow {tf.__version__}")
  source = tmp_path / "a.wav"
  soundfile.write(str(source), _noise(4000, 2), 22050, subtype="PCM_16")
  flac = tmp_path / "a.flac"
  subprocess.run(["sox", str(source), str(flac)], check=True)
  expected, _ = soundfile.read(str(flac), dtype="float32")
  audio, rate = load_audio(flac, mono=False)
  assert rate == 22050
  np.testing.assert_allclose(audio.numpy(), expected, rtol=0, atol=1e-7)
  audio, _ = load_audio(source)  # .wav goes through decode_wav.
  np.testing.assert_allclose(audio.numpy(), expected.mean(axis=1), rtol=0, atol=1e-7)


# Every way of lacking a loadable tensorflow-io gives this one line: the file, what is
# missing, then what to do (the io extra with TF 2.17, or WAV).
_NO_TFIO = r"^[^\n]*y\.flac: reading \.flac files needs tensorflow-io, which "
_WHAT_TO_DO = (r"; install tfspeech\[io\] \(tensorflow-io 0\.37\.1, whose ops load only with "
               r"TensorFlow 2\.17: `pip install \"tfspeech\[io\]\"` in a TF 2\.17 environment\) "
               r"or convert the file to WAV \(e\.g\. `sox in\.flac out\.wav`\)$")


def test_load_audio_errors(tmp_path, monkeypatch):
  with pytest.raises(AudioError, match=r"x\.aiff: unsupported audio extension '\.aiff'"):
    load_audio(tmp_path / "x.aiff")
  with pytest.raises(AudioError, match=r"gone\.flac: missing file"):
    load_audio(tmp_path / "gone.flac")
  flac = tmp_path / "y.flac"
  flac.write_bytes(b"fLaC but not really")
  try:
    import tensorflow_io  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    pass
  else:
    if tf.__version__.startswith("2.17."):  # Its ops load: a corrupt file is reported as such.
      with pytest.raises(AudioError, match=r"y\.flac: could not decode with tensorflow-io"):
        load_audio(flac)
    else:  # tensorflow-io 0.37.1 beside TF >= 2.18: its ops fail to load.
      with pytest.raises(AudioError, match=_NO_TFIO + r"is installed but its ops do not load"):
        load_audio(flac)


class _OpsThatFailToLoad:
  """tensorflow_io's lazily loaded op library as it behaves beside TF >= 2.18."""

  def __getattr__(self, name):
    raise NotImplementedError("unable to open file: libtensorflow_io.so, from paths: [...]\n"
                              "caused by: ['... undefined symbol: ...']")


def _fake_tensorflow_io(monkeypatch, core_ops):
  names = ["tensorflow_io", "tensorflow_io.python", "tensorflow_io.python.ops"]
  modules = [types.ModuleType(name) for name in names]
  modules[2].core_ops = core_ops
  for name, module in zip(names, modules):
    monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.smoke
@pytest.mark.parametrize("tfio, reason", [
    ("missing", "is not installed"),
    ("ops_fail", r"is installed but its ops do not load with TensorFlow [0-9.]+\S* "
                 r"\(NotImplementedError\)"),
], ids=["not_installed", "ops_fail_to_load"])
def test_compressed_audio_without_loadable_tensorflow_io_says_what_to_do(
    tmp_path, monkeypatch, tfio, reason):
  flac = tmp_path / "y.flac"
  flac.write_bytes(b"fLaC but not really")
  if tfio == "missing":
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # As if it were not installed.
  else:
    _fake_tensorflow_io(monkeypatch, _OpsThatFailToLoad())
  with pytest.raises(AudioError, match=_NO_TFIO + reason + _WHAT_TO_DO):
    load_audio(flac, sample_rate=22050)


def test_write_wav_warns_when_it_clips(tmp_path, caplog):
  path = tmp_path / "loud.wav"
  audio = np.zeros(1000, np.float32)
  audio[:50] = 1.5  # 5% of the samples past full scale.
  audio[50:60] = -2.0  # 1% more, negative.
  with caplog.at_level("WARNING", logger="tfspeech.audio.wav"):
    wav.write_wav(path, audio, 22050)
  assert len(caplog.records) == 1
  message = caplog.records[0].getMessage()
  assert str(path) in message and "60 of 1000 samples (6.00%)" in message
  pcm, rate = soundfile.read(path, dtype="int16")
  assert rate == 22050 and pcm[:50].min() == 32767 and pcm[50:60].max() == -32768
  caplog.clear()
  with caplog.at_level("WARNING", logger="tfspeech.audio.wav"):
    wav.write_wav(tmp_path / "fine.wav", np.full(100, 1.0, np.float32), 22050)  # Exactly 1.0.
  assert not caplog.records

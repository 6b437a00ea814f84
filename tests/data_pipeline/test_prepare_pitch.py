"""Pitch and energy in prepared corpora: lengths, parity with librosa.yin, stats, settings."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import librosa
import numpy as np
import pytest
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.data import corpus_info as corpus_info_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import prepare
from tfspeech.data import records

HOP = 256
REPO = pathlib.Path(__file__).resolve().parents[2]


def _read_records(out_dir, split):
  files = dataset_lib.shard_files(out_dir, split)
  return [tf.nest.map_structure(lambda t: t.numpy(), records.parse_example(s))
          for s in tf.data.TFRecordDataset(files)]


def _subset(tiny_corpus, dest, count):
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[:count]
  (dest / "wavs").mkdir(parents=True)
  for line in lines:
    name = line.split("|")[0] + ".wav"
    shutil.copy(tiny_corpus / "wavs" / name, dest / "wavs" / name)
  (dest / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _numpy_energy(audio, config):
  """L2 norm of sqrt(|X|^2 + eps) per frame, HiFi-GAN framing, written out in NumPy."""
  width = (config.n_fft - config.hop_length) // 2
  padded = np.pad(audio.astype(np.float64), width, mode="reflect")
  count = 1 + (len(padded) - config.n_fft) // config.hop_length
  frames = np.stack([padded[i * HOP:i * HOP + config.n_fft] for i in range(count)])
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.n_fft) / config.n_fft)
  spectrum = np.fft.rfft(frames * window, axis=-1)
  return np.sqrt((np.abs(spectrum) ** 2 + config.magnitude_eps).sum(axis=-1))


@pytest.fixture
def tiny_prepared(tiny_prepared_pitch):
  """The tiny corpus prepared with pitch (FastPitch's settings): the session's copy."""
  return tiny_prepared_pitch


def test_prepared_records_carry_pitch_and_energy_on_the_mel_frames(tiny_prepared):
  config = audio_lib.MelConfig.hifigan()
  settings = prepare.PitchSettings()
  examples = _read_records(tiny_prepared, "train") + _read_records(tiny_prepared, "validation")
  within, voiced_frames, total_frames = [], 0, 0
  for example in examples:
    frames = example["num_frames"]
    assert example["pitch"].shape == example["energy"].shape == (frames,)
    assert example["mel"].shape[0] == frames
    audio = example["audio"]
    # librosa.yin on the same frames: the audio padded as prepare pads it for pitch
    # (zeros, centred on the mel frames), uncentred framing, cut to the mel's count.
    left = settings.left_pad(config)
    assert left == (config.n_fft - HOP) // 2  # frame_length == n_fft: the mel's own padding
    reference = librosa.yin(np.pad(audio, (left, settings.frame_length)), fmin=settings.fmin,
                            fmax=settings.fmax, sr=22050, frame_length=settings.frame_length,
                            hop_length=HOP, center=False)[:frames]
    assert reference.shape == (frames,)
    f0 = example["pitch"]
    voiced = f0 > 0
    voiced_frames += voiced.sum()
    total_frames += frames
    within.append(np.abs(f0[voiced] - reference[voiced]) / reference[voiced] < 1e-3)
    # The lag range is whole samples, floor(sr / fmax) ... ceil(sr / fmin) (librosa's).
    low, high = 22050 / np.ceil(22050 / settings.fmin), 22050 / np.floor(22050 / settings.fmax)
    assert np.all((f0[voiced] >= low * 0.99) & (f0[voiced] <= high * 1.01))
    np.testing.assert_allclose(example["energy"], _numpy_energy(audio, config), rtol=1e-4,
                               atol=1e-4)
  within = np.concatenate(within)
  print(f"{voiced_frames} of {total_frames} frames voiced; {within.mean():.4f} within 0.1% of "
        "librosa.yin")
  assert 0.2 < voiced_frames / total_frames < 0.9
  assert within.mean() >= 0.99


def test_pitch_statistics_and_settings_in_dataset_json(tiny_prepared):
  info = corpus_info_lib.CorpusInfo.load(tiny_prepared)
  train = _read_records(tiny_prepared, "train")
  f0 = np.concatenate([e["pitch"] for e in train]).astype(np.float64)
  energy = np.concatenate([e["energy"] for e in train]).astype(np.float64)
  voiced = f0[f0 > 0]
  assert info.stats["pitch"]["mean"] == pytest.approx(voiced.mean(), rel=1e-6)
  assert info.stats["pitch"]["std"] == pytest.approx(voiced.std(), rel=1e-5)
  assert info.stats["pitch"]["frames"] == voiced.size
  assert info.stats["energy"]["mean"] == pytest.approx(energy.mean(), rel=1e-6)
  assert info.stats["energy"]["std"] == pytest.approx(energy.std(), rel=1e-5)
  # Speaking voices, not the 400-2000 Hz fricatives a loose voicing rule lets in
  # (yin_pitch's own default, 0.6, gave a std near 200 Hz here).
  print(f"f0 mean {voiced.mean():.1f} Hz, std {voiced.std():.1f} Hz, "
        f"{(voiced > 400).mean():.4f} of voiced frames above 400 Hz")
  assert (voiced > 400).mean() < 0.02
  assert 70 < info.stats["pitch"]["mean"] < 250 and info.stats["pitch"]["std"] < 100
  raw = dataset_lib.load_dataset_info(tiny_prepared)
  assert raw["stats"]["pitch"] == info.stats["pitch"]  # the contract: dataset.json stats.pitch
  assert dataset_lib.load_stats(tiny_prepared)["pitch"] == info.stats["pitch"]
  extraction = info.pitch_extraction
  assert extraction["method"] == "yin" and extraction["hop_length"] == HOP
  assert extraction["fmin"] == pytest.approx(librosa.note_to_hz("C2"))
  assert extraction["fmax"] == pytest.approx(librosa.note_to_hz("C7"))
  assert extraction["frame_length"] == 1024 and extraction["voicing_threshold"] == 0.35


def test_make_dataset_returns_pitch_and_energy_of_prepared_data(tiny_prepared):
  ds = dataset_lib.make_dataset(tiny_prepared, "train", batch_size=4,
                                features=("mel", "pitch", "energy"), repeat=False, seed=0)
  batches = 0
  for batch in ds:
    lengths = batch["mel_lengths"].numpy()
    pitch, energy = batch["pitch"].numpy(), batch["energy"].numpy()
    assert pitch.shape == energy.shape == batch["mel"].shape[:2]
    for row, length in enumerate(lengths):
      assert np.all(pitch[row, length:] == 0) and np.all(energy[row, length:] == 0)
      assert energy[row, :length].min() > 0
    batches += 1
  assert batches > 0


def test_pitch_is_off_by_default(tiny_corpus, tmp_path):
  corpus = tmp_path / "corpus"
  _subset(tiny_corpus, corpus, 3)
  prepare.prepare_corpus(corpus, tmp_path / "out", workers=1, validation_count=0,
                         num_shards=1, progress=False)
  assert _read_records(tmp_path / "out", "train")[0]["pitch"].shape == (0,)
  assert dataset_lib.load_stats(tmp_path / "out")["pitch"] is None
  assert corpus_info_lib.CorpusInfo.load(tmp_path / "out").stats == {}


def test_pitch_settings_change_refits_shards_and_centred_mels_align(tiny_corpus, tmp_path):
  corpus = tmp_path / "corpus"
  _subset(tiny_corpus, corpus, 4)
  out_dir = tmp_path / "out"
  kwargs = dict(workers=1, num_shards=1, validation_count=1, progress=False,
                mel_config="tacotron2")
  plain = prepare.prepare_corpus(corpus, out_dir, pitch=False, **kwargs)
  assert plain.shards_written == 2
  example = _read_records(out_dir, "train")[0]
  assert example["pitch"].shape == example["energy"].shape == (0,)
  assert "pitch_extraction" not in dataset_lib.load_dataset_info(out_dir)
  # Pitch on an already prepared folder: every shard is extracted again, not resumed.
  with_pitch = prepare.prepare_corpus(corpus, out_dir, pitch=True, **kwargs)
  assert (with_pitch.shards_written, with_pitch.shards_resumed) == (2, 0)
  again = prepare.prepare_corpus(corpus, out_dir, pitch=True, **kwargs)
  assert (again.shards_written, again.shards_resumed) == (0, 2)
  # Tacotron 2 framing (centred, samples // hop + 1 frames): pitch follows the mel.
  for example in _read_records(out_dir, "train") + _read_records(out_dir, "validation"):
    assert example["num_frames"] == example["num_samples"] // HOP + 1
    assert example["pitch"].shape == example["energy"].shape == (example["num_frames"],)
  other = prepare.prepare_corpus(corpus, out_dir, pitch=prepare.PitchSettings(fmax=600.0),
                                 **kwargs)
  assert other.shards_resumed == 0
  assert dataset_lib.load_dataset_info(out_dir)["pitch_extraction"]["fmax"] == 600.0


@pytest.mark.parametrize("settings, message", [
    (dict(fmin=20.0), "does not fit in frame_length"),
    (dict(fmax=12000.0), "Nyquist"),
    (dict(fmin=500.0, fmax=400.0), "less than fmax"),
    (dict(voicing_threshold=0.05), "voicing_threshold"),
    (dict(frame_length=128, fmin=200.0), "shorter than the mel hop"),
    (dict(method="pyin"), "use 'yin'"),
])
def test_bad_pitch_settings_raise_before_any_work(tiny_corpus, tmp_path, settings, message):
  with pytest.raises(ValueError, match=message):
    prepare.prepare_corpus(tiny_corpus, tmp_path / "out", pitch=prepare.PitchSettings(**settings))
  assert not (tmp_path / "out").exists()
  with pytest.raises(TypeError, match="PitchSettings"):
    prepare.prepare_corpus(tiny_corpus, tmp_path / "out", pitch="yes")


def _run_prepare(args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, "-m", "tfspeech.bin.prepare", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_prepare_binary_names_bad_pitch_flags(tiny_corpus, tmp_path):
  result = _run_prepare([f"--corpus={tiny_corpus}", "--out=out", "--pitch", "--pitch_fmin=20"],
                        tmp_path)
  assert result.returncode == 2, result.stderr
  error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(error) == 1 and "--pitch_fmin=20.0" in error[0], result.stderr
  assert "raise fmin to at least" in error[0]
  result = _run_prepare([f"--corpus={tiny_corpus}", "--out=out", "--pitch_fmax=800"], tmp_path)
  assert result.returncode == 2
  assert "error: --pitch_fmax without --pitch" in result.stderr
  assert not (tmp_path / "out").exists()

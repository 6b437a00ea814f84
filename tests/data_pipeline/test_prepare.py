"""Tests of tfspeech.data.prepare: tiny corpus end to end, broken entries, resume."""

import json
import os
import shutil
import sys
import wave

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import prepare
from tfspeech.data import records

HOP = 256  # MelConfig.hifigan(): 22050 Hz, hop 256, frames = samples // hop.


def _read_records(out_dir, split):
  files = dataset_lib.shard_files(out_dir, split)
  return [tf.nest.map_structure(lambda t: t.numpy(), records.parse_example(s))
          for s in tf.data.TFRecordDataset(files)]


def _write_wav(path, samples, rate):
  """Writes int16 PCM with the stdlib writer; samples [n] or [n, channels] in [-1, 1]."""
  samples = np.asarray(samples)
  channels = 1 if samples.ndim == 1 else samples.shape[1]
  with wave.open(str(path), "wb") as f:
    f.setnchannels(channels)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes((samples * 32767).astype("<i2").tobytes())


def _subset(tiny_corpus, dest, count):
  """Copies the first `count` entries of the tiny corpus to `dest`; returns their lines."""
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[:count]
  (dest / "wavs").mkdir(parents=True)
  for line in lines:
    name = line.split("|")[0] + ".wav"
    shutil.copy(tiny_corpus / "wavs" / name, dest / "wavs" / name)
  (dest / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
  return lines


@pytest.fixture(scope="module")
def prepared_tiny(tiny_corpus, tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("prepared_tiny")
  report = prepare.prepare_corpus(tiny_corpus, out_dir, workers=2, num_shards=3,
                                  validation_count=4, seed=1, progress=False)
  return out_dir, report


def test_tiny_corpus_end_to_end(tiny_corpus, prepared_tiny):
  out_dir, report = prepared_tiny
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
  # The only entry skipped by default: '"' is not in the reference character set.
  assert [(s.id, s.reason) for s in report.skipped] == [("TINY-0006", "unknown_characters")]
  assert (report.num_train, report.num_validation) == (len(lines) - 5, 4)
  assert report.shards_written == 4 and report.shards_resumed == 0
  assert report.throughput > 0 and report.processed_audio_seconds > 30

  info = dataset_lib.load_dataset_info(out_dir)
  assert info["counts"] == {"train": len(lines) - 5, "validation": 4, "skipped": 1}
  assert info["sample_rate"] == 22050 and info["hop_length"] == HOP and info["n_mels"] == 80
  assert audio_lib.MelConfig(**info["mel_config"]) == audio_lib.MelConfig.hifigan()
  assert text_lib.SymbolTable.from_dict(info["symbols"]) == text_lib.english_characters()
  assert info["mel_pad_value"] == pytest.approx(np.log(1e-5))
  saved_report = json.loads((out_dir / "report.json").read_text())
  assert saved_report["skipped"][0]["reason"] == "unknown_characters"
  assert saved_report["throughput_audio_seconds_per_second"] == pytest.approx(report.throughput)

  normalized = {line.split("|")[0]: line.split("|")[2] for line in lines}
  examples = _read_records(out_dir, "train") + _read_records(out_dir, "validation")
  assert sorted(e["id"].decode() for e in examples) == sorted(set(normalized) - {"TINY-0006"})
  total_seconds = 0.0
  for example in examples:
    utterance_id = example["id"].decode()
    rate, reference = scipy.io.wavfile.read(tiny_corpus / "wavs" / f"{utterance_id}.wav")
    assert rate == 22050
    np.testing.assert_array_equal(np.round(example["audio"] * 32768).astype(np.int16), reference)
    assert example["num_samples"] == len(reference) == len(example["audio"])
    # HiFi-GAN framing: (n_fft - hop) / 2 reflect padding each side, no centring.
    assert example["num_frames"] == len(reference) // HOP == example["mel"].shape[0]
    assert example["mel"].shape[1] == 80
    text = normalized[utterance_id]
    assert example["text"].decode() == text_lib.clean_text(text, ["english_cleaners"])
    ids = text_lib.text_to_ids(text, text_lib.english_characters(), on_unknown="error")
    np.testing.assert_array_equal(example["text_ids"], ids)
    assert example["num_tokens"] == len(ids)
    total_seconds += len(reference) / 22050
  assert info["total_audio_seconds"] == pytest.approx(total_seconds)

  # The stored mel is MelSpectrogram's output for the stored audio.
  mel = audio_lib.MelSpectrogram(audio_lib.MelConfig.hifigan())(examples[0]["audio"][None])[0]
  np.testing.assert_allclose(examples[0]["mel"], mel.numpy(), atol=1e-5)

  # Statistics over the train split, recomputed here with NumPy.
  train_mels = np.concatenate([e["mel"] for e in _read_records(out_dir, "train")]).astype(np.float64)
  stats = dataset_lib.load_stats(out_dir)
  assert stats["mel_frames"] == train_mels.shape[0]
  np.testing.assert_allclose(stats["mel_mean"], train_mels.mean(axis=0), rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(stats["mel_std"], np.maximum(train_mels.std(axis=0), 1e-5), rtol=1e-5)
  assert np.isfinite(stats["mel_mean"]).all() and np.isfinite(stats["mel_std"]).all()


def test_output_does_not_depend_on_worker_count(tiny_corpus, prepared_tiny, tmp_path):
  out_dir, spawned = prepared_tiny
  # workers=None: a corpus this small is prepared in-process (no worker start-up).
  assert prepare.MIN_ENTRIES_FOR_WORKERS > 40
  in_process = prepare.prepare_corpus(tiny_corpus, tmp_path, workers=None, num_shards=3,
                                      validation_count=4, seed=1, progress=False)
  assert (spawned.workers, in_process.workers) == (2, 1)
  # In this process: one utterance at a time per core (threads), the same bytes.
  assert in_process.threads == (os.cpu_count() or 1)
  for split in dataset_lib.SPLITS:
    for path in dataset_lib.shard_files(out_dir, split):
      name = path.rsplit("/", 1)[-1]
      assert (tmp_path / name).read_bytes() == (out_dir / name).read_bytes(), name


def test_make_dataset_on_prepared_corpus(prepared_tiny):
  out_dir, report = prepared_tiny
  ds = dataset_lib.make_dataset(out_dir, "train", batch_size=4,
                                features=("text_ids", "mel", "audio"), seed=0, repeat=False)
  count = 0
  for batch in ds:
    batch = {k: v.numpy() for k, v in batch.items()}
    np.testing.assert_array_equal(batch["mel_lengths"], batch["audio_lengths"] // HOP)
    assert batch["mel"].shape[1] == batch["mel_lengths"].max()
    assert batch["text_ids"].shape[1] == batch["text_lengths"].max()
    count += len(batch["mel_lengths"])
  assert count == report.num_train

  segments = dataset_lib.make_dataset(out_dir, "validation", batch_size=2,
                                      features=("audio", "mel"), segment_samples=HOP * 32)
  batch = next(iter(segments))
  assert batch["audio"].shape == (2, HOP * 32) and batch["mel"].shape == (2, 32, 80)


@pytest.fixture()
def broken_corpus(tiny_corpus, tmp_path):
  """Eight good entries (one with a '"') plus one of each kind of problem."""
  corpus = tmp_path / "broken"
  good = _subset(tiny_corpus, corpus, 8)
  wavs = corpus / "wavs"
  rng = np.random.default_rng(0)
  source = (wavs / "TINY-0001.wav").read_bytes()
  (wavs / "BAD-empty.wav").write_bytes(b"")
  (wavs / "BAD-truncated.wav").write_bytes(source[:2000])
  (wavs / "BAD-text.wav").write_text("this is not audio\n")
  shutil.copy(wavs / "TINY-0002.wav", wavs / "BAD-notext.wav")
  shutil.copy(wavs / "TINY-0002.wav", wavs / "BAD-unknown.wav")
  _write_wav(wavs / "BAD-16k.wav", 0.1 * rng.standard_normal(8000), 16000)
  _write_wav(wavs / "BAD-stereo.wav", 0.1 * rng.standard_normal((11025, 2)), 22050)
  _write_wav(wavs / "BAD-short.wav", 0.1 * rng.standard_normal(100), 22050)
  bad = [
      "BAD-missing|No file.|No file.",
      "BAD-empty|Empty file.|Empty file.",
      "BAD-truncated|Truncated file.|Truncated file.",
      "BAD-text|A text file.|A text file.",
      "BAD-notext||",
      "BAD-unknown|Tilde ~ here.|Tilde ~ here.",
      "BAD-16k|Sixteen kilohertz.|Sixteen kilohertz.",
      "BAD-stereo|Two channels.|Two channels.",
      "BAD-short|Short.|Short.",
      "BAD-fields|one|two|three",
  ]
  lines = good[:4] + bad[:5] + good[4:] + bad[5:]
  (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
  good_ids = {line.split("|")[0] for line in good} - {"TINY-0006"}
  return corpus, good_ids


def test_broken_corpus_skips_each_bad_entry_with_reason(broken_corpus, tmp_path):
  corpus, good_ids = broken_corpus
  report = prepare.prepare_corpus(corpus, tmp_path / "out", workers=1, num_shards=2,
                                  validation_count=2, allow_resample=False,
                                  allow_downmix=False, progress=False)
  reasons = {s.id: s.reason for s in report.skipped}
  assert reasons == {
      "BAD-fields": "wrong_field_count",
      "BAD-notext": "empty_transcript",
      "BAD-unknown": "unknown_characters",
      "TINY-0006": "unknown_characters",
      "BAD-missing": "missing_file",
      "BAD-empty": "empty_file",
      "BAD-truncated": "unreadable_audio",
      "BAD-text": "unreadable_audio",
      "BAD-16k": "sample_rate_mismatch",
      "BAD-stereo": "channel_mismatch",
      "BAD-short": "too_short",
  }
  messages = {s.id: s.message for s in report.skipped}
  assert "truncated" in messages["BAD-truncated"]
  assert "not a WAV" in messages["BAD-text"]
  assert "16000 Hz" in messages["BAD-16k"] and "allow_resample" in messages["BAD-16k"]
  assert "2 channels" in messages["BAD-stereo"]
  assert "'~'" in messages["BAD-unknown"]
  assert "metadata.csv:" in messages["BAD-fields"]
  for entry in report.skipped:
    if entry.reason not in ("wrong_field_count",):
      assert entry.id in entry.audio_path
  written = {e["id"].decode() for split in dataset_lib.SPLITS
             for e in _read_records(tmp_path / "out", split)}
  assert written == good_ids
  assert report.num_train + report.num_validation == len(good_ids)
  saved = json.loads((tmp_path / "out" / "report.json").read_text())
  assert {s["id"]: s["reason"] for s in saved["skipped"]} == reasons
  assert saved["skipped_by_reason"]["unreadable_audio"] == 2


def test_broken_corpus_lenient_settings_keep_convertible_audio(broken_corpus, tmp_path, caplog):
  corpus, good_ids = broken_corpus
  with caplog.at_level("WARNING", logger=prepare.__name__):
    report = prepare.prepare_corpus(corpus, tmp_path / "out", workers=1, num_shards=1,
                                    validation_count=0, on_unknown="warn", progress=False)
  assert any("BAD-unknown" in r.getMessage() and "'~'" in r.getMessage() for r in caplog.records)
  assert "BAD-16k" not in {s.id for s in report.skipped}
  assert report.dropped_symbols == {'"': 2, "~": 1}
  examples = {e["id"].decode(): e for e in _read_records(tmp_path / "out", "train")}
  assert set(examples) == good_ids | {"TINY-0006", "BAD-unknown", "BAD-16k", "BAD-stereo"}
  assert examples["BAD-16k"]["num_samples"] == 8000 * 22050 // 16000
  assert examples["BAD-stereo"]["num_samples"] == 11025
  assert examples["BAD-unknown"]["text"] == b"tilde ~ here."
  assert report.num_validation == 0
  # report.json names every converted entry, with what it was converted from.
  saved = json.loads((tmp_path / "out" / "report.json").read_text())
  converted = {c["id"]: c for c in saved["converted"]}
  assert set(converted) == {"BAD-16k", "BAD-stereo"}
  assert converted["BAD-16k"] == {
      "id": "BAD-16k", "audio_path": str(corpus / "wavs" / "BAD-16k.wav"),
      "from_sample_rate": 16000, "to_sample_rate": 22050, "from_channels": 1, "to_channels": 1}
  assert converted["BAD-stereo"]["from_channels"] == 2
  assert converted["BAD-stereo"]["to_channels"] == 1
  assert converted["BAD-stereo"]["from_sample_rate"] == 22050
  assert (saved["num_resampled"], saved["num_downmixed"]) == (1, 1)
  assert (report.num_resampled, report.num_downmixed) == (1, 1)
  # Every entry is in train (validation_count=0), so no split warning either.
  assert saved["warnings"] == [] and saved["validation_passed_over"] == []


def _validation_candidates(corpus, seed=0):
  """Entry ids in the order the split draws validation from (lowest hash rank first)."""
  ids = [u.id for u in prepare._read_corpus(corpus, "ljspeech", None)]
  return sorted(ids, key=lambda i: prepare._validation_rank(i, seed))


def test_validation_split_is_drawn_from_usable_entries(tiny_corpus, tmp_path):
  corpus = tmp_path / "corpus"
  _subset(tiny_corpus, corpus, 8)
  first, second, third, fourth = _validation_candidates(corpus)[:4]
  # The two entries the split would hold out first are broken (kinds a worker finds).
  (corpus / "wavs" / f"{first}.wav").write_bytes(b"not audio at all")
  (corpus / "wavs" / f"{second}.wav").unlink()
  # on_unknown="drop" keeps TINY-0006 (its '"'), so every entry is a candidate.
  report = prepare.prepare_corpus(corpus, tmp_path / "out", workers=1, num_shards=1,
                                  validation_count=2, on_unknown="drop", progress=False)
  assert report.num_validation == 2
  validation = {e["id"].decode() for e in _read_records(tmp_path / "out", "validation")}
  assert validation == {third, fourth}
  assert {s.id: s.reason for s in report.skipped if s.id in (first, second)} == {
      first: "unreadable_audio", second: "missing_file"}
  assert report.validation_passed_over == (first, second)
  assert report.warnings == ()
  saved = json.loads((tmp_path / "out" / "report.json").read_text())
  assert saved["num_validation"] == 2 and saved["validation_passed_over"] == [first, second]


def test_too_few_usable_entries_warn_loudly(tiny_corpus, tmp_path, caplog):
  corpus = tmp_path / "corpus"
  lines = _subset(tiny_corpus, corpus, 3)
  good = lines[0].split("|")[0]
  for line in lines[1:]:
    (corpus / "wavs" / (line.split("|")[0] + ".wav")).write_bytes(b"")
  with caplog.at_level("WARNING", logger=prepare.__name__):
    report = prepare.prepare_corpus(corpus, tmp_path / "out", workers=1, num_shards=1,
                                    validation_count=2, progress=False)
  # The one usable entry is held out; train is empty. Both are said, not left silent.
  assert (report.num_train, report.num_validation) == (0, 1)
  validation = {e["id"].decode() for e in _read_records(tmp_path / "out", "validation")}
  assert validation == {good}
  assert len(report.warnings) == 2
  assert "validation split holds 1 of the 2" in report.warnings[0]
  assert "train split is empty" in report.warnings[1]
  saved = json.loads((tmp_path / "out" / "report.json").read_text())
  assert saved["warnings"] == list(report.warnings)
  logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert any("validation split holds 1 of the 2" in m for m in logged)


def _mtimes(out_dir):
  return {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.tfrecord*")}


def test_resume_redoes_only_unfinished_shards(tiny_corpus, tmp_path, monkeypatch):
  corpus = tmp_path / "corpus"
  _subset(tiny_corpus, corpus, 12)
  out_dir = tmp_path / "out"
  kwargs = dict(workers=1, num_shards=3, validation_count=2, progress=False)
  first = prepare.prepare_corpus(corpus, out_dir, **kwargs)
  assert (first.shards_written, first.shards_resumed) == (4, 0)
  reference = {p.name: p.read_bytes() for p in out_dir.glob("*.tfrecord")}
  before = _mtimes(out_dir)

  # A shard whose marker is missing (e.g. killed between rename and marker) is redone.
  (out_dir / "train-00001-of-00003.tfrecord.done").unlink()
  second = prepare.prepare_corpus(corpus, out_dir, **kwargs)
  assert (second.shards_written, second.shards_resumed) == (1, 3)
  after = _mtimes(out_dir)
  changed = {name for name in before if after.get(name) != before[name]}
  assert changed == {"train-00001-of-00003.tfrecord", "train-00001-of-00003.tfrecord.done"}
  assert second.num_train == first.num_train and second.skipped == first.skipped
  assert second.processed_audio_seconds < first.processed_audio_seconds

  # 11 usable entries (TINY-0006 has a '"'): 2 validation, 3 train shards of
  # 3, at positions 0-2, 3-5, 6-8. A run interrupted in the third shard: the finished
  # shards keep their markers, the interrupted one leaves nothing behind.
  for path in out_dir.glob("*"):
    path.unlink()
  original = prepare._process_unchecked

  def interrupt(task):
    if task.split == "train" and task.position == 8:
      raise KeyboardInterrupt
    return original(task)

  monkeypatch.setattr(prepare, "_process_unchecked", interrupt)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare_corpus(corpus, out_dir, **kwargs)
  monkeypatch.setattr(prepare, "_process_unchecked", original)
  done = sorted(p.name for p in out_dir.glob("*.done"))
  assert done == ["train-00000-of-00003.tfrecord.done", "train-00001-of-00003.tfrecord.done"]
  assert not list(out_dir.glob("*.tmp"))

  resumed = prepare.prepare_corpus(corpus, out_dir, **kwargs)
  assert (resumed.shards_written, resumed.shards_resumed) == (2, 2)
  assert {p.name: p.read_bytes() for p in out_dir.glob("*.tfrecord")} == reference


def test_changed_settings_invalidate_finished_shards(tiny_corpus, tmp_path):
  corpus = tmp_path / "corpus"
  _subset(tiny_corpus, corpus, 5)
  out_dir = tmp_path / "out"
  kwargs = dict(workers=1, num_shards=2, validation_count=1, progress=False)
  prepare.prepare_corpus(corpus, out_dir, **kwargs)
  changed = prepare.prepare_corpus(corpus, out_dir, mel_config="tacotron2", **kwargs)
  assert (changed.shards_written, changed.shards_resumed) == (3, 0)
  # Tacotron 2 framing: centred frames, samples // hop + 1.
  example = _read_records(out_dir, "validation")[0]
  assert example["num_frames"] == example["num_samples"] // HOP + 1
  # Another shard count: old shard files must not linger next to the new ones.
  prepare.prepare_corpus(corpus, out_dir, **{**kwargs, "num_shards": 1})
  assert sorted(p.name for p in out_dir.glob("train-*")) == [
      "train-00000-of-00001.tfrecord", "train-00000-of-00001.tfrecord.done"]
  not_resumed = prepare.prepare_corpus(corpus, out_dir, resume=False,
                                       **{**kwargs, "num_shards": 1})
  assert not_resumed.shards_resumed == 0


def test_bad_arguments_raise(tiny_corpus, tmp_path):
  with pytest.raises(ValueError, match="preset"):
    prepare.prepare_corpus(tiny_corpus, tmp_path, mel_config="hifi")
  with pytest.raises(ValueError, match="disagrees"):
    prepare.prepare_corpus(tiny_corpus, tmp_path, sample_rate=16000,
                           mel_config=audio_lib.MelConfig.hifigan())
  with pytest.raises(ValueError, match="format"):
    prepare.prepare_corpus(tiny_corpus, tmp_path, format="vctk")
  with pytest.raises(ValueError, match="cleaner"):
    prepare.prepare_corpus(tiny_corpus, tmp_path, cleaners=("englsh_cleaners",))
  with pytest.raises(FileNotFoundError, match="metadata.csv"):
    prepare.prepare_corpus(tmp_path / "nothing", tmp_path / "out")
  assert not (tmp_path / "out").exists()  # A missing corpus creates no output folder.


def test_filelist_with_speakers(tiny_corpus, tmp_path):
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[:4]
  listing = tmp_path / "train.txt"
  # Grad-TTS LibriTTS layout: path|text|speaker id, paths relative to audio_root.
  listing.write_text("".join(f"wavs/{line.split('|')[0]}.wav|{line.split('|')[2]}|{7 * i}\n"
                             for i, line in enumerate(lines)), encoding="utf-8")
  out_dir = tmp_path / "out"
  report = prepare.prepare_corpus(listing, out_dir, format="filelist", audio_root=tiny_corpus,
                                  workers=1, num_shards=1, validation_count=0, progress=False)
  assert report.num_train == 4 and not report.skipped
  info = dataset_lib.load_dataset_info(out_dir)
  assert info["speakers"] == {"0": 0, "7": 7, "14": 14, "21": 21}
  assert info["num_speakers"] == 22
  speakers = {e["id"].decode(): int(e["speaker"]) for e in _read_records(out_dir, "train")}
  assert speakers == {line.split("|")[0]: 7 * i for i, line in enumerate(lines)}


def test_compressed_corpus_without_a_decoder_stops_once_creating_nothing(tmp_path, monkeypatch):
  # Without a loadable tensorflow-io every .flac entry would fail alike: prepare names the
  # first file and the fix once, before creating the output, instead of skipping them all.
  monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # As if it were not installed.
  (tmp_path / "a.flac").write_bytes(b"fLaC")
  (tmp_path / "b.flac").write_bytes(b"fLaC")
  listing = tmp_path / "train.txt"
  listing.write_text("a.flac|One two.\nb.flac|Three four.\n", encoding="utf-8")
  out_dir = tmp_path / "out"
  with pytest.raises(audio_lib.AudioError,
                     match=r"a\.flac: reading \.flac files needs tensorflow-io, which is not "
                           r"installed; install tfspeech\[io\]"):
    prepare.prepare_corpus(listing, out_dir, format="filelist", audio_root=tmp_path, workers=1,
                           progress=False)
  assert not out_dir.exists()

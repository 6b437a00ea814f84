"""Tests of tfspeech.data.corpus: LJSpeech metadata and filelist readers."""

import pathlib

import pytest

from tfspeech.data import corpus


def _write(path, text):
  path.write_text(text, encoding="utf-8")
  return path


def test_tiny_corpus_reads_all_lines(tiny_corpus):
  utterances = corpus.read_ljspeech(tiny_corpus)
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
  assert len(utterances) == len(lines) >= 30
  assert utterances.problems == []
  first = utterances[0]
  assert first.id == "TINY-0001"
  # The normalized (third) column is used, not the raw text.
  assert first.text == "Doctor Smith paid three dollars fifty on the second of May."
  assert first.audio_path == str(tiny_corpus.resolve() / "wavs" / "TINY-0001.wav")
  assert first.speaker is None
  assert all(pathlib.Path(u.audio_path).is_file() for u in utterances)


def test_ljspeech_quotes_and_fallback_and_problems(tmp_path):
  _write(tmp_path / "metadata.csv", "\n".join([
      'A1|"Quoted start, no end|"Quoted start, no end',  # Unbalanced quote.
      'A2|He said "hi" twice.|',                           # Empty normalized column.
      "A3|Only two fields",
      "A4|too|many|fields",
      "|no id|no id",
      "",
      "A1|duplicate|duplicate",
      'A5|"Whole field quoted"|"Whole field quoted"',
  ]) + "\n")
  utterances = corpus.read_ljspeech(tmp_path)
  assert [u.id for u in utterances] == ["A1", "A2", "A3", "A5"]
  assert utterances[0].text == '"Quoted start, no end'
  assert utterances[1].text == 'He said "hi" twice.'
  assert utterances[2].text == "Only two fields"
  # QUOTE_NONE keeps quote characters instead of treating them as field quoting.
  assert utterances[3].text == '"Whole field quoted"'
  problems = {(p.line_number, p.reason) for p in utterances.problems}
  assert problems == {(4, "wrong_field_count"), (5, "empty_id"), (7, "duplicate_id")}
  assert all(p.source == str((tmp_path / "metadata.csv").resolve()) for p in utterances.problems)
  assert "got 4" in next(p.message for p in utterances.problems if p.line_number == 4)


def test_ljspeech_missing_metadata_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match="metadata.csv"):
    corpus.read_ljspeech(tmp_path)


def test_filelist_layouts_and_paths(tmp_path):
  (tmp_path / "lists").mkdir()
  listing = _write(tmp_path / "lists" / "train.txt", "\n".join([
      "wavs/a.wav|Plain two fields.",
      "DUMMY/b.wav|Grad-TTS style, speaker last.|17",
      "wavs/c.wav|3|Speaker in the middle.",
      "LJ001-0001|HiFi-GAN lists ids without extension.",
      "/abs/d.wav|Absolute path.",
      "e.wav|ambiguous|three fields",
      "f.wav",
  ]) + "\n")
  utterances = corpus.read_filelist(listing)
  by_id = {u.id: u for u in utterances}
  assert list(by_id) == ["a", "b", "c", "LJ001-0001", "d"]
  lists_dir = (tmp_path / "lists").resolve()
  assert by_id["a"].audio_path == str(lists_dir / "wavs" / "a.wav")
  assert by_id["a"].speaker is None
  assert (by_id["b"].text, by_id["b"].speaker) == ("Grad-TTS style, speaker last.", "17")
  assert (by_id["c"].text, by_id["c"].speaker) == ("Speaker in the middle.", "3")
  assert by_id["LJ001-0001"].audio_path == str(lists_dir / "LJ001-0001.wav")
  assert by_id["d"].audio_path == "/abs/d.wav"
  assert [(p.line_number, p.reason) for p in utterances.problems] == [
      (6, "ambiguous_layout"), (7, "wrong_field_count")]

  rooted = corpus.read_filelist(listing, root=tmp_path / "corpus")
  assert rooted[0].audio_path == str((tmp_path / "corpus" / "wavs" / "a.wav").resolve())

  explicit = corpus.read_filelist(listing, layout="path_text_speaker")
  assert {u.id for u in explicit} == {"b", "c", "e"}
  assert next(u for u in explicit if u.id == "e").speaker == "three fields"


def test_filelist_bad_layout_raises(tmp_path):
  listing = _write(tmp_path / "list.txt", "a.wav|text\n")
  with pytest.raises(ValueError, match="layout"):
    corpus.read_filelist(listing, layout="text_path")

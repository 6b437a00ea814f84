"""Tests of tfspeech.data.corpus_info: the typed dataset.json."""

import json
import pathlib

import numpy as np
import pytest

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib
from tfspeech.data import corpus_info as corpus_info_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data.corpus_info import CorpusInfo, CorpusInfoError


def _raw(prepared):
  return json.loads((pathlib.Path(prepared) / "dataset.json").read_text(encoding="utf-8"))


def test_loads_the_corpus_prepare_writes(tiny_prepared):
  info = CorpusInfo.load(tiny_prepared)
  raw = _raw(tiny_prepared)
  assert info.mel_config == audio_lib.MelConfig.hifigan()
  assert (info.sample_rate, info.n_mels, info.hop_length) == (22050, 80, 256)
  assert info.symbols == text_lib.english_characters()
  assert info.text_pad_id == 0 and not info.carries_blanks
  assert info.cleaners == ("english_cleaners",) and info.arpabet is False
  assert info.mel_pad_value == pytest.approx(np.log(1e-5))
  assert info.count("train") == raw["counts"]["train"] > 0
  assert info.count("validation") == raw["counts"]["validation"] > 0
  assert info.shards["train"] == [pathlib.Path(f).name
                                  for f in dataset_lib.shard_files(tiny_prepared, "train")]
  assert info.add_blank is None and info.blank_id is None and info.extras == {}
  assert info.source == str(pathlib.Path(tiny_prepared) / "dataset.json")
  # Every key prepare writes is typed, in the order it is written: nothing is lost.
  assert list(info.to_dict()) == list(raw) and info.to_dict() == raw


def test_write_reproduces_prepares_bytes(tiny_prepared, tmp_path):
  original = (pathlib.Path(tiny_prepared) / "dataset.json").read_bytes()
  # The format dataset.json has always had, which readers outside tfspeech may parse.
  assert original == json.dumps(_raw(tiny_prepared), indent=1, ensure_ascii=False).encode()
  written = CorpusInfo.load(tiny_prepared).write(tmp_path)
  assert written == tmp_path / "dataset.json"
  assert written.read_bytes() == original
  assert not list(tmp_path.glob("*.tmp"))


def test_round_trip_with_run_facts_and_extras():
  table = text_lib.english_arpabet()
  info = CorpusInfo(mel_config=audio_lib.MelConfig.gradtts(), symbols=table, arpabet=True,
                    add_blank=True, blank_id=len(table), num_speakers=3,
                    counts={"train": 5, "validation": 1}, extras={"gta": {"seed": 2}})
  data = json.loads(json.dumps(info.to_dict()))
  assert data["add_blank"] is True and data["blank_id"] == 148 and data["gta"] == {"seed": 2}
  again = CorpusInfo.from_dict(data)
  assert again == info and again.carries_blanks and again.gta == {"seed": 2}
  # A run's data_info is a subset of the keys.
  keys = ("sample_rate", "mel_config", "symbols", "add_blank", "blank_id")
  assert list(info.to_dict(keys)) == list(keys)


def test_partial_descriptions_load_with_defaults():
  info = CorpusInfo.from_dict({"n_mels": 3, "hop_length": 16,
                               "symbols": {"symbols": ["a", "_"], "pad": "_"}})
  assert (info.n_mels, info.hop_length, info.mel_config, info.sample_rate) == (3, 16, None, None)
  assert info.text_pad_id == 1 and info.mel_pad_value is None and info.count("train") == 0
  # null means "not recorded": the default, not a type error.
  assert CorpusInfo.from_dict({"n_mels": 3, "hop_length": 16, "cleaners": None,
                               "num_speakers": None}).cleaners == ("english_cleaners",)


def test_missing_dataset_json_names_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"dataset\.json not found.*tfspeech-prepare"):
    CorpusInfo.load(tmp_path)


@pytest.mark.parametrize("content, problem", [
    ("{not json", r"not a readable JSON file"),
    ("[1, 2]", r"expected a JSON object, got list"),
    ('{"n_mels": 80}', r"no hop_length"),
    ('{"mel_config": {"hop_length": 256, "bogus": 1}}', r"fields \['bogus'\]"),
    ('{"mel_config": {"hop_length": 0}}', r"mel_config: MelConfig.hop_length=0"),
    ('{"mel_config": {}, "n_mels": 64}', r"n_mels=64 disagrees with mel_config.n_mels=80"),
    ('{"mel_config": {}, "symbols": {"format": "x"}}', r"symbols: not a SymbolTable"),
    ('{"mel_config": {}, "counts": [3]}', r"counts=\[3\] must be a JSON object"),
    ('{"mel_config": {}, "num_speakers": 0}', r"num_speakers=0"),
])
def test_malformed_dataset_json_names_the_file(tmp_path, content, problem):
  (tmp_path / "dataset.json").write_text(content, encoding="utf-8")
  with pytest.raises(CorpusInfoError, match=problem) as error:
    CorpusInfo.load(tmp_path)
  assert str(tmp_path / "dataset.json") in str(error.value)
  assert isinstance(error.value, ValueError)


def test_make_dataset_reports_a_malformed_dataset_json(tmp_path):
  (tmp_path / "dataset.json").write_text('{"mel_config": {"n_mels": -1}}', encoding="utf-8")
  with pytest.raises(ValueError, match=r"dataset\.json: mel_config: MelConfig\.n_mels=-1"):
    dataset_lib.make_dataset(tmp_path)


def test_require_names_unrecorded_facts(tmp_path):
  (tmp_path / "dataset.json").write_text('{"mel_config": {}}', encoding="utf-8")
  assert CorpusInfo.load(tmp_path, require=("mel_config", "sample_rate")).sample_rate == 22050
  with pytest.raises(CorpusInfoError, match=r"does not record \['symbols', 'counts'\]"):
    CorpusInfo.load(tmp_path, require=("mel_config", "symbols", "counts"))
  with pytest.raises(ValueError, match=r"'symbol' is not a corpus fact"):
    CorpusInfo.load(tmp_path, require=("symbol",))


def test_differences_name_each_differing_fact(tiny_prepared):
  corpus = CorpusInfo.load(tiny_prepared)
  assert corpus.differences(CorpusInfo.load(tiny_prepared)) == []
  assert corpus.equivalent_for(corpus.replace(counts={}, seed=9, source="elsewhere"))

  other = corpus.replace(mel_config=corpus.mel_config.replace(fmax=None, n_fft=2048),
                         symbols=text_lib.english_arpabet(), cleaners=("basic_cleaners",),
                         source="other/dataset.json")
  lines = corpus.differences(other)
  assert lines == [
      f"mel_config.n_fft: 1024 in {corpus.source}, 2048 in other/dataset.json",
      f"mel_config.fmax: 8000.0 in {corpus.source}, None in other/dataset.json",
      f"symbols: table 'english_characters' of 64 symbols in {corpus.source}, "
      "'english_arpabet' of 148 symbols in other/dataset.json",
      f"cleaners: ['english_cleaners'] in {corpus.source}, ['basic_cleaners'] in "
      "other/dataset.json",
  ]
  assert corpus.differences(other, corpus_info_lib.TEXT_CONVENTION) == lines[2:]
  assert not corpus.equivalent_for(other, corpus_info_lib.MEL_CONVENTION)
  assert corpus.equivalent_for(other, ("sample_rate", "arpabet"))


def test_differences_skip_facts_one_side_does_not_record(tiny_prepared):
  corpus = CorpusInfo.load(tiny_prepared)
  # A vocoder run's facts: mels only, no symbols, blank handling recorded.
  vocoder = CorpusInfo(mel_config=corpus.mel_config, add_blank=False)
  assert corpus.differences(vocoder) == []
  swapped = text_lib.SymbolTable(symbols=("_", "b", "a"), pad="_")
  plain = text_lib.SymbolTable(symbols=("_", "a", "b"), pad="_")
  assert CorpusInfo(n_mels=1, hop_length=1, symbols=plain).differences(
      CorpusInfo(n_mels=1, hop_length=1, symbols=swapped), ("symbols",)) == [
          "symbols: id 1 is 'a' here, 'b' in the other"]


def test_load_dataset_info_stays_a_dict_with_a_clear_error(tiny_prepared, tmp_path):
  assert dataset_lib.load_dataset_info(tiny_prepared) == _raw(tiny_prepared)
  (tmp_path / "dataset.json").write_text("", encoding="utf-8")
  with pytest.raises(CorpusInfoError, match=r"dataset\.json: not a readable JSON file"):
    dataset_lib.load_dataset_info(tmp_path)


def test_construction_checks_consistency():
  with pytest.raises(CorpusInfoError, match=r"sample_rate=16000 disagrees"):
    CorpusInfo(mel_config=audio_lib.MelConfig.hifigan(), sample_rate=16000)
  with pytest.raises(CorpusInfoError, match=r"blank_id=3 without add_blank"):
    CorpusInfo(mel_config=audio_lib.MelConfig.hifigan(), blank_id=3)
  with pytest.raises(CorpusInfoError, match=r"symbols must be a tfspeech.text.SymbolTable"):
    CorpusInfo(mel_config=audio_lib.MelConfig.hifigan(), symbols={"symbols": ["_"]})

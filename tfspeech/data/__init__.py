"""Corpus pipeline: corpus readers, the TFRecord schema, offline preparation, tf.data input.

  utterances = read_ljspeech("LJSpeech-1.1")             # corpus.py
  report = prepare_corpus("LJSpeech-1.1", "prepared/")   # prepare.py (tfspeech-prepare)
  ds = make_dataset("prepared/", "train", batch_size=16) # dataset.py
  info = CorpusInfo.load("prepared/")                    # corpus_info.py (dataset.json)
"""

from tfspeech.data.corpus import LineProblem
from tfspeech.data.corpus import Utterance
from tfspeech.data.corpus import UtteranceList
from tfspeech.data.corpus import read_filelist
from tfspeech.data.corpus import read_ljspeech
from tfspeech.data.corpus_info import CorpusInfo
from tfspeech.data.corpus_info import CorpusInfoError
from tfspeech.data.dataset import load_dataset_info
from tfspeech.data.dataset import load_stats
from tfspeech.data.dataset import make_dataset
from tfspeech.data.prepare import PrepareReport
from tfspeech.data.prepare import SkippedEntry
from tfspeech.data.prepare import prepare_corpus
from tfspeech.data.records import parse_example
from tfspeech.data.records import serialize_example

__all__ = [
    "CorpusInfo", "CorpusInfoError", "LineProblem", "PrepareReport", "SkippedEntry", "Utterance",
    "UtteranceList", "load_dataset_info", "load_stats", "make_dataset", "parse_example",
    "prepare_corpus", "read_filelist", "read_ljspeech", "serialize_example",
]

"""The `align` graph exported to TFLite (builtins) and TFJS (run in Node): the same durations as
the TF graph `tfspeech-align` runs, on a batch of tests/data/aligned_words utterances. (The
SavedModel export saves that TF graph's own function; it is left to the CLI smoke checks to
keep the suite's time.)

The run is the export tests' tiny Grad-TTS with randomized weights (tests/export/conftest.py):
its alignments are arbitrary but deterministic, which is all parity needs.
"""

import json
import os
import pathlib

import numpy as np
import pytest

from tfspeech.export import align_graph, inference_graphs, tflite
from tfspeech.inference import align_lib

ALIGNED_WORDS = pathlib.Path(__file__).resolve().parents[1] / "data" / "aligned_words"


@pytest.fixture(scope="module")
def reference(acoustic_run):
  """(inputs, TF outputs) of the TF align graph on three utterances of different lengths."""
  aligner = align_lib.Aligner(acoustic_run)
  loaded = [aligner.load(item) for item in align_lib.corpus_items(str(ALIGNED_WORDS))[1:]]
  audio = np.zeros([len(loaded), max(len(l.audio) for l in loaded)], np.float32)
  for row, item in enumerate(loaded):
    audio[row, :len(item.audio)] = item.audio
  ids = np.zeros([len(loaded), max(len(l.ids) for l in loaded)], np.int32)
  for row, item in enumerate(loaded):
    ids[row, :len(item.ids)] = item.ids
  inputs = {"audio": audio,
            "audio_lengths": np.array([len(l.audio) for l in loaded], np.int32),
            "text_ids": ids, "text_lengths": np.array([len(l.ids) for l in loaded], np.int32)}
  outputs = {k: v.numpy() for k, v in aligner.graph.function(**inputs).items()}
  return inputs, outputs


def check_parity(outputs, expected):
  np.testing.assert_array_equal(outputs["durations"], expected["durations"])
  np.testing.assert_array_equal(outputs["mel_lengths"], expected["mel_lengths"])
  np.testing.assert_allclose(outputs["score"], expected["score"], rtol=1e-4)


def test_tflite_align_is_builtins_only_and_joins_an_existing_export(acoustic_run, reference,
                                                                     tmp_path):
  inputs, expected = reference
  out = tmp_path / "tflite"
  out.mkdir()
  # A tfspeech-export of the same run: the align graph is added beside its graphs.
  (out / "metadata.json").write_text(json.dumps(
      {"runtime": "tflite", "model": "grad_tts", "graphs": {"text_to_mel": {"file": "x"}}}))
  paths = align_graph.add_to_export(acoustic_run, "tflite", str(out))
  assert sorted(os.listdir(out)) == ["align.tflite", "metadata.json"]
  check_parity(tflite.TFLiteGraph(paths["align"])(**inputs), expected)
  metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
  assert list(metadata["graphs"]) == ["text_to_mel", "align"]
  graph = metadata["graphs"]["align"]
  assert graph["file"] == "align.tflite"
  assert graph["inputs"]["audio"] == {"dtype": "float32", "shape": ["batch", "samples"]}
  assert graph["outputs"]["durations"] == {"dtype": "int32", "shape": ["batch", "tokens"]}
  assert sorted(graph["output_tensors"].values()) == ["durations", "mel_lengths", "score"]
  with pytest.raises(ValueError, match="already has an align graph"):
    align_graph.add_to_export(acoustic_run, "tflite", str(out))
  with pytest.raises(ValueError, match="holds a tflite export"):
    align_graph.add_to_export(acoustic_run, "saved_model", str(out))


def test_tfjs_align_in_node_aligns_like_tf(acoustic_run, reference, tmp_path, tfjs_converter,
                                           node):
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  del node
  inputs, expected = reference
  out = str(tmp_path / "tfjs")
  paths = align_graph.add_to_export(acoustic_run, "tfjs", out, converter=tfjs_converter)
  run = tfjs.run_graph_model(paths["align"], inputs, backend="cpu")
  check_parity(run.outputs, expected)
  metadata = json.loads(pathlib.Path(paths["metadata"]).read_text(encoding="utf-8"))
  assert sorted(os.listdir(out)) == ["align", inference_graphs.METADATA_FILE]
  assert list(metadata["graphs"]) == ["align"]
  assert metadata["graphs"]["align"]["file"] == "align/model.json"
  # What an app needs to make the inputs: the text front end and the audio convention.
  assert metadata["runtime"] == "tfjs" and metadata["model"] == "grad_tts"
  assert metadata["sample_rate"] == 22050 and metadata["hop_length"] == 256
  assert metadata["add_blank"] and metadata["symbols"] and metadata["controls"] == {}

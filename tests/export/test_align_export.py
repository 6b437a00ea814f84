"""The `align` graph exported to TFLite (builtins) and TFJS (run in Node): the same durations as
the TF graph `tfspeech-align` runs, on a batch of tests/data/aligned_words utterances. (The
SavedModel export saves that TF graph's own function; it is left to the CLI smoke checks to
keep the suite's time.)

The TFJS export also runs in the browser aligner (export/web/aligner.js) in headless Chromium,
driven through its controls as a person would (check_web_demo.js --align_wav).

The run is the export tests' tiny Grad-TTS with randomized weights (tests/export/conftest.py):
its alignments are arbitrary but deterministic, which is all parity needs.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from tfspeech.export import align_graph, inference_graphs, tflite
from tfspeech.inference import align_lib

ALIGNED_WORDS = pathlib.Path(__file__).resolve().parents[1] / "data" / "aligned_words"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def aligner(acoustic_run):
  """`tfspeech-align`'s aligner (the TF align graph) of the run."""
  return align_lib.Aligner(acoustic_run)


@pytest.fixture(scope="module")
def tfjs_align(acoustic_run, tfjs_converter, tmp_path_factory):
  """add_to_export's paths of a TFJS align-only export of the run (one conversion)."""
  out = str(tmp_path_factory.mktemp("align_tfjs") / "export")
  return align_graph.add_to_export(acoustic_run, "tfjs", out, converter=tfjs_converter)


@pytest.fixture(scope="module")
def reference(aligner):
  """(inputs, TF outputs) of the TF align graph on three utterances of different lengths."""
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


def test_tfjs_align_in_node_aligns_like_tf(reference, tfjs_align, node):
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  del node
  inputs, expected = reference
  paths = tfjs_align
  out = os.path.dirname(paths["metadata"])
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


def test_browser_aligner_aligns_like_tfspeech_align(aligner, tfjs_align, node, tmp_path):
  """aligner.js in headless Chromium (the page's default backend: wasm when installed) on a
  22.05 kHz WAV chosen in its file input: it decodes the file sample for sample as
  tfspeech-align reads it, and its durations (integers) and word times are tfspeech-align's
  exactly (times to float rounding: both are frames x hop / rate)."""
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install chromium); skipping the browser "
                "aligner test")
  item = align_lib.corpus_items(str(ALIGNED_WORDS))[1]  # "The cat sat on the mat."
  expected = aligner.align([item])[0]
  out = str(tmp_path / "page")
  command = [node, os.path.join(tfjs.EXPORT_DIR, "js", "check_web_demo.js"),
             f"--model={os.path.dirname(tfjs_align['metadata'])}",
             f"--align_wav={item.audio_path}", f"--align_text={item.text}",
             f"--chromium={CHROMIUM}", f"--out={out}", "--timeout_s=100"]
  result = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=tfjs.EXPORT_DIR, timeout=150)
  assert result.returncode == 0, result.stderr[-3000:]
  outcome = json.loads(result.stdout.strip().splitlines()[-1])
  assert outcome["problems"] == [], outcome
  page = outcome["result"]
  _, arrays = tfjs.read_runner_outputs(out)
  # The same 16-bit samples: Chromium scales positive ones by 1/32767, tfspeech's decode_wav
  # every one by 1/32768.
  page_audio = arrays["audio"][0]
  np.testing.assert_array_equal(np.round(page_audio * np.where(page_audio > 0, 32767, 32768)),
                                np.round(aligner.load(item).audio * 32768))
  assert page["ids"] == aligner.front_end.encode(item.text) and page["unknown"] == {}
  assert page["durations"] == expected.durations
  assert page["score"] == pytest.approx(expected.score, rel=1e-4)
  words = [dataclasses.asdict(w) for w in expected.timestamps.words]
  assert [w["word"] for w in words] == ["The", "cat", "sat", "on", "the", "mat"]
  assert page["words"] == [dict(w, start=pytest.approx(w["start"], abs=1e-9),
                                end=pytest.approx(w["end"], abs=1e-9)) for w in words]
  first = words[0]
  assert outcome["status"].startswith(f"The {first['start']:.2f}–{first['end']:.2f} s, cat ")
  # The synthesis half of the page has nothing to load from an align-only export; the aligner
  # still ran on the backend the page chose.
  assert outcome["backend"].startswith("cpu" if tfjs.wasm_backend_missing() else "wasm")

"""TFJS export: graph models converted in the converter's own virtualenv, run in Node.

The Node runs use @tensorflow/tfjs (pure-JS CPU backend) through export/js/run_graph_model.js;
references are the trained Keras modules (Grad-TTS `synthesize` with its while-loop decoder,
the weight-norm HiFi-GAN generator). Skips when the converter or node/npm are unavailable.
"""

import json
import os

import numpy as np
import pytest

from tfspeech.export import inference_graphs, tfjs

N_TIMESTEPS = 2  # the conftest's n_timesteps
FLOAT32_RTOL = 1e-4
FLOAT16_RTOL = 1e-2


def relative_error(actual, reference):
  reference = np.asarray(reference)
  return float(np.max(np.abs(np.asarray(actual) - reference)) / max(np.max(np.abs(reference)), 1e-12))


def text_inputs(batch_lengths, seed):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, 64, size=(len(batch_lengths), max(batch_lengths))).astype(np.int32)
  for row, length in enumerate(batch_lengths):
    ids[row, length:] = 0
  return {"text_ids": ids, "text_lengths": np.array(batch_lengths, np.int32),
          "noise": rng.standard_normal((len(batch_lengths), 400, 80)).astype(np.float32),
          "temperature": np.float32(1.5), "length_scale": np.float32(1.0)}


def shard_bytes(model_dir):
  with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
    manifest = json.load(f)["weightsManifest"]
  return sum(os.path.getsize(os.path.join(model_dir, p)) for group in manifest
             for p in group["paths"])


@pytest.mark.parametrize("lengths", [[1], [2, 1], [40, 9]])
def test_text_to_audio_in_node_matches_models(tfjs_text_to_audio, node, acoustic_run,
                                              vocoder_run, n_timesteps, lengths):
  assert n_timesteps == N_TIMESTEPS
  _, paths = tfjs_text_to_audio
  inputs = text_inputs(lengths, seed=sum(lengths))
  out, seconds = tfjs.run_in_node(paths["text_to_audio"], inputs)
  reference = acoustic_run.modules["grad_tts"].synthesize(
      inputs["text_ids"], inputs["text_lengths"], n_timesteps=N_TIMESTEPS, temperature=1.5,
      length_scale=1.0, noise=inputs["noise"])
  mel = reference.mel_decoded.numpy()
  np.testing.assert_array_equal(out["mel_lengths"], reference.mel_lengths.numpy())
  np.testing.assert_array_equal(out["audio_lengths"], reference.mel_lengths.numpy() * 256)
  assert out["mel"].shape == mel.shape
  assert relative_error(out["mel"], mel) <= FLOAT32_RTOL
  audio = vocoder_run.modules["generator"](mel).numpy()
  assert out["audio"].shape == audio.shape
  assert relative_error(out["audio"], audio) <= FLOAT32_RTOL
  print(f"tfjs text_to_audio {lengths}: {seconds[0]:.2f} s, mel rel error "
        f"{relative_error(out['mel'], mel):.1e}")


def test_model_json_names_the_signature(tfjs_text_to_audio):
  out_dir, paths = tfjs_text_to_audio
  with open(os.path.join(paths["text_to_audio"], "model.json"), encoding="utf-8") as f:
    model = json.load(f)
  assert model["format"] == "graph-model"
  signature = model["signature"]
  assert sorted(signature["inputs"]) == ["length_scale", "noise", "temperature", "text_ids",
                                         "text_lengths"]
  assert sorted(signature["outputs"]) == ["audio", "audio_lengths", "mel", "mel_lengths"]
  ops = {node["op"] for node in model["modelTopology"]["node"]}
  assert not ops & {"While", "StatelessWhile", "If", "Enter", "Exit", "TensorListReserve",
                    "Assert"}
  with open(os.path.join(out_dir, "metadata.json"), encoding="utf-8") as f:
    metadata = json.load(f)
  assert metadata["runtime"] == "tfjs"
  assert metadata["graphs"]["text_to_audio"]["file"] == "text_to_audio/model.json"
  assert metadata["symbols"]["blank"] is not None and metadata["add_blank"]


def test_float16_vocoder_halves_weights_within_tolerance(tmp_path, vocoder_run, node,
                                                         tfjs_converter):
  generator = vocoder_run.modules["generator"]
  graphs = inference_graphs.build_graphs(generator=generator)
  folders = tfjs.export_graphs(graphs, str(tmp_path), precision="float16",
                               converter=tfjs_converter)
  float32_bytes = 4 * sum(int(np.prod(w.shape)) for w in graphs["mel_to_audio"].model_weights)
  assert shard_bytes(folders["mel_to_audio"]) < 0.6 * float32_bytes
  mel = np.random.default_rng(4).normal(-5, 2, (2, 33, 80)).astype(np.float32)
  out, _ = tfjs.run_in_node(folders["mel_to_audio"], {"mel": mel})
  error = relative_error(out["audio"], generator(mel).numpy())
  print(f"tfjs float16 mel_to_audio rel error {error:.2e}")
  assert 0 < error <= FLOAT16_RTOL


def test_missing_converter_is_a_clear_error(monkeypatch, tmp_path):
  monkeypatch.setenv(tfjs.CONVERTER_ENV, str(tmp_path / "nope"))
  with pytest.raises(tfjs.ConverterUnavailable, match="not an executable"):
    tfjs.converter_executable()
  monkeypatch.delenv(tfjs.CONVERTER_ENV)
  monkeypatch.setenv(tfjs.CONVERTER_VENV_ENV, str(tmp_path / "venv"))
  with pytest.raises(tfjs.ConverterUnavailable, match="no TFJS converter virtualenv"):
    tfjs.converter_executable(create=False)

"""SavedModel export: reloaded without tfspeech, each signature gives what the models give."""

import collections
import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfspeech import training
from tfspeech.export import export_lib
from tfspeech.export import saved_model
from tfspeech.inference import vocode_lib
from tfspeech.inference import synthesize_lib
from tfspeech.models import grad_tts  # noqa: F401  (registers "grad_tts")
from tfspeech.models.hifigan.hifigan_serving import HifiGanServing

TEXTS = ["Hi there.", "A second, clearly longer sentence for the batch."]
N_TIMESTEPS = 3

# Runs in a fresh interpreter that never imports tfspeech: only TensorFlow and NumPy.
_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    assert "tfspeech" not in sys.modules
    # Each signature runs once: Grappler would spend most of this process optimising them.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    folder, inputs, outputs = sys.argv[1:]
    loaded = tf.saved_model.load(folder)
    feed = dict(np.load(inputs))
    seeded = loaded.signatures["text_to_mel_seeded"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        noise_seeds=tf.constant(feed["noise_seeds"]), temperature=tf.constant(1.5),
        length_scale=tf.constant(1.0))
    with_noise = loaded.signatures["text_to_mel"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        noise=tf.constant(feed["noise"]), temperature=tf.constant(1.5),
        length_scale=tf.constant(1.0))
    bound = loaded.signatures["mel_frames_bound"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        temperature=tf.constant(1.5), length_scale=tf.constant(1.0))
    assert "tfspeech" not in sys.modules
    np.savez(outputs, seeded_mel=seeded["mel"].numpy(), durations=with_noise["durations"].numpy(),
             seeded_lengths=seeded["mel_lengths"].numpy(), noise_mel=with_noise["mel"].numpy(),
             noise_lengths=with_noise["mel_lengths"].numpy(), bound=bound["frames"].numpy())
""")


# Calls named signatures in a fresh interpreter without tfspeech: argv = folder, calls.json,
# inputs.npz, outputs.npz; calls.json maps signature → {input name: key in inputs.npz}.
_CALL_SIGNATURES = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import tensorflow as tf
    # Each signature runs once: Grappler would spend most of this process optimising them.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    folder, calls, inputs, outputs = sys.argv[1:]
    loaded = tf.saved_model.load(folder)
    feed = dict(np.load(inputs))
    results = {"signatures": np.array(sorted(loaded.signatures))}
    for name, args in json.load(open(calls)).items():
      out = loaded.signatures[name](**{k: tf.constant(feed[v]) for k, v in args.items()})
      results.update({name + "/" + k: v.numpy() for k, v in out.items()})
    assert "tfspeech" not in sys.modules
    np.savez(outputs, **results)
""")


@contextlib.contextmanager
def fresh_process(script, args, tmp_path):
  """Runs `python -c script *args`, without tfspeech on the path, while the block runs (the
  test computes its references meanwhile: the suite's host has 2 cores); then waits for it
  and fails unless it exited with 0."""
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  process = subprocess.Popen([sys.executable, "-c", script, *args], env=env, cwd=str(tmp_path))
  try:
    yield
    assert process.wait(timeout=300) == 0, f"fresh process exited with {process.returncode}"
  finally:
    process.kill()  # a no-op once it has exited


@contextlib.contextmanager
def signatures_in_fresh_process(folder, calls, feed, tmp_path):
  """Runs `_CALL_SIGNATURES` while the block runs; the dict it gives then holds
  {"signature/output": array}, plus "signatures" (all names)."""
  paths = {name: str(tmp_path / name) for name in ("calls.json", "inputs.npz", "outputs.npz")}
  with open(paths["calls.json"], "w", encoding="utf-8") as f:
    json.dump(calls, f)
  np.savez(paths["inputs.npz"], **feed)
  got = {}
  with fresh_process(_CALL_SIGNATURES, [folder, paths["calls.json"], paths["inputs.npz"],
                                        paths["outputs.npz"]], tmp_path):
    yield got
  got.update(np.load(paths["outputs.npz"]))


@pytest.fixture(scope="module")
def loaded_run(tiny_grad_tts_run, run_saver, weight_randomizer, tmp_path_factory):
  """The 2-step tiny training run, copied, restored with `load_run` and its weights randomized
  like a trained model's (after 2 steps its biases are still ~0; the shared run is left as
  it is)."""
  workdir = run_saver(tiny_grad_tts_run, str(tmp_path_factory.mktemp("loaded_run")))
  run = training.load_run(workdir)
  assert run.step == tiny_grad_tts_run.step
  weight_randomizer(run.modules.values(), seed=3)
  return run


@pytest.mark.smoke
def test_reloaded_saved_model_matches_python_model(loaded_run, tmp_path):
  out_dir = str(tmp_path / "exported")
  saved_model.export_saved_model(out_dir, loaded_run, controls={"n_timesteps": N_TIMESTEPS,
                                                                 "temperature": 1.2})
  metadata = json.load(open(os.path.join(out_dir, "metadata.json"), encoding="utf-8"))
  info = loaded_run.config.data_info
  assert metadata["model"] == "grad_tts" and metadata["preset"] == "tiny"
  assert metadata["sample_rate"] == info["sample_rate"]
  assert metadata["hop_length"] == info["hop_length"] == metadata["mel_config"]["hop_length"]
  assert metadata["add_blank"] and metadata["blank_id"] == 64
  assert metadata["symbols"]["symbols"][64] == metadata["symbols"]["blank"]
  controls = metadata["controls"]
  assert controls["n_timesteps"]["static"] and controls["n_timesteps"]["value"] == N_TIMESTEPS
  assert controls["temperature"]["recommended"] == 1.2 and controls["temperature"]["default"] == 1.5
  assert metadata["format_version"] == 2 and metadata["runtime"] == "saved_model"
  assert sorted(metadata["graphs"]) == ["text_to_mel"]
  assert sorted(metadata["graphs"]["text_to_mel"]["outputs"]) == ["durations", "mel",
                                                                  "mel_lengths"]
  assert sorted(metadata["signatures"]) == ["mel_frames_bound", "text_to_mel_seeded"]
  # The U-Net is stored once (see below) and called once per step by both signatures that synthesize
  # (ten unrolled copies per signature made a tiny pair's SavedModel 55 MB and 31 s to load).
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(out_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  library = proto.meta_graphs[0].graph_def.library.function
  scores = {f.signature.name for f in library if "_score_" in f.signature.name}
  calls = collections.Counter(
      f.signature.name for f in library for node in f.node_def
      if node.op in ("PartitionedCall", "StatefulPartitionedCall")
      and node.attr["f"].func.name in scores)
  # Usually one or two copies (tf.saved_model.save traces the signatures again under its save
  # context, which retraces the U-Net too), each called once per step by the functions that
  # synthesize: far fewer copies than the N_TIMESTEPS per signature an inlined export stores.
  assert len(scores) in (1, 2) and len(calls) >= 2, (scores, calls)
  assert set(calls.values()) == {N_TIMESTEPS}, calls
  # ... and stays a call when the loaded model runs, so its first call optimizes one U-Net
  # rather than N_TIMESTEPS inlined copies per signature (tfspeech.models.unrolled).
  assert all(f.attr["_noinline"].b for f in library if f.signature.name in scores)

  front_end = synthesize_lib.text_front_end(loaded_run)
  ids, lengths = synthesize_lib.pad_batch([front_end.encode(t) for t in TEXTS],
                                          front_end.symbols.pad_id)
  assert lengths[0] < lengths[1]
  seeds = np.array([[5, 0], [5, 1]], np.int32)
  noise = tf.random.stateless_normal([2, 400, 80], [1, 2]).numpy()
  inputs = str(tmp_path / "inputs.npz")
  outputs = str(tmp_path / "outputs.npz")
  np.savez(inputs, text_ids=ids, text_lengths=lengths, noise_seeds=seeds, noise=noise)
  model = loaded_run.modules["grad_tts"]
  with fresh_process(_RELOAD, [out_dir, inputs, outputs], tmp_path):
    # Caller-provided noise: the model's own synthesize.
    direct = model.synthesize(ids, lengths, n_timesteps=N_TIMESTEPS, temperature=1.5,
                              noise=noise)
  got = np.load(outputs)

  # The model's loop-based sampler with the seeded noise synthesize_texts draws: the export
  # draws the same noise.
  frames = int(got["bound"])
  seeded_noise = synthesize_lib.item_noise(tf.constant(seeds), frames, 80)
  expected = model.synthesize(ids, lengths, n_timesteps=N_TIMESTEPS, temperature=1.5,
                              noise=seeded_noise)
  np.testing.assert_array_equal(got["seeded_lengths"], expected.mel_lengths)
  assert got["seeded_mel"].shape == expected.mel_decoded.shape
  np.testing.assert_allclose(got["seeded_mel"], expected.mel_decoded, atol=1e-4)
  # Caller-provided noise against the model's own synthesize.
  np.testing.assert_array_equal(got["noise_lengths"], direct.mel_lengths)
  np.testing.assert_allclose(got["noise_mel"], direct.mel_decoded, atol=1e-4)
  np.testing.assert_array_equal(got["durations"],
                                tf.reduce_sum(direct.alignment, axis=2).numpy().astype(np.int32))
  np.testing.assert_array_equal(got["durations"].sum(axis=1), got["noise_lengths"])
  assert int(got["bound"]) >= model.compatible_frames(int(np.max(got["noise_lengths"])))


def test_export_refuses_a_non_empty_folder(loaded_run, tmp_path):
  (tmp_path / "old.txt").write_text("x")
  with pytest.raises(ValueError, match="not empty"):
    saved_model.export_saved_model(str(tmp_path), loaded_run)


def test_text_to_audio_pair_matches_models(acoustic_run, vocoder_run, n_timesteps, tmp_path,
                                           fast_graphs):
  out_dir = str(tmp_path / "pair")
  saved_model.export_saved_model(out_dir, acoustic_run, vocoder_run,
                                 controls={"n_timesteps": n_timesteps})
  metadata = json.load(open(os.path.join(out_dir, "metadata.json"), encoding="utf-8"))
  rng = np.random.default_rng(0)
  lengths = np.array([7, 19], np.int32)
  ids = rng.integers(1, 64, size=[2, 19]).astype(np.int32)
  ids[0, 7:] = 0
  noise = rng.standard_normal([2, 200, 80]).astype(np.float32)
  mel_lengths = np.array([5, 11], np.int32)
  mel = rng.normal(-5.0, 2.0, size=[2, 11, 80]).astype(np.float32)
  scales = {"temperature": np.float32(1.5), "length_scale": np.float32(1.0)}
  feed = dict(text_ids=ids, text_lengths=lengths, noise=noise, noise_seeds=np.array(
      [[3, 0], [3, 1]], np.int32), mel=mel, mel_lengths=mel_lengths, **scales)
  text = {"text_ids": "text_ids", "text_lengths": "text_lengths", "temperature": "temperature",
          "length_scale": "length_scale"}
  generator = vocoder_run.modules["generator"]
  model = acoustic_run.modules["grad_tts"]
  with signatures_in_fresh_process(out_dir, {
      "mel_to_audio": {"mel": "mel", "mel_lengths": "mel_lengths"},
      "text_to_audio": dict(text, noise="noise"),
      "text_to_audio_seeded": dict(text, noise_seeds="noise_seeds"),
      "text_to_mel_seeded": dict(text, noise_seeds="noise_seeds")}, feed, tmp_path) as got:
    # The references: the weight-norm generator on the mels; the acoustic model's own
    # synthesis, then the vocoder on its mels.
    reference = generator(mel).numpy()
    direct = model.synthesize(ids, lengths, n_timesteps=n_timesteps, temperature=1.5,
                              noise=noise)
    vocoded, _ = vocode_lib.make_vocode_fn(HifiGanServing(generator))(direct.mel_decoded,
                                                                      direct.mel_lengths)

  expected_names = ["mel_frames_bound", "mel_to_audio", "text_to_audio",
                    "text_to_audio_seeded", "text_to_mel", "text_to_mel_seeded"]
  assert list(got["signatures"]) == expected_names == sorted(
      list(metadata["signatures"]) + list(metadata["graphs"]))
  assert metadata["vocoder"]["model"] == "hifigan" and metadata["model"] == "grad_tts"
  assert metadata["acoustic"]["model"] == "grad_tts"
  hop = vocoder_run.modules["generator"].config.hop_length

  # mel_to_audio: the weight-norm generator, zeroed past each item's length.
  audio = got["mel_to_audio/audio"]
  np.testing.assert_array_equal(got["mel_to_audio/audio_lengths"], mel_lengths * hop)
  scale = np.max(np.abs(reference))
  assert scale > 0
  np.testing.assert_allclose(audio[1], reference[1], atol=1e-5 * scale)
  np.testing.assert_allclose(audio[0, :5 * hop], reference[0, :5 * hop], atol=1e-5 * scale)
  assert not np.any(audio[0, 5 * hop:])

  # text_to_audio: the model's own synthesis, then the vocoder on its mels.
  np.testing.assert_array_equal(got["text_to_audio/mel_lengths"], direct.mel_lengths)
  np.testing.assert_allclose(got["text_to_audio/mel"], direct.mel_decoded,
                             atol=1e-4)
  audio = got["text_to_audio/audio"]
  assert audio.shape == vocoded.shape
  np.testing.assert_allclose(audio, vocoded, atol=1e-4 * float(np.max(np.abs(vocoded))))
  np.testing.assert_array_equal(got["text_to_audio/audio_lengths"],
                                direct.mel_lengths.numpy() * hop)

  # text_to_audio_seeded draws the same seeded noise as text_to_mel_seeded: same mels, and
  # audio of them.
  np.testing.assert_array_equal(got["text_to_audio_seeded/mel"], got["text_to_mel_seeded/mel"])
  assert got["text_to_audio_seeded/audio"].shape[1] == got["text_to_mel_seeded/mel"].shape[1] * hop


def test_vocoder_workdir_exports_mel_to_audio_only(vocoder_run, run_saver, tmp_path,
                                                   fast_graphs):
  workdir = run_saver(vocoder_run, str(tmp_path / "run"))
  paths = export_lib.export_workdir(workdir, "saved_model", str(tmp_path / "out"))
  metadata = json.load(open(os.path.join(paths["saved_model"], "metadata.json"),
                            encoding="utf-8"))
  assert list(metadata["graphs"]) == ["mel_to_audio"] and metadata["signatures"] == {}
  assert metadata["model"] == "hifigan" and metadata["hop_length"] == 256
  assert metadata["acoustic"] is None and metadata["controls"] == {}
  loaded = tf.saved_model.load(paths["saved_model"])
  assert sorted(loaded.signatures) == ["mel_to_audio"]
  mel = np.random.default_rng(1).normal(-5, 2, (1, 6, 80)).astype(np.float32)
  out = loaded.signatures["mel_to_audio"](mel=tf.constant(mel), mel_lengths=tf.constant([6]))
  reference = vocoder_run.modules["generator"](mel).numpy()
  np.testing.assert_allclose(out["audio"], reference,
                             atol=1e-5 * float(np.max(np.abs(reference))))


def test_export_options_are_checked_before_loading(tmp_path):
  with pytest.raises(ValueError, match="--precision and --select_tf_ops apply"):
    export_lib.export_workdir(str(tmp_path / "missing"), "saved_model", str(tmp_path / "o"),
                              precision="float16")
  with pytest.raises(ValueError, match="format 'onnx'"):
    export_lib.check_options("onnx", str(tmp_path / "o"))


def test_saving_leaves_the_graphs_functions_inlinable_for_freezing(loaded_run, tmp_path):
  """A SavedModel keeps the unrolled U-Net as calls (`_noinline`); TFLite and TFJS freeze the
  same graph objects afterwards in one process (tests, notebooks) and need them inlined."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.export import frozen_graph
  from tfspeech.export import inference_graphs
  graphs = inference_graphs.graphs_for_runs(loaded_run, None, {"n_timesteps": 2})
  saved_model.save_graphs(graphs, str(tmp_path / "exported"), loaded_run)
  graph_def, _, _ = frozen_graph.frozen_graph_def(
      graphs["text_to_mel"].function.get_concrete_function())
  ops = {node.op for node in graph_def.node}
  assert not graph_def.library.function and not ops & {"PartitionedCall",
                                                        "StatefulPartitionedCall"}, ops

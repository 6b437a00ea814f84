"""SavedModel export of Grad-TTS: reloaded without tfspeech, same mels as the Python model."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import saved_model
from tfspeech.inference import synthesize_lib
from tfspeech.models import grad_tts  # noqa: F401  (registers "grad_tts")

TEXTS = ["Hi there.", "A second, clearly longer sentence for the batch."]
N_TIMESTEPS = 3

# Runs in a fresh interpreter that never imports tfspeech: only TensorFlow and NumPy.
_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    assert "tfspeech" not in sys.modules
    folder, inputs, outputs = sys.argv[1:]
    loaded = tf.saved_model.load(folder)
    feed = dict(np.load(inputs))
    seeded = loaded.signatures["text_to_mel"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        noise_seeds=tf.constant(feed["noise_seeds"]), temperature=tf.constant(1.5),
        length_scale=tf.constant(1.0))
    with_noise = loaded.signatures["text_to_mel_with_noise"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        noise=tf.constant(feed["noise"]), temperature=tf.constant(1.5),
        length_scale=tf.constant(1.0))
    bound = loaded.signatures["mel_frames_bound"](
        text_ids=tf.constant(feed["text_ids"]), text_lengths=tf.constant(feed["text_lengths"]),
        length_scale=tf.constant(1.0))
    assert "tfspeech" not in sys.modules
    np.savez(outputs, seeded_mel=seeded["mel"].numpy(),
             seeded_lengths=seeded["mel_lengths"].numpy(), noise_mel=with_noise["mel"].numpy(),
             noise_lengths=with_noise["mel_lengths"].numpy(), bound=bound["frames"].numpy())
""")


@pytest.fixture(scope="module")
def loaded_run(tiny_grad_tts_run):
  return tiny_grad_tts_run


def test_reloaded_saved_model_matches_python_model(loaded_run, tmp_path):
  out_dir = str(tmp_path / "exported")
  saved_model.export_acoustic_saved_model(loaded_run, out_dir, n_timesteps=N_TIMESTEPS)
  metadata = json.load(open(os.path.join(out_dir, "metadata.json"), encoding="utf-8"))
  info = loaded_run.config.data_info
  assert metadata["model"] == "grad_tts" and metadata["preset"] == "tiny"
  assert metadata["sample_rate"] == info["sample_rate"]
  assert metadata["hop_length"] == info["hop_length"] == metadata["mel_config"]["hop_length"]
  assert metadata["add_blank"] and metadata["blank_id"] == 64
  assert metadata["symbols"]["symbols"][64] == metadata["symbols"]["blank"]
  assert metadata["n_timesteps"] == N_TIMESTEPS

  front_end = synthesize_lib.text_front_end(loaded_run)
  ids, lengths = synthesize_lib.pad_batch([front_end.encode(t) for t in TEXTS],
                                          front_end.symbols.pad_id)
  assert lengths[0] < lengths[1]
  seeds = np.array([[5, 0], [5, 1]], np.int32)
  noise = tf.random.stateless_normal([2, 400, 80], [1, 2]).numpy()
  inputs = str(tmp_path / "inputs.npz")
  outputs = str(tmp_path / "outputs.npz")
  np.savez(inputs, text_ids=ids, text_lengths=lengths, noise_seeds=seeds, noise=noise)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  subprocess.run([sys.executable, "-c", _RELOAD, out_dir, inputs, outputs], check=True,
                 env=env, cwd=str(tmp_path), timeout=300)
  got = np.load(outputs)

  model = loaded_run.modules["grad_tts"]
  # The library's loop-based sampler with the same seeds: the export draws the same noise.
  expected = synthesize_lib.synthesize_mels(model, ids, lengths, seeds, N_TIMESTEPS, 1.5, 1.0)
  np.testing.assert_array_equal(got["seeded_lengths"], expected.mel_lengths)
  assert got["seeded_mel"].shape == expected.mel_decoded.shape
  np.testing.assert_allclose(got["seeded_mel"], expected.mel_decoded, atol=1e-4)
  # Caller-provided noise against the model's own synthesize.
  direct = model.synthesize(ids, lengths, n_timesteps=N_TIMESTEPS, temperature=1.5,
                            noise=noise)
  np.testing.assert_array_equal(got["noise_lengths"], direct.mel_lengths)
  np.testing.assert_allclose(got["noise_mel"], direct.mel_decoded, atol=1e-4)
  assert int(got["bound"]) >= model.compatible_frames(int(np.max(got["noise_lengths"])))


def test_export_refuses_a_non_empty_folder(loaded_run, tmp_path):
  (tmp_path / "old.txt").write_text("x")
  with pytest.raises(ValueError, match="not empty"):
    saved_model.export_acoustic_saved_model(loaded_run, str(tmp_path))

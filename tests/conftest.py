"""Shared pytest setup: quiet TensorFlow, deterministic seeds, common fixtures."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

TESTS_DIR = pathlib.Path(__file__).resolve().parent
TINY_CORPUS = TESTS_DIR / "data" / "ljspeech_tiny"


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end test taking more than ~20 s")


@pytest.fixture(autouse=True)
def _seed():
  import numpy as np
  import tensorflow as tf
  np.random.seed(0)
  tf.random.set_seed(0)


@pytest.fixture(scope="session")
def tiny_corpus():
  """Path of the bundled LJSpeech-layout corpus (tests/data/ljspeech_tiny)."""
  if not (TINY_CORPUS / "metadata.csv").exists():
    pytest.fail(f"tiny corpus missing at {TINY_CORPUS}; run tests/data/make_tiny_corpus.sh")
  return TINY_CORPUS


@pytest.fixture(scope="session")
def tiny_prepared(tiny_corpus, tmp_path_factory):
  """The tiny corpus prepared once per session (hifigan mel convention, 1 worker)."""
  from tfspeech.data.prepare import prepare_corpus
  prepared = str(tmp_path_factory.mktemp("tiny_prepared"))
  prepare_corpus(tiny_corpus, prepared, workers=1, progress=False)
  return prepared


@pytest.fixture(scope="session")
def tiny_grad_tts_run(tiny_prepared, tmp_path_factory):
  """A tiny grad_tts run trained for 2 steps, restored with `load_run` (its speech is noise)."""
  import tensorflow as tf
  from tfspeech import training
  previous = tf.config.optimizer.get_experimental_options()
  # Grappler would spend most of this fixture optimising a graph that runs twice.
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  try:
    workdir = str(tmp_path_factory.mktemp("tiny_grad_tts_run"))
    training.train("grad_tts", "tiny", data_dir=tiny_prepared, workdir=workdir,
                   overrides={"batch_size": 4, "max_steps": 2, "eval_every": 0,
                              "summary_every": 0}, progress=False, handle_signals=False)
  finally:
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)})
  return training.load_run(workdir)


@pytest.fixture(scope="session")
def tiny_prepared_pitch(tiny_prepared, tmp_path_factory):
  """`tiny_prepared` with per-frame `pitch` (YIN, Hz) and `energy` (STFT-frame L2 norm) added
  to every record and `stats.pitch` to dataset.json: the layout `tfspeech-prepare --pitch`
  writes (built here until every test machine's prepare has the option)."""
  import json
  import shutil
  import numpy as np
  import tensorflow as tf
  from tfspeech.data import records
  from tfspeech.ops import yin_pitch
  out = tmp_path_factory.mktemp("tiny_prepared_pitch")
  voiced = []
  for path in sorted(pathlib.Path(tiny_prepared).iterdir()):
    if not path.name.endswith(".tfrecord"):
      shutil.copy(path, out / path.name)
      continue
    with tf.io.TFRecordWriter(str(out / path.name)) as writer:
      for serialized in tf.data.TFRecordDataset(str(path)):
        ex = records.parse_example(serialized)
        frames = int(ex["num_frames"])
        audio = ex["audio"]
        f0 = yin_pitch(audio, 22050, 1024, 256, 65.0, 800.0)[0].numpy()
        magnitude = tf.abs(tf.signal.stft(audio, 1024, 256, pad_end=True))
        energy = tf.norm(magnitude, axis=-1).numpy()
        f0 = np.pad(f0, (0, max(frames - len(f0), 0)))[:frames]
        energy = np.pad(energy, (0, max(frames - len(energy), 0)))[:frames]
        voiced.append(f0[f0 > 0])
        writer.write(records.serialize_example(
            ex["id"].numpy().decode(), ex["text"].numpy().decode(), ex["text_ids"].numpy(),
            (audio.numpy() * 32768).round().astype(np.int16), ex["mel"].numpy(),
            speaker=int(ex["speaker"]), pitch=f0, energy=energy))
  voiced = np.concatenate(voiced)
  info = json.loads((out / "dataset.json").read_text())
  info["stats"] = {"pitch": {"mean": float(voiced.mean()), "std": float(voiced.std())}}
  (out / "dataset.json").write_text(json.dumps(info, indent=1))
  return str(out)


@pytest.fixture(scope="session")
def tiny_fastpitch_run(tiny_prepared_pitch, tmp_path_factory):
  """A tiny fastpitch run trained for 30 steps (losses logged every 5).

  Returns a dict: "workdir", "result" (the `train` result) and "train_fn" (the traced train
  step, for graph checks).
  """
  import tensorflow as tf
  from tfspeech import training
  from tfspeech.training import trainer as trainer_lib
  captured = []
  original = trainer_lib.Trainer.train_step_fn

  def capture(self, element_spec):
    fn = original(self, element_spec)
    captured.append(fn)
    return fn
  previous = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  trainer_lib.Trainer.train_step_fn = capture
  try:
    workdir = str(tmp_path_factory.mktemp("tiny_fastpitch_run"))
    result = training.train(
        "fastpitch", "tiny", data_dir=tiny_prepared_pitch, workdir=workdir,
        overrides={"batch_size": 8, "max_steps": 30, "log_every": 5, "eval_every": 0,
                   "summary_every": 0, "checkpoint_every": 1000},
        progress=False, handle_signals=False)
  finally:
    trainer_lib.Trainer.train_step_fn = original
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)})
  return {"workdir": workdir, "result": result, "train_fn": captured[0]}

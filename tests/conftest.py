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


@pytest.fixture
def fast_graphs():
  """Skips Grappler during the test: the first call of a train step otherwise spends most
  of a short test optimising a graph that runs a few times. Results stay within float noise
  (no op fusion), and the runs a test compares are all made without it."""
  from tfspeech.testing import grappler_disabled
  with grappler_disabled():
    yield


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
  from tfspeech.models import registry
  previous = tf.config.optimizer.get_experimental_options()
  # Grappler would spend most of this fixture optimising a graph that runs twice.
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  try:
    workdir = str(tmp_path_factory.mktemp("tiny_grad_tts_run"))
    training.train("grad_tts", "tiny", tasks=registry.get, data_dir=tiny_prepared, workdir=workdir,
                   overrides={"batch_size": 4, "max_steps": 2, "eval_every": 0,
                              "summary_every": 0}, progress=False, handle_signals=False)
  finally:
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)})
  return training.load_run(workdir, tasks=registry.get)


@pytest.fixture(scope="session")
def tiny_prepared_pitch(tiny_corpus, tmp_path_factory):
  """The tiny corpus prepared with pitch and energy per frame (`tfspeech-prepare --pitch`)."""
  from tfspeech.data.prepare import prepare_corpus
  prepared = str(tmp_path_factory.mktemp("tiny_prepared_pitch"))
  prepare_corpus(tiny_corpus, prepared, workers=1, progress=False, pitch=True)
  return prepared


@pytest.fixture(scope="session")
def tiny_fastpitch_run(tiny_prepared_pitch, tmp_path_factory):
  """A tiny fastpitch run trained for 30 steps (losses logged every 5).

  Returns a dict: "workdir", "result" (the `train` result) and "train_fn" (the traced train
  step, for graph checks).
  """
  from tfspeech import training
  from tfspeech.models import registry
  from tfspeech.testing import captured_train_functions, grappler_disabled
  with grappler_disabled(), captured_train_functions() as captured:
    workdir = str(tmp_path_factory.mktemp("tiny_fastpitch_run"))
    result = training.train(
        "fastpitch", "tiny", tasks=registry.get, data_dir=tiny_prepared_pitch, workdir=workdir,
        overrides={"batch_size": 8, "max_steps": 30, "log_every": 5, "eval_every": 0,
                   "summary_every": 0, "checkpoint_every": 1000},
        progress=False, handle_signals=False)
  return {"workdir": workdir, "result": result, "train_fn": captured[0]}

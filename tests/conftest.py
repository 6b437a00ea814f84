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

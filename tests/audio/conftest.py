"""Fixtures for the audio tests: real speech from espeak-ng, read by soundfile."""
import shutil
import subprocess

import numpy as np
import pytest

SENTENCES = (
    "Printing, in the only sense with which we are at present concerned.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, sixty six times.",
    "How much wood would a woodchuck chuck?",
    "A large fawn jumped quickly over white zinc boxes.",
    "Seven silent statues stood beneath the arch at midnight.",
    "Is this the real life, or is this just fantasy?",
    "Numbers like three hundred and twelve are read aloud.",
)


@pytest.fixture(scope="session")
def speech_wavs(tmp_path_factory):
  """Paths of espeak-ng utterances (22050 Hz, 16-bit mono WAV)."""
  if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
  folder = tmp_path_factory.mktemp("espeak")
  paths = []
  for i, sentence in enumerate(SENTENCES):
    path = folder / f"utt{i}.wav"
    subprocess.run(["espeak-ng", "-w", str(path), sentence], check=True, capture_output=True)
    paths.append(path)
  return paths


@pytest.fixture(scope="session")
def speech(speech_wavs):
  """List of float32 `[samples]` arrays at 22050 Hz, as soundfile reads them."""
  import soundfile
  utterances = []
  for path in speech_wavs:
    audio, rate = soundfile.read(str(path), dtype="float32")
    assert rate == 22050, f"{path}: espeak-ng wrote {rate} Hz, tests assume 22050"
    utterances.append(audio)
  return utterances


@pytest.fixture(scope="session")
def test_signals(speech):
  """Speech plus noise and tones: dict name -> float32 `[samples]` at 22050 Hz."""
  rng = np.random.default_rng(1234)
  t = np.arange(22050) / 22050.0
  signals = {f"speech{i}": audio for i, audio in enumerate(speech)}
  signals["white_noise"] = (0.1 * rng.standard_normal(20000)).astype(np.float32)
  signals["tones"] = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150.5 * t)
                      ).astype(np.float32)
  signals["chirp_quiet"] = (1e-3 * np.sin(2 * np.pi * (100 + 3000 * t) * t)).astype(np.float32)
  return signals

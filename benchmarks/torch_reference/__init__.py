"""PyTorch transcriptions of the reference models, the baselines of the train/infer benchmarks.

- `grad_tts`: huawei-noah/Speech-Backbones Grad-TTS (model/text_encoder.py, diffusion.py,
  tts.py, utils.py, base.py; params.py; the step of train.py).
- `hifigan`: jik876/hifi-gan (models.py, meldataset.py `mel_spectrogram`, the step of train.py).
- `tacotron2`: NVIDIA/tacotron2 (model.py, layers.py, loss_function.py; the step of train.py).
- `dctts`: Kyubyong/dc_tts (modules.py, networks.py; the losses and step of train.py; the
  forcibly incremental decoding of synthesize.py), with tfspeech's conv-type / alpha / norm options.

Both are compact re-writings of the reference code (same modules, same parameter counts, same
operations in the same order), built from tfspeech's config dataclasses so that a benchmark
compares equal models. They are benchmark baselines, not part of the tfspeech package, and need
`torch` (optional: `available()` says whether it imports).
"""

import importlib.util
import os
import sys

# torch's CPU wheels use GNU OpenMP, whose threads spin-wait at every barrier by default. On a
# shared, oversubscribed machine (the 2-core CI box under load) that made the references 10-40x
# slower with the default 2 threads (tiny Grad-TTS synthesis: 8-40 s against 1.1 s passive,
# 1.0 s with one thread), which would measure the scheduler, not the model. Passive waiting
# keeps torch on all cores. It must be set before torch is first imported; an explicit
# OMP_WAIT_POLICY in the environment wins. `thread_settings()` records what was in force.
TORCH_IMPORTED_BEFORE_POLICY = "torch" in sys.modules
if not TORCH_IMPORTED_BEFORE_POLICY:
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# glibc serves each allocation above its mmap threshold (at most 32 MiB) with fresh pages, which
# fault in on every use: a PyTorch model whose activations exceed it pays that on every call
# (HiFi-GAN V3 at batch 16 on a 2-core Xeon: 2.37 s per call in a fresh process, 1.03 s with
# these settings; TensorFlow's times did not change). glibc reads them at process start, so
# `benchmarks.run` sets them for the process of each case (an explicit value in the
# environment wins), and `thread_settings()` records them.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 40), "MALLOC_TRIM_THRESHOLD_": str(2 ** 40)}

TORCH_PIN = "torch==2.13.0"
INSTALL_HINT = (f"pip install {TORCH_PIN} --index-url https://download.pytorch.org/whl/cpu "
                "(or the CUDA build for --device=gpu)")


def available() -> bool:
  """Whether `torch` can be imported (without importing it)."""
  return importlib.util.find_spec("torch") is not None


def thread_settings() -> dict:
  """Threads each library uses: both are left at their defaults (all cores).

  Returns:
    dict with `torch_num_threads`, `torch_num_interop_threads`, `omp_wait_policy` (when
    torch imports; "default (torch imported first)" when this module could not set it) and
    TF's `tf_intra_op_threads`, `tf_inter_op_threads` (0 = TF's default, every core), and
    `glibc_malloc`: the `ALLOCATOR_ENV` values in force.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  settings = {"tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
  if available():
    import torch  # pylint: disable=import-outside-toplevel
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    if TORCH_IMPORTED_BEFORE_POLICY and policy == "default":
      policy = "default (torch imported first)"
    settings.update(torch_num_threads=torch.get_num_threads(),
                    torch_num_interop_threads=torch.get_num_interop_threads(),
                    omp_wait_policy=policy)
  settings["glibc_malloc"] = {name: os.environ.get(name, "default") for name in ALLOCATOR_ENV}
  return settings

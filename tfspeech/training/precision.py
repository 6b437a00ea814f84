"""Compute precisions: the Keras dtype policy that models are built under.

Training picks a policy with `TrainConfig.mixed_precision`; inference picks a precision per
run (`load_run(..., precision=...)`): "float32", or "bfloat16" where a task lists it in its
`serving_precisions` (its inference is written and tested for a bfloat16 compute dtype).
"bfloat16" builds layers under Keras's "mixed_bfloat16" policy, which keeps every variable
float32 (a float32 checkpoint restores as is) and computes in bfloat16: about twice
float32's convolution and matmul throughput on CPUs with AVX512-BF16 or AMX and on NVIDIA
Ampere or newer; elsewhere it is emulated and slower than float32.
"""

import contextlib

import keras
import tensorflow as tf
from absl import logging

FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRECISIONS = (FLOAT32, BFLOAT16)
_POLICIES = {FLOAT32: "float32", BFLOAT16: "mixed_bfloat16"}


@contextlib.contextmanager
def dtype_policy(name: str):
  """Temporarily sets the Keras global dtype policy ("none" = float32)."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32" if name == "none" else name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def precision_policy(precision: str):
  """Context in which Keras layers (modules, serving objects) are built for `precision`."""
  return dtype_policy(_POLICIES[precision])


def task_precisions(task_class) -> tuple:
  """The precisions a task's serving object supports (`serving_precisions`; float32 always)."""
  return tuple(getattr(task_class, "serving_precisions", (FLOAT32,)))


def check_precision(task_class, precision: str, flag: str = "precision") -> None:
  """Raises ValueError (naming `--flag`) unless the task serves at `precision`."""
  if precision not in PRECISIONS:
    raise ValueError(f"--{flag}={precision}: must be one of {', '.join(PRECISIONS)}")
  supported = task_precisions(task_class)
  if precision not in supported:
    name = getattr(task_class, "name", None) or task_class.__name__
    raise ValueError(f"--{flag}={precision}: model {name!r} runs in "
                     f"{' or '.join(supported)} only")


def task_training_policies(task_class) -> tuple:
  """The `TrainConfig.mixed_precision` values a task trains under: "none" (float32) always,
  and the mixed policies it lists in `mixed_precisions`."""
  return ("none",) + tuple(getattr(task_class, "mixed_precisions", ()))


def check_mixed_precision(task_class, policy: str) -> None:
  """Raises ValueError unless the task trains under `TrainConfig.mixed_precision=policy`
  (`task_training_policies`). Warns when a policy would run emulated on this machine.
  """
  supported = task_training_policies(task_class)
  if policy not in supported:
    name = getattr(task_class, "name", None) or task_class.__name__
    raise ValueError(f"--override=mixed_precision={policy}: model {name!r} trains with "
                     f"mixed_precision {' or '.join(supported)} only; drop the override")
  if not tf.config.list_logical_devices("GPU"):
    if policy == "mixed_float16":
      logging.warning("mixed_precision=mixed_float16 without a GPU: float16 is emulated on "
                      "CPUs (slower than float32) and their float16 kernels lack some ops "
                      "(dilated convolution gradients); use mixed_bfloat16 or none here")
    elif policy == "mixed_bfloat16":
      warn_if_emulated(BFLOAT16)


def cpu_has_native_bfloat16() -> bool:
  """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX; Linux flags).

  True when unknown (no /proc/cpuinfo), so that only a known miss is reported.
  """
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = f.read()
  except OSError:
    return True
  return "avx512_bf16" in flags or "amx_bf16" in flags


def warn_if_emulated(precision: str) -> None:
  """Logs a warning when bfloat16 would run emulated (CPU-only, no native bfloat16)."""
  if precision == BFLOAT16 and not tf.config.list_logical_devices("GPU") \
      and not cpu_has_native_bfloat16():
    logging.warning("precision bfloat16: this CPU has no avx512_bf16/amx_bf16, so bfloat16 "
                    "is emulated and likely slower than float32; use float32 here")

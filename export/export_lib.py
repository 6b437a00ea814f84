"""`tfspeech-export` as a function: trained workdirs → SavedModel, TFLite or TFJS files.

  from tfspeech.export import export_lib
  paths = export_lib.export_workdir("runs/gradtts", "saved_model", "exported/tts",
                                    vocoder="runs/hifigan")

`workdir` is a Grad-TTS run (text_to_mel; with `vocoder` also mel_to_audio and the
end-to-end text_to_audio) or a HiFi-GAN run (mel_to_audio).
"""

import os
from typing import Dict, Optional

FORMATS = ("saved_model", "tflite", "tfjs")
PRECISIONS = ("float32", "float16", "dynamic_range")


def check_options(fmt: str, out: str, n_timesteps: int = 10, precision: str = "float32",
                  select_tf_ops: bool = False):
  """Raises ValueError for options that do not go together, before any model is loaded."""
  if fmt not in FORMATS:
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
  if precision not in PRECISIONS:
    raise ValueError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")
  if n_timesteps < 1:
    raise ValueError("--n_timesteps must be >= 1")
  if os.path.isdir(out) and os.listdir(out):
    raise ValueError(f"--out={out} is not empty; choose a new folder")
  if fmt == "saved_model" and (precision != "float32" or select_tf_ops):
    raise ValueError("--precision and --select_tf_ops apply to --format=tflite/tfjs; a "
                     "SavedModel keeps float32 weights")
  if fmt == "tfjs" and select_tf_ops:
    raise ValueError("--select_tf_ops applies to --format=tflite")


def load_runs(workdir: str, vocoder: Optional[str] = None, checkpoint: Optional[str] = None):
  """(acoustic_run or None, vocoder_run or None) for a workdir and an optional vocoder workdir."""
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  # Register the tasks load_run needs.
  import tfspeech.models.grad_tts  # pylint: disable=import-outside-toplevel,unused-import
  import tfspeech.models.hifigan  # pylint: disable=import-outside-toplevel,unused-import
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  run = training.load_run(workdir, checkpoint)
  if synthesize_lib.ACOUSTIC_MODULE in run.modules:
    return run, (training.load_run(vocoder) if vocoder else None)
  if synthesize_lib.VOCODER_MODULE in run.modules:
    if vocoder:
      raise ValueError(f"--workdir={workdir} is already a vocoder run; drop --vocoder")
    return None, run
  raise ValueError(f"--workdir={workdir}: run of model {run.config.model!r} has neither a "
                   f"Grad-TTS nor a HiFi-GAN generator module (it has {sorted(run.modules)})")


def export_workdir(workdir: str, fmt: str, out: str, vocoder: Optional[str] = None,
                   checkpoint: Optional[str] = None, n_timesteps: int = 10,
                   precision: str = "float32", select_tf_ops: bool = False) -> Dict[str, str]:
  """Exports a trained run (and optional vocoder run) to `out`.

  Args:
    workdir: a grad_tts or hifigan run folder.
    fmt: "saved_model", "tflite" or "tfjs".
    out: output folder (must be empty or absent).
    vocoder: a hifigan run folder for a grad_tts `workdir` (adds the audio graphs).
    checkpoint: checkpoint prefix of `workdir`, or "best" (default: the newest).
    n_timesteps: Grad-TTS reverse-diffusion steps fixed in the graphs.
    precision: weight precision for tflite/tfjs.
    select_tf_ops: TFLite: allow TF (Flex) ops.

  Returns:
    {name: written path}.
  """
  check_options(fmt, out, n_timesteps, precision, select_tf_ops)
  acoustic_run, vocoder_run = load_runs(workdir, vocoder, checkpoint)
  if fmt == "saved_model":
    from tfspeech.export import saved_model  # pylint: disable=import-outside-toplevel
    return {"saved_model": saved_model.export_saved_model(out, acoustic_run, vocoder_run,
                                                          n_timesteps)}
  if fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    return tflite.export_run(acoustic_run, vocoder_run, out, n_timesteps, precision,
                             select_tf_ops)
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  return tfjs.export_run(acoustic_run, vocoder_run, out, n_timesteps, precision)

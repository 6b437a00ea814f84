"""`tfspeech-export` as a function: trained workdirs → SavedModel, TFLite or TFJS files.

  from tfspeech.export import export_lib
  paths = export_lib.export_workdir("runs/tts", "saved_model", "exported/tts",
                                    vocoder="runs/vocoder", controls={"n_timesteps": 10},
                                    vocoder_controls={...})

`workdir` is a run of any acoustic model (text_to_mel; with `vocoder` also mel_to_audio and
the end-to-end text_to_audio) or of any vocoder (mel_to_audio): the role comes from the
run's task (`tfspeech.models.serving`). `stream=True` (`--stream`) adds the streaming
vocoder graph mel_chunk_to_audio to every runtime (`export.inference_graphs`).
"""

import contextlib
import os
import shutil
import tempfile
from typing import Dict, Mapping, Optional

FORMATS = ("saved_model", "tflite", "tfjs")
PRECISIONS = ("float32", "float16", "dynamic_range")


def check_options(fmt: str, out: str, precision: str = "float32", select_tf_ops: bool = False,
                  fixed_shapes: Optional[str] = None) -> Optional[Dict[str, int]]:
  """Raises ValueError for options that do not go together, before any model is loaded.

  Returns:
    `fixed_shapes` parsed ({"tokens": T, "frames": F}), or None.
  """
  if fmt not in FORMATS:
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
  if precision not in PRECISIONS:
    raise ValueError(f"--precision={precision!r} is not one of {', '.join(PRECISIONS)}")
  if os.path.isdir(out) and os.listdir(out):
    raise ValueError(f"--out={out} is not empty; choose a new folder")
  if fmt == "saved_model" and (precision != "float32" or select_tf_ops):
    raise ValueError("--precision and --select_tf_ops apply to --format=tflite/tfjs; a "
                     "SavedModel keeps float32 weights")
  if fmt == "tfjs" and select_tf_ops:
    raise ValueError("--select_tf_ops applies to --format=tflite")
  if fixed_shapes is None:
    return None
  if fmt != "tflite":
    raise ValueError("--fixed_shapes applies to --format=tflite (for LiteRT.js); SavedModel "
                     "and TFJS keep dynamic batch and lengths")
  from tfspeech.export import inference_graphs  # pylint: disable=import-outside-toplevel
  return inference_graphs.parse_fixed_shapes(fixed_shapes)


def load_runs(workdir: str, vocoder: Optional[str] = None, checkpoint: Optional[str] = None):
  """(acoustic_run or None, vocoder_run or None) for a workdir and an optional vocoder workdir.

  Raises:
    ValueError: `workdir` serves as neither, or a vocoder `workdir` with `vocoder` given.
  """
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.models import serving  # pylint: disable=import-outside-toplevel
  run = training.load_run(workdir, checkpoint, tasks=registry.get)
  role = serving.task_role(type(run.task))
  if role == serving.ACOUSTIC:
    return run, (training.load_run(vocoder, tasks=registry.get) if vocoder else None)
  if role == serving.VOCODER:
    if vocoder:
      raise ValueError(f"--workdir={workdir} is already a vocoder run; drop --vocoder")
    return None, run
  raise ValueError(f"--workdir={workdir}: model {run.config.model!r} serves neither as an "
                   "acoustic model nor as a vocoder; pass a run of one that does")


def export_workdir(workdir: str, fmt: str, out: str, vocoder: Optional[str] = None,
                   checkpoint: Optional[str] = None,
                   controls: Optional[Mapping[str, object]] = None,
                   precision: str = "float32", select_tf_ops: bool = False,
                   vocoder_controls: Optional[Mapping[str, object]] = None,
                   stream: bool = False,
                   fixed_shapes: Optional[str] = None) -> Dict[str, str]:
  """Exports a trained run (and optional vocoder run) to `out`.

  Args:
    workdir: an acoustic-model or vocoder run folder.
    fmt: "saved_model", "tflite" or "tfjs".
    out: output folder (must be empty or absent).
    vocoder: a vocoder run folder for an acoustic `workdir` (adds the audio graphs).
    checkpoint: checkpoint prefix of `workdir`, or "best" (default: the newest).
    controls: the control values of `workdir`'s model (acoustic model or vocoder): static
      ones fixed in the graphs (or "runtime" where the control allows it: its stand-in is
      then an input, e.g. DiffWave's steps → vocoder_betas), the others recorded in
      metadata.json as the recommended inputs.
    precision: weight precision for tflite/tfjs.
    select_tf_ops: TFLite: allow TF (Flex) ops.
    vocoder_controls: the control values of the `vocoder` run's model, likewise.
    stream: also mel_chunk_to_audio (needs a vocoder run; its context in metadata.json's
      vocoder.context_frames).
    fixed_shapes: TFLite: "tokens=T,frames=F", every graph at batch 1 with static inputs
      and outputs (LiteRT.js; see tfspeech.export.tflite).

  Returns:
    {name: written path}.

  A local `out` is written whole or not at all: the export goes into a new sibling folder
  `OUT.partial-*`, renamed to `out` once complete and removed if the export fails or is
  interrupted (a killed process leaves only that folder), so a half-written export is never
  found at `out`, where a runtime would fail on it and a rerun refuse the non-empty folder.

  Raises:
    ValueError: bad options or runs (`stream` without a vocoder, or a vocoder that does not
      declare its streaming context).
  """
  sizes = check_options(fmt, out, precision, select_tf_ops, fixed_shapes)
  with _staged(out) as staging:
    paths = _export(workdir, fmt, staging, vocoder, checkpoint, controls, precision,
                    select_tf_ops, vocoder_controls, stream, sizes)
  final = out if "://" in out else os.path.normpath(out)
  return {name: final + path[len(staging):] if path.startswith(staging) else path
          for name, path in paths.items()}


@contextlib.contextmanager
def _staged(out: str):
  """Yields the folder to write `out` into: a new sibling, renamed to `out` on success.

  URLs (gs://…), symbolic links and folders whose parent cannot be written are written in
  place. A complete export that cannot be moved to `out` stays in the sibling, named in the
  error.
  """
  if "://" in out or os.path.islink(out):
    yield out
    return
  out = os.path.normpath(out)
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  if not os.access(parent, os.W_OK | os.X_OK):
    yield out
    return
  staging = tempfile.mkdtemp(prefix=os.path.basename(out) + ".partial-", dir=parent)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(staging, 0o777 & ~umask)  # as os.makedirs would have made `out` (mkdtemp: 0700)
  try:
    yield staging
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  try:
    if os.path.isdir(out):
      os.rmdir(out)  # empty when the export started (check_options)
    os.replace(staging, out)
  except OSError as e:
    raise RuntimeError(f"the export is complete in {staging} but could not be moved to {out} "
                       f"({e.strerror}); move it there yourself") from e


def _export(workdir, fmt, out, vocoder, checkpoint, controls, precision, select_tf_ops,
            vocoder_controls, stream, sizes) -> Dict[str, str]:
  """`export_workdir` into `out` (its staging folder), options checked."""
  if stream and sizes:
    raise ValueError("--stream and --fixed_shapes do not combine yet: LiteRT.js's fixed-shape "
                     "graphs have no streaming form; export them separately")
  acoustic_run, vocoder_run = load_runs(workdir, vocoder, checkpoint)
  if acoustic_run is None:
    # --workdir is the vocoder: its controls are --control's.
    if vocoder_controls:
      raise ValueError(f"--vocoder_control: {workdir} is itself the vocoder run; give its "
                       "controls as --control")
    controls, vocoder_controls = None, controls
  if stream:
    return _export_graphs(fmt, out, acoustic_run, vocoder_run, controls, vocoder_controls,
                          precision, select_tf_ops)
  if fmt == "saved_model":
    from tfspeech.export import saved_model  # pylint: disable=import-outside-toplevel
    return {"saved_model": saved_model.export_saved_model(out, acoustic_run, vocoder_run,
                                                          controls, vocoder_controls)}
  if fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    return tflite.export_run(acoustic_run, vocoder_run, out, controls, precision,
                             select_tf_ops, vocoder_controls=vocoder_controls,
                             fixed_shapes=sizes)
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  return tfjs.export_run(acoustic_run, vocoder_run, out, controls, precision,
                         vocoder_controls=vocoder_controls)


def _export_graphs(fmt: str, out: str, acoustic_run, vocoder_run, controls, vocoder_controls,
                   precision: str, select_tf_ops: bool) -> Dict[str, str]:
  """Every graph the runs allow plus mel_chunk_to_audio, in `fmt`: what each runtime's
  `export_run` writes, from graphs built here (its `graphs_for_runs` has no `stream`)."""
  from tfspeech.export import inference_graphs  # pylint: disable=import-outside-toplevel
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run, controls,
                                            vocoder_controls=vocoder_controls, stream=True)
  if fmt == "saved_model":
    from tfspeech.export import saved_model  # pylint: disable=import-outside-toplevel
    return {"saved_model": saved_model.save_graphs(graphs, out, acoustic_run, vocoder_run)}
  if fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    paths = tflite.export_graphs(graphs, out, precision, select_tf_ops)
    metadata = inference_graphs.export_metadata(
        fmt, graphs, {name: os.path.basename(p) for name, p in paths.items()}, acoustic_run,
        vocoder_run, precision, extra={"select_tf_ops": select_tf_ops})
    for name, path in paths.items():
      metadata["graphs"][name]["output_tensors"] = tflite.output_tensors(path)
  else:
    from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
    paths = tfjs.export_graphs(graphs, out, precision)
    metadata = inference_graphs.export_metadata(
        fmt, graphs, {name: f"{name}/model.json" for name in graphs}, acoustic_run,
        vocoder_run, precision)
  paths["metadata"] = inference_graphs.write_metadata(metadata, out)
  return paths

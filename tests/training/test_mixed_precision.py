"""Mixed-precision training of the real models: which tasks train under which policy.

A task lists the `TrainConfig.mixed_precision` policies its train step supports in
`mixed_precisions`; `train` refuses the others before writing anything. Each listed model's
first step under "mixed_bfloat16" is compared with float32's on the same weights and batch:
bfloat16 convolutions and matmuls in the traced step, float32 variables in the checkpoint,
losses within bfloat16's rounding of float32's.
"""

import glob
import os
import typing

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import testing
from tfspeech import training
from tfspeech.models import registry
from tfspeech.training import config as config_lib

_STEP = {"batch_size": 2, "max_steps": 1, "log_every": 1, "eval_every": 0,
         "summary_every": 0, "checkpoint_every": 1000}
# The losses compared per model (the others follow from them or are logged measures).
_COMPARED = {
    "fastpitch": ("mel_loss", "duration_loss", "pitch_loss", "attn_loss", "loss"),
    "hifigan": ("d_loss", "g_adv", "g_feature_matching", "g_mel"),
    "diffwave": ("loss",),
}

# Per-model overrides of the compared runs. FastPitch without dropout: Keras draws dropout
# masks in the compute dtype, so the two policies' masks differ (and move a tiny predictor's
# output by 10%).
_OVERRIDES = {
    "fastpitch": {f"p_{part}": 0.0 for part in (
        "in_fft_dropout", "in_fft_dropatt", "out_fft_dropout", "out_fft_dropatt",
        "dur_predictor_dropout", "pitch_predictor_dropout", "energy_predictor_dropout")},
    "hifigan": {"mpd_periods": (2,)},  # one period: a smaller graph to trace, same code
}


def _train(model, data, workdir, policy, **overrides):
  overrides = dict(_STEP, mixed_precision=policy, **_OVERRIDES.get(model, {}), **overrides)
  with testing.captured_train_functions() as captured:
    result = training.train(model, "tiny", tasks=registry.get, data_dir=data, workdir=workdir,
                            overrides=overrides, progress=False, handle_signals=False)
  return result, captured[0]


def _check_mixed_run(result, train_fn):
  """bfloat16 convolutions/matmuls in the traced step; float32 variables in the checkpoint."""
  concrete = train_fn.get_concrete_function()
  testing.assert_no_python_ops(concrete)
  compute = testing.op_dtypes(concrete, ("Conv2D", "MatMul", "BatchMatMulV2"))
  assert "bfloat16" in compute, compute
  # Keras's mixed policy keeps the variables float32: the checkpoint is a float32 one.
  reader = tf.train.load_checkpoint(result.checkpoint)
  dtypes = {reader.get_variable_to_dtype_map()[name] for name in
            reader.get_variable_to_shape_map() if "/.ATTRIBUTES/VARIABLE_VALUE" in name
            and name.startswith("modules/")}
  assert dtypes == {tf.float32}, dtypes


def _assert_close(model, want, got, names):
  for name in names:
    assert np.isfinite(got[name]), (name, got[name])
    # bfloat16 keeps 8 bits of mantissa (relative rounding 0.4% per op).
    assert got[name] == pytest.approx(want[name], rel=0.03, abs=1e-3), (
        model, name, got[name], want[name])


@pytest.mark.parametrize("model", sorted(_COMPARED))
def test_mixed_bfloat16_first_step_follows_float32(model, tiny_prepared_pitch, tmp_path,
                                                   fast_graphs):
  exact, _ = _train(model, tiny_prepared_pitch, str(tmp_path / "float32"), "none")
  mixed, train_fn = _train(model, tiny_prepared_pitch, str(tmp_path / "bfloat16"),
                           "mixed_bfloat16")
  _check_mixed_run(mixed, train_fn)
  _assert_close(model, exact.losses, mixed.losses, _COMPARED[model])


def test_grad_tts_mixed_bfloat16_follows_the_float32_session_run(tiny_grad_tts_run,
                                                                tiny_prepared, tmp_path,
                                                                fast_graphs):
  # The session's float32 run (2 steps at batch 4) is the reference: its last losses are
  # logged; the same run under mixed_bfloat16 (its text encoder stays float32, see GradTTS).
  workdir = os.path.dirname(os.path.dirname(tiny_grad_tts_run.checkpoint))
  logged = testing.summary_events(workdir, "train")
  names = ("duration_loss", "prior_loss", "diffusion_loss")
  exact = {name: float(logged[f"losses/{name}"][2]) for name in names}
  mixed, train_fn = _train("grad_tts", tiny_prepared, str(tmp_path / "bfloat16"),
                           "mixed_bfloat16", batch_size=4, max_steps=2, log_every=100)
  assert mixed.final_step == 2
  _check_mixed_run(mixed, train_fn)
  _assert_close("grad_tts", exact, mixed.losses, names)


def test_unsupported_policy_is_refused_before_anything_is_written(tiny_prepared_pitch,
                                                                 tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=r"mixed_precision=mixed_bfloat16: model 'tacotron2' "
                                       r"trains with mixed_precision none only"):
    training.train("tacotron2", "tiny", tasks=registry.get, data_dir=tiny_prepared_pitch,
                   workdir=str(workdir), overrides={"mixed_precision": "mixed_bfloat16"},
                   progress=False, handle_signals=False)
  assert not glob.glob(os.path.join(workdir, "*.json")), os.listdir(workdir)
  assert not os.path.exists(workdir / "checkpoints")


def test_every_listed_policy_is_a_training_policy():
  policies = set(typing.get_args(config_lib.MixedPrecision)) - {"none"}
  for name in registry.names():
    listed = set(registry.get(name).mixed_precisions)
    assert listed <= policies, (name, listed)
  assert config_lib.TrainConfig().mixed_precision == "none"
  # The models whose train steps are written for mixed precision (the rest are refused).
  assert {name for name in registry.names() if registry.get(name).mixed_precisions} == {
      "diffwave", "fastpitch", "grad_tts", "hifigan", "toy"}

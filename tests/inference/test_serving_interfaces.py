"""The serving interfaces: control declarations and checks, and the built-in models' hooks."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.inference import serving_runs
from tfspeech.models import registry, serving


def test_control_converts_and_checks_values():
  steps = serving.Control("steps", "int32", 10, "loop count", static=True, minimum=1)
  scale = serving.Control("scale", "float32", 1.0, "a scale", exclusive_minimum=0.0)
  assert steps.convert("12") == 12 and steps.convert(3) == 3
  assert scale.convert("0.5") == 0.5 and isinstance(scale.convert(2), float)
  with pytest.raises(ValueError, match=r"--steps=0: must be >= 1 \(loop count\)"):
    steps.convert(0, "--steps")
  with pytest.raises(ValueError, match=r"control steps=2.5: expected an integer >= 1"):
    steps.convert(2.5)
  with pytest.raises(ValueError, match=r"scale=0: must be > 0.0"):
    scale.convert("0")
  with pytest.raises(ValueError, match="expected a number > 0.0"):
    scale.convert("fast")
  with pytest.raises(ValueError, match="dtype"):
    serving.Control("x", "float64", 1.0, "bad dtype")


def test_resolve_controls_fills_defaults_and_names_unknown_ones():
  controls = (serving.Control("a", "int32", 2, "first"),
              serving.Control("b", "float32", 0.5, "second"))
  assert serving.resolve_controls(controls, {"b": "1.5"}) == {"a": 2, "b": 1.5}
  with pytest.raises(ValueError, match=r"unknown control c; this model's controls: "
                                       r"a \(int32, default 2\): first; b "):
    serving.resolve_controls(controls, {"c": 1})
  assert serving.parse_control_flags(["a=3", " b = 2 "]) == {"a": "3", "b": "2"}
  for bad, message in ((["a"], "expected NAME=VALUE"), (["a=1", "a=2"], "given twice"),
                       (["=1"], "expected NAME=VALUE")):
    with pytest.raises(ValueError, match=message):
      serving.parse_control_flags(bad)


def test_builtin_tasks_declare_roles_and_controls():
  assert serving.task_role(registry.get("toy")) is None
  assert "grad_tts" in serving_runs.models_with_role(serving.ACOUSTIC)
  assert "hifigan" in serving_runs.models_with_role(serving.VOCODER)
  names = [c.name for c in serving_runs.model_controls("grad_tts")]
  assert names == ["n_timesteps", "temperature", "length_scale"]
  values, sources = serving_runs.resolve_flag_controls(
      "grad_tts", ["temperature=1.2"], {"n_timesteps": 4, "length_scale": None})
  assert values == {"n_timesteps": 4, "temperature": 1.2, "length_scale": 1.0}
  assert sources == {"temperature": "--control=temperature", "n_timesteps": "--n_timesteps"}
  with pytest.raises(ValueError, match="--n_timesteps and --control=n_timesteps"):
    serving_runs.resolve_flag_controls("grad_tts", ["n_timesteps=3"], {"n_timesteps": 4})
  with pytest.raises(ValueError, match="unknown control pace; this model's controls: none"):
    serving_runs.resolve_flag_controls("hifigan", ["pace=1"])


def test_builtin_serving_objects():
  acoustic_task = registry.get("grad_tts")(registry.get("grad_tts").preset("tiny"))
  acoustic = serving.build_serving(acoustic_task, acoustic_task.build_modules(), {})
  assert isinstance(acoustic, serving.AcousticModel) and acoustic.has_ground_truth_aligned
  assert acoustic.n_mels == acoustic.noise_channels == 80
  ids = tf.constant([[1, 2, 3, 0], [4, 5, 6, 7]], tf.int32)
  lengths = tf.constant([3, 4], tf.int32)
  noise = tf.random.stateless_normal([2, 1, 80], [0, 1])  # one frame, repeated
  out = acoustic.synthesize(ids, lengths, noise, n_timesteps=2)
  bound = int(acoustic.frames_bound(ids, lengths))
  assert bound >= int(tf.reduce_max(out["mel_lengths"]))
  np.testing.assert_array_equal(tf.reduce_sum(out["durations"], axis=1), out["mel_lengths"])

  vocoder_task = registry.get("hifigan")(registry.get("hifigan").preset("tiny"))
  vocoder = serving.build_serving(vocoder_task, vocoder_task.build_modules(), {})
  assert isinstance(vocoder, serving.Vocoder) and not vocoder.generator.weight_norm
  assert vocoder.hop_length == 256 and vocoder.receptive_field >= 1
  sound = vocoder.vocode(tf.zeros([2, 3, 80]), tf.constant([3, 1]))
  assert sound["audio"].shape == (2, 3 * 256)
  np.testing.assert_array_equal(sound["audio_lengths"], [768, 256])
  assert not np.any(sound["audio"][1, 256:].numpy())

  with pytest.raises(ValueError, match="serves neither"):
    toy = registry.get("toy")(registry.get("toy").preset("tiny"))
    serving.build_serving(toy, toy.build_modules(), {})


def _op_types(function, *args):
  graph = tf.function(function).get_concrete_function(*args).graph
  return [op.type for op in graph.get_operations()]


def test_grad_tts_in_process_synthesis_is_a_loop_with_the_unrolled_output():
  # Export needs loop-free graphs (one decoder copy per step); tfspeech-synthesize must not
  # trace 50 or 1000 copies for --n_timesteps=50 or 1000.
  task = registry.get("grad_tts")(registry.get("grad_tts").preset("tiny"))
  unrolled = serving.build_serving(task, task.build_modules(), {})
  looped = unrolled.in_process()
  assert looped is unrolled.in_process() and looped.in_process() is looped
  ids = tf.constant([[1, 2, 3, 0], [4, 5, 6, 7]], tf.int32)
  lengths = tf.constant([3, 4], tf.int32)
  noise = tf.random.stateless_normal([2, 64, 80], [0, 1])
  expected = unrolled.synthesize(ids, lengths, noise, n_timesteps=3)
  actual = looped.synthesize(ids, lengths, noise, n_timesteps=3)
  for key in ("mel", "mel_lengths", "durations"):
    np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, err_msg=key)

  def synthesize_with(model, steps):
    return lambda i, n, z: model.synthesize(i, n, z, n_timesteps=steps)["mel"]
  ops_looped = _op_types(synthesize_with(looped, 40), ids, lengths, noise)
  ops_unrolled = _op_types(synthesize_with(unrolled, 2), ids, lengths, noise)
  assert "While" in ops_looped or "StatelessWhile" in ops_looped
  assert not {"While", "StatelessWhile"} & set(ops_unrolled)
  # The unrolled steps call one traced U-Net (an export stores it once, not once per step).
  graph = tf.function(synthesize_with(unrolled, 3)).get_concrete_function(ids, lengths,
                                                                          noise).graph
  calls = [op.get_attr("f").name for op in graph.get_operations()
           if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
  assert len(calls) == 3 and len(set(calls)) == 1 and "score" in calls[0]

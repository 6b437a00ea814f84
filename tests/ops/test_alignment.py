import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfspeech import testing
from tfspeech.ops import alignment


def reference_maximum_path(value, text_lengths, mel_lengths):
  """NumPy transcription of glow-tts `monotonic_align` (`__init__.maximum_path` + `core.pyx`).

  Loops exactly as the Cython does, in float32, on `value * mask`. Needs every text length >= 1
  (the Cython writes out of bounds otherwise).
  """
  batch, text, mel = value.shape
  mask = ((np.arange(text)[None, :, None] < text_lengths[:, None, None])
          & (np.arange(mel)[None, None, :] < mel_lengths[:, None, None]))
  with np.errstate(invalid="ignore"):  # garbage padding: inf * 0 is nan, as in the reference
    value = (value * mask).astype(np.float32)
  path = np.zeros(value.shape, np.int32)
  max_neg_val = np.float32(-1e9)
  for b in range(batch):
    v, t_x, t_y = value[b], int(text_lengths[b]), int(mel_lengths[b])
    for y in range(t_y):
      for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
        v_cur = max_neg_val if x == y else v[x, y - 1]
        if x == 0:
          v_prev = np.float32(0.0) if y == 0 else max_neg_val
        else:
          v_prev = v[x - 1, y - 1]
        v[x, y] = max(v_cur, v_prev) + v[x, y]
    index = t_x - 1
    for y in range(t_y - 1, -1, -1):
      path[b, index, y] = 1
      if index != 0 and (index == y or v[index, y - 1] < v[index - 1, y - 1]):
        index -= 1
  return path


def reference_generate_path(durations, mel_length):
  """NumPy transcription of glow-tts `commons.generate_path` (cumsum, sequence_mask, diff)."""
  cumulative = np.cumsum(durations, axis=1)
  path = (np.arange(mel_length)[None, None, :] < cumulative[:, :, None]).astype(np.float32)
  return path - np.pad(path, [[0, 0], [1, 0], [0, 0]])[:, :-1]


def reference_regulate_len(encodings, durations, pace, max_length):
  """NumPy transcription of NVIDIA FastPitch `regulate_len`."""
  repeats = (durations.astype(np.float32) / np.float32(pace) + np.float32(0.5)).astype(np.int64)
  lengths = repeats.sum(axis=1)
  out = np.zeros([len(encodings), lengths.max(), encodings.shape[2]], encodings.dtype)
  for b in range(len(encodings)):
    out[b, :lengths[b]] = np.repeat(encodings[b], repeats[b], axis=0)
  if max_length is not None:
    out, lengths = out[:, :max_length], np.minimum(lengths, max_length)
  return out, lengths


def random_case(rng, shape=None, integer=False, mel_at_least_text=False):
  """A padded batch with ragged lengths; padding holds garbage."""
  if shape is None:
    shape = (rng.integers(1, 5), rng.integers(1, 9), rng.integers(1, 15))
  batch, text, mel = shape
  text_lengths = rng.integers(1, text + 1, batch).astype(np.int32)
  if mel_at_least_text:
    mel_lengths = rng.integers(np.minimum(text_lengths, mel), mel + 1).astype(np.int32)
    text_lengths = np.minimum(text_lengths, mel_lengths)
  else:
    mel_lengths = rng.integers(1, mel + 1, batch).astype(np.int32)
  if integer:  # small integers: plenty of exact ties
    value = rng.integers(-2, 3, shape).astype(np.float32)
  else:
    value = rng.normal(size=shape).astype(np.float32)
  padding = ((np.arange(text)[None, :, None] >= text_lengths[:, None, None])
             | (np.arange(mel)[None, None, :] >= mel_lengths[:, None, None]))
  value[padding] = rng.choice([np.nan, np.inf, -np.inf, 1e30], padding.sum())
  return value, text_lengths, mel_lengths


_SIGNATURE = [tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None], tf.int32),
              tf.TensorSpec([None], tf.int32)]


@pytest.fixture(scope="module")
def graph_fns():
  return {
      mode: tf.function(lambda v, t, m, mode=mode: alignment.maximum_path(
          v, t, m, tflite_compatible=mode), input_signature=_SIGNATURE)
      for mode in (False, True)}


def test_maximum_path_matches_reference_on_random_batches(graph_fns):
  rng = np.random.default_rng(1)
  for trial in range(300):
    value, text_lengths, mel_lengths = random_case(rng, integer=trial % 2 == 0)
    expected = reference_maximum_path(value, text_lengths, mel_lengths)
    got = graph_fns[False](value, text_lengths, mel_lengths).numpy()
    np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")


def test_maximum_path_matches_reference_across_frame_blocks(graph_fns):
  # The forward loop runs 16 frames per iteration and the backtrack 8 steps, each with a
  # one-frame remainder loop; these mel sizes cover full blocks, remainders and block edges.
  rng = np.random.default_rng(11)
  xla = tf.function(alignment.maximum_path, jit_compile=True)
  for trial in range(40):
    shape = (rng.integers(1, 5), rng.integers(1, 13), rng.integers(15, 50))
    value, text_lengths, mel_lengths = random_case(rng, shape=shape, integer=trial % 2 == 0)
    expected = reference_maximum_path(value, text_lengths, mel_lengths)
    for mode in (False, True):
      got = graph_fns[mode](value, text_lengths, mel_lengths).numpy()
      np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}, {mode}")
    if trial < 12:  # one padded shape for XLA (a compile per shape)
      value, text_lengths, mel_lengths = random_case(rng, shape=(3, 10, 37),
                                                     integer=trial % 2 == 1)
      np.testing.assert_array_equal(xla(value, text_lengths, mel_lengths).numpy(),
                                    reference_maximum_path(value, text_lengths, mel_lengths),
                                    err_msg=f"xla trial {trial}")


@pytest.mark.parametrize("text_lengths, mel_lengths", [
    ([1], [1]), ([1], [9]), ([6], [6]), ([6, 3], [6, 3]), ([6, 6], [3, 1]), ([5, 2], [4, 9]),
    ([1, 6, 4], [1, 2, 9]),
])
@pytest.mark.parametrize("integer", [False, True])
def test_maximum_path_edge_lengths(graph_fns, text_lengths, mel_lengths, integer):
  # Covers length 1, mel == text and mel < text, where the reference runs no DP at all.
  rng = np.random.default_rng(len(text_lengths) + text_lengths[0] + 10 * mel_lengths[0])
  text_lengths, mel_lengths = np.array(text_lengths, np.int32), np.array(mel_lengths, np.int32)
  shape = (len(text_lengths), 6, 9)
  value = (rng.integers(-1, 2, shape) if integer else rng.normal(size=shape)).astype(np.float32)
  expected = reference_maximum_path(value, text_lengths, mel_lengths)
  for mode in (False, True):
    got = graph_fns[mode](value, text_lengths, mel_lengths).numpy()
    np.testing.assert_array_equal(got, expected)


def test_maximum_path_all_ties_stays_on_earlier_tokens():
  # Every path scores 0; the reference's strict `<` keeps each token as long as possible
  # going backwards, so the last token takes all spare frames.
  got = alignment.maximum_path(tf.zeros([1, 3, 6]), [3], [6]).numpy()[0]
  np.testing.assert_array_equal(got, reference_maximum_path(np.zeros([1, 3, 6]), np.array([3]),
                                                            np.array([6]))[0])
  np.testing.assert_array_equal(got.argmax(axis=0), [0, 1, 2, 2, 2, 2])


def test_maximum_path_below_the_reference_floor_of_minus_1e9():
  # Scores under -1e9 lose to the reference's -1e9 seed; the same constant must be used here.
  # With these sizes and scores about half the trials go below the floor somewhere that
  # changes the path (checked against a -inf floor when writing the test).
  rng = np.random.default_rng(3)
  for _ in range(20):
    _, text_lengths, mel_lengths = random_case(rng, shape=(3, 5, 7), mel_at_least_text=True)
    value = -np.abs(rng.normal(size=(3, 5, 7))).astype(np.float32) * np.float32(1e9)
    np.testing.assert_array_equal(
        alignment.maximum_path(value, text_lengths, mel_lengths).numpy(),
        reference_maximum_path(value, text_lengths, mel_lengths))


def test_maximum_path_padding_content_does_not_matter(graph_fns):
  rng = np.random.default_rng(4)
  for _ in range(20):
    value, text_lengths, mel_lengths = random_case(rng, shape=(3, 7, 11))
    clean = np.where(np.isfinite(value) & (np.abs(value) < 1e29), value, 0.0).astype(np.float32)
    np.testing.assert_array_equal(graph_fns[False](value, text_lengths, mel_lengths).numpy(),
                                  graph_fns[False](clean, text_lengths, mel_lengths).numpy())


def test_maximum_path_properties():
  rng = np.random.default_rng(5)
  value, text_lengths, mel_lengths = random_case(rng, shape=(16, 9, 20))
  path = alignment.maximum_path(value, text_lengths, mel_lengths).numpy()
  for b in range(16):
    t_x, t_y = text_lengths[b], mel_lengths[b]
    assert path[b, t_x:].sum() == 0 and path[b, :, t_y:].sum() == 0, "padding must be 0"
    np.testing.assert_array_equal(path[b, :, :t_y].sum(axis=0), 1)  # one token per frame
    tokens = path[b, :, :t_y].argmax(axis=0)
    assert tokens[-1] == t_x - 1
    assert set(np.diff(tokens)) <= {0, 1}, "monotonic, one token at a time"
    if t_y >= t_x:
      assert tokens[0] == 0
      np.testing.assert_array_equal(path[b, :t_x].sum(axis=1) > 0, True)  # no token skipped
  assert np.isin(path, [0, 1]).all()


def test_maximum_path_zero_lengths_give_empty_paths():
  value = np.ones([3, 4, 5], np.float32)
  path = alignment.maximum_path(value, [0, 2, 3], [4, 0, 5]).numpy()
  assert path[:2].sum() == 0
  np.testing.assert_array_equal(path[2:], reference_maximum_path(value[2:], np.array([3]),
                                                                 np.array([5])))


@pytest.mark.parametrize("shape, lengths", [((2, 0, 5), [0, 0]), ((0, 3, 5), []),
                                            ((2, 3, 0), [1, 1])])
def test_maximum_path_empty_dims(shape, lengths):
  path = alignment.maximum_path(tf.zeros(shape), tf.constant(lengths, tf.int32),
                                tf.constant([5] * len(lengths), tf.int32))
  assert path.shape == shape and not np.any(path.numpy())


def test_maximum_path_dtype_and_no_gradient():
  rng = np.random.default_rng(6)
  value, text_lengths, mel_lengths = random_case(rng, shape=(2, 4, 7), mel_at_least_text=True)
  value64 = tf.constant(np.nan_to_num(value, posinf=0, neginf=0), tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(value64)
    path = alignment.maximum_path(value64, text_lengths, mel_lengths)
    total = tf.reduce_sum(path)
  assert path.dtype == tf.float64
  assert tape.gradient(total, value64) is None
  np.testing.assert_array_equal(
      path.numpy(), reference_maximum_path(value64.numpy(), text_lengths, mel_lengths))


def test_maximum_path_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"log_likelihood.*\[batch, text, mel\]"):
    alignment.maximum_path(tf.zeros([2, 3]), [1, 1], [1, 1])
  with pytest.raises(TypeError, match="text_lengths.*integer"):
    alignment.maximum_path(tf.zeros([1, 2, 3]), [1.0], [3])


def _tflite_model(fn, signature):
  concrete = tf.function(fn, input_signature=signature).get_concrete_function()
  testing.assert_no_python_ops(concrete)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  from ai_edge_litert.interpreter import Interpreter
  return Interpreter(model_content=converter.convert())


def _run_tflite(interpreter, **inputs):
  indices = {d["name"]: d["index"] for d in interpreter.get_input_details()}
  for name, value in inputs.items():
    interpreter.resize_tensor_input(indices[name], np.shape(value), strict=False)
  interpreter.allocate_tensors()
  for name, value in inputs.items():
    interpreter.set_tensor(indices[name], value)
  interpreter.invoke()
  return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def test_maximum_path_identical_in_every_execution_mode(graph_fns):
  rng = np.random.default_rng(7)
  xla = {mode: tf.function(lambda v, t, m, mode=mode: alignment.maximum_path(
      v, t, m, tflite_compatible=mode), jit_compile=True) for mode in (False, True)}
  for mode, fn in graph_fns.items():
    testing.assert_no_python_ops(fn.get_concrete_function())
  lite = _tflite_model(
      lambda value, text_lengths, mel_lengths: alignment.maximum_path(
          value, text_lengths, mel_lengths, tflite_compatible=True), _SIGNATURE)
  for trial in range(16):
    # One padded shape for XLA (a compile per shape); the others get varied shapes.
    fixed = random_case(rng, shape=(3, 6, 10), integer=trial % 2 == 0)
    varied = random_case(rng, integer=trial % 2 == 1)
    for value, text_lengths, mel_lengths in (fixed, varied):
      expected = reference_maximum_path(value, text_lengths, mel_lengths)
      results = {
          "eager": alignment.maximum_path(value, text_lengths, mel_lengths),
          "eager_tflite_compatible": alignment.maximum_path(value, text_lengths, mel_lengths,
                                                            tflite_compatible=True),
          "graph": graph_fns[False](value, text_lengths, mel_lengths),
          "graph_tflite_compatible": graph_fns[True](value, text_lengths, mel_lengths),
          "litert": _run_tflite(lite, value=value, text_lengths=text_lengths,
                                mel_lengths=mel_lengths)[0],
      }
      if value is fixed[0]:
        results.update({f"xla_{mode}": fn(value, text_lengths, mel_lengths)
                        for mode, fn in xla.items()})
      for name, got in results.items():
        np.testing.assert_array_equal(np.asarray(got), expected, err_msg=f"{name}, trial {trial}")


def test_durations_round_trip_through_paths():
  rng = np.random.default_rng(8)
  for _ in range(20):
    value, text_lengths, mel_lengths = random_case(rng, shape=(4, 6, 15), mel_at_least_text=True)
    path = alignment.maximum_path(value, text_lengths, mel_lengths)
    durations = alignment.path_to_durations(path)
    assert durations.dtype == tf.int32
    np.testing.assert_array_equal(durations.numpy().sum(axis=1), mel_lengths)
    np.testing.assert_array_equal(durations.numpy(), path.numpy().sum(axis=2))
    rebuilt = alignment.durations_to_path(durations, mel_length=15)
    np.testing.assert_array_equal(rebuilt.numpy(), path.numpy())


def test_durations_to_path_matches_generate_path():
  durations = np.array([[2, 0, 3, 1], [1, 1, 0, 0], [0, 0, 0, 0]], np.int32)
  for mel_length in (None, 4, 9):
    got = alignment.durations_to_path(durations, mel_length=mel_length).numpy()
    np.testing.assert_array_equal(got, reference_generate_path(durations, mel_length or 6))


@pytest.mark.parametrize("pace", [1.0, 0.7, 1.3, 2.0])
@pytest.mark.parametrize("max_length", [None, 1, 7, 1000])
def test_length_regulate_matches_fastpitch(pace, max_length):
  rng = np.random.default_rng(9)
  encodings = rng.normal(size=(3, 5, 4)).astype(np.float32)
  # Halves (2.5 / 2.0 = 1.25, 3 / 2.0 = 1.5) check FastPitch's round-half-up.
  durations = np.array([[2.5, 0.0, 3.0, 1.2, 4.49], [1, 1, 0, 0, 0], [0, 7, 2, 0.5, 3]],
                       np.float32)
  expected, expected_lengths = reference_regulate_len(encodings, durations, pace, max_length)
  got, lengths = alignment.length_regulate(encodings, durations, max_length=max_length,
                                           pace=pace)
  assert lengths.dtype == tf.int32
  np.testing.assert_array_equal(lengths.numpy(), expected_lengths)
  np.testing.assert_array_equal(got.numpy(), expected)


def test_length_regulate_integer_durations_invert_path_to_durations():
  rng = np.random.default_rng(10)
  value, text_lengths, mel_lengths = random_case(rng, shape=(3, 5, 12), mel_at_least_text=True)
  path = alignment.maximum_path(value, text_lengths, mel_lengths)
  encodings = rng.normal(size=(3, 5, 2)).astype(np.float32)
  expanded, lengths = alignment.length_regulate(encodings, alignment.path_to_durations(path))
  np.testing.assert_array_equal(lengths.numpy(), mel_lengths)
  # Each frame's encoding is that of its aligned token: path^T @ encodings.
  expected = np.einsum("bxy,bxc->byc", path.numpy(), encodings)[:, :lengths.numpy().max()]
  np.testing.assert_array_equal(expanded.numpy(), expected)


def test_length_regulate_per_item_pace_and_bad_pace():
  encodings = np.ones([2, 2, 1], np.float32)
  _, lengths = alignment.length_regulate(encodings, [[2, 2], [2, 2]], pace=tf.constant([1.0, 2.0]))
  np.testing.assert_array_equal(lengths.numpy(), [4, 2])
  with pytest.raises(ValueError, match="pace.*positive"):
    alignment.length_regulate(encodings, [[2, 2], [2, 2]], pace=0.0)


def test_length_regulate_converts_to_tflite_builtins():
  signature = [tf.TensorSpec([None, None, None], tf.float32),
               tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.float32)]
  lite = _tflite_model(
      lambda encodings, durations, pace: alignment.length_regulate(encodings, durations,
                                                                   pace=pace), signature)
  rng = np.random.default_rng(11)
  cases = [np.array([[1.0]]), np.array([[1.0, 1.0]]), np.array([[2.0, 0.0]]),
           rng.uniform(0, 20, size=(2, 60))]
  for durations in cases:
    durations = durations.astype(np.float32)
    encodings = rng.normal(size=durations.shape + (3,)).astype(np.float32)
    for pace in (1.0, 1.5):
      expected, expected_lengths = reference_regulate_len(encodings, durations, pace, None)
      got, lengths = _run_tflite(lite, encodings=encodings, durations=durations,
                                 pace=np.float32(pace))
      np.testing.assert_array_equal(lengths, expected_lengths)
      np.testing.assert_array_equal(got, expected)
  assert expected.shape[1] > 300  # the long case really is long


@pytest.mark.parametrize("scaling", [1.0, 0.05])
def test_beta_binomial_prior_matches_scipy(scaling):
  text_lengths = np.array([1, 3, 10, 5, 7], np.int32)
  mel_lengths = np.array([1, 7, 25, 5, 2], np.int32)
  got = alignment.beta_binomial_prior(text_lengths, mel_lengths, scaling=scaling).numpy()
  assert got.shape == (5, 25, 10)
  for b, (p, m) in enumerate(zip(text_lengths, mel_lengths)):
    # FastPitch's beta_binomial_prior_distribution: row i (1-based) is betabinom(P, a, b).pmf.
    expected = np.array([scipy.stats.betabinom(p, scaling * i, scaling * (m + 1 - i)).pmf(
        np.arange(p)) for i in range(1, m + 1)])
    np.testing.assert_allclose(got[b, :m, :p], expected, rtol=2e-5, atol=1e-12)
    assert not got[b, m:].any() and not got[b, :, p:].any(), "padding must be 0"


def test_other_ops_trace_without_python_ops():
  fns = [
      (alignment.path_to_durations, [tf.TensorSpec([None, None, None], tf.float32)]),
      (alignment.durations_to_path, [tf.TensorSpec([None, None], tf.int32)]),
      (alignment.length_regulate, [tf.TensorSpec([None, None, None], tf.float32),
                                   tf.TensorSpec([None, None], tf.float32)]),
      (alignment.beta_binomial_prior, [tf.TensorSpec([None], tf.int32)] * 2),
  ]
  for fn, signature in fns:
    testing.assert_no_python_ops(tf.function(fn, input_signature=signature).get_concrete_function())

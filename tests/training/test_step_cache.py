"""The traced train step kept in WORKDIR/trace_cache (`tfspeech.training.step_cache`)."""
import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import training
from tfspeech.models import registry
from tfspeech.training import api
from tfspeech.training import step_cache
from tfspeech.training.config import RunConfig

COMMON = dict(log_every=1, checkpoint_every=100, eval_every=0, summary_every=0)


def _train(workdir, steps, **kwargs):
  overrides = dict(COMMON, max_steps=steps)
  overrides.update(kwargs.pop("overrides", {}))
  return training.train("toy", "tiny", workdir=str(workdir), overrides=overrides,
                        allow_changes=("max_steps",), progress=False, handle_signals=False,
                        **kwargs)


def _entries(workdir, name="train_step"):
  return sorted(glob.glob(os.path.join(workdir, "trace_cache", f"{name}-*")))


def _read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _write_json(path, value):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f)


@pytest.fixture
def cached_calls(monkeypatch):
  """How many steps ran through a cached graph (CachedFunction calls)."""
  calls = []
  call = step_cache.CachedFunction.__call__

  def counting(self, batch):
    calls.append(self.function_name)
    return call(self, batch)
  monkeypatch.setattr(step_cache.CachedFunction, "__call__", counting)
  return calls


def _checkpoint_values(workdir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(workdir,
                                                                            "checkpoints")))
  return {k: reader.get_tensor(k) for k, dtype in reader.get_variable_to_dtype_map().items()
          if dtype != tf.variant and "OBJECT_GRAPH" not in k}


def _media(workdir, step):
  """{tag: serialized tensor} of the image/audio summaries written at `step`."""
  media = {}
  for path in glob.glob(os.path.join(workdir, "eval", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if event.step == step and value.tag.startswith(("images/", "audio/")):
          media[value.tag] = value.tensor.SerializeToString()
  return media


@pytest.mark.smoke  # internal TF entry points (add_function_def, call_function): newest TF too
def test_resume_runs_the_cached_graphs_and_ends_where_a_traced_resume_ends(tmp_path,
                                                                            cached_calls):
  # Train step, eval step and media summaries: traced in the first run, all three cached.
  media_at_2_and_4 = dict(eval_every=2, eval_batches=2, summary_every=2)
  first = tmp_path / "first"
  _train(first, 2, overrides=media_at_2_and_4)
  names = [os.path.basename(e).split("-")[0] for e in _entries(str(first), "*")]
  assert names == ["eval_step", "summaries", "train_step"]
  (entry,) = _entries(str(first))
  meta = _read_json(os.path.join(entry, "meta.json"))
  assert any("variable" in c for c in meta["captures"])
  assert not cached_calls  # a new run traces

  shutil.copytree(first, tmp_path / "cached")
  shutil.copytree(first, tmp_path / "traced")
  shutil.rmtree(tmp_path / "traced" / "trace_cache")
  cached = _train(tmp_path / "cached", 5, overrides=media_at_2_and_4)
  # Steps 3, 4, 5; two eval batches and the summaries at step 4.
  assert len(cached_calls) == 3 + 2 + 1 and len(set(cached_calls)) == 3
  assert cached_calls.count(meta["function"]) == 3
  traced = _train(tmp_path / "traced", 5, overrides=media_at_2_and_4)
  assert len(cached_calls) == 6
  assert len(_entries(str(tmp_path / "traced"), "*")) == 3  # traced again, and kept

  assert cached.losses == traced.losses
  assert list(cached.losses) == list(traced.losses)  # in the task's order
  assert cached.eval_metrics == traced.eval_metrics and cached.eval_metrics
  want, got = _checkpoint_values(str(tmp_path / "traced")), _checkpoint_values(
      str(tmp_path / "cached"))
  assert sorted(want) == sorted(got) and len(want) > 8
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  media = _media(str(tmp_path / "traced"), 4)
  assert len(media) >= 2 and _media(str(tmp_path / "cached"), 4) == media


def test_key_ignores_what_only_the_loop_reads_and_follows_the_rest(tmp_path, monkeypatch):
  task_class = registry.get("toy")
  run = RunConfig(model="toy", preset="tiny", model_config=task_class.preset("tiny"),
                  train=task_class.default_train_config("tiny"), data_dir=str(tmp_path))
  (tmp_path / "stats.json").write_text('{"pitch_mean": 200.0}')
  spec = {"x": tf.TensorSpec([None, None], tf.float32)}

  def key(r, element_spec=spec):
    return step_cache.cache_key(api.trace_cache_key(r), element_spec)

  base = key(run)
  loop_only = dataclasses.replace(run.train, max_steps=7, log_every=3, checkpoint_every=9,
                                  eval_every=0, summary_every=0, keep_checkpoints=1)
  assert key(dataclasses.replace(run, train=loop_only, data_dir=str(tmp_path))) == base
  graph_changes = [
      dataclasses.replace(run, train=dataclasses.replace(run.train, learning_rate=0.5)),
      dataclasses.replace(run, train=dataclasses.replace(run.train, clip_norm=0.5)),
      dataclasses.replace(run, model_config=dataclasses.replace(run.model_config, hidden=9)),
      dataclasses.replace(run, data_info={"sample_rate": 16000}),
  ]
  assert len({base} | {key(r) for r in graph_changes}) == 1 + len(graph_changes)
  assert key(run, {"x": tf.TensorSpec([None, None], tf.int32)}) != base
  (tmp_path / "stats.json").write_text('{"pitch_mean": 120.0}')  # the corpus re-prepared
  assert key(run) != base
  (tmp_path / "stats.json").write_text('{"pitch_mean": 200.0}')
  assert key(run) == base
  monkeypatch.setattr(step_cache, "source_digest", lambda: "an edited source file")
  assert key(run) != base


def test_entry_of_other_code_is_replaced_and_a_broken_one_set_aside(tmp_path, monkeypatch,
                                                                    cached_calls, caplog):
  caplog.set_level("INFO", logger="absl")
  workdir = str(tmp_path / "run")
  _train(workdir, 1)
  (old,) = _entries(workdir)

  monkeypatch.setattr(step_cache, "source_digest", lambda: "an edited source file")
  _train(workdir, 2)
  (new,) = _entries(workdir)
  assert new != old and not cached_calls
  assert "was traced by other code" in caplog.text

  # Another variable layout than the graph's: not used, set aside, traced and rewritten.
  meta_path = os.path.join(new, "meta.json")
  meta = _read_json(meta_path)
  _write_json(meta_path, dict(meta, variables=meta["variables"] + 1))
  result = _train(workdir, 3)
  assert result.final_step == 3 and not cached_calls
  assert "cannot use" in caplog.text
  assert _read_json(meta_path)["variables"] == meta["variables"]

  # A variable list in another order (same count, another variable at a captured position).
  meta = _read_json(meta_path)
  captures = [dict(c) for c in meta["captures"]]
  first = next(c for c in captures if "variable" in c)
  first["name"] += "_elsewhere"
  _write_json(meta_path, dict(meta, captures=captures))
  assert _train(workdir, 4).final_step == 4 and not cached_calls
  assert caplog.text.count("cannot use") == 2

  # A damaged graph file: set aside too.
  functions = os.path.join(new, "functions.pb")
  with open(functions, "wb") as f:
    f.write(b"\xff" * 64)
  assert _train(workdir, 5).final_step == 5 and not cached_calls
  assert caplog.text.count("cannot use") == 3
  with open(functions, "rb") as f:
    assert len(f.read()) > 1000

  # A graph the runtime refuses at the first call: that batch goes to the traced step.
  meta = _read_json(meta_path)
  _write_json(meta_path, dict(meta, function="tfspeech_no_such_function"))
  result = _train(workdir, 6)
  assert result.final_step == 6 and len(cached_calls) == 1
  assert "the cached train_step failed" in caplog.text
  assert _read_json(meta_path)["function"].startswith("tfspeech_cached_")
  assert _train(workdir, 7).final_step == 7 and len(cached_calls) == 2


def test_no_cache_without_the_option_or_with_several_replicas(tmp_path):
  _train(tmp_path / "off", 1, trace_cache=False)
  assert not os.path.exists(tmp_path / "off" / "trace_cache")
  _train(tmp_path / "mirrored", 1, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
  assert not os.path.exists(tmp_path / "mirrored" / "trace_cache")

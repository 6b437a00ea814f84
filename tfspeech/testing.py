"""Helpers for tests of the graph-mode contract, usable by downstream projects too."""

import tensorflow as tf

# Ops that call back into the Python interpreter. A graph containing any of them
# cannot be exported, run under XLA, or run without Python.
PYTHON_OP_TYPES = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc", "NumpyFunction"})


def _all_graph_defs(graph_def):
  yield graph_def.node
  for function in graph_def.library.function:
    yield function.node_def


def python_ops(fn_or_graph):
  """Returns the names of Python/NumPy callback ops in a traced graph.

  Args:
    fn_or_graph: a `tf.Graph`, a `GraphDef`, or a `ConcreteFunction`. Nested
      functions (while-loop bodies, conditionals) are searched too.

  Returns:
    A sorted list of `"op_type:node_name"` strings; empty when the graph is pure TF.
  """
  if hasattr(fn_or_graph, "graph") and not isinstance(fn_or_graph, tf.Graph):
    fn_or_graph = fn_or_graph.graph
  graph_def = fn_or_graph.as_graph_def() if isinstance(fn_or_graph, tf.Graph) else fn_or_graph
  found = set()
  for nodes in _all_graph_defs(graph_def):
    for node in nodes:
      if node.op in PYTHON_OP_TYPES:
        found.add(f"{node.op}:{node.name}")
  return sorted(found)


def assert_no_python_ops(fn_or_graph):
  """Raises AssertionError naming every Python/NumPy callback op in the graph."""
  found = python_ops(fn_or_graph)
  if found:
    raise AssertionError("graph calls back into Python: " + ", ".join(found))

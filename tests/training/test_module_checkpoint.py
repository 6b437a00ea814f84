"""Weights of sub-layers held in Python lists must survive a checkpoint round trip.

Keras 3.15 on TF does not expose list-held sub-layers to tf.train.Checkpoint;
a direct `tf.train.Checkpoint(model=...)` silently drops them.
"""
import keras
import numpy as np
import tensorflow as tf

from tfspeech.training import checkpoints


class _ListNet(keras.layers.Layer):

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.blocks = [keras.layers.Dense(4) for _ in range(3)]  # list-held on purpose
    self.head = keras.layers.Dense(1)

  def call(self, x):
    for block in self.blocks:
      x = block(x)
    return self.head(x)


def _built():
  net = _ListNet()
  net(tf.zeros([1, 4]))
  return net


def test_modules_checkpoint_restores_list_held_layers(tmp_path):
  source, target = _built(), _built()
  path = checkpoints.modules_checkpoint({"net": source}).write(str(tmp_path / "ck"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("net/")]
  assert len(saved) == len(source.weights) == 8
  checkpoints.modules_checkpoint({"net": target}).read(path).assert_consumed()
  for a, b in zip(source.weights, target.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_plain_checkpoint_drops_list_held_layers(tmp_path):
  # Documents the Keras behaviour the helper exists for; if Keras fixes it, this
  # test tells us the workaround can go.
  net = _built()
  path = tf.train.Checkpoint(net=net).write(str(tmp_path / "plain"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("net/")]
  assert len(saved) < len(net.weights)

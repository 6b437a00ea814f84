"""Grad-TTS diffusion decoder: VP-SDE with a data-dependent prior mean, loss and samplers.

The forward SDE is dX_t = 0.5 (mu - X_t) beta_t dt + sqrt(beta_t) dW_t on t in [0, 1] with a
linear noise rate beta_t = beta_min + (beta_max - beta_min) t, so X_1 ~ N(mu, I). Mels are
`[batch, frames, n_feats]` and masks `[batch, frames]` throughout (the reference's
`[batch, n_feats, frames]` and `[batch, 1, frames]`).

Sampling loop: `reverse_diffusion` runs a `tf.while_loop` over a (possibly tensor)
`n_timesteps`, so one traced graph serves any step count. With `unroll=True` and a Python int
`n_timesteps` it emits that many steps instead: a loop-free graph for exporters that cannot
take control flow. The unrolled steps call one `tf.function` of the U-Net (`unrolled_score`),
so a graph (and a SavedModel of several graphs) traces and stores the U-Net once, not once per
step; freezing for TFLite/TFJS inlines the calls, a SavedModel keeps them
(`tfspeech.models.unrolled`).
"""

import keras
import tensorflow as tf

from tfspeech.models import unrolled
from tfspeech.models.grad_tts.score_estimator import GradLogPEstimator2d


def beta(t, beta_min, beta_max):
  """Noise rate beta_t; t any float tensor."""
  return beta_min + (beta_max - beta_min) * t


def cumulative_beta(t, beta_min, beta_max):
  """Integral of beta_s from 0 to t."""
  return beta_min * t + 0.5 * (beta_max - beta_min) * t * t


class Diffusion(keras.layers.Layer):
  """Score-based mel decoder: owns the U-Net and the VP-SDE with `config.beta_min/max`."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.estimator = GradLogPEstimator2d(config, name="estimator")

  def build(self, input_shape=None):
    self.estimator.build(None)

  def _cumulative(self, t):
    # [batch] -> [batch, 1, 1] to broadcast over [batch, frames, n_feats].
    return cumulative_beta(t, self.config.beta_min, self.config.beta_max)[:, None, None]

  def forward_diffusion(self, x0, mask, mu, t, noise=None):
    """Samples x_t ~ p(x_t | x_0) of the forward SDE in closed form.

    Args:
      x0: `[batch, frames, n_feats]` clean mels.
      mask: `[batch, frames]` float frame mask.
      mu: `[batch, frames, n_feats]` prior mean (aligned encoder output).
      t: `[batch]` times in (0, 1].
      noise: optional `[batch, frames, n_feats]` standard normal sample; drawn if None.

    Returns:
      (x_t, noise), both `[batch, frames, n_feats]` and masked.
    """
    mask = mask[:, :, None]
    cumulative = self._cumulative(t)
    decay = tf.exp(-0.5 * cumulative)
    mean = x0 * decay + mu * (1.0 - decay)
    variance = 1.0 - tf.exp(-cumulative)
    if noise is None:
      noise = tf.random.normal(tf.shape(x0), dtype=x0.dtype)
    xt = mean + noise * tf.sqrt(variance)
    return xt * mask, noise * mask

  def loss_t(self, x0, mask, mu, t, speaker_embedding=None, noise=None):
    """Denoising score-matching loss at given times.

    The estimator's output s is trained so that s * sqrt(1 - exp(-int beta)) = -noise;
    the squared error is averaged over real frames and mel bins.

    Returns:
      (scalar loss, x_t `[batch, frames, n_feats]`).
    """
    xt, noise = self.forward_diffusion(x0, mask, mu, t, noise)
    # A mixed-precision U-Net's score in the loss's float32.
    score = tf.cast(self.estimator(xt, mask, mu, t, speaker_embedding, training=True),
                    xt.dtype)
    scaled = score * tf.sqrt(1.0 - tf.exp(-self._cumulative(t)))
    total = tf.reduce_sum(tf.square(scaled + noise))
    loss = total / (tf.reduce_sum(mask) * float(self.config.n_feats))
    return loss, xt

  def compute_loss(self, x0, mask, mu, speaker_embedding=None, offset=1e-5, seed=None):
    """`loss_t` at t ~ U(offset, 1 - offset), one t per batch item.

    Args:
      seed: optional `[2]` int seed for stateless sampling of t and the noise.
    """
    batch = tf.shape(x0)[0]
    if seed is None:
      t = tf.random.uniform([batch], dtype=x0.dtype)
      noise = None
    else:
      seed = tf.convert_to_tensor(seed, tf.int32)
      t = tf.random.stateless_uniform([batch], seed, dtype=x0.dtype)
      noise = tf.random.stateless_normal(tf.shape(x0), seed + [0, 1], dtype=x0.dtype)
    t = tf.clip_by_value(t, offset, 1.0 - offset)
    return self.loss_t(x0, mask, mu, t, speaker_embedding, noise)

  def unrolled_score(self, multi_speaker: bool):
    """The estimator as one `tf.function` (None dims) shared by every unrolled step.

    Tracing the U-Net once instead of `n_timesteps` times took a tiny Grad-TTS export's
    tracing from ~13 s to ~2 s per graph, and a SavedModel stores one copy of it (and calls
    it, see `tfspeech.models.unrolled`).
    """
    c = self.config
    mel = tf.TensorSpec([None, None, c.n_feats], tf.float32)
    specs = [mel, tf.TensorSpec([None, None], tf.float32), mel, tf.TensorSpec([None], tf.float32)]
    if multi_speaker:
      specs.append(tf.TensorSpec([None, c.spk_emb_dim], tf.float32))

    def score(*args):  # the name the SavedModel's function library shows
      return self.estimator(*args)
    return unrolled.step_function(self, ("score", multi_speaker), score, specs)

  def _reverse_step(self, i, xt, mask, mu, h, stoc, speaker_embedding, seed, unroll=False):
    c = self.config
    batch = tf.shape(xt)[0]
    t = tf.fill([batch], 1.0 - (tf.cast(i, tf.float32) + 0.5) * h)
    noise_rate = beta(t, c.beta_min, c.beta_max)[:, None, None]
    if unroll and tf.inside_function():
      args = [xt, mask, mu, t] + ([] if speaker_embedding is None else [speaker_embedding])
      score = self.unrolled_score(speaker_embedding is not None)(*args)
    else:
      score = self.estimator(xt, mask, mu, t, speaker_embedding)
    # The state xt stays float32 whatever the U-Net computes in (bfloat16 inference): the
    # Euler steps add up small increments that bfloat16's 8 bits would round away.
    score = tf.cast(score, xt.dtype)
    if stoc:
      dxt = (0.5 * (mu - xt) - score) * noise_rate * h
      if seed is None:
        step_noise = tf.random.normal(tf.shape(xt))
      else:
        step_noise = tf.random.stateless_normal(tf.shape(xt), seed + tf.stack([0, i + 2]))
      dxt = dxt + step_noise * tf.sqrt(noise_rate * h)
    else:
      dxt = 0.5 * (mu - xt - score) * noise_rate * h
    return (xt - dxt) * mask[:, :, None]

  def reverse_diffusion(self, z, mask, mu, n_timesteps, stoc=False, speaker_embedding=None,
                        seed=None, unroll=False):
    """Integrates the reverse SDE (stoc=True) or probability-flow ODE from t=1 to 0 by Euler.

    Step i evaluates the score at t = 1 - (i + 0.5) / n_timesteps, as the reference.

    Args:
      z: `[batch, frames, n_feats]` terminal sample, usually mu + N(0, I) / temperature.
      mask: `[batch, frames]` float frame mask.
      mu: `[batch, frames, n_feats]` aligned encoder output.
      n_timesteps: Python int or scalar int tensor (>= 1).
      stoc: Python bool; adds the Brownian term of the reverse SDE.
      speaker_embedding: `[batch, spk_emb_dim]` when `n_spks > 1`.
      seed: optional `[2]` int seed making the stochastic term reproducible.
      unroll: unroll a Python-int `n_timesteps` into a loop-free graph.

    Returns:
      `[batch, frames, n_feats]` decoded mels, masked.
    """
    if seed is not None:
      seed = tf.convert_to_tensor(seed, tf.int32)
    xt = z * mask[:, :, None]
    if unroll:
      if not isinstance(n_timesteps, int) or n_timesteps < 1:
        raise ValueError(f"reverse_diffusion: unroll=True needs a positive Python int "
                         f"n_timesteps, got {n_timesteps!r}; pass e.g. n_timesteps=10.")
      for i in range(n_timesteps):
        xt = self._reverse_step(tf.constant(i), xt, mask, mu, 1.0 / n_timesteps, stoc,
                                speaker_embedding, seed, unroll=True)
      return xt
    steps = tf.convert_to_tensor(n_timesteps, tf.int32)
    with tf.control_dependencies([tf.debugging.assert_positive(
        steps, message="reverse_diffusion: n_timesteps must be >= 1")]):
      h = 1.0 / tf.cast(steps, tf.float32)

    def body(i, xt):
      return i + 1, self._reverse_step(i, xt, mask, mu, h, stoc, speaker_embedding, seed)

    _, xt = tf.while_loop(lambda i, _: i < steps, body, [tf.constant(0), xt])
    return xt

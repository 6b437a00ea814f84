"""DiffWave's diffusion: noise levels, aligning a reverse schedule to the training steps, the
per-step noise derived from one noise input, and the reverse process as a loop and unrolled.

Notation (lmnt-com/diffwave inference.py, which renames the paper's symbols):
  training betas b_t (t < T), talpha_cum_t = prod_{i<=t} (1 - b_i)
  reverse betas  beta_s (s < S), alpha_s = 1 - beta_s, alpha_cum_s = prod_{i<=s} alpha_i

Alignment (the paper's fast sampling, Appendix B): reverse step s runs the network at the
fractional training step T_s where the training noise level matches its own: the first t with
talpha_cum_{t+1} <= alpha_cum_s <= talpha_cum_t, and
T_s = t + (sqrt(talpha_cum_t) - sqrt(alpha_cum_s)) / (sqrt(talpha_cum_t) - sqrt(talpha_cum_{t+1})).
With the training schedule itself this gives T_s = s exactly.

One reverse step n (from S-1 down to 0), as the reference:
  x <- (x - beta_n / sqrt(1 - alpha_cum_n) * eps(x, T_n)) / sqrt(alpha_n)
  x <- x + sigma_n z_n,  sigma_n = sqrt((1 - alpha_cum_{n-1}) / (1 - alpha_cum_n) * beta_n)  (n > 0)
  x <- clip(x, -1, 1)

Every function here is TF ops only (graph-pure); the schedule may be a tensor. Those the
looped reverse process runs with runtime betas use only ops that TFLite has builtins for and
TFJS runs: running products of (1 - beta) are exp(cumsum(log(1 - beta))) (`alpha_cumulative`;
TFLite and TFJS have no Cumprod), and new axes are `tf.expand_dims` (a `[:, None]` slice on a
dynamic shape inside a While body has no TFLite builtin, and the exporter's rewrite of it,
`frozen_graph.make_converter_friendly`, sees only the main graph).
"""

from typing import Sequence

import numpy as np
import tensorflow as tf


def check_schedule(betas: Sequence[float], training_betas: Sequence[float], where: str) -> None:
  """Raises ValueError when a reverse step's noise level lies outside the training range."""
  talpha_cum = np.cumprod(1.0 - np.asarray(training_betas, np.float64))
  alpha_cum = np.cumprod(1.0 - np.asarray(betas, np.float64))
  outside = [s for s, a in enumerate(alpha_cum) if not talpha_cum[-1] <= a <= talpha_cum[0]]
  if outside:
    raise ValueError(
        f"{where}: reverse step(s) {outside} reach a noise level (cumulative alpha "
        f"{', '.join(f'{alpha_cum[s]:.4g}' for s in outside)}) outside the training range "
        f"[{talpha_cum[-1]:.4g}, {talpha_cum[0]:.4g}]: the network was never trained there. "
        "Use betas whose running product of (1 - beta) stays in that range")


def noise_levels(training_betas) -> tf.Tensor:
  """talpha_cum `[T]` float32: the signal fraction sqrt of which scales x_0 at step t."""
  return tf.math.cumprod(1.0 - tf.cast(training_betas, tf.float32))


def alpha_cumulative(betas) -> tf.Tensor:
  """prod_{i<=s} (1 - beta_i) `[S]` float32 as exp(cumsum(log(1 - beta))): Cumprod is neither a
  TFLite builtin nor a TFJS op once the betas are a runtime input. Within ~1e-6 relative of
  the product for S <= 50 (the logs' sum is at most a few units)."""
  return tf.exp(tf.math.cumsum(tf.math.log(1.0 - tf.cast(betas, tf.float32))))


def aligned_steps(betas, training_betas) -> tf.Tensor:
  """T_s `[S]` float32 (see the module docstring); TF ops, so `betas` may be a runtime tensor.

  Reverse noise levels outside the training range are clamped to its ends (0 or T - 1); the
  reference drops such steps and misindexes the rest (`check_schedule` refuses them for
  schedules known when a graph is built).
  """
  # The same ops for both levels: the training schedule itself then aligns to T_s = s exactly.
  talpha_cum = alpha_cumulative(training_betas)  # [T]
  alpha_cum = alpha_cumulative(betas)  # [S]
  upper, lower = talpha_cum[:-1], talpha_cum[1:]  # [T - 1]
  a = tf.expand_dims(alpha_cum, 1)
  match = (tf.expand_dims(lower, 0) <= a) & (a <= tf.expand_dims(upper, 0))  # [S, T - 1]
  count = tf.shape(upper)[0]
  index = tf.expand_dims(tf.range(count), 0)
  # The first match (the reference breaks at it); none: above the range -> 0, below -> T - 2.
  first = tf.reduce_min(tf.where(match, index, count), axis=1)
  fallback = tf.where(alpha_cum > talpha_cum[0], 0, count - 1)
  t = tf.where(first < count, first, fallback)
  hi = tf.sqrt(tf.gather(upper, t))
  lo = tf.sqrt(tf.gather(lower, t))
  twiddle = tf.clip_by_value((hi - tf.sqrt(alpha_cum)) / (hi - lo), 0.0, 1.0)
  return tf.cast(t, tf.float32) + twiddle


def reverse_coefficients(betas, training_betas) -> dict:
  """Per reverse step n `[S]` float32: "steps" (T_n), "c1", "c2", "sigma" (sigma_0 = 0)."""
  beta = tf.cast(betas, tf.float32)
  alpha = 1.0 - beta
  alpha_cum = alpha_cumulative(beta)
  previous = tf.concat([[1.0], alpha_cum[:-1]], axis=0)
  # 1 - alpha_cum_s as the sum of alpha_cum_{s-1} beta_s: float32 `1 - alpha_cum` loses
  # ~1e-4 of c2 when the first betas are 1e-4; the sum of positive terms does not.
  remaining = tf.math.cumsum(previous * beta)
  remaining_before = tf.math.cumsum(previous * beta, exclusive=True)
  sigma = tf.sqrt(remaining_before / remaining * beta)
  return {"steps": aligned_steps(beta, training_betas),
          "c1": 1.0 / tf.sqrt(alpha),
          "c2": beta / tf.sqrt(remaining),
          # (1 - alpha_cum_{-1}) = 0: step 0 adds no noise, as the reference's `if n > 0`.
          "sigma": sigma}


def step_noise(noise, lengths, draw, draws):
  """The standard-normal noise of draw `draw` (0: the starting x_S; k: the k-th step's z).

  A served graph gets one noise tensor `[batch, samples, channels]` and needs `draws` (S) of
  `[batch, samples]`. Draw k reads channel `k % channels`; when draws outnumber channels it
  rotates that channel within each item by `(k // channels) * (length // rounds)` samples
  (rounds = ceil(draws / channels)), wrapping at the item's own length. So an item's audio
  depends only on its own noise up to its own length (alone == in a batch), every runtime
  reproduces it bit for bit from the same input (gathers, no random ops), and `channels >=
  draws` gives independent draws exactly as the reference samples them. With one channel
  the draws are shifted copies of one another: each is still standard normal, and the shifts
  are as far apart as the length allows (length / S samples), but they are not independent.

  Args:
    noise: `[batch, samples, channels]` float32.
    lengths: `[batch]` int32 valid samples per item.
    draw: int or int32 scalar tensor, 0 <= draw < draws.
    draws: int or int32 scalar tensor, the number of draws the process makes (S).

  Returns:
    `[batch, samples]` float32.
  """
  noise = tf.convert_to_tensor(noise, tf.float32)
  if isinstance(draw, int) and draw == 0:
    return noise[:, :, 0]
  channels = tf.shape(noise)[2]
  rounds = (draws + channels - 1) // channels
  channel = tf.gather(noise, draw % channels, axis=2)
  # Small operands (rotation * (length // rounds) < length): exact in TFJS's float ints.
  shift = (draw // channels) * (lengths // rounds)  # [batch]
  width = tf.expand_dims(tf.maximum(lengths, 1), 1)
  positions = tf.expand_dims(tf.range(tf.shape(noise)[1]), 0)
  index = tf.math.floormod(positions + tf.expand_dims(shift, 1), width)
  # One flat gather, not `batch_dims=1`: tfjs's wasm backend gathers wrong rows with
  # batch_dims (its cpu backend, TF and TFLite agree).
  samples = tf.shape(noise)[1]
  flat = index + tf.expand_dims(tf.range(tf.shape(noise)[0]), 1) * samples
  return tf.gather(tf.reshape(channel, [-1]), flat)


def _step(denoise, audio, step, c1, c2, sigma, z, mask):
  epsilon = denoise(audio, step)
  audio = c1 * (audio - c2 * epsilon)
  if z is not None:
    audio = audio + sigma * z
  audio = tf.clip_by_value(audio, -1.0, 1.0)
  return audio * mask if mask is not None else audio


def reverse_process_loop(denoise, noise, lengths, betas, training_betas, mask=None):
  """The reverse process as one `tf.while_loop` over a runtime schedule (any S >= 1).

  Args:
    denoise: (audio `[batch, samples]`, step float32 scalar) -> predicted noise, same shape.
    noise: `[batch, samples, channels]` standard normal (`step_noise`).
    lengths: `[batch]` int32 valid samples.
    betas: `[S]` float32 reverse betas (a tensor: the graph has one copy of the network).
    training_betas: the training schedule (`[T]`).
    mask: `[batch, samples]` float32 (1 inside each length) or None.

  Returns:
    `[batch, samples]` audio in [-1, 1].
  """
  coefficients = reverse_coefficients(betas, training_betas)
  count = tf.shape(coefficients["steps"])[0]
  audio = step_noise(noise, lengths, 0, count)
  audio = audio * mask if mask is not None else audio

  def body(i, audio):
    n = count - 1 - i
    take = lambda name: tf.gather(coefficients[name], n)  # noqa: E731
    z = step_noise(noise, lengths, i + 1, count)
    # sigma_0 = 0: the last iteration adds 0 * z, leaving the audio unchanged.
    return i + 1, _step(denoise, audio, take("steps"), take("c1"), take("c2"), take("sigma"),
                        z, mask)

  _, audio = tf.while_loop(lambda i, _: i < count, body, [tf.constant(0), audio])
  return audio


def reverse_process_unrolled(denoise, noise, lengths, betas: Sequence[float], training_betas,
                             mask=None):
  """The reverse process unrolled for a schedule known when the graph is built (loop-free).

  Same arguments and result as `reverse_process_loop`, with `betas` a Python sequence: the
  graph holds `len(betas)` copies of the network and no control flow (TFLite builtins, TFJS
  `execute`). The coefficients are computed by the same TF ops as the loop's, so both forms
  give the same audio.
  """
  count = len(betas)
  coefficients = reverse_coefficients(tf.constant(betas, tf.float32), training_betas)
  audio = step_noise(noise, lengths, 0, count)
  audio = audio * mask if mask is not None else audio
  for i in range(count):
    n = count - 1 - i
    z = step_noise(noise, lengths, i + 1, count) if n > 0 else None
    audio = _step(denoise, audio, coefficients["steps"][n], coefficients["c1"][n],
                  coefficients["c2"][n], coefficients["sigma"][n], z, mask)
  return audio


def training_noise(audio, steps, noise, talpha_cum):
  """x_t = sqrt(talpha_cum_t) x_0 + sqrt(1 - talpha_cum_t) noise, per item (learner.py)."""
  level = tf.gather(talpha_cum, steps)[:, None]
  return tf.sqrt(level) * audio + tf.sqrt(1.0 - level) * noise


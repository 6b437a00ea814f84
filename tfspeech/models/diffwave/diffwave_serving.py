"""DiffWave behind the `tfspeech.models.serving.Vocoder` interface.

Control `steps` (static, default 6): 6 runs the fast schedule (`inference_noise_schedule`,
each step aligned to a fractional training step), 50 the full training schedule; any other
count is refused (no reference schedule exists for it; `vocode_schedule` takes any betas).
`steps=runtime` (`tfspeech-export --control=steps=runtime`) makes the schedule an input
instead: the exported mel_to_audio takes `vocoder_betas` float32 [S] (control `betas`, any
S >= 1; metadata.json records the recommended fast schedule) and runs one loop. In process
(`tfspeech-vocode --control=steps=runtime --control=betas=...`) the same loop runs the given
betas (default: the fast schedule).

Noise (`noise_channels = 6`, `noise_length(frames) = frames * hop`): `[batch, frames * hop,
6]` standard normal. The process makes S draws (the starting audio and one per step but the
last); `diffusion.step_noise` derives them from this one input without random ops: draw k
is channel k % 6, rotated within each item by whole multiples of length / ceil(S / 6)
samples. So the same noise gives the same audio in TF, TFLite and TFJS, and an item alone
gives the audio it gets in a batch.

Why 6 channels: the default (fast) schedule makes exactly 6 draws, so with 6 channels every
draw is independent, as the reference samples them (with one channel the draws would be
rotated copies of one noise). The in-process form (`tfspeech-vocode`, `tfspeech-synthesize`,
seeded from `--seed`) declares the same channels as the exported one, so the SavedModel's
`mel_to_audio_seeded` draws the same noise from the same seeds and gives the same audio.
Deriving per-step noise with random ops inside the in-process graph instead would make it
differ from every exported graph (TFLite and TFJS have no stateless random ops), and
declaring more channels only in process would break seeded SavedModel == in-process. The
50-step schedule reuses the 6 channels (9 rotations each); an app that wants independent
draws for it may pass 50 channels (`vocode` reads any count, only the exported input
fixes 6). The cost is 6 floats of noise per output sample (a 10 s clip: 5.3 MB).

Forms: the exported form of a fixed step count unrolls the S steps (S calls of one traced
network, no control flow; frozen graphs inline them, a SavedModel keeps the calls);
`in_process()` runs the same arithmetic as one `tf.while_loop`, whose schedule is a tensor.
`vocode_schedule` (what `steps=runtime` exports) is that loop with the betas an input (any
betas, any number of steps, one copy of the network): TFLite converts it to builtins and one
WHILE, TFJS runs it with `executeAsync`. Each step is aligned to a fractional training step in
the graph, as the reference's fast sampling does for its `inference_noise_schedule`
(lmnt-com/diffwave inference.py), so the 6-step fast schedule and the 50-step training schedule
given as betas give the audio of `steps=6` and `steps=50`. Betas are checked where they are
known: as a flag or Python values (non-empty, each in (0, 1), the noise levels inside the
training range: ValueError), and by the SavedModel's graph (InvalidArgumentError naming
vocoder_betas). TFLite and TFJS drop graph checks: there betas outside (0, 1) give NaN audio,
an empty schedule returns the clipped starting noise, and noise levels outside the training
range are clamped to its ends.
"""

from typing import Optional

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.models import serving
from tfspeech.models import unrolled
from tfspeech.models.diffwave import diffusion, diffwave_model
from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig
from tfspeech.models.diffwave.diffwave_model import DiffWave

DEFAULT_SAMPLE_RATE = 22050

# The stand-in of `steps` when exported as "runtime": the reverse schedule as an input.
BETAS = serving.Control(
    "betas", "float32", DiffWaveConfig().inference_noise_schedule,
    "reverse-diffusion betas, one per step (any count; default: the fast schedule), each in "
    "(0, 1), whose running product of (1 - beta) stays in the training range",
    shape=(None,), exclusive_minimum=0.0, exclusive_maximum=1.0)

CONTROLS = (
    serving.Control("steps", "int32", 6, "reverse-diffusion steps: 6 (fast schedule) or 50 "
                    "(the training schedule); 'runtime' makes the betas a graph input",
                    static=True, minimum=1, runtime=BETAS),
)


def upsampler_reach_samples(config: DiffWaveConfig) -> int:
  """One-sided reach in samples of the mel upsampler: (hop + stride) / 2, rounded up.

  Frame i of the first transposed conv (kernel 2 s, stride s, cropped s / 2) feeds its
  outputs [i s - s / 2, i s + 3 s / 2); through the second conv, samples
  [i hop - (hop + s) / 2, (i + 1) hop + (hop + s) / 2).
  """
  return -(-(config.hop_length + config.upsample_stride) // 2)


def dilated_reach_samples(config: DiffWaveConfig) -> int:
  """One-sided reach in samples of one call of the residual stack: its k=3 dilated convs."""
  return sum(2 ** (i % config.dilation_cycle_length) for i in range(config.residual_layers))


def stream_reach_samples(config: DiffWaveConfig, steps: int) -> int:
  """One-sided reach in samples of a whole reverse process of `steps` steps.

  The conditioner is upsampled once; each step then widens the reach by one call of the
  residual stack (the per-step clip, mask and noise are per sample).
  """
  return upsampler_reach_samples(config) + int(steps) * dilated_reach_samples(config)


def receptive_field_samples(config: DiffWaveConfig) -> int:
  """One-sided reach in samples of one network call: its dilated convs (k=3) and upsampler.

  The reverse process calls the network S times, so the audio's reach is S times this.
  """
  dilated = sum(2 ** (i % config.dilation_cycle_length) for i in range(config.residual_layers))
  # Each transposed conv (kernel 2 s, stride s, torch's padding s / 2) reaches one input
  # position either side: one frame, then 1 / s frame.
  return dilated + config.hop_length + config.upsample_stride


class DiffWaveServing(serving.Vocoder):
  """A trained `DiffWave` as a vocoder (its weights are used, not copied).

  Args:
    model: a `DiffWave`.
    sample_rate: output rate in Hz.
    mel_config: the `MelConfig` of its training mels, or None when unknown.
    unroll: unroll the reverse process (loop-free, for export); False runs it as a
      `tf.while_loop` (`in_process()`).
  """
  controls = CONTROLS
  # The fast schedule's draws: independent noise for the default steps (module docstring).
  noise_channels = 6

  def __init__(self, model: DiffWave, sample_rate: int = DEFAULT_SAMPLE_RATE,
               mel_config: Optional[audio_lib.MelConfig] = None, unroll: bool = True):
    self.model = model
    self.unroll = unroll
    self._in_process = None if unroll else self
    config = model.config
    self.n_mels = config.n_mels
    self.hop_length = config.hop_length
    self.sample_rate = int(sample_rate)
    self.mel_config = mel_config
    convention = mel_config or audio_lib.MelConfig.hifigan()
    with tf.init_scope():  # eager even when built inside a traced function (summaries)
      self.mel_pad_value = float(audio_lib.log_compress(tf.zeros([]), convention))
    # Frames: the reach of S = 50 network calls (the full schedule).
    reach = receptive_field_samples(config) * config.diffusion_steps
    self.receptive_field = -(-reach // config.hop_length)

  @classmethod
  def from_data_info(cls, model: DiffWave, data_info) -> "DiffWaveServing":
    """The vocoder of a run whose `data_info` may record `mel_config` and `sample_rate`."""
    info = dict(data_info or {})
    mel_config = audio_lib.MelConfig(**info["mel_config"]) if "mel_config" in info else None
    sample_rate = info.get("sample_rate") or (mel_config.sample_rate if mel_config
                                              else DEFAULT_SAMPLE_RATE)
    return cls(model, sample_rate, mel_config)

  @property
  def config(self) -> DiffWaveConfig:
    return self.model.config

  @property
  def weights(self):
    return list(self.model.weights)

  def in_process(self) -> "DiffWaveServing":
    """The same vocoder with the reverse process as a `tf.while_loop` (one network copy)."""
    if self._in_process is None:
      self._in_process = DiffWaveServing(self.model, self.sample_rate, self.mel_config,
                                         unroll=False)
      self._in_process._in_process = self._in_process  # pylint: disable=protected-access
    return self._in_process

  def context_frames(self, steps: int = 6, betas=None) -> int:
    """Mel frames of context each side that make a chunk's audio equal the whole utterance's
    (`tfspeech.inference.streaming`): the reach of a `steps`-step reverse process."""
    del betas  # Only with steps=runtime, refused below.
    if steps == serving.RUNTIME:
      raise ValueError("DiffWave with steps=runtime cannot stream: a chunk's context grows "
                       "with the number of steps, unknown until run time; stream with a "
                       "fixed count (steps=6 or 50)")
    self.config.schedule(int(steps))  # Refuses step counts without a schedule.
    return -(-stream_reach_samples(self.config, steps) // self.hop_length)

  def stream_noise(self, noise, mel_lengths, steps: int = 6, betas=None):
    """The whole utterance's noise `[batch, frames * hop, C]` as noise whose time slices are
    each chunk's noise: `[batch, frames * hop, max(C, steps)]`.

    With as many channels as draws, draw k reads channel k unrotated (`step_noise`), so a
    chunk given a slice reads the slice of each draw. With fewer, the draws rotate within
    each item's whole length, which no slice sees: they are made here, once per utterance.
    """
    noise = tf.convert_to_tensor(noise, tf.float32)
    steps = len(betas) if steps == serving.RUNTIME and betas is not None else int(steps)
    if steps <= (noise.shape[2] or 0):
      return noise
    lengths = tf.cast(mel_lengths, tf.int32) * self.hop_length
    return tf.stack([diffusion.step_noise(noise, lengths, k, steps) for k in range(steps)],
                    axis=2)

  def noise_length(self, mel_frames):
    """int32 scalar: noise samples `vocode` reads for `mel_frames` frames."""
    return tf.cast(mel_frames, tf.int32) * self.hop_length

  def _unrolled_denoise(self, conditioned: bool):
    """`model.denoise` as one `tf.function` that every unrolled step calls (traced once, one
    copy in a SavedModel; see `tfspeech.models.unrolled`): (audio, step, [conditioner,] mask)."""
    audio = tf.TensorSpec([None, None], tf.float32)
    specs = [audio, tf.TensorSpec([], tf.float32)]
    if conditioned:
      specs.append(tf.TensorSpec([None, None, self.n_mels], tf.float32))
      return unrolled.step_function(self.model, "denoise", self.model.denoise, specs + [audio])

    def denoise(audio, step, mask):
      return self.model.denoise(audio, step, None, mask)
    return unrolled.step_function(self.model, "denoise", denoise, specs + [audio])

  def _inputs(self, mel, mel_lengths, noise, shared_steps=False):
    mel = diffwave_model.with_width(tf.cast(mel, tf.float32), self.n_mels)
    mel_lengths = tf.cast(mel_lengths, tf.int32)
    samples = tf.shape(mel)[1] * self.hop_length
    lengths = mel_lengths * self.hop_length
    if noise is None:
      noise = tf.random.normal([tf.shape(mel)[0], samples, self.noise_channels])
    # Shorter noise is repeated along time (any length >= 1 works, as for acoustic models).
    noise = serving.cyclic_frames(tf.cast(noise, tf.float32), samples)
    mask = tf.sequence_mask(lengths, samples, tf.float32)
    conditioner = self.model.upsample(mel, mel_lengths)
    denoise = lambda audio, step: self.model.denoise(audio, step, conditioner, mask)  # noqa: E731
    if shared_steps and tf.inside_function():
      shared = self._unrolled_denoise(conditioner is not None)
      conditioning = [] if conditioner is None else [conditioner]
      denoise = lambda audio, step: shared(audio, step, *conditioning, mask)  # noqa: E731
    return noise, lengths, mask, denoise

  def vocode(self, mel, mel_lengths, noise=None, steps: int = 6, betas=None):
    """`[batch, frames, n_mels]`, `[batch]`, noise `[batch, frames * hop, C]` → audio
    `[batch, frames * hop]` (0 past each length) and `audio_lengths` `[batch]`.

    Mel frames past each length are ignored (any pad value). `steps="runtime"` runs
    `vocode_schedule` with `betas` `[S]` (the graph `tfspeech-export
    --control=steps=runtime` exports).

    Raises:
      ValueError: `steps="runtime"` without betas, or betas with another `steps`.
    """
    if steps == serving.RUNTIME or betas is not None:
      if steps != serving.RUNTIME or betas is None:
        raise ValueError(
            f"DiffWave: steps={steps} with betas={'none' if betas is None else 'given'}: "
            "the betas are the schedule of steps=runtime (tfspeech-export "
            "--control=steps=runtime, then a vocoder_betas input); vocode here with "
            "steps=6 or 50")
      return self.vocode_schedule(mel, mel_lengths, noise, betas)
    betas = self.config.schedule(int(steps))
    noise, lengths, mask, denoise = self._inputs(mel, mel_lengths, noise,
                                                 shared_steps=self.unroll)
    training = self.config.noise_schedule
    if self.unroll:
      audio = diffusion.reverse_process_unrolled(denoise, noise, lengths, betas, training, mask)
    else:
      audio = diffusion.reverse_process_loop(denoise, noise, lengths,
                                             tf.constant(betas, tf.float32), training, mask)
    return {"audio": audio * mask, "audio_lengths": lengths}

  def vocode_schedule(self, mel, mel_lengths, noise, betas):
    """`vocode` with the reverse betas `[S]` a runtime tensor (any S >= 1): one loop.

    The alignment to training steps and every coefficient are computed in the graph; noise
    levels outside the training range are clamped (`diffusion.aligned_steps`). Betas known
    when traced (Python values, constants) are checked here; a graph input is checked by
    the graph (SavedModel; see the module docstring for TFLite and TFJS).

    Raises:
      ValueError: known betas that are empty, outside (0, 1) or leave the training range.
    """
    known = tf.get_static_value(betas)
    if known is not None:
      known = BETAS.convert(list(known.reshape([-1])) if hasattr(known, "reshape") else known,
                            "betas")
      diffusion.check_schedule(known, self.config.noise_schedule, "betas")
    betas = tf.cast(betas, tf.float32)
    # Graph checks: the SavedModel keeps them, the exporter drops Assert ops for TFLite and
    # TFJS (`frozen_graph`). String-only data keeps each a plain Assert: with a tensor in its
    # data tf.debugging wraps it in a cond (an If op and two functions).
    checks = [
        tf.debugging.Assert(tf.size(betas) > 0, [
            "vocoder_betas: the schedule is empty; pass one beta per reverse step"]),
        tf.debugging.Assert(tf.reduce_all((betas > 0.0) & (betas < 1.0)), [
            "vocoder_betas: every beta must be in (0, 1)"])]
    with tf.control_dependencies(checks):
      betas = tf.identity(betas)
    noise, lengths, mask, denoise = self._inputs(mel, mel_lengths, noise)
    audio = diffusion.reverse_process_loop(denoise, noise, lengths, betas,
                                           self.config.noise_schedule, mask)
    return {"audio": audio * mask, "audio_lengths": lengths}


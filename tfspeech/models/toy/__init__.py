"""Toy tasks that prove the trainer until real models land.

  "toy":     a causal-conv sequence regressor on variable-length synthetic data
             (one optimizer, masked loss, RNG noise, eval, image/audio summaries).
  "toy_gan": a conditional LSGAN + L1 reconstruction with two optimizers, laid
             out like HiFi-GAN's step (D update on detached fake, then G update
             through the updated D).
"""

from tfspeech.models.toy.gan import ToyGanConfig, ToyGanTask
from tfspeech.models.toy.regression import ToyConfig, ToyTask

__all__ = ["ToyConfig", "ToyGanConfig", "ToyGanTask", "ToyTask"]

"""Waveform augmentation for training (all off by default).

* speed perturbation (``--speed-perturb``): resample by a factor drawn from 0.9 / 1.0 / 1.1,
  which changes tempo and pitch together (Ko et al., 2015); torchaudio's band-limited resampler.
* additive noise (``--noise-snr-db X``): white Gaussian noise at X dB signal-to-noise ratio.

SpecAugment works on model features, so it lives in the adapter (``augment_batch``). Any
input-side augmentation makes every pass over an utterance different, so it turns the
encoder-output cache off (the trainer says so).
"""

from __future__ import annotations

import numpy as np
import torch

from asrtune.data.audio import SAMPLE_RATE_HZ

SPEED_FACTORS = (0.9, 1.0, 1.1)


def augment_waveform(audio: np.ndarray, rng: np.random.Generator, speed_perturb: bool, noise_snr_db: float | None) -> np.ndarray:
    """Apply the enabled waveform augmentations to a 16 kHz mono float32 clip."""
    if speed_perturb:
        factor = float(rng.choice(SPEED_FACTORS))
        if factor != 1.0:
            import torchaudio.functional as AF  # heavy: torchaudio, only for speed perturbation

            # Playing SAMPLE_RATE_HZ*factor samples per second == resampling to SAMPLE_RATE_HZ/factor.
            audio = AF.resample(torch.from_numpy(audio), int(SAMPLE_RATE_HZ * factor), SAMPLE_RATE_HZ).numpy()
    if noise_snr_db is not None:
        power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-10
        noise_power = power / (10 ** (noise_snr_db / 10))
        audio = audio + rng.normal(0.0, np.sqrt(noise_power), size=audio.shape).astype(np.float32)
    return audio.astype(np.float32, copy=False)

"""Audio front end: WAV/compressed loading, silence trimming, mel spectrograms, Griffin-Lim."""

from tfspeech.audio.griffin_lim import griffin_lim
from tfspeech.audio.griffin_lim import griffin_lim_preview
from tfspeech.audio.griffin_lim import istft
from tfspeech.audio.griffin_lim import mel_to_audio
from tfspeech.audio.griffin_lim import mel_to_linear
from tfspeech.audio.griffin_lim import spectral_convergence
from tfspeech.audio.mel import MelConfig
from tfspeech.audio.mel import MelSpectrogram
from tfspeech.audio.mel import hann_window
from tfspeech.audio.mel import log_compress
from tfspeech.audio.mel import log_decompress
from tfspeech.audio.mel import mel_filterbank
from tfspeech.audio.mel import num_frames
from tfspeech.audio.mel import stft
from tfspeech.audio.silence import normalize_peak
from tfspeech.audio.silence import peak
from tfspeech.audio.silence import rms_db
from tfspeech.audio.silence import trim_silence
from tfspeech.audio.wav import AudioError
from tfspeech.audio.wav import check_decodable_here
from tfspeech.audio.wav import decode_wav
from tfspeech.audio.wav import load_audio
from tfspeech.audio.wav import load_wav
from tfspeech.audio.wav import write_wav

__all__ = [
    "AudioError", "MelConfig", "MelSpectrogram", "check_decodable_here", "decode_wav",
    "griffin_lim",
    "griffin_lim_preview", "hann_window", "istft", "load_audio", "load_wav", "log_compress",
    "log_decompress", "mel_filterbank",
    "mel_to_audio", "mel_to_linear", "normalize_peak", "num_frames", "peak", "rms_db",
    "spectral_convergence", "write_wav",
    "stft", "trim_silence",
]

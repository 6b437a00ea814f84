"""tfspeech: pure-TensorFlow, graph-mode speech synthesis."""

__version__ = "0.1.0"

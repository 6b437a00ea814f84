"""TF-native building blocks (installed as `tfspeech.ops`): alignment, sequences, pitch, resampling."""

"""Exporters to SavedModel, TFLite and TFJS (installed as `tfspeech.export`)."""

"""Evaluation metrics, kept apart from the models (descript-audio-codec style)."""

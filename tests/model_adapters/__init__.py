"""Tests of the model adapters and checkpoint formats (model_adapters/)."""

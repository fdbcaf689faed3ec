"""Tests of the training module (training/)."""

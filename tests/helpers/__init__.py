"""Builders shared by the tests: tiny checkpoints and VLMs, stores, judge servers, fixtures."""

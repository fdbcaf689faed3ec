"""Tests of the engine (harness/)."""

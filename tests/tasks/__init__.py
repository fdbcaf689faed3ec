"""Tests of the task plugins (tasks/)."""

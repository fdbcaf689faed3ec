"""Tests of the leaderboard (leaderboard/)."""

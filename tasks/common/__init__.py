"""Helpers shared by several task plugins."""

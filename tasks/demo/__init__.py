"""Shared synthetic scene generator for the tasks' demo data writers (and the demo model's training data)."""

from tasks.demo.scenes import (
    BACKGROUNDS,
    COLORS,
    KINDS,
    NUMBER_WORDS,
    SPLITS,
    WORDS,
    Scene,
    Shape,
    make_scene,
    make_scenes,
    render,
    split_of,
    with_article,
)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "KINDS",
    "NUMBER_WORDS",
    "SPLITS",
    "WORDS",
    "Scene",
    "Shape",
    "make_scene",
    "make_scenes",
    "render",
    "split_of",
    "with_article",
]

"""Synthetic scenes for the demo data: a few flat coloured shapes on a light background, maybe a word.

A scene is a pure function of ``(seed, split, index)``. Every scene layout (shapes, cells, word) belongs
to exactly one split, decided by a hash of the layout, so the ``train`` and ``eval`` splits never share
a layout: a model trained on ``train`` scenes has not seen the ``eval`` ones.

Layout: the shapes sit in the cells of a 2x2 grid (at most one shape per cell); when the scene has a
word, it is drawn in a band along the bottom edge with PIL's bitmap font, scaled up to be legible.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

KINDS = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 80, 220),
    "yellow": (240, 200, 0),
    "purple": (130, 40, 170),
    "orange": (245, 130, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "gray": (205, 205, 205),
    "beige": (240, 225, 190),
    "pink": (250, 210, 222),
}
# Words that can appear in a scene, with a French translation for translation-style questions.
WORDS: dict[str, str] = {
    "cat": "chat",
    "dog": "chien",
    "sun": "soleil",
    "tree": "arbre",
    "bird": "oiseau",
    "fish": "poisson",
    "moon": "lune",
    "book": "livre",
    "milk": "lait",
    "house": "maison",
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
SPLITS = ("eval", "train")
EVAL_BUCKETS = 5  # one layout hash bucket in EVAL_BUCKETS belongs to the eval split
WORD_PROBABILITY = 0.5
INK = (20, 20, 20)


@dataclass(frozen=True)
class Shape:
    """One shape: its kind, colour, grid cell (column 0 = left, row 0 = top) and size (share of the cell)."""

    kind: str
    color: str
    col: int
    row: int
    size: float

    @property
    def side(self) -> str:
        """Horizontal half of the image: "left" or "right"."""
        return "left" if self.col == 0 else "right"

    @property
    def level(self) -> str:
        """Vertical half of the image: "top" or "bottom"."""
        return "top" if self.row == 0 else "bottom"

    @property
    def position(self) -> str:
        """Corner name, e.g. "top left"."""
        return f"{self.level} {self.side}"


@dataclass(frozen=True)
class Scene:
    """A background colour name, the shapes (in reading order) and an optional word."""

    background: str
    shapes: tuple[Shape, ...]
    word: str | None = None

    def select(self, kind: str | None = None, color: str | None = None) -> list[Shape]:
        """The shapes matching a kind and/or a colour (None matches anything)."""
        return [s for s in self.shapes if kind in (None, s.kind) and color in (None, s.color)]

    def count(self, kind: str | None = None, color: str | None = None) -> int:
        """How many shapes match."""
        return len(self.select(kind, color))

    def has(self, kind: str | None = None, color: str | None = None) -> bool:
        """Whether any shape matches."""
        return self.count(kind, color) > 0

    def the(self, kind: str | None = None, color: str | None = None) -> Shape | None:
        """The one shape matching, or None when there are none or several."""
        found = self.select(kind, color)
        return found[0] if len(found) == 1 else None

    def kinds(self) -> list[str]:
        """Kinds present, in KINDS order."""
        return [k for k in KINDS if self.has(kind=k)]

    def colors(self) -> list[str]:
        """Colours present, in COLORS order."""
        return [c for c in COLORS if self.has(color=c)]

    def colors_of(self, kind: str) -> list[str]:
        """Colours of the shapes of one kind, in reading order (repeats kept)."""
        return [s.color for s in self.select(kind=kind)]

    def unique_kinds(self) -> list[str]:
        """Kinds that occur exactly once, so "the <kind>" names one shape."""
        return [k for k in KINDS if self.count(kind=k) == 1]

    def unique_colors(self) -> list[str]:
        """Colours that occur exactly once, so "the <colour> shape" names one shape."""
        return [c for c in COLORS if self.count(color=c) == 1]

    def pick_by_kind(self, rng: random.Random) -> Shape | None:
        """A random shape among those whose kind occurs once; None (nothing drawn) when no kind does."""
        kinds = self.unique_kinds()
        return self.the(kind=rng.choice(kinds)) if kinds else None

    def pick_by_color(self, rng: random.Random) -> Shape | None:
        """A random shape among those whose colour occurs once; None (nothing drawn) when no colour does."""
        colors = self.unique_colors()
        return self.the(color=rng.choice(colors)) if colors else None

    def at(self, col: int, row: int) -> Shape | None:
        """The shape in a grid cell, if any."""
        return next((s for s in self.shapes if (s.col, s.row) == (col, row)), None)

    @staticmethod
    def left_of(a: Shape, b: Shape) -> bool:
        """Whether ``a`` is in the left column and ``b`` in the right one."""
        return a.col < b.col

    def layout_key(self) -> str:
        """What defines a layout for the split assignment: shapes by cell, and the word."""
        parts = sorted(f"{s.col}{s.row}:{s.kind}:{s.color}" for s in self.shapes)
        return "|".join(parts) + f"|word={self.word or ''}"


def with_article(phrase: str) -> str:
    """``phrase`` with "a" or "an" in front, e.g. "an orange circle"."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def split_of(scene: Scene) -> str:
    """The split a scene's layout belongs to ("eval" or "train")."""
    digest = hashlib.sha256(scene.layout_key().encode()).digest()
    return "eval" if digest[0] % EVAL_BUCKETS == 0 else "train"


def _random_scene(rng: random.Random) -> Scene:
    cells = sorted(rng.sample([(c, r) for r in (0, 1) for c in (0, 1)], rng.randint(1, 4)), key=lambda x: x[::-1])
    shapes = tuple(
        Shape(rng.choice(KINDS), rng.choice(list(COLORS)), col, row, round(rng.uniform(0.6, 0.9), 2))
        for col, row in cells
    )
    word = rng.choice(list(WORDS)) if rng.random() < WORD_PROBABILITY else None
    return Scene(rng.choice(list(BACKGROUNDS)), shapes, word)


def make_scene(seed: int, split: str = "eval", index: int = 0) -> Scene:
    """The scene number ``index`` of ``split`` for ``seed``; draws until the layout falls in the split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"{seed}:{split}:{index}")
    while True:
        scene = _random_scene(rng)
        if split_of(scene) == split:
            return scene


def make_scenes(seed: int, split: str, indices: Iterable[int]) -> list[Scene]:
    """Several scenes of one split."""
    return [make_scene(seed, split, i) for i in indices]


@lru_cache(maxsize=1)
def _bitmap_font() -> ImageFont.ImageFont:
    loader = getattr(ImageFont, "load_default_imagefont", None)  # Pillow >= 10.1
    return loader() if loader is not None else ImageFont.load_default()


def _word_band(size: int) -> tuple[int, int]:
    """(scale, band height) for the word strip of a ``size`` image."""
    scale = max(1, size // 40)
    return scale, 11 * scale + 2 * scale


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, cell_w: float, cell_h: float) -> None:
    cx, cy = (shape.col + 0.5) * cell_w, (shape.row + 0.5) * cell_h
    half = shape.size * min(cell_w, cell_h) / 2
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    fill = COLORS[shape.color]
    if shape.kind == "circle":
        draw.ellipse(box, fill=fill)
    elif shape.kind == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((box[0] + box[2]) / 2, box[1]), (box[0], box[3]), (box[2], box[3])], fill=fill)


def _draw_word(img: Image.Image, word: str, scale: int, band: int) -> None:
    font = _bitmap_font()
    left, top, right, bottom = font.getbbox(word)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), word, fill=255, font=font)
    mask = mask.resize((mask.width * scale, mask.height * scale), Image.Resampling.NEAREST)
    x = (img.width - mask.width) // 2
    y = img.height - band + (band - mask.height) // 2
    img.paste(INK, (x, y, x + mask.width, y + mask.height), mask)


def render(scene: Scene, size: int = 96) -> Image.Image:
    """Draw a scene as a ``size`` x ``size`` RGB image (no anti-aliasing)."""
    img = Image.new("RGB", (size, size), BACKGROUNDS[scene.background])
    scale, band = _word_band(size) if scene.word else (1, 0)
    draw = ImageDraw.Draw(img)
    for shape in scene.shapes:
        _draw_shape(draw, shape, size / 2, (size - band) / 2)
    if scene.word:
        _draw_word(img, scene.word, scale, band)
    return img

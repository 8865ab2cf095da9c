"""The FineShapes vocabulary: every attribute value and the words used for it.

The first word of each synonym list is canonical: the fine caption and region descriptions
use it; coarse references draw from the whole list, as people vary their words. VQA answers
are the value keys themselves ("night", "circle"), single words.
The parser (`grammar.py`) reads every word listed here back, so a word may stand for one
thing only.
"""

from __future__ import annotations

BACKGROUNDS: dict[str, list[str]] = {
    "snow": ["snow", "the snow", "a snowy field", "snowy ground"],
    "grass": ["grass", "the grass", "a lawn", "a grassy field"],
    "sea": ["sea", "the sea", "the ocean", "water"],
    "sand": ["sand", "the sand", "a beach", "sandy ground"],
    "night": ["night sky", "the night sky", "the dark night", "a starry night"],
    "brick": ["brick", "a brick wall", "bricks", "the brick wall"],
    "wood": ["wood", "a wooden floor", "planks", "the wooden floor"],
    "sky": ["sky", "the sky", "a cloudy sky", "clouds"],
}

SHAPES: dict[str, list[str]] = {
    "circle": ["circle", "ball", "disc"],
    "square": ["square", "box", "block"],
    "triangle": ["triangle"],
    "star": ["star"],
    "diamond": ["diamond", "rhombus"],
    "hexagon": ["hexagon"],
    "cross": ["cross", "plus sign"],
    "heart": ["heart"],
}

COLORS: dict[str, list[str]] = {
    "red": ["red", "crimson"],
    "orange": ["orange"],
    "yellow": ["yellow", "golden"],
    "green": ["green"],
    "blue": ["blue"],
    "purple": ["purple", "violet"],
    "pink": ["pink"],
    "brown": ["brown"],
    "white": ["white"],
    "black": ["black"],
}

SIZES: dict[str, list[str]] = {
    "small": ["small", "little", "tiny"],
    "medium": ["medium", "medium-sized", "mid-sized"],
    "large": ["large", "big", "huge"],
}

PATTERNS: dict[str, list[str]] = {
    "solid": ["solid", "plain"],
    "striped": ["striped", "stripy"],
    "dotted": ["dotted", "spotted", "polka-dot"],
    "outlined": ["outlined", "hollow"],
}

# Spatial relation of a subject to an object; "in front of" means it occludes the other.
RELATIONS: dict[str, list[str]] = {
    "left of": ["left of", "to the left of"],
    "right of": ["right of", "to the right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath"],
    "in front of": ["in front of", "partly covering"],
    "behind": ["behind", "partly hidden by"],
}

INVERSE_RELATION = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "in front of": "behind",
    "behind": "in front of",
}

# Short rendered text: digits or words, drawn in capitals.
TEXTS = ["GO", "STOP", "SALE", "OPEN", "EXIT", "ZOO", "SUN", "HELLO", "7", "42", "305", "2024"]

NUMBERS = ["zero", "one", "two", "three", "four", "five"]
COUNT_NOUNS = ["shapes", "objects", "things", "shape", "object", "thing"]

# Colours too close to a background's own to be seen reliably are never drawn on it.
LOW_CONTRAST: dict[str, set[str]] = {
    "snow": {"white"},
    "grass": {"green"},
    "sea": {"blue"},
    "sand": {"yellow"},
    "night": {"black"},
    "brick": {"red", "brown"},
    "wood": {"brown", "orange"},
    "sky": {"white"},
}

# Radius of each size as a fraction of the image side.
SIZE_RADIUS = {"small": 0.085, "medium": 0.135, "large": 0.195}

"""Letters that pass for Latin ones: Cyrillic a (U+0430), Greek omicron, Cherokee GO (U+13AA) and the
others in Unicode's list of confusable characters (UTS #39, as confusable_homoglyphs ships it), each as
the ASCII it looks like. accounts.name_skeleton folds names with it, so a Cyrillic "Mo" is seen to be "mo".
"""

from __future__ import annotations

from confusable_homoglyphs import utils

# Marks the data keeps around right-to-left characters; never part of what a character looks like.
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


def _ascii_lookalikes() -> dict[int, str]:
    """Every non-ASCII character the list says looks like ASCII letters or digits, and what it looks like."""
    table: dict[int, str] = {}
    for char, entries in utils.load("confusables.json").items():
        if len(char) != 1 or char.isascii():
            continue
        shapes = (entry["c"].translate(_DIRECTION_MARKS) for entry in entries)
        shape = next((shape for shape in shapes if shape.isascii() and shape.isalnum()), None)
        if shape is not None:
            table[ord(char)] = shape
    return table


LATIN = _ascii_lookalikes()

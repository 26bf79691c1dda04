"""The quality scale: 0 (smallest files) .. 100 (best), as in libjpeg, cwebp and Pillow.

A model has N operating points (a level and the scale the image is coded
at); the scale is cut into N equal bands, the top one closed, so every model
takes the same ``-q``. No
imports: the command line checks a quality before anything heavy loads.
"""

from __future__ import annotations

__all__ = ["MAX_QUALITY", "DEFAULT_QUALITY", "level_of", "lowest_qualities"]

MAX_QUALITY = 100
#: Quality used when none is given (Pillow's and cwebp's default).
DEFAULT_QUALITY = 75


def level_of(quality: int, num_levels: int) -> int:
    """The point (1 .. ``num_levels``) that ``quality`` selects: with 10 points, 0-9 is point 1, ..., 90-100 point 10."""
    return min(int(quality) * num_levels // MAX_QUALITY, num_levels - 1) + 1


def lowest_qualities(num_levels: int) -> list[int]:
    """The lowest quality of each point, in order: one quality per distinct point."""
    return [-(-level * MAX_QUALITY // num_levels) for level in range(num_levels)]

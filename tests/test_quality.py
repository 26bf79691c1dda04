"""The 0..100 quality scale: equal bands, one per model level, every level reachable."""

from __future__ import annotations

from vqcodec.quality import DEFAULT_QUALITY, MAX_QUALITY, level_of, lowest_qualities


def test_bands_are_monotone_cover_every_level_and_start_at_the_lowest_qualities():
    for n in range(1, 13):
        levels = [level_of(q, n) for q in range(MAX_QUALITY + 1)]
        assert levels[0] == 1 and levels[-1] == n
        assert all(b - a in (0, 1) for a, b in zip(levels, levels[1:]))  # monotone, no level skipped
        starts = lowest_qualities(n)
        assert [level_of(q, n) for q in starts] == list(range(1, n + 1))
        assert all(level_of(q - 1, n) == level for level, q in enumerate(starts[1:], start=1))
        sizes = [levels.count(level) for level in range(1, n + 1)]
        assert max(sizes) - min(sizes) <= 2  # equal bands, up to rounding and the top one also holding 100


def test_ten_levels_as_documented():
    assert lowest_qualities(10) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert (level_of(9, 10), level_of(10, 10), level_of(DEFAULT_QUALITY, 10), level_of(100, 10)) == (1, 2, 8, 10)

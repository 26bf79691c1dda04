"""Side by side: an image coded by vqcodec and by Pillow's WebP, AVIF and JPEG at the same file size.

- :mod:`~vqcodec.comparison.codecs`: Pillow's codecs as a user calls them (also the benchmarks');
- :mod:`~vqcodec.comparison.budget`: :func:`compare`, the files, decoded images and numbers;
- :mod:`~vqcodec.comparison.page`: the self-contained HTML page, the index page and a crop picture.

Needs no Keras: the codec's own API and Pillow only.
"""

from vqcodec.comparison.budget import Comparison, Panel, compare

__all__ = ["Comparison", "Panel", "compare"]

"""Benchmarks for vqcodec.

* ``python -m benchmarks.rd --data DIR``      -- RD curves, BD-rates, table and plot.
* ``python -m benchmarks.speed --data DIR``   -- encode/decode speed and peak memory per command.
* ``python -m benchmarks.batch --data DIR``   -- folders: wall time, images/s and peak memory per worker count.
* ``python -m benchmarks.content --data DIR`` -- sizes and chosen payload kinds against lossless WebP and PNG.

The codec under test is reached only through :mod:`benchmarks.ours`; the
Pillow codecs it is compared with live in :mod:`benchmarks.codecs`.
Needs the ``bench`` extra (matplotlib, scipy, bjontegaard).
"""

"""Rate-distortion and speed benchmarks for vqcodec (issue 6).

* ``python -m benchmarks.rd --data DIR``    -- RD curves, BD-rates, table and plot.
* ``python -m benchmarks.speed --data DIR`` -- encode/decode speed and peak memory.

The codec under test is reached only through :mod:`benchmarks.ours`; the
Pillow codecs it is compared with live in :mod:`benchmarks.codecs`.
Needs the ``bench`` extra (matplotlib, scipy, bjontegaard).
"""

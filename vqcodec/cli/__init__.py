"""The ``vqcodec`` command line, a thin layer over the Python API.

- :mod:`~vqcodec.cli.main`: the entry point; :mod:`~vqcodec.cli.parser`: commands and options;
- :mod:`~vqcodec.cli.checks`: arguments and paths checked before anything heavy loads;
- :mod:`~vqcodec.cli.commands`: compress, decompress, info, export, demo; :mod:`~vqcodec.cli.train`: train;
  :mod:`~vqcodec.cli.compare`: compare;
- :mod:`~vqcodec.cli.console`: the lines it prints and its progress bar.
"""

from vqcodec.cli.main import main

__all__ = ["main"]

"""``python -m vqcodec.cli``: the ``vqcodec`` command."""

import sys

from vqcodec.cli.main import main

sys.exit(main())

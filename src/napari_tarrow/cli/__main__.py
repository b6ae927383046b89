"""``python -m napari_tarrow.cli``: the ``napari-tarrow`` command."""

import sys

from . import main

sys.exit(main())

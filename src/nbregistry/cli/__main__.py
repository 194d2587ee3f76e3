"""``python -m nbregistry.cli``: the same as the ``nbregistry`` command."""

import sys

from . import main

sys.exit(main())

"""`python -m core.cli` = `plate-review`."""

import sys

from . import main

sys.exit(main())

"""`python -m a2sb ...` runs the `a2sb` command."""

import sys

from .cli import main

sys.exit(main())

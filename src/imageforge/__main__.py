"""`python -m imageforge`."""

from __future__ import annotations

import sys

from imageforge.cli import main

sys.exit(main())

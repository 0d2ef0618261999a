"""`python -m segmentation` is the `seg` command."""

import sys

from .cli import main

sys.exit(main())

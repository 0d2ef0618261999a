"""`python -m segmentation` is the `seg` command."""

import sys

from .app.main import main

sys.exit(main())

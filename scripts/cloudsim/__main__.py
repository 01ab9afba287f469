"""python3 scripts/cloudsim [options]: serve the emulated clouds on loopback."""

import os
import sys

if not __package__:
    # Run as a directory: make the package importable by its name.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from cloudsim.cli import main
else:
    from .cli import main

sys.exit(main())

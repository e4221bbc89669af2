"""Entry point of the packaged app: the same ``tlstudio`` command as a pip install."""

import multiprocessing
import sys

from tlstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # Windows/macOS spawn: a child must not start the app
    sys.exit(main())

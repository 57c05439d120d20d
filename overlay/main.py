"""Entry point of pycni-overlayd (PyInstaller target; also `python overlay/main.py` from the source tree)."""
import os
import sys

if not getattr(sys, "frozen", False):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from overlay.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

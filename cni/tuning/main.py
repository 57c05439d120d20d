"""Entry point of the pycni tuning executable (PyInstaller target; also runnable from the source tree)."""
import gc
import os
import sys

# Speed: a plugin lives for milliseconds; the cyclic garbage collector only costs time here (imports trigger it).
gc.disable()

if not getattr(sys, "frozen", False):   # from the source tree, also under `python -I` (which adds no script dir)
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(os.path.dirname(_here))]

from common.timeline import mark  # noqa: E402

mark("interpreter up")  # before: the exec, PyInstaller's bootloader, CPython's own start

from common.skel import main  # noqa: E402
from tuning.plugin import PLUGIN  # noqa: E402

if __name__ == "__main__":
    main(PLUGIN)

"""Entry point of the pycni portmap executable (PyInstaller target)."""
from common.skel import main
from portmap.plugin import PLUGIN

if __name__ == "__main__":
    main(PLUGIN)

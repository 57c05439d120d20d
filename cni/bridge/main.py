"""Entry point of the pycni bridge executable (PyInstaller target)."""
from common.skel import main
from bridge.plugin import PLUGIN

if __name__ == "__main__":
    main(PLUGIN)

"""Entry point of the pycni host-local executable (PyInstaller target)."""
from common.skel import main
from host_local.plugin import PLUGIN

if __name__ == "__main__":
    main(PLUGIN)

"""PyInstaller entry of the `pycni` command (build/plugins.spec); from the source tree: `python -m pycni`."""
from pycni.app import main

if __name__ == "__main__":
    raise SystemExit(main())

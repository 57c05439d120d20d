from pycni.app import main

raise SystemExit(main())

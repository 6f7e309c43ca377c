from autograder.engine.cli import main

raise SystemExit(main())

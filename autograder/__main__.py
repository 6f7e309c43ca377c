from autograder.delivery.cli import main

raise SystemExit(main())

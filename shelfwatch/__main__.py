from shelfwatch.cli import main

raise SystemExit(main())

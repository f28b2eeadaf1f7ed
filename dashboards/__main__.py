import sys

from fobs.dashboards.cli import main

sys.exit(main())

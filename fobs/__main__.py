import sys

from fobs.cli import main

sys.exit(main())

"""`python -m fobs.collector ARGS` = `fobs collector ARGS`."""

import sys

from fobs.cli import main

sys.exit(main(["collector", *sys.argv[1:]]))

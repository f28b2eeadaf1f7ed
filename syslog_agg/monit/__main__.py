"""`python -m fobs.syslog_agg.monit ARGS` is `fobs monit ARGS`."""

import sys

from fobs.cli import main

sys.exit(main(["monit", *sys.argv[1:]]))

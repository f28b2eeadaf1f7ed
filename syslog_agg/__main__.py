import sys

from fobs.syslog_agg.cli import main

sys.exit(main())

import sys

from syslog_agg.cli import main

sys.exit(main())

"""fobs: the `fobs` command line, which dispatches to the daemons' packages."""

"""What the supervisor raises, so that its callers (the control API, `fobs up`) decide by category.

    MonitError
    ├── UnknownService   no service of that name (also a KeyError): the API answers 404
    ├── UnknownAction    not one of start, stop, restart, monitor, unmonitor (also a
    │                    ValueError): 400
    ├── Stopping         the supervisor is shutting down and takes no requests (also a
    │                    RuntimeError): 503
    └── StartError       a start that produced no running process; the message says why, and the
                         supervisor turns it into the "Execution failed" status and an exec alert

A mistake in a config (file or code-built) is `fobs.components.config.ConfigError`, as for every
fobs daemon. The second bases keep the standard meaning for callers that catch those.
"""

from __future__ import annotations


class MonitError(Exception):
    """Base of the supervisor's own errors."""


class UnknownService(MonitError, KeyError):
    """No service has this name."""


class UnknownAction(MonitError, ValueError):
    """A control request names an action the supervisor does not know."""


class Stopping(MonitError, RuntimeError):
    """The supervisor is stopping: control requests are refused."""


class StartError(MonitError):
    """A start that did not produce a running process; the message says why."""

"""What the component library raises itself, so callers decide by category.

    ValueError
    ├── ConfigError     a user's mistake in a config file, a flag or a config built in code;
    │                   the message names the key and is shown as one line, never a traceback
    │                   (`fobs` exits 2). Every fobs daemon raises it from its `validate()`.
    └── PayloadError    a registration message (announce, discover reply, unregister) that
                        cannot be used; discovery counts it as invalid and logs it at debug
    nats.errors.Error
    └── TlsDowngradeError (in `bus.py`, whose base nats-py must see) the server offered no
                        TLS where the config asks for it; the connection is refused before
                        CONNECT carries the credentials

Both `ValueError`s keep their standard meaning for callers that catch that. `ConfigError` is
also importable from `fobs.components.config` and `fobs.components`, where it always was.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake in a config file or flag; its message is shown as is, without a traceback."""


class PayloadError(ValueError):
    """A registration message we cannot use; the text says why (counted, logged at debug)."""

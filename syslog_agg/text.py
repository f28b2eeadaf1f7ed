"""Untrusted syslog text made safe for a text log file or `fobs tail`'s terminal.

The escape itself is `fobs.components.text.escape_controls`, the one function every daemon uses
where untrusted text meets a terminal or a text file (the collector's log and `fobs status` too):
C0 controls but tab, DEL and C1 controls escaped, LF and CR as `\\n` and `\\r`.
"""

from __future__ import annotations

from fobs.components.text import escape_controls

__all__ = ["escape_controls"]

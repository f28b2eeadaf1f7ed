"""At most one log line per period for a repeating failure (the counts are in varz)."""

from __future__ import annotations

import math
import time


class Every:
    """Lets a log line through at most once per `seconds`.

    Usage:
        if (skipped := self._log.ready()) is not None:
            logger.warning("… ({} similar lines skipped)", skipped)
    """

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self._skipped = 0
        self._last = -math.inf

    def ready(self) -> int | None:
        """None inside the period; else how many calls were refused since the last line."""
        now = time.monotonic()
        if now - self._last < self.seconds:
            self._skipped += 1
            return None
        skipped, self._skipped, self._last = self._skipped, 0, now
        return skipped

    def reset(self) -> None:
        """Let the next call through (a new streak of failures deserves its first line)."""
        self._last = -math.inf

"""The running output: one historian behind its spool, with batching, retry and counters.

This is Telegraf's RunningOutput on our event loop. `add` appends encoded points to the spool (the
point is accepted once it is there) and never waits; one task per output drains the spool:

- a batch is sent when it holds `batch_size` points or `batch_bytes`, or when its oldest point has
  waited `flush_interval` (a full spool wakes the task early, except while it is backing off);
- the answer decides (see `fobs.collector.historians.errors`): written → acknowledged; WriteError
  (network, timeout, 5xx, 429, 408) → kept and retried with a doubling, jittered backoff capped at
  `retry.max_delay`, or the server's Retry-After when longer (capped at `retry.retry_after_max`);
  413 → the batch is split in halves, recursively, and later batches are kept under the size that
  failed; RejectError (other 4xx) → the batch goes to the quarantine file with the reason and is
  acknowledged; FatalError (401/403/404) → kept, retried every `retry.max_delay`, reported
  unhealthy;
- on close, pending batches are sent at once, without backoff, for at most the close timeout;
  whatever is not written stays in the disk spool for the next start.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from fobs.collector.buffer import Batch, Buffer, SpoolConfig
from fobs.collector.historians import Historian
from fobs.collector.historians.errors import (
    FatalError,
    HistorianError,
    PartialWriteError,
    RejectError,
    TooLargeError,
    WriteError,
)
from fobs.collector.quarantine import Quarantine
from fobs.collector.throttle import Every
from fobs.components.config import ConfigError, positive
from fobs.components.text import escape_controls

MIN_SPLIT_BYTES = 64 * 1024            # 413 never shrinks later batches below this
SYNC_EVERY = 1.0                       # seconds: the spool's fsync policy is applied this often
JITTER = 0.2
DEFAULT_BATCH_SIZE = 5000
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
DEFAULT_FLUSH_INTERVAL = 1.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class RetryConfig:
    """[outputs.<kind>.retry] — backoff after a failed write: initial, doubling, capped, ±20 %."""

    initial_delay: float = 1.0         # seconds before the first retry
    max_delay: float = 60.0            # cap of the doubling backoff (also used after FatalError)
    retry_after_max: float = 600.0     # cap on a server's Retry-After

    def validate(self) -> None:
        positive(self.initial_delay, "initial_delay")
        positive(self.max_delay, "max_delay")
        positive(self.retry_after_max, "retry_after_max")
        if self.max_delay < self.initial_delay:
            raise ConfigError(f"max_delay: must be at least initial_delay "
                              f"({self.initial_delay}), got {self.max_delay}")


@dataclass(frozen=True)
class OutputOptions:
    """Keys every `[[outputs.<kind>]]` entry has: its name, and how this wrapper batches,
    retries and spools for its historian (the historian's own keys are in its config)."""

    name: str = ""                     # "" = the kind; names the spool and quarantine files
    batch_size: int = DEFAULT_BATCH_SIZE            # points per write, at most
    batch_bytes: int = DEFAULT_BATCH_BYTES          # bytes per write, at most (before gzip)
    flush_interval: float = DEFAULT_FLUSH_INTERVAL  # a smaller batch waits at most this long
    retry: RetryConfig = field(default_factory=RetryConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)

    def validate(self) -> None:
        if self.name and not _NAME.fullmatch(self.name):
            raise ConfigError(f"name: must be 1-64 letters, digits, '_', '.' or '-' and start "
                              f"with a letter or digit, got {self.name!r}")
        positive(self.batch_size, "batch_size")
        positive(self.batch_bytes, "batch_bytes")
        positive(self.flush_interval, "flush_interval")


@dataclass
class OutputStats:
    points_added: int = 0              # accepted into the spool
    points_written: int = 0
    points_rejected: int = 0           # refused as bad data by the server, quarantined
    points_dropped_closed: int = 0     # added after close
    batches_written: int = 0
    batches_rejected: int = 0
    write_errors: int = 0              # failed write attempts, whatever the cause
    retries: int = 0                   # attempts at a batch that had failed before
    fatal_errors: int = 0              # of those, the ones retrying cannot fix
    splits: int = 0                    # 413 answers, each splitting a batch in two
    loop_errors: int = 0               # unexpected errors in the write loop (bugs, spool I/O)
    last_write_duration_s: float = 0.0
    last_write_at: float = 0.0         # unix time of the last successful write
    last_error: str = ""
    state: str = "starting"            # starting, ok, retrying, failing, closed


class Output:
    """See the module docstring. Made and started by `fobs.collector.fanout.Outputs`."""

    def __init__(self, name: str, kind: str, historian: Historian, buffer: Buffer,
                 options: OutputOptions, quarantine: Quarantine) -> None:
        self.name = name
        self.kind = kind
        self.historian = historian
        self.buffer = buffer
        self.options = options
        self.quarantine = quarantine
        self.stats = OutputStats()
        self._batch_bytes = options.batch_bytes
        self._rng = random.Random()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flush_now = False
        self._failures = 0
        self._retry_after: float | None = None
        self._failed_batch: Batch | None = None
        self._log = Every(60.0)

    # --- producer side --------------------------------------------------------------------------

    def add(self, data: bytes, points: int) -> bool:
        """Accept encoded points (True once they are in the spool); never blocks on the network."""
        if self._closing:
            self.stats.points_dropped_closed += points
            return False
        if not self.buffer.append(data, points):
            return False
        self.stats.points_added += points
        if not self._failures and self.buffer.pending()[0] >= self.options.batch_size:
            self._wake.set()
        return True

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.historian.connect()
        except HistorianError as e:            # the write loop reports and retries it
            self.stats.last_error = str(e)
        self.stats.state = "ok"
        self._task = asyncio.create_task(self._run(), name=f"output-{self.name}")

    async def close(self, timeout: float) -> None:
        """Send what is pending for at most `timeout` seconds, then stop; the rest stays spooled."""
        if self._closing and self._task is None:
            return
        self._closing = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            elif self._task.exception() is not None:
                logger.opt(exception=self._task.exception()).error(
                    "Output {} write loop failed", self.name)
            self._task = None
        await self.historian.close()
        pending = self.buffer.pending()[0]
        self.buffer.close()
        self.stats.state = "closed"
        if pending:
            logger.info("Output {} closed with {} points left in its spool", self.name, pending)

    def flush(self) -> None:
        """Send pending points now instead of waiting for `flush_interval` (tests, shutdown)."""
        self._flush_now = True
        self._wake.set()

    def drained(self) -> bool:
        """True when the spool holds nothing unwritten."""
        return self.buffer.pending()[0] == 0

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, checked after each write attempt; False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
        return True

    # --- the write loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        """The write loop; an unexpected error (a bug, a spool I/O error) is logged, counted and
        survived: the output must never stop sending silently."""
        while True:
            try:
                if await self._step():
                    return
            except Exception as e:
                self.stats.loop_errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                if self._log.ready() is not None:
                    logger.opt(exception=e).error("Output {} write loop error", self.name)
                if self._closing:
                    return
                await self._sleep(self._backoff())

    async def _step(self) -> bool:
        """One pass: wait, or send one batch; True when the loop is done (closing, drained)."""
        points, size, oldest_ns = self.buffer.pending()
        if not points:
            self._flush_now = False
            self._progress.set()
            if self._closing:
                return True
            await self._sleep(self.options.flush_interval)
            return False
        if not (self._closing or self._flush_now) and points < self.options.batch_size \
                and size < self._batch_bytes:
            age = (time.time_ns() - oldest_ns) / 1e9         # wall clock: survives restarts
            wait = min(self.options.flush_interval, self.options.flush_interval - age)
            if wait > 0:
                await self._sleep(wait)
                return False
        batch = self.buffer.peek(self.options.batch_size, self._batch_bytes)
        if batch is None:                      # the rest of a corrupt segment was skipped
            await self._sleep(self.options.flush_interval)
            return False
        sent = await self._send(batch)
        self._progress.set()
        if sent:
            return False
        if self._closing:
            return True
        await self._sleep(self._backoff())
        return False

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds` or until woken (a full batch, flush, close), syncing the spool."""
        if self._closing:
            return
        self._wake.clear()
        deadline = time.monotonic() + seconds
        while True:
            self.buffer.sync()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), min(remaining, SYNC_EVERY))
                return
            except TimeoutError:
                pass

    def _backoff(self) -> float:
        retry = self.options.retry
        if self.stats.state == "failing":
            delay = retry.max_delay
        else:
            delay = min(retry.max_delay, retry.initial_delay * 2 ** (self._failures - 1))
        delay *= 1 + self._rng.uniform(-JITTER, JITTER)
        if self._retry_after is not None:
            delay = max(delay, min(self._retry_after, retry.retry_after_max))
        return delay

    async def _send(self, batch: Batch) -> bool:
        """One attempt at a batch: True when it is settled (written or quarantined)."""
        if batch is self._failed_batch:
            self.stats.retries += 1
        start = time.monotonic()
        data = batch.data[batch.sent:] if batch.sent else batch.data
        points = data.count(b"\n") if batch.sent else batch.points
        try:
            await self._write(batch, data, points)
        except (WriteError, FatalError) as e:
            self.stats.last_write_duration_s = round(time.monotonic() - start, 6)
            self._failed(batch, e)
            return False
        self.stats.last_write_duration_s = round(time.monotonic() - start, 6)
        self.stats.last_write_at = time.time()
        self.buffer.ack(batch)
        if self._failures:
            logger.info("Output {} writes again after {} failed attempt(s)", self.name,
                        self._failures)
            self._log.reset()
        self._failures = 0
        self._retry_after = None
        self._failed_batch = None
        self.stats.state = "ok"
        return True

    async def _write(self, batch: Batch, data: bytes, points: int) -> None:
        """Write `data` (the batch or a part of it), splitting on 413 and quarantining rejected
        parts; raises only to retry. Settled parts advance `batch.sent`, so a retry after a
        split never writes (or counts) them again."""
        try:
            await self.historian.write(data)
        except TooLargeError as e:
            halves = _split(data)
            if halves is None:
                self._reject(data, points, f"{e} (a single line)")
            else:
                self.stats.splits += 1
                self._batch_bytes = max(MIN_SPLIT_BYTES, min(self._batch_bytes, len(data) // 2))
                for half in halves:
                    await self._write(batch, half, half.count(b"\n"))
                return
        except PartialWriteError as e:
            rejected = points if e.rejected is None else min(points, e.rejected)
            self.stats.points_written += points - rejected
            self._reject(data, rejected, str(e))
        except RejectError as e:
            self._reject(data, points, str(e))
        else:
            self.stats.points_written += points
            self.stats.batches_written += 1
        batch.sent += len(data)

    def _reject(self, data: bytes, points: int, reason: str) -> None:
        self.stats.points_rejected += points
        self.stats.batches_rejected += 1
        self.quarantine.add(data, points, reason)

    def _failed(self, batch: Batch, error: HistorianError) -> None:
        self._failures += 1
        self._failed_batch = batch
        self.stats.write_errors += 1
        self.stats.last_error = str(error)
        fatal = isinstance(error, FatalError)
        if fatal:
            self.stats.fatal_errors += 1
        self.stats.state = "failing" if fatal else "retrying"
        self._retry_after = error.retry_after if isinstance(error, WriteError) else None
        if self._log.ready() is not None:
            log = logger.error if fatal else logger.warning
            log("Output {} cannot write ({} failed attempt(s), {} points waiting): {}",
                self.name, self._failures, self.buffer.pending()[0],
                escape_controls(str(error)))    # it may quote the server's answer

    # --- observation ----------------------------------------------------------------------------

    def health(self) -> str | None:
        """Why this output is unhealthy (a FatalError streak), or None."""
        if self.stats.state == "failing":
            return f"output {self.name}: {self.stats.last_error}"
        return None

    def varz(self) -> dict[str, object]:
        """The free text for varz; the counters are declared in `fobs.collector.metrics`."""
        return {"kind": self.kind, "state": self.stats.state, "last_error": self.stats.last_error}

    @property
    def batch_bytes(self) -> int:
        """The largest batch sent now (shrinks after a 413)."""
        return self._batch_bytes


def _split(data: bytes) -> tuple[bytes, bytes] | None:
    """Two halves of newline-terminated lines, cut at the line boundary nearest the middle."""
    middle = len(data) // 2
    cut = data.find(b"\n", middle)
    if cut == -1 or cut == len(data) - 1:
        cut = data.rfind(b"\n", 0, middle)
    if cut == -1 or cut == len(data) - 1:
        return None
    return data[:cut + 1], data[cut + 1:]

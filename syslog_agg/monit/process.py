"""Spawning, watching and stopping OS processes without threads.

asyncio's subprocess support in Python 3.11 waits for children with one thread each
(ThreadedChildWatcher). Instead we spawn with `subprocess.Popen` and learn of an exit through a
pidfd registered with the event loop, which also works for daemons we did not spawn (a
pidfile's pid). Every child gets its own session, hence its own process group, so a stop
reaches the grandchildren too and a terminal's Ctrl-C never hits them directly.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fobs.components.process import ProcFS

OUTPUT_TAIL = 512  # bytes of a program's output kept for the status page
_REAL_PROC = ProcFS()
_LIBC = ctypes.CDLL(None, use_errno=True)  # resolved before any fork
_PR_SET_PDEATHSIG = 1


def _parent_death_signal(parent: int) -> Callable[[], None]:
    """For the forked child: get SIGTERM if the supervisor dies without stopping it (kill -9)."""
    def arm() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before we could arm
            os.kill(os.getpid(), signal.SIGTERM)
    return arm


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _environ(env: Mapping[str, str]) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(env)
    return merged


async def wait_pid(pid: int, timeout: float | None = None) -> bool:
    """Wait until `pid` exits (any process, not only our children); False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(fd, gone.set)
    try:
        await asyncio.wait_for(gone.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    st = _REAL_PROC.stat(pid)
    return st is not None and st.state != "Z"


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process remains in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(st.pgrp == pgid and st.state != "Z" for st in _REAL_PROC.table().values())


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _wait_group(pgid: int, deadline: float) -> bool:
    """Poll until the group is empty: the kernel gives no event for a whole group."""
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class Child:
    """A process we spawned, leader of its own process group; `exited` is set when it ends."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.started = time.time()
        self.exited = asyncio.Event()
        self.returncode: int | None = None
        self.on_exit: Callable[[Child], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = os.pidfd_open(popen.pid)
        self._loop.add_reader(self._fd, self._reap)

    @classmethod
    def spawn(cls, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | None = None, log: str = "", output: int | None = None,
              die_with_parent: bool = False) -> Child:
        """Start `argv` in a new session. Raises OSError when it cannot be executed.

        `die_with_parent` arms Linux's parent-death signal, so a managed child does not outlive a
        supervisor killed with SIGKILL (which could not stop it in order).
        """
        out = None
        if output is not None:
            out = output
        elif log:
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                cwd=cwd or None, env=_environ(env or {}), start_new_session=True,
                close_fds=True,
                preexec_fn=_parent_death_signal(os.getpid()) if die_with_parent else None)
        finally:
            if log and output is None and out is not None:
                os.close(out)
        return cls(popen)

    def _reap(self) -> None:
        code = self.popen.poll()
        if code is None:
            return
        self.returncode = code
        self._close()
        self.exited.set()
        if self.on_exit is not None:
            self.on_exit(self)

    def _close(self) -> None:
        if self._fd is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    @property
    def running(self) -> bool:
        return not self.exited.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the exit; False on timeout."""
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
        """`sig` to the whole group, wait, then SIGKILL what is left. True if it went quietly."""
        deadline = time.monotonic() + timeout
        if self.running or group_alive(self.pid):
            signal_group(self.pid, sig)
        clean = await self.wait(max(0.0, deadline - time.monotonic()))
        clean = await _wait_group(self.pid, deadline) and clean
        if not clean:
            signal_group(self.pid, signal.SIGKILL)
            await self.wait(2.0)
            await _wait_group(self.pid, time.monotonic() + 2.0)
        return clean

    def kill_now(self) -> None:
        """Last-resort SIGKILL to the group (used when the loop is going away)."""
        signal_group(self.pid, signal.SIGKILL)


@dataclass(frozen=True)
class ProgramResult:
    status: int | None  # None when it could not run or timed out
    output: str
    error: str = ""  # why there is no status
    duration: float = 0.0


async def run_program(argv: Sequence[str], *, timeout: float,
                      env: Mapping[str, str] | None = None, cwd: str | None = None,
                      reap_group: bool = True) -> ProgramResult:
    """Run a command to completion within `timeout` (then its group is killed).

    `reap_group=False` leaves what the program started in its group alone: a start program
    backgrounds the daemon there.
    """
    began = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            child = Child.spawn(argv, env=env, cwd=cwd, output=out.fileno())
        except OSError as e:
            return ProgramResult(None, "", f"cannot execute: {e.strerror or e}")
        try:
            finished = await child.wait(timeout)
        except asyncio.CancelledError:  # the supervisor is stopping: kill it and reap it
            child.kill_now()
            await asyncio.shield(child.wait(1.0))
            raise
        if not finished and reap_group:
            await child.stop(signal.SIGKILL, 1.0)
        elif not finished:
            signal_pid(child.pid, signal.SIGKILL)
            await child.wait(1.0)
        elif reap_group:  # the check is done; anything it left running goes too
            signal_group(child.pid, signal.SIGKILL)
        out.seek(max(0, out.seek(0, os.SEEK_END) - OUTPUT_TAIL))
        text = out.read().decode(errors="replace").strip()
        elapsed = time.monotonic() - began
        if not finished:
            return ProgramResult(None, text, f"timed out after {timeout:g} s", elapsed)
        return ProgramResult(child.returncode, text, "", elapsed)

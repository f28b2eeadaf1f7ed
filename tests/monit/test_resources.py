"""Memory and CPU checks over N cycles, driven through an injected /proc tree."""

from __future__ import annotations

from pathlib import Path

from fobs.components.process import CLOCK_TICKS, PAGE_SIZE, ProcFS, descendants
from fobs.syslog_agg.monit import CpuCheck, MemoryCheck, ProcessConfig
from tests.monit.conftest import svc


def write_proc(root: Path, pid: int, *, ppid: int = 1, rss_kb: int = 1024, ticks: int = 0,
               threads: int = 1) -> None:
    """A /proc/<pid>/stat with the fields the supervisor reads."""
    base = root / str(pid)
    base.mkdir(parents=True, exist_ok=True)
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime priority nice threads itrealvalue starttime vsize rss
    fields = ["S", ppid, pid, pid, 0, -1, 0, 0, 0, 0, 0, ticks, 0, 0, 0, 20, 0, threads, 0,
              100, 0, rss_kb * 1024 // PAGE_SIZE]
    (base / "stat.tmp").write_text(f"{pid} (fake (x)) " + " ".join(map(str, fields)) + "\n")
    (base / "stat.tmp").rename(base / "stat")  # readers never see a half-written file


def fake_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "meminfo").write_text("MemTotal:        1048576 kB\n")
    (root / "uptime").write_text("1000.00 2000.00\n")
    return root


def test_table_and_descendants(tmp_path):
    root = fake_proc(tmp_path)
    write_proc(root, 10, rss_kb=1000)
    write_proc(root, 11, ppid=10, rss_kb=200, threads=3)
    write_proc(root, 12, ppid=11, rss_kb=30)
    write_proc(root, 13, ppid=1, rss_kb=5)
    table = ProcFS(root).table()
    assert table[11].threads == 3 and table[11].rss == 200 * 1024 and table[11].ppid == 10
    assert sorted(p.pid for p in descendants(table, 10)) == [11, 12]
    assert ProcFS(root).total_memory() == 1024 * 1024 * 1024
    assert ProcFS(root).stat(99) is None


async def test_memory_above_threshold_for_3_cycles_restarts(supervise, tmp_path):
    root = fake_proc(tmp_path)
    sup = await supervise(
        processes=(ProcessConfig(name="hog", command=("sleep", "600"),
                                 memory=(MemoryCheck(above_mb=50, cycles=3, action="restart"),
                                         MemoryCheck(above_mb=100, total=True,
                                                     action="alert"))),),
        proc_root=str(root))
    await sup.wait_for(lambda: svc(sup, "hog")["pid"] is not None)
    pid = svc(sup, "hog")["pid"]
    write_proc(root, pid, rss_kb=10 * 1024)
    write_proc(root, 900001, ppid=pid, rss_kb=95 * 1024)  # a child: total 105 MB
    seen_at = sup.cycles
    await sup.wait_for(lambda: sup.cycles >= seen_at + 2 and svc(sup, "hog")["memory"] > 0)
    hog = svc(sup, "hog")
    assert hog["status"] == "Resource limit matched"  # the total-memory alert fired at once
    assert hog["memory"] == 10 * 1024 * 1024 and hog["children"] == 1
    assert hog["memory_total"] == 105 * 1024 * 1024
    assert hog["restarts"] == 0

    high_from = sup.cycles  # this cycle's table was read before the write below
    write_proc(root, pid, rss_kb=80 * 1024)
    await sup.wait_for(lambda: svc(sup, "hog")["restarts"] == 1, 5)
    restarted_at = sup.service("hog").restart_cycles[-1]
    assert restarted_at >= high_from + 3  # three cycles above the limit, not fewer
    alert = next(a for a in sup.status()["alerts"]
                 if a["event"] == "resource" and "above 50 MB" in a["message"])
    assert "for 3 cycles" in alert["message"] and "80.0 MB" in alert["message"]
    assert alert["action"] == "restart"
    await sup.wait_for(lambda: svc(sup, "hog")["pid"] not in (None, pid))


async def test_cpu_above_threshold_for_2_cycles_alerts(supervise, tmp_path):
    root = fake_proc(tmp_path)
    sup = await supervise(
        processes=(ProcessConfig(name="spin", command=("sleep", "600"),
                                 cpu=(CpuCheck(above_percent=50, cycles=2, action="alert"),)),),
        proc_root=str(root))
    await sup.wait_for(lambda: svc(sup, "spin")["pid"] is not None)
    pid = svc(sup, "spin")["pid"]
    ticks = 0

    def burn() -> bool:  # called after every state change: add 10 s of CPU per cycle seen
        nonlocal ticks
        if svc(sup, "spin")["status"] == "Resource limit matched":
            return True
        ticks += 10 * CLOCK_TICKS
        write_proc(root, pid, ticks=ticks)
        return False

    await sup.wait_for(burn, 5)
    spin = svc(sup, "spin")
    assert spin["cpu"] > 50 and spin["restarts"] == 0 and spin["pid"] == pid
    alert = next(a for a in sup.status()["alerts"] if a["event"] == "resource")
    assert "for 2 cycles" in alert["message"] and alert["action"] == "alert"

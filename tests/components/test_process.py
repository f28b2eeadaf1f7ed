"""/proc figures from a fixture tree: the runtime's own-process sample and the CPU% maths."""

from __future__ import annotations

from pathlib import Path

from fobs.components.process import CLOCK_TICKS, PAGE_SIZE, ProcessStats, ProcFS, cpu_percent

PID = 4242


def write_tree(root: Path, *, ticks: int, rss_pages: int) -> None:
    (root / str(PID)).mkdir(parents=True, exist_ok=True)
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime priority nice threads itrealvalue starttime vsize rss
    fields = ["R", 1, PID, PID, 0, -1, 0, 0, 0, 0, 0, ticks, 3, 0, 0, 20, 0, 7, 0, 100, 0,
              rss_pages]
    (root / str(PID) / "stat").write_text(f"{PID} (we) ird) " + " ".join(map(str, fields)))
    (root / "meminfo").write_text("MemTotal:        2048 kB\nMemFree:          512 kB\n"
                                  "MemAvailable:    1024 kB\nHugePages_Total:       0\n")
    (root / "loadavg").write_text("0.75 0.50 0.25 1/100 4242\n")


def test_cpu_percent_is_share_of_one_core():
    assert cpu_percent(3 * CLOCK_TICKS, CLOCK_TICKS, 4.0) == 50.0
    assert cpu_percent(0, CLOCK_TICKS, 1.0) == 0.0  # the pid was reused: never negative


def test_own_process_sample_from_fixture_tree(tmp_path):
    write_tree(tmp_path, ticks=10, rss_pages=300)
    stats = ProcessStats(tmp_path, pid=PID)
    first = stats.sample(max_age=0)
    assert first.cpu == 0.0  # no previous sample to compare with
    assert first.mem_bytes == 300 * PAGE_SIZE
    assert first.mem_used_bytes == 1024 * 1024 and first.mem_free_bytes == 1024 * 1024
    assert first.cpu_load_avg == 0.75 and first.num_cores >= 1
    assert stats.sample(max_age=60) is first  # shared within max_age

    write_tree(tmp_path, ticks=10 + CLOCK_TICKS, rss_pages=300)
    second = stats.sample(max_age=0)
    assert second.cpu > 0.0  # one second of CPU in less than a second of wall time


def test_procfs_reads_stat_after_the_last_parenthesis(tmp_path):
    write_tree(tmp_path, ticks=10, rss_pages=2)
    st = ProcFS(tmp_path).stat(PID)
    assert st is not None
    assert (st.state, st.ppid, st.threads, st.cpu_ticks) == ("R", 1, 7, 13)
    assert ProcFS(tmp_path).total_memory() == 2048 * 1024
    assert ProcFS(tmp_path / "missing").meminfo() == {} and ProcFS(tmp_path).stat(1) is None

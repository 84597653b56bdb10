"""`hashwatch serve --workers N` as a real process tree: the workers serve on one port, one that
dies is replaced, and SIGTERM stops them all; and how many matches each worker runs at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hashwatch.api.settings import ServiceSettings
from hashwatch.api.state import ServiceState

HASHWATCH = str(Path(sys.executable).with_name("hashwatch"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(folder: Path, port: int) -> list[str]:
    return [HASHWATCH, "serve", "--db", f"sqlite:///{folder / 'hw.db'}", "--port", str(port)]


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def workers_of(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    return {
        child
        for child in children(pid)
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    }


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_for(check: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.skipif(sys.platform != "linux", reason="workers on SO_REUSEPORT sockets: Linux only")
def test_workers_serve_one_port_are_replaced_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*serve_command(tmp_path, port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(workers_of(server.pid)) == 2 and healthy(url))
        first = workers_of(server.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(workers_of(server.pid)) == 2 and victim not in workers_of(server.pid))
        # The victim may have been the only worker ready yet (the port answers as soon as one
        # is), so the service is back when the other or the replacement is.
        wait_for(lambda: healthy(url), 30)
        everyone = workers_of(server.pid)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in everyone), 30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="workers on SO_REUSEPORT sockets: Linux only")
def test_a_port_in_use_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*serve_command(tmp_path, port), "--workers", "2"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert b"cannot listen on" in done.stderr and b"in use" in done.stderr


def test_each_worker_runs_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    assert ServiceSettings(workers=1).match_concurrency == 4
    assert ServiceSettings(workers=2).match_concurrency == 2
    assert ServiceSettings(workers=8).match_concurrency == 1
    assert ServiceSettings(workers=2, match_threads=3).match_concurrency == 3
    # Workers learn both from the environment `hashwatch serve` sets for them.
    for name, value in ServiceSettings(workers=2, match_threads=3).to_env().items():
        monkeypatch.setenv(name, value)
    assert ServiceSettings.from_env().match_concurrency == 3


def test_the_gate_admits_that_many_matches_at_once(tmp_path: Path) -> None:
    settings = ServiceSettings(db_url=f"sqlite:///{tmp_path / 'hw.db'}", match_threads=2)
    state = ServiceState(settings)
    try:
        assert state.match_gate.acquire(blocking=False)
        assert state.match_gate.acquire(blocking=False)
        assert not state.match_gate.acquire(blocking=False)
    finally:
        state.stop()

"""The server under test: `health serve` as a subprocess, and what it costs in memory and CPU.

Memory and CPU are read from /proc for the whole process tree (the uvicorn supervisor
and its worker children), so no psutil dependency is needed. Linux only. Once it
answers, a backend client is registered on its database for each source (one unless
asked for more, each with its own key and Organization), and `Server.auth` holds the
bearer tokens of the first, `Server.source_auths` those of each (bench/auth.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from auth import BearerTokens, register_client

_PAGE_FIELDS = ("VmRSS:", "VmHWM:")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    return text[text.rindex(")") + 2 :].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children = _children_by_parent()
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, ()))
    return tree


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; zeros if it has gone."""
    values = {field: 0 for field in _PAGE_FIELDS}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                parts = line.split()
                if parts and parts[0] in values:
                    values[parts[0]] = int(parts[1])
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds used so far by each of `pids` that is alive."""
    used: dict[int, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime and stime are fields 14 and 15 of /proc/<pid>/stat (here 11 and 12).
            used[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return used


@dataclass
class MemoryPeak:
    """The largest sampled sum of VmRSS over the tree, and the sum of per-process VmHWM."""

    rss_kib: int = 0
    hwm_kib: int = 0


class MemorySampler:
    """Samples the server tree's resident memory in a background thread."""

    def __init__(self, root: int, interval_s: float = 0.1) -> None:
        self._root = root
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._hwm_by_pid: dict[int, int] = {}
        self.peak = MemoryPeak()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        total_rss = 0
        for pid in process_tree(self._root):
            rss, hwm = _memory_kib(pid)
            total_rss += rss
            self._hwm_by_pid[pid] = max(hwm, self._hwm_by_pid.get(pid, 0))
        self.peak.rss_kib = max(self.peak.rss_kib, total_rss)
        self.peak.hwm_kib = sum(self._hwm_by_pid.values())


class Server:
    """`health serve` on a free loopback port, with its own database; always stopped."""

    def __init__(
        self,
        executable: Path,
        database_url: str,
        workers: int,
        log_path: Path,
        *,
        py_spy_output: Path | None = None,
        py_spy_gil: bool = False,
        sources: int = 1,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._executable = executable
        self._database_url = database_url
        # Set once the server answers: the tokens of the clients registered on its
        # database, one per source.
        self._sources = sources
        self._auths: list[BearerTokens] = []
        # Under py-spy the server is py-spy's child: it is stopped first, and py-spy
        # then writes its samples and exits by itself.
        self._profiled = py_spy_output is not None
        profiler = (
            [
                str(executable.parent / "py-spy"),
                "record",
                "--subprocesses",
                # Only threads holding the interpreter: the server's Python CPU, without
                # the time spent waiting for the database.
                *(["--gil"] if py_spy_gil else []),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(py_spy_output),
                "--",
            ]
            if py_spy_output is not None
            else []
        )
        self._command = [
            *profiler,
            str(executable),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self._environment = {
            **os.environ,
            "HEALTH_DATABASE_URL": database_url,
            "HEALTH_BASE_URL": self.base_url,
        }
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def auth(self) -> BearerTokens:
        """Bearer tokens for the server's /fhir (only while it is running): the first
        source's."""
        return self.source_auths[0]

    @property
    def source_auths(self) -> list[BearerTokens]:
        """Bearer tokens of each source, each a backend client of its own Organization
        (only while the server is running)."""
        assert self._auths, "the server is not running"
        return self._auths

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        """Start, wait until GET /fhir/metadata answers, register a client per source
        and get its first token, yield, and stop whatever happens."""
        with open(self._log_path, "wb") as log:
            # A session of its own, so that the whole tree can be killed if it hangs.
            self.process = subprocess.Popen(
                self._command,
                env=self._environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
            self._auths = [self._authenticate(source) for source in range(self._sources)]
            yield self
        finally:
            self._auths = []
            self._stop()

    def _authenticate(self, source: int) -> BearerTokens:
        # The key is kept in memory; its file is needed only to register it.
        with tempfile.TemporaryDirectory(prefix="health-bench-client-") as folder:
            credentials = register_client(
                self._executable, self._database_url, Path(folder), source=source
            )
        tokens = BearerTokens(self.base_url, credentials)
        tokens.token()
        return tokens

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"The server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/fhir/metadata").status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"The server did not answer within {READY_TIMEOUT_S} s")

    def _stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if self._profiled:
                for pid in _children_by_parent().get(self.process.pid, []):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_S)
        # The process group is the one this object started: it holds only the server
        # and its workers. Kill whatever of it is left (nothing, after a clean stop).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

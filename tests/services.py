"""Real PostgreSQL and Redis servers for the tests of the shared stores, started by the suite on free loopback
ports and stopped when it ends (no mocks of psycopg or redis; reference D6).

Without the binaries (Debian's ``postgresql`` and ``redis-server``) or the client packages, those tests skip, and
say why; under ``CI=true`` they fail instead, since CI must run them (``.ci/run`` installs the servers).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["PostgresServer", "RedisServer", "postgres_dsn", "postgres_server", "redis_server", "redis_uri"]

_START_TIMEOUT_S = 60.0
_schemas = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI (where a skipped shared-store test would hide a broken cluster feature)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run; .ci/run installs what they need)", pytrace=False)
    pytest.skip(reason)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class PostgresServer:
    port: int
    bindir: Path

    def dsn(self, dbname: str = "postgres", **options: str) -> str:
        extra = "".join(f" {k}={v}" for k, v in options.items())
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}{extra}"


@contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """A throw-away cluster: ``initdb`` in a temporary directory, ``pg_ctl start`` on a free port, trust auth
    on loopback only. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user."""
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="imageforge-pg-")  # under /tmp: pytest's own tmp dirs are root-only (0700)
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data, log = Path(root) / "data", Path(root) / "server.log"
    port = free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=_START_TIMEOUT_S)
        if done.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stdout}{done.stderr}{server_log}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        # fsync off: a test cluster need not survive a power cut. The socket stays in our directory.
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        try:
            yield PostgresServer(port, bindir)
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def run_redis() -> Iterator[RedisServer]:
    """``redis-server`` on a free loopback port, no persistence (nothing written, nothing to clean)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tempfile.gettempdir(),
    )
    server = RedisServer(port, proc)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


# Fixtures (imported by tests/conftest.py) --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    with run_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A DSN of its own for each test: a fresh schema first on its search_path, so tests share no rows."""
    import psycopg

    schema = f"t{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return postgres_server.dsn(options=f"'-c search_path={schema}'")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("the redis package is not installed (pip install -e '.[test]')")
    with run_redis() as server:
        yield server


@pytest.fixture
def redis_uri(redis_server: RedisServer) -> str:
    """The shared server, emptied first: rate-limit windows of one test never reach the next."""
    import redis

    with redis.Redis(port=redis_server.port) as client:
        client.flushall()
    return redis_server.uri

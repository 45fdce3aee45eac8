"""Where the data database is: IRT_DATABASE_URL, else an embedded PostgreSQL (PyPI pgserver).

The embedded server keeps its data in ``<project root>/.irt/pgdata`` and is started with
``cleanup_mode=None``: it outlives the process that started it, so the Dagster webserver, the
daemon, every run worker and the CLI all share one server (stop it with ``pg_ctl stop -D``).
"""

from __future__ import annotations

import fcntl
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE_URL_ENV = "IRT_DATABASE_URL"
HOME_ENV = "IRT_HOME"

_thread_lock = threading.Lock()


def project_root() -> Path:
    """IRT_HOME if set, else the checkout that holds the package."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser().resolve() if home else Path(__file__).resolve().parents[2]


def database_url() -> str:
    """IRT_DATABASE_URL, or the URL of the embedded server (started if it is not running)."""
    return os.environ.get(DATABASE_URL_ENV) or embedded_database_url(project_root() / ".irt")


def embedded_database_created(state_dir: Path | None = None) -> bool:
    """True once the embedded server's cluster exists (initdb has run in ``state_dir/pgdata``,
    by default the project's ``.irt``); `database_url()` would otherwise create it."""
    state_dir = project_root() / ".irt" if state_dir is None else state_dir
    return (state_dir / "pgdata" / "PG_VERSION").exists()


def embedded_database_url(state_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data folder is ``state_dir/pgdata``."""
    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.postgres_server import PostgresServer

    state_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (state_dir / "pgdata").resolve()
    with _thread_lock, _file_lock(state_dir / "pgserver.lock"):
        pgdata.mkdir(exist_ok=True)  # pgserver's own mkdir races between processes
        live_pid = _live_postmaster_pid(pgdata)
        cached = PostgresServer._instances.get(pgdata)
        if cached is not None and cached.get_pid() != live_pid:
            del PostgresServer._instances[pgdata]  # stopped since this process first asked
        return pgserver.get_server(pgdata, cleanup_mode=None).get_uri()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock between processes (pgserver's own lock covers only part of its start-up)."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _live_postmaster_pid(pgdata: Path) -> int | None:
    """PID of the running server of ``pgdata``; a stale postmaster.pid is deleted.

    After a reboot or a killed server the file stays behind, and its PID may meanwhile belong to
    another process: pgserver would then take the server for running and hand out a dead URL.
    """
    import psutil  # a dependency of pgserver

    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE:
            return pid
    except psutil.Error:
        pass
    pid_file.unlink(missing_ok=True)
    return None

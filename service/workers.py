"""``serve --workers N``: N processes on one port (SO_REUSEPORT), watched by a parent.

What must exist once is made before the workers start, by the caller (the
embedded redis-server, the generated token) or here (the folder where the
workers' metrics meet). A worker that dies is never replaced in silence: the
parent logs it, stops the others and exits with status 1, so the supervisor
above (systemd, Docker, Kubernetes) sees the failure and restarts the whole
service.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from contextlib import ExitStack
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from .logs import configure_logging, flush_logs
from .metrics import MULTIPROC_ENV
from .server import run_event_loop
from .settings import Settings

log = logging.getLogger("chatsessions.workers")

STOP_TIMEOUT = 20.0
EXIT_WORKER_DIED = 1


def _worker(settings: Settings) -> None:
    configure_logging(settings.log_format)
    # The parent says why the service stops; a worker stops when the parent says so.
    run_event_loop(settings, announce=False)


class Supervisor:
    """Runs ``settings.workers`` workers with these settings: Redis reachable at
    ``settings.redis_url``, the tokens settled."""

    def __init__(self, settings: Settings) -> None:
        if settings.redis_url is None or not settings.tokens:
            raise ValueError("the Redis URL and the tokens are settled before workers start")
        self.settings = settings
        self.processes: list[BaseProcess] = []
        self._stopping: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = signal.Signals(signum).name

    def run(self) -> int:
        with ExitStack() as stack:
            settings = self.settings
            metrics_dir = tempfile.mkdtemp(prefix="chatsessions-metrics-")
            stack.callback(shutil.rmtree, metrics_dir, True)
            os.environ[MULTIPROC_ENV] = metrics_dir
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._on_signal)
            context = multiprocessing.get_context("spawn")
            for _ in range(settings.workers):
                process = context.Process(target=_worker, args=(settings,), daemon=False)
                process.start()
                self.processes.append(process)
            log.info(
                "%d workers on http://%s:%d: pids %s",
                len(self.processes),
                settings.host,
                settings.port,
                " ".join(str(p.pid) for p in self.processes),
            )
            flush_logs()
            code = self._watch()
            if self._stopping:
                logging.getLogger("chatsessions").info("shutting down (%s)", self._stopping)
                flush_logs()
            self._stop_all()
            return code

    def _watch(self) -> int:
        sentinels = [p.sentinel for p in self.processes]
        while not self._stopping:
            ready = wait(sentinels, timeout=0.5)
            if ready and not self._stopping:
                dead = [p for p in self.processes if p.sentinel in ready]
                for process in dead:
                    process.join(STOP_TIMEOUT)  # reaps it, so its exit code is known
                    log.error(
                        "worker pid %s exited with code %s; stopping the service",
                        process.pid,
                        process.exitcode,
                    )
                return EXIT_WORKER_DIED
        return 0

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()

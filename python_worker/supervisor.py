"""``run --processes N``: N worker processes under one supervisor that restarts the dead.

Each worker is ``python -m python_worker run`` with the same arguments and a worker id of its
own (``<base>.<slot>.<generation>``), in its own session so that a terminal's Ctrl-C reaches
only the supervisor. When one exits while the supervisor is not stopping (``os._exit`` in a
handler, a segfault, the OOM killer, ``--exit-when-stuck``), the supervisor fails the jobs that
worker still held with the cause (``worker w.1.0 died: handler process exited with status 3``)
at once instead of leaving them to the lease reaper, and starts another in its place (after a
growing pause if it keeps dying at start). SIGTERM/SIGINT are passed on to every worker, which
stop gracefully; the supervisor exits when they have.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psycopg

from .db import Admin
from .isolation import exit_error

log = logging.getLogger("python_worker.supervisor")

QUICK_DEATH = 10.0  # a worker that dies sooner than this after its start is restarted slowly


@dataclass
class Slot:
    index: int
    generation: int = -1
    proc: subprocess.Popen[bytes] | None = None
    worker_id: str = ""
    started: float = 0.0
    restart_at: float = 0.0
    pause: float = 0.0
    restarts: int = field(default=0)


def worker_argv(argv: list[str]) -> list[str]:
    """``argv`` without ``--processes N`` and ``--worker-id X`` (the supervisor sets those)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--processes", "--worker-id"):
            skip = True
        elif not a.startswith(("--processes=", "--worker-id=")):
            out.append(a)
    return out


class Supervisor:
    def __init__(self, argv: list[str], processes: int, base_id: str, admin: Admin) -> None:
        self.argv = worker_argv(argv)
        self.base_id = base_id
        self.admin = admin
        self.slots = [Slot(i) for i in range(processes)]
        self.stopping = False

    def _start(self, slot: Slot) -> None:
        slot.generation += 1
        slot.worker_id = f"{self.base_id}.{slot.index}.{slot.generation}"
        cmd = [sys.executable, "-m", "python_worker", *self.argv, "--worker-id", slot.worker_id]
        slot.proc = subprocess.Popen(cmd, start_new_session=True)
        slot.started = time.monotonic()
        log.info("started worker %s (pid %d)", slot.worker_id, slot.proc.pid)

    def _stop(self, sig: int, _frame: object = None) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("%s: stopping %d workers", signal.Signals(sig).name, len(self.slots))
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)

    def _died(self, slot: Slot, code: int) -> None:
        cause = exit_error(code).replace("handler process", "worker process")
        error = f"worker {slot.worker_id} died: {cause}"
        try:
            failed = self.admin.fail_jobs_of_worker(slot.worker_id, error)
        except psycopg.Error as exc:
            log.error("%s; could not fail its jobs (%s): the lease reaper will", error, exc)
            failed = []
        lived = time.monotonic() - slot.started
        slot.pause = min(30.0, max(1.0, slot.pause * 2)) if lived < QUICK_DEATH else 0.0
        slot.restart_at = time.monotonic() + slot.pause
        slot.restarts += 1
        slot.proc = None
        log.error("%s after %.1fs; failed the %d jobs it held %s; restarting it in %.0fs",
                  error, lived, len(failed), failed[:20], slot.pause)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in self.slots:
            self._start(slot)
        while True:
            running = 0
            for slot in self.slots:
                if slot.proc is None:
                    if not self.stopping and time.monotonic() >= slot.restart_at:
                        self._start(slot)
                        running += 1
                    continue
                code = slot.proc.poll()
                if code is None:
                    running += 1
                elif self.stopping:
                    slot.proc = None
                else:
                    self._died(slot, code)
            if self.stopping and running == 0:
                log.info("all workers stopped")
                return 0
            time.sleep(0.2)


def default_base_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"

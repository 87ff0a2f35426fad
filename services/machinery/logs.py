"""Structured logs for every daemon: one line per record, key=value pairs,
with the object a record concerns (``object=namespace/name``) when given
through ``extra``."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = (f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname.lower()} "
                f"{record.name}: {record.getMessage()}")
        extras = [f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD]
        if extras:
            base += " " + " ".join(extras)
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("grpc").setLevel(logging.WARNING)


def install_task_dump(loop) -> None:
    """On SIGUSR1, log the stack of every asyncio task: the way to see what a
    daemon that seems stuck is waiting for (`kill -USR1 PID`)."""
    import asyncio
    import io
    import signal

    def dump() -> None:
        out = io.StringIO()
        for task in asyncio.all_tasks(loop):
            out.write(f"--- {task.get_name()}\n")
            for frame in task.get_stack(limit=12):
                code = frame.f_code
                out.write(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}\n")
        logging.getLogger("taskdump").warning("asyncio tasks:\n%s", out.getvalue())

    loop.add_signal_handler(signal.SIGUSR1, dump)

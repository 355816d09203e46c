"""The worker process that simulates local Qiskit backends (fake devices, Aer) for the optimizer.

Simulating a stand-in device is CPU work in Python and Aer: in the training process it would hold
the interpreter lock that every training step needs. So local jobs run in one child process, at
a low CPU priority (:data:`WORKER_NICE`), started on first use and shared by every target of this
process.

It is a plain ``python -c`` child running :func:`serve` rather than a ``multiprocessing`` worker,
because multiprocessing's "spawn" re-imports the user's main module in the child, which reruns an
unguarded training script. The protocol is length-prefixed pickles over the child's stdin and a
private copy of its stdout (its own stdout goes to stderr, so prints from libraries cannot corrupt
it): one request ``(function, args)``, then one reply, ``(True, value)`` or ``(False, error
text)``. A closed pipe ends the child, so it never outlives this process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any

_HEADER = struct.Struct("<Q")
# Niceness 10: while training keeps every core busy the worker gets about a tenth of one (the kernel's
# weight for nice 10 against 0), enough for a small fake device to answer in seconds; at 19 it would
# starve (about 1.5%) and never answer, at 0 it would take half a core from training.
WORKER_NICE = 10
# Lower the priority before the imports (torch, qiskit: seconds of CPU), then serve.
_CHILD = (
    "import os, contextlib\n"
    "with contextlib.suppress(AttributeError, OSError):\n"
    f"    os.nice({WORKER_NICE})\n"
    "from superpositional.backends.qiskit.worker import serve\n"
    "serve()\n"
)


def _frame(value: Any) -> bytes:
    """``value`` pickled, with its length in front."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _write(stream: IO[bytes], value: Any) -> None:
    stream.write(_frame(value))
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the worker process closed its pipe")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the worker process closed its pipe")
    return pickle.loads(data)


class WorkerProcess:
    """The parent's handle on the child: requests run one at a time, each answered by a Future."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()  # one request on the pipe at a time
        self.broken = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in the child; the Future resolves to its value or raises its exception."""
        future: Future = Future()

        def exchange() -> None:
            try:
                request = _frame((fn, args))
            except (pickle.PicklingError, TypeError, AttributeError) as error:  # the worker is fine
                if future.set_running_or_notify_cancel():
                    message = f"the request could not be sent to the worker: {error}"
                    future.set_exception(RuntimeError(message))
                return
            try:
                with self._lock:
                    if not future.set_running_or_notify_cancel():
                        return  # cancelled while it waited for its turn: the child never sees it
                    self._process.stdin.write(request)
                    self._process.stdin.flush()
                    ok, value = _read(self._process.stdout)
            except BaseException as error:  # the child died or the pipe broke: a new one next time
                self.broken = True
                future.set_exception(RuntimeError(f"the local worker process failed: {error!r}"))
                return
            if ok:
                future.set_result(value)
            else:  # the child sends text: not every library's exception survives a pickle round trip
                future.set_exception(RuntimeError(value))

        threading.Thread(target=exchange, name="superpositional-qiskit-worker", daemon=True).start()
        return future

    def close(self) -> None:
        """Close the pipe, which ends the child; give it a few seconds to finish, then kill it."""
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # At niceness 10 on a busy machine the child can take longer to wind down (its
            # interpreter's teardown); nothing it still does matters, and a child left running
            # when its Popen is collected leaks (a ResourceWarning at exit).
            self._process.kill()
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self._process.stdout.close()


_WORKER: WorkerProcess | None = None
_WORKER_LOCK = threading.Lock()


@atexit.register
def _close() -> None:
    if _WORKER is not None:
        _WORKER.close()


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """Run ``fn(*args)`` (picklable, importable) in the shared worker process, starting it if needed."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None or _WORKER.broken or _WORKER._process.poll() is not None:
            if _WORKER is not None:
                _WORKER.close()  # its pipes and the process, or they leak (ResourceWarning)
            _WORKER = WorkerProcess()
        return _WORKER.submit(fn, *args)


def serve() -> None:
    """The child's loop (at low priority: the stand-in device takes mostly the CPU that training
    leaves): answer requests until the parent closes the pipe."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr, not into the protocol
    requests = sys.stdin.buffer
    while True:
        try:
            fn, args = _read(requests)
        except EOFError:
            return
        try:
            reply = (True, fn(*args))
        except Exception as error:
            reply = (False, f"{type(error).__name__}: {error}")
        try:
            try:
                _write(replies, reply)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                _write(replies, (False, f"the worker's reply could not be pickled: {error}"))
        except OSError:  # the parent is gone
            return

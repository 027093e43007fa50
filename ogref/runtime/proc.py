"""Running external programs: one command, or a pipeline of several, with pipefail semantics.

Commands are argv lists (never shell strings).  Every stage's exit status is checked, each
stage's stderr is captured to a file (no pipe can fill up and deadlock), and a failure raises the
``OgError`` subclass the caller names, with every failing stage and the tail of its stderr.  A
pipeline may be fed from Python (``feed``) and drained into Python (``drain``), which is how the
image code hashes and counts bytes on the fly; every pipe is enlarged to :data:`PIPE_SIZE` so
that a stage that hiccups does not stall its neighbours.  :func:`copy_fd` moves a stream between
file descriptors through one reused buffer, showing each chunk to a callback (the hashers) and,
writing a file, starting its writeback early.  This module knows nothing about images or disks.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from ogref.errors import NotExecError, OgError

Feed = Callable[[IO[bytes]], None]
Drain = Callable[[IO[bytes]], None]

_TAIL = 600

PIPE_SIZE = 1 << 20
"""Bytes each pipe between stages holds (the default 64 KiB makes neighbours wait on each other)."""
COPY_CHUNK = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """Enlarge the pipe ``fd`` to ``size`` bytes (capped by ``pipe-max-size``); its new size.

    Best effort: an unprivileged user over its pipe quota keeps the default buffer.
    """
    try:
        with open("/proc/sys/fs/pipe-max-size", encoding="ascii") as f:
            size = min(size, int(f.read()))
    except (OSError, ValueError):
        pass
    try:
        return int(fcntl.fcntl(fd, _F_SETPIPE_SZ, size))
    except OSError:
        return 0


WRITEBACK_STEP = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_START_WRITEBACK = _sync_file_range()


def copy_fd(
    src: int,
    dst: int,
    seen: Callable[[memoryview], None] | None = None,
    chunk: int = COPY_CHUNK,
    *,
    writeback: bool = False,
) -> int:
    """Copy ``src`` to ``dst`` until EOF through one reused buffer; return the bytes moved.

    ``seen`` gets each chunk after it is written (it must not keep the view).  Short writes are
    completed; any OSError (ENOSPC, EPIPE…) propagates.  With ``writeback`` (``dst`` a regular
    file) the kernel is asked to start writing every :data:`WRITEBACK_STEP` bytes to disk as they
    come (``sync_file_range``, not waiting), so that a final fsync has little left to wait for.
    """
    buf = bytearray(chunk)
    view = memoryview(buf)
    moved = 0
    flushed = 0
    start_writeback = _START_WRITEBACK if writeback else None
    while True:
        n = os.readv(src, [buf])
        if n == 0:
            return moved
        data = view[:n]
        done = 0
        while done < n:
            done += os.write(dst, data[done:])
        if seen is not None:
            seen(data)
        moved += n
        if start_writeback is not None and moved - flushed >= WRITEBACK_STEP:
            start_writeback(dst, flushed, moved - flushed, _SYNC_FILE_RANGE_WRITE)
            flushed = moved


@dataclass(frozen=True)
class StageResult:
    """How one stage ended: argv, exit status (negative: killed by that signal), stderr."""

    argv: tuple[str, ...]
    returncode: int
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def broken_pipe(self) -> bool:
        """Killed by SIGPIPE: a consequence of a later stage dying, not a cause."""
        return self.returncode in (-signal.SIGPIPE, 128 + signal.SIGPIPE)

    def describe(self) -> str:
        tail = self.stderr.strip()[-_TAIL:].replace("\n", " | ")
        return f"{self.argv[0]} exited {self.returncode}" + (f": {tail}" if tail else "")


@dataclass
class PipelineError(Exception):
    """Raised inside :func:`run_pipeline` before mapping to an OgError (kept for callers' tests)."""

    stages: list[StageResult]
    python_errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        bad = [s for s in self.stages if not s.ok]
        causes = [s for s in bad if not s.broken_pipe] or bad
        parts = [s.describe() for s in causes] + self.python_errors
        return "; ".join(parts) or "pipeline failed"


def require(program: str) -> str:
    """The absolute path of ``program``; NotExecError (7) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        raise NotExecError(
            f"{program} is not installed (needed here; see tools/debian-packages.txt)"
        )
    return path


def available(program: str) -> bool:
    """Whether ``program`` is on PATH."""
    return shutil.which(program) is not None


@dataclass(frozen=True)
class Completed:
    """The result of :func:`run`."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    error: type[OgError] = OgError,
    what: str = "",
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = None,
) -> Completed:
    """Run one command, capture its output; raise ``error`` if it fails and ``check`` is set."""
    require(argv[0])
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise error(f"{what or argv[0]}: timed out after {timeout} s") from None
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        stage = StageResult(tuple(argv), proc.returncode, proc.stderr or proc.stdout)
        raise error(f"{what or argv[0]}: {stage.describe()}")
    return done


def run_pipeline(
    stages: Sequence[Sequence[str]],
    *,
    error: type[OgError],
    what: str,
    feed: Feed | None = None,
    drain: Drain | None = None,
    stdin_path: str | None = None,
    stdout_path: str | None = None,
    on_start: Callable[[list[int]], None] | None = None,
) -> list[StageResult]:
    """Run ``stages`` connected by pipes; every stage must exit 0 and ``feed``/``drain`` succeed.

    The first stage reads from ``feed`` (a function writing into the pipe) or ``stdin_path``; the
    last writes to ``drain`` (a function reading the pipe) or ``stdout_path``.  On any failure
    ``error`` is raised naming the failing stages (SIGPIPE victims are listed only when nothing
    else failed).  All processes are waited for, whatever happens.
    """
    if not stages:
        raise ValueError("empty pipeline")
    for argv in stages:
        require(argv[0])
    procs: list[subprocess.Popen[bytes]] = []
    errfiles: list[IO[bytes]] = []
    opened: list[IO[bytes]] = []
    python_errors: list[str] = []
    causes: list[Exception] = []  # the feed's/drain's own exceptions, chained to the error
    threads: list[threading.Thread] = []

    def guarded(name: str, fn: Callable[[IO[bytes]], None], stream: IO[bytes]) -> None:
        try:
            fn(stream)
        except BrokenPipeError:
            python_errors.append(f"{name}: broken pipe")
        except Exception as exc:  # reported through the pipeline failure
            python_errors.append(f"{name}: {exc}")
            causes.append(exc)
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    try:
        stdin: IO[bytes] | int | None
        if feed is not None:
            stdin = subprocess.PIPE
        elif stdin_path is not None:
            stdin = open(stdin_path, "rb")  # noqa: SIM115 - closed in finally
            opened.append(stdin)
        else:
            stdin = subprocess.DEVNULL
        for i, argv in enumerate(stages):
            last = i == len(stages) - 1
            stdout: IO[bytes] | int
            if not last or drain is not None:
                stdout = subprocess.PIPE
            elif stdout_path is not None:
                out = open(stdout_path, "wb")  # noqa: SIM115 - closed in finally
                opened.append(out)
                stdout = out
            else:
                stdout = subprocess.DEVNULL
            err = tempfile.TemporaryFile(prefix="ogref-stderr-")  # noqa: SIM115
            errfiles.append(err)
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=err)
            if proc.stdout is not None:
                grow_pipe(proc.stdout.fileno())
            if i == 0 and proc.stdin is not None:
                grow_pipe(proc.stdin.fileno())
            if i > 0 and procs[-1].stdout is not None:
                procs[-1].stdout.close()  # only the child holds the read end now
            procs.append(proc)
            stdin = proc.stdout
        if feed is not None and procs[0].stdin is not None:
            threads.append(
                threading.Thread(target=guarded, args=("feed", feed, procs[0].stdin), daemon=True)
            )
        if drain is not None and procs[-1].stdout is not None:
            threads.append(
                threading.Thread(
                    target=guarded, args=("drain", drain, procs[-1].stdout), daemon=True
                )
            )
        if on_start is not None:
            on_start([p.pid for p in procs])
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proc in procs:
            proc.wait()
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.wait()
        raise
    finally:
        for f in opened:
            f.close()
    results: list[StageResult] = []
    for argv, child, errfile in zip(stages, procs, errfiles, strict=True):
        errfile.seek(0)
        text = errfile.read().decode("utf-8", "replace")
        errfile.close()
        results.append(StageResult(tuple(argv), child.returncode, text))
    # a feed that hit a broken pipe is a consequence if some stage failed
    if any(not r.ok for r in results):
        python_errors = [e for e in python_errors if not e.endswith("broken pipe")]
        failure = PipelineError(results, python_errors)
        raise error(f"{what}: {failure}") from (causes[0] if causes else None)
    if python_errors:
        raise error(f"{what}: {'; '.join(python_errors)}") from (causes[0] if causes else None)
    return results


def stderr_tail(results: Sequence[StageResult]) -> str:
    """The stderr of every stage, concatenated (for logs)."""
    return os.linesep.join(r.stderr for r in results if r.stderr)


def read_head(argv: Sequence[str], stdin_path: str, nbytes: int, *, error: type[OgError]) -> bytes:
    """The first ``nbytes`` that ``argv`` writes when fed ``stdin_path`` (then it is stopped)."""
    require(argv[0])
    with open(stdin_path, "rb") as src:
        proc = subprocess.Popen(
            list(argv), stdin=src, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            chunks: list[bytes] = []
            got = 0
            while got < nbytes:
                chunk = proc.stdout.read(nbytes - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    data = b"".join(chunks)
    if len(data) < nbytes:
        raise error(f"{argv[0]}: stream of {stdin_path} ended after {len(data)} bytes")
    return data


Progress = Callable[[int, int], None]
"""A progress callback: ``(bytes done, bytes expected)``."""


def bytes_read_by(pid: int) -> int:
    """Bytes a running process has read so far (``rchar`` of ``/proc/PID/io``; 0 if gone)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Poller:
    """Calls ``tick()`` every ``interval`` seconds in a thread until stopped."""

    def __init__(self, tick: Callable[[], None], interval: float = 0.25) -> None:
        self._tick = tick
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

"""A dbt command run in a fork of the run worker instead of a new `dbt` process.

dagster-dbt runs every dbt command as a subprocess, which starts Python and imports dbt before doing anything:
about 1.4 s of CPU per invocation. The run worker has dbt imported already (dagster-dbt loads dbt's adapter in
process; `mesh run`'s forkserver preloads it), so a fork of the worker runs the same command at once: dbt's own
`dbt` entry point with the invocation's arguments, environment and folder. The fork is a process like the
subprocess it replaces: its output is dbt's JSON log stream on a pipe, Ctrl-C and dagster-dbt's SIGINT reach it,
its exit code is dbt's, and the sandbox DuckDB locks for the models (dbt_sandbox) stay in it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Iterator, Mapping, Sequence

POLL_SECONDS = 0.05
PATHS_RELATIVE_TO_CWD = ("DBT_TARGET_PATH", "DBT_LOG_PATH", "DBT_PROJECT_DIR")  # as dagster-dbt sets them


class ForkedDbt:
    """The part of subprocess.Popen that dagster-dbt's DbtCliInvocation uses, for `dbt <args>`."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike,
                 working_dir: str | os.PathLike | None = None, **_: object):
        self.args = list(args)
        if working_dir is not None:  # dbt runs there; the paths dagster-dbt gave relative to `cwd` stay where they are
            env = {**env, **{key: os.path.join(cwd, env[key]) for key in PATHS_RELATIVE_TO_CWD if key in env}}
            cwd = working_dir
        self.returncode: int | None = None
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: dbt, then out without running the worker's exit handlers
            os.close(read)
            os._exit(_run_dbt(self.args[1:], env, cwd, write))
        os.close(write)
        self.pid = pid
        self.stdout = os.fdopen(read, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(POLL_SECONDS)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


def _run_dbt(args: list[str], env: Mapping[str, str], cwd: str | os.PathLike, output: int) -> int:
    """What the `dbt` executable does (dbt.cli.main:cli), in this forked process; its exit code."""
    gc.freeze()  # the worker's objects: never scanned by this process's collections (nor copied by them)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # not the run worker's interrupt capture
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = ["dbt", *args]  # what dbt records as its invocation command
        from dbt.adapters.factory import reset_adapters
        from dbt.cli.main import cli

        reset_adapters()  # dagster-dbt registered a read-only adapter in the worker; dbt registers its own
        try:
            cli.main(args=args, prog_name="dbt")
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        finally:
            release_adapters()
        return 0
    except BaseException:  # noqa: BLE001 (the child must exit with a code, and say why on the stream)
        traceback.print_exc()
        return 2
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()


def release_adapters() -> None:
    """Drop dbt's adapters and collect them: each holds a multiprocessing lock, a named semaphore that a process
    ending with os._exit (a fork, a multiprocessing worker) would otherwise leave to the resource tracker, which
    warns of it."""
    factory = sys.modules.get("dbt.adapters.factory")
    if factory is not None and factory.FACTORY.adapters:
        factory.reset_adapters()
        gc.collect()


@contextlib.contextmanager
def forked_dbt_commands(working_dir: str | os.PathLike | None = None) -> Iterator[None]:
    """While dagster-dbt starts a dbt invocation, its subprocess.Popen is ForkedDbt (only in its own module): dbt
    runs in `working_dir` if given, else in the folder dagster-dbt chose (the project's)."""
    from dagster_dbt.core import dbt_cli_invocation

    real = dbt_cli_invocation.subprocess
    popen = functools.partial(ForkedDbt, working_dir=working_dir)
    dbt_cli_invocation.subprocess = types.SimpleNamespace(Popen=popen, PIPE=subprocess.PIPE,
                                                          STDOUT=subprocess.STDOUT)
    try:
        yield
    finally:
        dbt_cli_invocation.subprocess = real

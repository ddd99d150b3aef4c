"""A task's script in a Pipes session, stopped when the task's ``timeout`` has passed.

``PipesSubprocessClient.run`` waits for its subprocess without a limit, and Dagster's
``dagster/max_runtime`` tag reaches only runs that carry it: the task's automation puts it
on its runs, but a run launched from the asset's page or over GraphQL has no job tags, and
the monitoring daemon looks at runs every two minutes. So the step keeps the deadline too:
the same session as the client's (its context injector, message reader and settings), a
wait that ends at the deadline, then the script's process group is stopped and the step
fails naming the timeout, without a retry (the time is the run's, already spent).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

import dagster as dg

from zquant_orchestration.settings import process_environment

from .launch import allowed_env
from .spec import TaskSpec, duration_text


def run_script(client: dg.PipesSubprocessClient, context: dg.AssetExecutionContext, spec: TaskSpec,
               command: Sequence[str], env: Mapping[str, str], extras: dict) -> dg.PipesClientCompletedInvocation:
    deadline = _run_started(context) + spec.timeout if spec.timeout else None
    with dg.open_pipes_session(context=context, context_injector=client.context_injector,
                               message_reader=client.message_reader, extras=extras) as session:
        if deadline is not None and time.time() >= deadline:
            raise _timed_out(spec, "before this attempt started")
        # A session of its own: at the deadline the script's children stop with it.
        # Only the allow-list reaches the script (launch.py), the task's own env: names included.
        environment = {**process_environment(), **client.env, **env, **session.get_bootstrap_env_vars()}
        process = subprocess.Popen(list(command), cwd=str(spec.cwd), env=allowed_env(environment, spec.env),
                                   start_new_session=True)
        try:
            try:
                process.wait(timeout=None if deadline is None else max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                context.log.warning(f"task '{spec.name}': timeout of {duration_text(spec.timeout)} reached; "
                                    "stopping the script")
                _stop(process, client.termination_timeout_seconds)
                raise _timed_out(spec, "the script was stopped") from None
            if process.returncode != 0:
                raise dg.Failure(f"task '{spec.name}': the script exited with code {process.returncode}; its error "
                                 "is in the run's log above")
        except dg.DagsterExecutionInterruptedError:
            if client.forward_termination:
                context.log.info("[pipes] execution interrupted, stopping the script")
                _stop(process, client.termination_timeout_seconds, first=signal.SIGINT)
            raise
    return dg.PipesClientCompletedInvocation(session)


def _run_started(context: dg.AssetExecutionContext) -> float:
    """When the run started: the timeout bounds the run, retries of the step included, as
    ``dagster/max_runtime`` does."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    return record.start_time if record and record.start_time else time.time()


def _timed_out(spec: TaskSpec, what: str) -> dg.Failure:
    return dg.Failure(f"task '{spec.name}': timeout: the run went past its timeout of {duration_text(spec.timeout)}; "
                      f"{what}", allow_retries=False)


def _stop(process: subprocess.Popen, grace: float, first: int = signal.SIGTERM) -> None:
    """``first`` to the script's process group, SIGKILL after ``grace`` seconds."""
    for sig, wait in ((first, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue

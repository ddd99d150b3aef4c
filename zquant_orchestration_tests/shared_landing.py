"""Landings that several tests start from, made once per test session and copied to each test.

A landing is a folder (a SQLite warehouse, a Dagster instance) that ``build`` fills through
the assets, as the test's own fixture would. Under pytest-xdist each worker is a process of
its own, so the first worker to ask builds it under a file lock in the session's shared
temporary folder, and the others wait for it and copy it: every test gets a folder of its
own, as equal to a fresh landing as the landing is to itself, and may change it freely.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session shares: the controller's base temp under xdist
    (workers' base temps are its children, popen-gwN), one's own without it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


def landed_copy(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None],
                into: Path) -> Path:
    """``into``, a copy of the landing ``name``; ``build(folder)`` makes it the first time."""
    root = _session_root(tmp_path_factory) / "shared-landings"
    root.mkdir(exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            build(folder)
            done.touch()
    shutil.copytree(folder, into, dirs_exist_ok=True)
    return into

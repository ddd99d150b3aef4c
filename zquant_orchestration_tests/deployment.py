"""A production-shaped deployment on this machine, started the way README "Production" says.

- The Dagster instance is ``deploy/postgres/dagster.yaml`` on a Postgres database of its own,
  configured through the DAGSTER_PG_* variables; the warehouse is another Postgres database.
- The webserver and the daemon are started with the command lines of the shipped systemd
  units (``deploy/systemd``), so the units' flags (loopback binding) are what is tested.
- Tushare is a local server in the test process at TUSHARE_HTTP_URL.
- ``start_proxy`` runs Debian's nginx with the shipped site (``deploy/nginx``) in front.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from .dialects import ADMIN_URL, postgres_url

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
VENV_BIN = "/opt/zquant-orchestration/.venv/bin/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unit_command(unit: str) -> list[str]:
    """The ExecStart of a shipped systemd unit, with our virtualenv in place of /opt's."""
    for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
        if line.startswith("ExecStart="):
            words = shlex.split(line[len("ExecStart="):])
            assert words[0].startswith(VENV_BIN), words
            return [str(Path(sys.executable).parent / words[0][len(VENV_BIN):])] + words[1:]
    raise AssertionError(f"{unit} has no ExecStart")


def shipped_env() -> dict[str, str]:
    """The variables of deploy/zquant.env.example."""
    lines = (DEPLOY / "zquant.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def require_program(name: str) -> str:
    """A Debian program the test needs (.ci/run installs it); CI fails without it, a laptop skips."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found:
        return found
    if os.environ.get("CI"):
        raise AssertionError(f"{name} is not installed: .ci/run installs it with apt-get")
    pytest.skip(f"{name} is not installed (apt-get install {name})")


@dataclass
class Deployment:
    folder: Path
    env: dict[str, str]
    web_port: int
    warehouse_url: str
    instance_url: str
    logs: dict[str, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    proxy_port: int | None = None

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        # Output to a file: a pipe nobody reads would block the process when full.
        self.logs[name] = self.folder / f"{name}.log"
        with open(self.logs[name], "w") as out:
            process = subprocess.Popen(command, cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append(process)
        return process

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}/graphql",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"query": query, "variables": variables or {}}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def log_text(self) -> str:
        return "\n".join(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}" for name, path in self.logs.items())

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_deployment(folder: Path, tushare_url: str) -> Deployment:
    """Postgres instance + Postgres warehouse + webserver; the daemon starts in ``start_daemon``
    (after the caller has set instigators, as an operator would before switching it on)."""
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", home / "dagster.yaml")
    shutil.copy(REPO / "workspace.yaml", folder / "workspace.yaml")
    instance_url = postgres_url(folder)
    warehouse_url = postgres_url(folder)
    admin = create_engine(ADMIN_URL).url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSHARE_", "ZQUANT_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": admin.host or "127.0.0.1", "DAGSTER_PG_PORT": str(admin.port or 5432),
        "DAGSTER_PG_USER": admin.username or "postgres", "DAGSTER_PG_PASSWORD": admin.password or "",
        "DAGSTER_PG_DB": instance_url.rsplit("/", 1)[1],
        "ZQUANT_WAREHOUSE_URL": warehouse_url,
        "TUSHARE_HTTP_URL": tushare_url,
        # As the shipped environment file sets it: the backfill and UI tests then check
        # partition statuses recorded through Dagster's batched event writes.
        "DAGSTER_EVENT_BATCH_SIZE": shipped_env()["DAGSTER_EVENT_BATCH_SIZE"],
        # The foundation only: these tests count the runs and steps of the deployment's jobs;
        # the catalog's datasets have tests of their own (test_datasets*.py).
        "ZQUANT_DATASETS": "none",
    })
    web_port = free_port()
    deployment = Deployment(folder, env, web_port, warehouse_url, instance_url)
    command = unit_command("zquant-dagster-webserver.service")
    assert command[1:5] == ["-h", "127.0.0.1", "-p", "3000"], command
    command[4] = str(web_port)
    process = deployment.start("webserver", command)
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, deployment.log_text()
        assert time.monotonic() < deadline, "the webserver never answered\n" + deployment.log_text()
        try:
            if deployment.graphql("{ repositoriesOrError { __typename } }")["repositoriesOrError"]["__typename"] \
                    == "RepositoryConnection":
                return deployment
        except OSError:
            pass
        time.sleep(1)


def start_daemon(deployment: Deployment) -> None:
    deployment.start("daemon", unit_command("zquant-dagster-daemon.service"))
    deadline = time.monotonic() + 180
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    while True:
        statuses = deployment.graphql(query)["instance"]["daemonHealth"]["allDaemonStatuses"]
        if all(s["healthy"] for s in statuses if s["required"]):
            return
        assert time.monotonic() < deadline, f"daemons not healthy: {statuses}\n" + deployment.log_text()
        time.sleep(2)


def postgres_scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def start_proxy(deployment: Deployment, users: dict[str, str]) -> int:
    """nginx with the shipped site, its listen port, upstream, password file and logs pointed
    into the deployment's folder. Passwords are hashed with `openssl passwd -apr1`, as the
    site's install notes say."""
    nginx = require_program("nginx")
    folder = deployment.folder / "nginx"
    folder.mkdir()
    htpasswd = folder / "htpasswd"
    lines = []
    for user, password in users.items():
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=password, capture_output=True,
                                text=True, check=True).stdout.strip()
        lines.append(f"{user}:{hashed}")
    htpasswd.write_text("\n".join(lines) + "\n")
    port = free_port()
    site = (DEPLOY / "nginx" / "zquant-dagster.conf").read_text()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("server 127.0.0.1:3000;", f"server 127.0.0.1:{deployment.web_port};"),
                     ("auth_basic_user_file /etc/nginx/zquant.htpasswd;", f"auth_basic_user_file {htpasswd};"),
                     ("access_log /var/log/nginx/zquant-dagster.access.log;", f"access_log {folder / 'access.log'};"),
                     ("error_log /var/log/nginx/zquant-dagster.error.log;", f"error_log {folder / 'error.log'};")):
        assert site.count(old) == 1, f"the shipped nginx site no longer has {old!r}"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    temp_paths = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # The main file a Debian nginx.conf would be: the site included in the http block.
    # As root, nginx's workers would drop to `nobody`, which cannot read pytest's 0700 folders.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"{user}pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\nworker_processes 1;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n{temp_paths}\n    include {folder / 'site.conf'};\n}}\n")
    process = deployment.start("nginx", [nginx, "-e", str(folder / "error.log"), "-p", str(folder), "-c",
                                         str(folder / "nginx.conf"), "-g", "daemon off;"])
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, deployment.log_text() + (folder / "error.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx never listened"
            time.sleep(0.2)
    deployment.proxy_port = port
    return port

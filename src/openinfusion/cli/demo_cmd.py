"""``openinfusion demo``: the management server and a simulated ward, started together.

The demo is exactly ``openinfusion serve`` plus ``openinfusion ward --server URL``, each in
its own OS process, so every pump talks to the server over a real socket as a device would.
Both log to files under the data directory; the terminal shows the dashboard address, the
accounts (on first start) and a line per minute with the ward's state as the server sees it.
Ctrl-C (or ``--duration``) stops the ward, then the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError, OpenInfusionError

STARTUP_TIMEOUT_S = 60.0
STATUS_EVERY_S = 60.0


class DemoFailed(OpenInfusionError):
    """A demo process could not start or died (exit code 1; its log is named)."""

    exit_code = 1


@handle_errors
def demo_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address the server listens on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Server TCP port."),
    data_dir: Path = typer.Option(
        Path("openinfusion-demo"), "--data-dir", help="Server and ward data (kept across runs)."
    ),
    pumps: int = typer.Option(24, "--pumps", min=1, max=500, help="Pumps in the ward."),
    speed: float = typer.Option(
        60.0, "--speed", help="Pump seconds per wall second (1 = real time)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many wall seconds (default: until Ctrl-C)."
    ),
    seed: int = typer.Option(1, "--seed", help="Seed of the ward."),
    json_out: bool = JsonOption,
) -> None:
    """Run the demo: the server on SQLite and a simulated ward of mixed pumps."""
    if not 0.1 <= speed <= 3600:
        raise InputError("speed", speed, "must be 0.1 to 3600 pump seconds per wall second")
    if duration is not None and duration <= 0:
        raise InputError("duration", duration, "must be a positive number of seconds")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    server_dir, ward_dir = data_dir / "server", data_dir / "ward"
    url = f"http://{host}:{port}"
    first_start = not (server_dir / "demo-credentials.json").exists()

    procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
    # SIGTERM (a service manager, a test) stops the demo like Ctrl-C: children first.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        procs.append(
            _spawn("server", ["serve", "--host", host, "--port", str(port),
                              "--data-dir", str(server_dir)], data_dir)
        )  # fmt: skip
        _wait_healthy(url, procs[0], data_dir)
        credentials = server_dir / "demo-credentials.json"
        ward_args = ["ward", "--server", url, "--credentials", str(credentials),
                     "--pumps", str(pumps), "--speed", str(speed),
                     "--data-dir", str(ward_dir), "--seed", str(seed)]  # fmt: skip
        if duration is not None:
            ward_args += ["--duration", str(duration)]
        procs.append(_spawn("ward", ward_args, data_dir))
        accounts = json.loads(credentials.read_text(encoding="utf-8"))
        _announce(url, data_dir, credentials, accounts, first_start, pumps, speed, json_out)
        _watch(url, procs, accounts, duration, json_out)
    except KeyboardInterrupt:
        pass
    finally:
        for name, proc, log in reversed(procs):
            _stop(proc)
            log.close()
            if not json_out:
                console.print(f"{name} stopped (log: {data_dir / (name + '.log')})")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _spawn(
    name: str, args: list[str], data_dir: Path
) -> tuple[str, subprocess.Popen[bytes], IO[bytes]]:
    log = (data_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "openinfusion.cli.main", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
    )
    return name, proc, log


def _wait_healthy(
    url: str, server: tuple[str, subprocess.Popen[bytes], IO[bytes]], data_dir: Path
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server[1].poll() is not None:
            raise DemoFailed(
                f"the server exited with code {server[1].returncode} "
                f"(see {data_dir / 'server.log'}; is the port taken?)"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.3)
    raise DemoFailed(f"the server did not answer within {STARTUP_TIMEOUT_S:.0f} s at {url}")


def _announce(
    url: str,
    data_dir: Path,
    credentials: Path,
    accounts: list[dict[str, str]],
    first_start: bool,
    pumps: int,
    speed: float,
    json_out: bool,
) -> None:
    if json_out:
        print_json(
            {
                "dashboard_url": f"{url}/",
                "api_url": f"{url}/api",
                "data_dir": str(data_dir),
                "credentials_file": str(credentials),
                "accounts": accounts if first_start else [],
                "pumps": pumps,
                "speed": speed,
            }
        )
        return
    console.print(f"[bold]Dashboard:[/bold] {url}/   (API docs: {url}/docs)")
    console.print(f"Ward: {pumps} simulated pumps at {speed:g}x real time; data in {data_dir}")
    if first_start:
        console.print("Accounts (generated now, shown once; also in the file below, mode 600):")
        for a in accounts:
            console.print(f"  {a['role']:<10} {a['username']:<12} {a['password']}", markup=False)
    console.print(f"Accounts file: {credentials}")
    console.print("Ctrl-C stops the demo.")


def _watch(
    url: str,
    procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]],
    accounts: list[dict[str, str]],
    duration: float | None,
    json_out: bool,
) -> None:
    """Wait for the ward to finish (or Ctrl-C), printing a status line every minute."""
    monitor = next((a for a in accounts if a["role"] == "monitor"), accounts[0])
    next_status = time.monotonic() + (10.0 if duration is None else min(10.0, duration / 2))
    ward = procs[1][1]
    while True:
        if procs[0][1].poll() is not None:
            raise DemoFailed(f"the server exited with code {procs[0][1].returncode}")
        if ward.poll() is not None:
            if ward.returncode != 0:
                raise DemoFailed(f"the ward exited with code {ward.returncode}")
            return
        if time.monotonic() >= next_status and not json_out:
            line = _status_line(url, monitor)
            if line:
                console.print(line, markup=False)
            next_status = time.monotonic() + STATUS_EVERY_S
        time.sleep(0.5)


def _status_line(url: str, account: dict[str, str]) -> str | None:
    """The ward as the server sees it: pumps online, infusing, active alarms."""
    try:
        token = httpx.post(
            f"{url}/api/auth/token",
            data={"username": account["username"], "password": account["password"]},
            timeout=5.0,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        pumps: list[dict[str, Any]] = httpx.get(
            f"{url}/api/pumps", headers=headers, timeout=5.0
        ).json()
        alarms = httpx.get(f"{url}/api/alarms?active=true", headers=headers, timeout=5.0).json()
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    online = sum(1 for p in pumps if p.get("online"))
    gaps = sum(len(p.get("gaps") or []) for p in pumps)
    n_alarms = len(alarms) if isinstance(alarms, list) else 0
    return (
        f"{time.strftime('%H:%M:%S')}  pumps {online}/{len(pumps)} online, "
        f"active alarms {n_alarms}, sequence gaps {gaps}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""``openinfusion ward``: a simulated ward of pumps, each linked to the server like a real one."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError
from openinfusion.security import load_public_key
from openinfusion.server.ward.ward import Ward, WardOptions, run_processes, tokens_per_pump


@handle_errors
def ward_command(
    server: str = typer.Option(..., "--server", help="Server base URL, e.g. http://127.0.0.1:8000"),
    token: list[str] = typer.Option(
        [], "--token", help="One-time enrolment token (one per pump not yet enrolled)."
    ),
    credentials: Path | None = typer.Option(
        None,
        "--credentials",
        help="demo-credentials.json of the server: a biomed account asks for enrolment tokens.",
    ),
    pumps: int = typer.Option(8, "--pumps", help="Number of pumps (bed mix cycles)."),
    speed: float = typer.Option(60.0, "--speed", help="Pump seconds per wall second."),
    data_dir: Path = typer.Option(
        Path("ward-data"), "--data-dir", help="Per-pump keys and outboxes (kept across runs)."
    ),
    seed: int = typer.Option(1, "--seed", help="Seed of the ward (same seed, same ward)."),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many wall seconds (default: until Ctrl-C)."
    ),
    mode: str = typer.Option(
        "tasks", "--mode", help="tasks: all pumps in this process; processes: one per pump."
    ),
    pharmacy_key: list[Path] = typer.Option(
        [], "--pharmacy-key", help="Pharmacist public key (PEM) the pumps trust for libraries."
    ),
    only: int | None = typer.Option(None, "--only", hidden=True),
    json_out: bool = JsonOption,
) -> None:
    """Run a simulated ward against a server. Exit 0 ok, 2 bad input."""
    if not token and credentials is None and not any(data_dir.glob("*/outbox.db")):
        raise InputError("token", "", "give --token (one per new pump) or --credentials")
    options = WardOptions(
        server_url=server,
        data_dir=data_dir,
        pumps=pumps,
        speed=speed,
        seed=seed,
        tokens=list(token),
        credentials=credentials,
        duration_s=duration,
        mode=mode,
        trusted_pharmacy_keys=[load_public_key(p) for p in pharmacy_key],
        only=only,
    )
    options.check()
    if mode == "processes" and only is None:
        options.tokens = asyncio.run(tokens_per_pump(options))
        options.credentials = None  # children enrol with their own token, no login each
        result = asyncio.run(_supervise(options, pharmacy_key))
        if json_out:
            print_json(result)
        else:
            console.print(f"pump processes restarted: {result['restarts']}", markup=False)
        raise typer.Exit(result["exit_code"])
    ward = Ward(options)
    summary = asyncio.run(_run(ward))
    if json_out:
        print_json(summary)
        return
    for p in summary["pumps"]:
        console.print(
            f"{p['serial']:<14} {p['profile']:<16} {p['pump_time_h']:6.2f} h "
            f"{p['delivered_ml']:9.2f} mL  seq {p['last_seq']:>6}  "
            f"unacked {p['outbox_pending']:>4}  {','.join(p['states'])}",
            markup=False,
        )


async def _supervise(options: WardOptions, keys: list[Path]) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return await run_processes(options, lambda i, left: _child_argv(options, i, keys, left), stop)


async def _run(ward: Ward) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, ward.stop.set)
    return await ward.run()


def _child_argv(
    o: WardOptions, index: int, keys: list[Path], duration_s: float | None
) -> list[str]:
    """Arguments of the process that runs pump ``index`` alone."""
    argv = [
        "-m",
        "openinfusion.cli.ward_cmd",
        "--server", o.server_url,
        "--pumps", str(o.pumps),
        "--speed", str(o.speed),
        "--data-dir", str(o.data_dir),
        "--seed", str(o.seed),
        "--only", str(index),
    ]  # fmt: skip
    if duration_s is not None:
        argv += ["--duration", str(duration_s)]
    if index < len(o.tokens) and o.tokens[index]:
        argv += ["--token", o.tokens[index]]
    if o.credentials is not None:
        argv += ["--credentials", str(o.credentials)]
    for key in keys:
        argv += ["--pharmacy-key", str(key)]
    return argv


if __name__ == "__main__":  # one pump of a ward in its own process (--mode processes)
    typer.run(ward_command)

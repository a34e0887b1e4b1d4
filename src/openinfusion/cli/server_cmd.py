"""``openinfusion serve`` and ``openinfusion audit verify``: run the management server and
check its audit trail.

Exit codes beyond the shared ones (0 ok, 2 bad input): ``audit verify`` exits
:data:`EXIT_AUDIT_BROKEN` (5) when the chain is broken, naming the first bad entry.
"""

from __future__ import annotations

from pathlib import Path

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError

EXIT_AUDIT_BROKEN = 5
DEFAULT_DATA_DIR = Path("openinfusion-data")

audit_app = typer.Typer(help="The server's tamper-evident audit trail.", no_args_is_help=True)

DataDirOption = typer.Option(
    DEFAULT_DATA_DIR, "--data-dir", help="Server data directory (key, SQLite database)."
)
DbOption = typer.Option(
    None, "--db", help="Database URL instead of SQLite in the data dir (postgresql://...)."
)


@handle_errors
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port."),
    data_dir: Path = DataDirOption,
    db: str | None = DbOption,
    hl7_port: int | None = typer.Option(
        None, "--hl7-port", min=0, max=65535, help="Listen for HL7 v2 over MLLP (EHR orders)."
    ),
    hl7_host: str = typer.Option("127.0.0.1", "--hl7-host", help="Address of the HL7 listener."),
    hl7_destination: list[str] = typer.Option(
        [],
        "--hl7-destination",
        help="Send PCD-01/PCD-04 to this MLLP endpoint, HOST:PORT (repeatable).",
    ),
    hl7_status_interval: float = typer.Option(
        60.0, "--hl7-status-interval", min=0, help="Seconds between unchanged channel reports."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Run the infusion management server (REST API, live events, pump gateway, HL7 link)."""
    import uvicorn

    from openinfusion.interop.outbound import parse_destination
    from openinfusion.security.envelope import MAX_FRAME_BYTES
    from openinfusion.server.app import create_app
    from openinfusion.server.config import Settings

    for destination in hl7_destination:
        parse_destination(destination)
    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        db_url=db,
        hl7_listen_host=hl7_host,
        hl7_listen_port=hl7_port,
        hl7_destinations=tuple(hl7_destination),
        hl7_status_interval_s=hl7_status_interval,
    )
    app = create_app(settings)
    accounts = [
        {"username": c.username, "password": c.password, "role": c.role}
        for c in app.state.first_accounts
    ]
    listener = f"{hl7_host}:{hl7_port}" if hl7_port is not None else None
    if json_out:
        print_json(
            {
                "url": f"http://{host}:{port}",
                "data_dir": str(data_dir),
                "first_accounts": accounts,
                "hl7_listener": listener,
                "hl7_destinations": list(hl7_destination),
            }
        )
    else:
        console.print(f"openinfusion server on http://{host}:{port} (data: {data_dir})")
        if listener:
            console.print(f"HL7 v2 (MLLP) listener on {listener}", markup=False)
        for destination in hl7_destination:
            console.print(f"PCD-01/PCD-04 feed to {destination} (MLLP)", markup=False)
        if accounts:
            console.print(
                "First start: accounts created (shown once; also in "
                f"{settings.credentials_path}, mode 600):"
            )
            for a in accounts:
                console.print(
                    f"  {a['role']:<10} {a['username']:<12} {a['password']}", markup=False
                )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        ws_max_size=MAX_FRAME_BYTES + 1024,
        server_header=False,
    )


@audit_app.command("verify")
@handle_errors
def audit_verify(
    data_dir: Path = DataDirOption,
    db: str | None = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Verify the audit hash chain and its signed head; exit 5 naming the first bad entry."""
    from openinfusion.security import load_private_key
    from openinfusion.server.audit_log import verify_stored_chain
    from openinfusion.server.config import Settings, check_db_url
    from openinfusion.server.db import Database

    if db is not None:
        check_db_url(db)
    settings = Settings(data_dir=data_dir, db_url=db)
    if not settings.server_key_path.exists():
        raise InputError("data_dir", str(data_dir), "holds no server key (server-key.pem)")
    if db is None and not (data_dir / "openinfusion.db").exists():
        raise InputError("data_dir", str(data_dir), "holds no server database")
    key = load_private_key(settings.server_key_path)
    database = Database(settings.database_url)
    try:
        with database.read() as session:
            report = verify_stored_chain(session, key)
    finally:
        database.dispose()
    if json_out:
        print_json(report.as_dict())
    elif report.ok:
        console.print(f"audit chain intact: {report.checked} entries, head {report.head_hash}")
    else:
        console.print(
            f"audit chain BROKEN at entry {report.first_bad_seq} "
            f"({report.problem}): {report.message}",
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(EXIT_AUDIT_BROKEN)

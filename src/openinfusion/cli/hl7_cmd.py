"""``openinfusion hl7``: send, listen to and explain HL7 v2 messages (IHE PCD) over MLLP.

Exit codes beyond the shared ones (0 ok, 2 bad input or usage):
:data:`EXIT_NACK` (6) a reply was AE/AR (or CE/CR, or could not be read),
:data:`EXIT_TIMEOUT` (7) no reply within ``--timeout``,
:data:`EXIT_CONNECTION` (8) connection refused or lost. When several happen the highest
is returned; sending stops at the first timeout or connection failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import typer

from openinfusion.cli._common import JsonOption, console, handle_errors, print_json
from openinfusion.errors import InputError

EXIT_NACK = 6
EXIT_TIMEOUT = 7
EXIT_CONNECTION = 8

hl7_app = typer.Typer(
    help="HL7 v2 over MLLP for integration testing: send, listen, explain.",
    no_args_is_help=True,
)

FileArgument = typer.Argument(
    ..., help="File of HL7 v2 messages: MLLP-framed, or separated by blank lines."
)


def read_messages(path: Path) -> list[bytes]:
    """The messages in a file: MLLP frames if it holds start blocks, else blank-line
    separated; segment ends (CR LF, LF) become CR. Bytes are kept as they are otherwise
    (the character set is the message's own, MSH-18)."""
    from openinfusion.interop.mllp import SB, FrameReader, FrameTooLarge

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError("file", str(path), f"cannot be read: {exc.strerror}") from None
    if bytes([SB]) in data:
        reader = FrameReader(max(len(data), 16))
        try:
            frames = reader.feed(data)
        except FrameTooLarge:  # pragma: no cover - the limit is the file's size
            frames = []
        bad = next((f for f in frames if f.problem), None)
        if bad is not None or reader.in_frame:
            problem = bad.problem if bad is not None else "missing_end_block"
            raise InputError("file", str(path), f"broken MLLP framing ({problem})")
        texts = [f.payload for f in frames]
    else:
        texts = re.split(rb"(?:\r\n|\n|\r)[ \t]*(?:\r\n|\n|\r)", data)
    out = []
    for text in texts:
        lines = [ln for ln in re.split(rb"\r\n|\n|\r", text) if ln.strip()]
        if lines:
            out.append(b"\r".join(lines) + b"\r")
    if not out:
        raise InputError("file", str(path), "holds no HL7 message")
    for i, msg in enumerate(out, start=1):
        if not msg.startswith(b"MSH"):
            raise InputError(f"message {i}", msg[:20].decode("latin-1"), "must start with MSH")
    return out


@dataclasses.dataclass
class SendResult:
    index: int
    control_id: str
    outcome: Literal["AA", "AE", "AR", "CA", "CE", "CR", "unreadable", "timeout", "connection"]
    ack_control_id: str | None
    text: str
    reply: str | None


async def _send_all(
    messages: list[bytes], host: str, port: int, timeout: float
) -> list[SendResult]:
    from openinfusion.interop.hl7.errors import HL7ParseError
    from openinfusion.interop.hl7.parse import control_id, parse_message
    from openinfusion.interop.mllp import MLLPClient, MLLPError, MLLPTimeout
    from openinfusion.interop.outbound import read_ack

    results: list[SendResult] = []
    async with MLLPClient(host, port, timeout_s=timeout, connect_timeout_s=timeout) as client:
        for i, msg in enumerate(messages, start=1):
            try:
                cid = control_id(parse_message(msg))
            except HL7ParseError:
                cid = ""
            try:
                reply = await client.send(msg)
            except MLLPTimeout as exc:
                results.append(SendResult(i, cid, "timeout", None, str(exc), None))
                break
            except MLLPError as exc:
                results.append(SendResult(i, cid, "connection", None, str(exc), None))
                break
            shown = reply.decode("utf-8", "replace")
            try:
                ack = read_ack(reply)
            except HL7ParseError as exc:
                results.append(SendResult(i, cid, "unreadable", None, str(exc), shown))
                continue
            code = ack.code if ack.code in ("AA", "AE", "AR", "CA", "CE", "CR") else "unreadable"
            results.append(SendResult(i, cid, code, ack.control_id, ack.text, shown))  # type: ignore[arg-type]
    return results


def _exit_code(results: list[SendResult]) -> int:
    codes = {"timeout": EXIT_TIMEOUT, "connection": EXIT_CONNECTION}
    worst = 0
    for r in results:
        code = codes.get(r.outcome, 0 if r.outcome in ("AA", "CA") else EXIT_NACK)
        worst = max(worst, code)
    return worst


@hl7_app.command("send")
@handle_errors
def send(
    file: Path = FileArgument,
    host: str = typer.Option("127.0.0.1", "--host", help="MLLP endpoint address."),
    port: int = typer.Option(..., "--port", min=1, max=65535, help="MLLP endpoint port."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.01, help="Seconds to wait per ACK."),
    json_out: bool = JsonOption,
) -> None:
    """Send each message in FILE over MLLP and print its ACK (exit 6 AE/AR, 7 timeout,
    8 connection refused or lost)."""
    messages = read_messages(file)
    results = asyncio.run(_send_all(messages, host, port, timeout))
    code = _exit_code(results)
    if json_out:
        print_json(
            {
                "endpoint": f"{host}:{port}",
                "messages": len(messages),
                "results": [dataclasses.asdict(r) for r in results],
                "exit_code": code,
            }
        )
    else:
        for r in results:
            line = f"{r.index}: {r.control_id or '(no MSH-10)'} -> {r.outcome}"
            if r.text:
                line += f" {r.text}"
            console.print(line, markup=False)
        unsent = len(messages) - len(results)
        if unsent:
            console.print(f"{unsent} message(s) not sent", markup=False)
    if code:
        raise typer.Exit(code)


AckChoice = typer.Option("AA", "--ack", help="Acknowledgement code to answer with: AA, AE or AR.")


async def _listen(
    host: str,
    port: int,
    ack: str,
    count: int | None,
    out: Path | None,
    json_out: bool,
) -> int:
    from openinfusion.interop.hl7.ack import build_ack, build_reject_for_raw
    from openinfusion.interop.hl7.errors import HL7ParseError
    from openinfusion.interop.hl7.parse import control_id, message_type, parse_message
    from openinfusion.interop.listener import new_control_id
    from openinfusion.interop.mllp import Frame, MLLPServer

    received = 0
    done = asyncio.Event()

    def report(item: dict[str, Any], text: str) -> None:
        # one line per event, flushed: a script reading a pipe sees each as it happens
        if json_out:
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        else:
            console.print(text, markup=False)
        sys.stdout.flush()

    async def handle(frame: Frame) -> bytes | None:
        nonlocal received
        if done.is_set():
            return None
        received += 1
        index = received
        now = datetime.now(UTC)
        saved = None
        if out is not None:
            saved = str(out / f"{index:06d}.hl7")
            Path(saved).write_bytes(frame.payload)
        try:
            msg = parse_message(frame.payload)
        except HL7ParseError as exc:
            reply = build_reject_for_raw(frame.payload, exc, now=now, control_id=new_control_id())
            report(
                {
                    "index": index,
                    "control_id": None,
                    "error": str(exc),
                    "ack": "AR",
                    "saved": saved,
                },
                f"{index}: unreadable ({exc}) -> AR",
            )
        else:
            errors = []
            if ack != "AA":
                errors = [
                    HL7ParseError(
                        "message", "", f"refused by this test endpoint (--ack {ack})", 207
                    )
                ]
            reply = build_ack(msg, ack, errors=errors, now=now, control_id=new_control_id())  # type: ignore[arg-type]
            kind = "^".join(p for p in message_type(msg)[:2] if p)
            report(
                {
                    "index": index,
                    "control_id": control_id(msg),
                    "message_type": kind,
                    "ack": ack,
                    "saved": saved,
                },
                f"{index}: {kind} {control_id(msg)} -> {ack}"
                + (
                    ""
                    if saved or json_out
                    else "\n" + frame.payload.decode("utf-8", "replace").replace("\r", "\n")
                ),
            )
        if count is not None and received >= count:
            asyncio.get_running_loop().call_later(0.2, done.set)  # after the ACK is written
        return reply.encode("utf-8")

    server = MLLPServer(handle, host, port)
    bound = await server.start()
    report({"listening": f"{host}:{bound}"}, f"listening on {host}:{bound} (MLLP)")
    try:
        await done.wait()
    finally:
        await server.stop()
    return received


@hl7_app.command("listen")
@handle_errors
def listen(
    port: int = typer.Option(..., "--port", min=0, max=65535, help="Port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    ack: str = AckChoice,
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after N messages."),
    out: Path | None = typer.Option(None, "--out", help="Save each message as DIR/NNNNNN.hl7."),
    json_out: bool = JsonOption,
) -> None:
    """A test EHR endpoint: print or save each message received and answer with an ACK."""
    code = ack.upper()
    if code not in ("AA", "AE", "AR"):
        raise InputError("ack", ack, "must be AA, AE or AR")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InputError("out", str(out), "must be a directory")
        out.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_listen(host, port, code, count, out, json_out))
    except OSError as exc:
        raise InputError("port", port, f"cannot listen on {host}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass


@hl7_app.command("explain")
@handle_errors
def explain_command(file: Path = FileArgument, json_out: bool = JsonOption) -> None:
    """Name and decode every field of each message in FILE (MDC codes read out)."""
    from openinfusion.interop.hl7.errors import HL7ParseError
    from openinfusion.interop.hl7.explain import explain, render_text
    from openinfusion.interop.hl7.parse import parse_message

    parsed = []
    for i, raw in enumerate(read_messages(file), start=1):
        try:
            parsed.append(parse_message(raw))
        except HL7ParseError as exc:
            raise InputError(f"message {i}", exc.value, f"{exc.field}: {exc.rule}") from None
    if json_out:
        print_json(
            {
                "messages": [
                    {
                        "fields": [
                            dict(dataclasses.asdict(f), location=f.location) for f in explain(msg)
                        ]
                    }
                    for msg in parsed
                ]
            }
        )
        return
    for i, msg in enumerate(parsed, start=1):
        if len(parsed) > 1:
            console.print(f"--- message {i}", markup=False)
        console.print(render_text(msg), markup=False)

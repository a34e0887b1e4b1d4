"""``openinfusion hl7 send | listen | explain`` over real loopback sockets, with the exit
codes scripts rely on (0 AA, 2 bad input, 6 AE/AR, 7 timeout, 8 connection refused)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openinfusion.cli.hl7_cmd import EXIT_CONNECTION, EXIT_NACK, EXIT_TIMEOUT, hl7_app
from openinfusion.interop.hl7.pcd01 import build_oru_r01
from openinfusion.interop.mllp import frame
from openinfusion.interop.records import ChannelObservation, PatientRef
from tests.interop._ehr import FakeEHR

runner = CliRunner()
NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _oru(control_id: str, rate: float = 12.5) -> str:
    obs = ChannelObservation(
        pump_id="P-1",
        pump_serial="SN-CLI-1",
        pump_model="TestPump 1",
        pump_kind="syringe",
        channel=1,
        observed_at=NOW,
        state="running",
        drug="heparin",
        dose=18.0,
        dose_unit="units/kg/h",
        rate_ml_h=rate,
        volume_infused_ml=3.0,
        vtbi_remaining_ml=47.0,
        time_remaining_min=225.0,
        patient=PatientRef(mrn="MRN-CLI", family_name="Hopper", given_name="Grace"),
    )
    return build_oru_r01(obs, control_id=control_id, now=NOW)


@pytest.fixture
def two_messages(tmp_path: Path) -> Path:
    path = tmp_path / "two.hl7"
    # line feeds and a blank line between messages, as a person writes such a file
    text = _oru("CLI-1").replace("\r", "\n") + "\n" + _oru("CLI-2", 15.0).replace("\r", "\n")
    path.write_text(text)
    return path


def test_send_prints_each_ack_and_exits_0(two_messages: Path) -> None:
    with FakeEHR() as ehr:
        result = runner.invoke(
            hl7_app, ["send", str(two_messages), "--port", str(ehr.port), "--json"]
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert [(r["control_id"], r["outcome"]) for r in out["results"]] == [
            ("CLI-1", "AA"),
            ("CLI-2", "AA"),
        ]
        assert [r["ack_control_id"] for r in out["results"]] == ["CLI-1", "CLI-2"]
        assert ehr.control_ids() == ["CLI-1", "CLI-2"]
        text = runner.invoke(hl7_app, ["send", str(two_messages), "--port", str(ehr.port)])
        assert text.exit_code == 0 and "CLI-2 -> AA" in text.stdout


def test_send_mllp_framed_file(tmp_path: Path) -> None:
    path = tmp_path / "framed.bin"
    path.write_bytes(frame(_oru("F-1").encode()) + b"\r\n" + frame(_oru("F-2").encode()))
    with FakeEHR() as ehr:
        result = runner.invoke(hl7_app, ["send", str(path), "--port", str(ehr.port)])
        assert result.exit_code == 0, result.output
        assert ehr.control_ids() == ["F-1", "F-2"]


@pytest.mark.parametrize("mode", ["AE", "AR"])
def test_send_error_acks_exit_6_with_the_reason(two_messages: Path, mode: str) -> None:
    with FakeEHR(mode=mode) as ehr:  # type: ignore[arg-type]
        result = runner.invoke(
            hl7_app, ["send", str(two_messages), "--port", str(ehr.port), "--json"]
        )
    assert result.exit_code == EXIT_NACK
    out = json.loads(result.stdout)
    assert {r["outcome"] for r in out["results"]} == {mode}
    assert "observation identifier not known here" in out["results"][0]["text"]


def test_send_timeout_exits_7_and_refused_exits_8(two_messages: Path) -> None:
    with FakeEHR(mode="tarpit") as ehr:
        result = runner.invoke(
            hl7_app,
            ["send", str(two_messages), "--port", str(ehr.port), "--timeout", "0.3", "--json"],
        )
    assert result.exit_code == EXIT_TIMEOUT
    out = json.loads(result.stdout)
    assert len(out["results"]) == 1 and out["results"][0]["outcome"] == "timeout"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    result = runner.invoke(hl7_app, ["send", str(two_messages), "--port", str(dead)])
    assert result.exit_code == EXIT_CONNECTION
    assert "connection" in result.stdout


def test_send_bad_file_exit_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.hl7"
    path.write_text("PID|||123\n")
    result = runner.invoke(hl7_app, ["send", str(path), "--port", "2575"])
    assert result.exit_code == 2 and "must start with MSH" in result.output
    result = runner.invoke(hl7_app, ["send", str(tmp_path / "missing.hl7"), "--port", "2575"])
    assert result.exit_code == 2 and "cannot be read" in result.output
    (tmp_path / "empty.hl7").write_text("\n\n")
    result = runner.invoke(hl7_app, ["send", str(tmp_path / "empty.hl7"), "--port", "2575"])
    assert result.exit_code == 2 and "no HL7 message" in result.output


def test_listen_saves_and_answers_with_the_chosen_ack(two_messages: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "received"
    entry = "from openinfusion.cli.hl7_cmd import hl7_app; hl7_app()"
    args = ["listen", "--port", "0", "--count", "2", "--ack", "AE", "--out", str(out_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        port = int(first["listening"].rsplit(":", 1)[1])
        result = runner.invoke(hl7_app, ["send", str(two_messages), "--port", str(port), "--json"])
        assert result.exit_code == EXIT_NACK
        assert [r["outcome"] for r in json.loads(result.stdout)["results"]] == ["AE", "AE"]
        assert proc.wait(30) == 0
        lines = [json.loads(line) for line in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [(x["control_id"], x["message_type"], x["ack"]) for x in lines] == [
        ("CLI-1", "ORU^R01", "AE"),
        ("CLI-2", "ORU^R01", "AE"),
    ]
    saved = sorted(out_dir.iterdir())
    assert [p.name for p in saved] == ["000001.hl7", "000002.hl7"]
    assert saved[0].read_bytes().startswith(b"MSH|^~\\&|") and b"CLI-1" in saved[0].read_bytes()


def test_listen_refuses_a_bad_ack_code() -> None:
    result = runner.invoke(hl7_app, ["listen", "--port", "0", "--ack", "XX"])
    assert result.exit_code == 2 and "must be AA, AE or AR" in result.output


def test_explain_text_and_json(two_messages: Path, tmp_path: Path) -> None:
    result = runner.invoke(hl7_app, ["explain", str(two_messages)])
    assert result.exit_code == 0, result.output
    assert "--- message 2" in result.stdout and "OBX" in result.stdout
    result = runner.invoke(hl7_app, ["explain", str(two_messages), "--json"])
    data = json.loads(result.stdout)
    fields = data["messages"][0]["fields"]
    assert any(f["location"] == "MSH-10" and f["text"] == "CLI-1" for f in fields)
    bad = tmp_path / "bad.hl7"
    bad.write_text("MSH|^~\\&|A|B\n")
    result = runner.invoke(hl7_app, ["explain", str(bad)])
    assert result.exit_code == 2 and "MSH-9" in result.output


def test_serve_refuses_a_bad_hl7_destination(tmp_path: Path) -> None:
    import typer

    from openinfusion.cli.server_cmd import serve_command

    app = typer.Typer()
    app.command()(serve_command)
    result = runner.invoke(
        app, ["--data-dir", str(tmp_path / "d"), "--hl7-destination", "ehr-without-port"]
    )
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    assert not (tmp_path / "d").exists()  # refused before anything was created

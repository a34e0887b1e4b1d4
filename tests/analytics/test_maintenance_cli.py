"""``openinfusion report maintenance``: queue of a simulated fleet as JSON, HTML and PNG,
the evaluation mode, and bad input refused with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from openinfusion.cli.main import app

runner = CliRunner()
SIM = ["report", "maintenance", "--simulate-fleet", "--pumps", "60", "--days", "120"]


def test_simulated_fleet_queue_as_json() -> None:
    result = runner.invoke(app, [*SIM, "--seed", "4", "--limit", "5", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["report"] == "maintenance" and doc["horizon_days"] == 14
    assert len(doc["pumps"]) == 5
    risks = [p["risk"] for p in doc["pumps"]]
    assert risks == sorted(risks, reverse=True)
    assert all(p["reasons"] for p in doc["pumps"])
    assert "simulated fleet (seed 4" in doc["source"]


def test_html_page_embeds_its_chart_and_png_is_the_chart(tmp_path: Path) -> None:
    page, chart = tmp_path / "queue.html", tmp_path / "queue.png"
    assert runner.invoke(app, [*SIM, "--format", "html", "--out", str(page)]).exit_code == 0
    html = page.read_text()
    assert "Content-Security-Policy" in html and "<script" not in html
    assert 'src="data:image/png;base64,' in html and "Maintenance queue" in html
    assert runner.invoke(app, [*SIM, "--format", "png", "--out", str(chart)]).exit_code == 0
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_evaluation_prints_model_and_rule(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = ["report", "maintenance", "--evaluate", "--pumps", "80", "--days", "200"]
    result = runner.invoke(app, [*args, "--seed", "31", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ev = json.loads(out.read_text())["evaluation"]
    assert ev["seeds"] == [31, 32, 33]
    for method in ("model", "rule"):
        assert {"pr_auc", "precision", "recall", "median_lead_days"} <= set(ev[method])
    printed = runner.invoke(app, [*args, "--seed", "31"])
    assert printed.exit_code == 0
    assert "risk model" in printed.stdout and "threshold rule" in printed.stdout


def test_bad_input_exits_2_naming_the_field(tmp_path: Path) -> None:
    cases = [
        ([*SIM, "--horizon-days", "0"], "horizon_days"),
        ([*SIM[:-4], "--pumps", "0"], "pumps"),
        (["report", "maintenance", "--data-dir", str(tmp_path)], "data_dir"),
        (["report", "maintenance", "--evaluate", "--days", "30"], "days"),
        ([*SIM, "--out", str(tmp_path / "no" / "x.json")], "out"),
    ]
    for args, field in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"error: {field}" in result.output, (args, result.output)

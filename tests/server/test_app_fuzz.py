"""Requests generated from the OpenAPI description (schemathesis strategies driven by
hypothesis) never make the server fail: every answer is below 500, whatever the path ids,
query values and bodies (RELIABILITY section A, bad input; C-19)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from openinfusion.server.app import create_app
from openinfusion.server.models import User
from openinfusion.server.tokens import issue_token
from tests.server._server_support import (
    cheap_password_hashing,  # noqa: F401 (autouse)
    make_settings,
)


class Fuzz:
    def __init__(self, app: Any) -> None:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        self.ops = {
            f"{op.method.upper()} {op.path}": op
            for op in (r.ok() for r in schema.get_all_operations())
            if op.path != "/api/events"  # an endless stream; tested in test_gateway.py
        }
        self.ctx = app.state.ctx
        self.statuses: Counter[int] = Counter()

    def headers(self) -> dict[str, str]:
        """A fresh admin token for each request: generated requests may log out or change
        the admin's password, which revokes tokens."""
        with self.ctx.db.write() as s:
            admin = s.scalars(select(User).where(User.username == "admin1")).one()
            raw = issue_token(s, admin, self.ctx.now(), 3600)
        return {"Authorization": f"Bearer {raw}"}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    app = create_app(make_settings(tmp_path_factory.mktemp("fuzz")))
    TestClient(app)
    yield Fuzz(app)


def test_generated_requests_never_fail_the_server(fuzz: Fuzz) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        label = data.draw(st.sampled_from(sorted(fuzz.ops)), label="operation")
        case = data.draw(fuzz.ops[label].as_strategy(), label="case")
        response = case.call(headers=fuzz.headers())
        fuzz.statuses[response.status_code] += 1
        assert response.status_code < 500, (label, case.formatted_path, response.text[:300])

    run()
    # the generated requests reached the handlers, not only the authentication check
    assert len(fuzz.ops) >= 20 and "POST /api/users" in fuzz.ops
    total = sum(fuzz.statuses.values())
    assert total >= 100 and fuzz.statuses[401] < total / 4, fuzz.statuses

"""FastAPI application factory: ``create_app(settings)`` prepares storage and wires routers.

On creation it checks the data dir, opens the database, runs Alembic to head, loads (or on
first start creates) the server key and the first accounts. The event bus and the gateway
hub start with the application's lifespan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openinfusion import __version__
from openinfusion.analytics import api as analytics_api
from openinfusion.interop import api_hl7, api_orders
from openinfusion.interop.fhir import api as fhir_api
from openinfusion.interop.link import start_hl7_link, stop_hl7_link
from openinfusion.server.api import (
    alarms,
    audit,
    auth,
    commands,
    enrolment,
    events,
    health,
    infusions,
    libraries,
    patients,
    pumps,
    users,
)
from openinfusion.server.api.errors import install_handlers
from openinfusion.server.api.limits import BodyLimits
from openinfusion.server.bootstrap import Credential, create_first_accounts
from openinfusion.server.clock import Clock, utc_now
from openinfusion.server.config import Settings, check_db_url, prepare_data_dir
from openinfusion.server.context import ServerContext
from openinfusion.server.dashboard import mount as mount_dashboard
from openinfusion.server.db import Database
from openinfusion.server.events import make_bus
from openinfusion.server.gateway import GatewayHub
from openinfusion.server.gateway import router as gateway_router
from openinfusion.server.migrate import upgrade_to_head
from openinfusion.server.sampling import AuditSampler
from openinfusion.server.server_key import load_or_create_server_key


def open_context(
    settings: Settings, clock: Clock = utc_now
) -> tuple[ServerContext, list[Credential]]:
    """Storage ready to serve: data dir checked, schema at head, key and first accounts."""
    prepare_data_dir(settings)
    url = check_db_url(settings.database_url)
    db = Database(url)
    upgrade_to_head(db.engine)
    key, _created = load_or_create_server_key(settings)
    ctx = ServerContext(settings=settings, db=db, server_key=key, bus=make_bus(url), clock=clock)
    return ctx, create_first_accounts(ctx)


def create_app(settings: Settings, clock: Clock = utc_now) -> FastAPI:
    ctx, first_accounts = open_context(settings, clock)
    hub = GatewayHub(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.bus.start()
        await hub.start()
        hl7_link = await start_hl7_link(ctx)
        app.state.hl7_listener, app.state.hl7_outbound = hl7_link
        try:
            yield
        finally:
            await stop_hl7_link(*hl7_link)
            await hub.stop()
            await ctx.bus.stop()
            ctx.db.dispose()

    app = FastAPI(
        title="openinfusion management server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.hub = hub
    app.state.hl7_listener = app.state.hl7_outbound = None
    app.state.first_accounts = first_accounts
    app.state.streams = Counter()  # open live-event streams per account
    app.state.unauth_sampler = AuditSampler()  # unauthenticated refusals audited per address
    install_handlers(app)
    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes)
    for module in (
        health,
        auth,
        pumps,
        alarms,
        infusions,
        users,
        audit,
        enrolment,
        commands,
        events,
        libraries,
        patients,
        api_orders,
        api_hl7,
        fhir_api,
        analytics_api,
    ):
        app.include_router(module.router)
    app.include_router(gateway_router)
    mount_dashboard(app)
    return app

"""Starting and stopping the server's HL7 link with the application: the inbound MLLP
listener (when ``hl7_listen_port`` is set) and the outbound feed (when destinations are)."""

from __future__ import annotations

import logging

from openinfusion.interop.listener import InboundListener
from openinfusion.interop.outbound import OutboundService, SendPolicy
from openinfusion.interop.outbound_feed import FeedPolicy
from openinfusion.server.context import ServerContext

log = logging.getLogger(__name__)


def outbound_from_settings(ctx: ServerContext) -> OutboundService:
    s = ctx.settings
    return OutboundService(
        ctx,
        s.hl7_destinations,
        feed=FeedPolicy(status_interval_s=s.hl7_status_interval_s),
        send=SendPolicy(
            ack_timeout_s=s.hl7_ack_timeout_s,
            retry_base_s=s.hl7_retry_base_s,
            retry_max_s=s.hl7_retry_max_s,
            ae_retries=s.hl7_ae_retries,
        ),
        forward_interval_s=s.hl7_forward_interval_s,
    )


async def start_hl7_link(
    ctx: ServerContext,
) -> tuple[InboundListener | None, OutboundService | None]:
    """Start what the settings ask for; nothing when HL7 is not configured."""
    listener: InboundListener | None = None
    outbound: OutboundService | None = None
    if ctx.settings.hl7_listen_port is not None:
        listener = InboundListener(ctx)
        await listener.start()
    if ctx.settings.hl7_destinations:
        outbound = outbound_from_settings(ctx)
        await outbound.start()
    return listener, outbound


async def stop_hl7_link(listener: InboundListener | None, outbound: OutboundService | None) -> None:
    if listener is not None:
        await listener.stop()
    if outbound is not None:
        await outbound.stop()

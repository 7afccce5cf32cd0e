"""`tica run`: the whole product in one process behind one port.

Migrates, seeds demo data on first start, serves the three services (each running
its own background loops: relay, consumers, live fan-out) and the arq worker, and
stops all of it on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

import uvicorn

from services import ops
from services.allinone import AllInOne
from services.forum import demo
from services.notify.worker import close_worker, create_worker, run_worker
from shared import markdown
from shared.settings import Settings
from shared.web import settle_gc

log = logging.getLogger("tica.run")


def banner(settings: Settings, host: str) -> str:
    url = f"http://{host}:{settings.port}/"
    lines = ["", f"  tica is running: open {url}", ""]
    if demo.DEMO_LOGINS:
        lines.append("  demo logins (username / password):")
        lines += [f"    {name:<12} {password:<24} {role}" for name, password, role in demo.DEMO_LOGINS]
        lines.append("")
    if settings.dev_mail:
        lines.append(f"  mail is not sent: read it at {url}dev/mail")
    elif settings.smtp_url is None:
        lines.append("  mail is not sent and not shown (/dev/mail is only for the embedded run on 127.0.0.1):")
        lines.append("  set SMTP_URL to deliver it")
    lines += ["  press Ctrl-C to stop", ""]
    return "\n".join(lines)


# How tica runs uvicorn, for `tica run` and `tica serve` alike. No uvicorn access log: shared.web.RequestContext
# writes one (JSON, with the request id). No permessage-deflate: live messages are tiny, and
# compression costs ~40 KiB a websocket.
SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "on",
    "ws_per_message_deflate": False,
    # Idle keep-alive connections are closed by the proxy, not by us: a proxy keeps its upstream
    # connections for minutes (Caddy 2 min), and one that sends a request just as we close ours (after
    # uvicorn's default 5 s) gets a reset it cannot retry for a POST.
    "timeout_keep_alive": 130,
}


def server_options(settings: Settings) -> dict[str, Any]:
    """SERVER_OPTIONS, and whose X-Forwarded-For / X-Forwarded-Proto to believe (TICA_TRUSTED_PROXIES):
    behind a proxy the client's address decides rate limits, and the scheme decides Secure cookies."""
    return {**SERVER_OPTIONS, "proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def dev_mail_allowed(settings: Settings, host: str) -> bool:
    """Whether /dev/mail may show caught mail: only in the one-command run on embedded servers,
    listening on loopback alone. It shows password-reset links, so anyone who can reach it could take
    any account: never in `tica serve`, nor with real servers, nor on an address others can reach."""
    return settings.smtp_url is None and settings.embedded and is_loopback(host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The servers' and the worker's own lifecycle lines ("Started server process", "Shutting down", each
# job done): useful in a service's log, noise in the terminal of the one-command run.
CHATTY_LOGGERS = ("uvicorn.error", "arq.worker")


async def run_all(settings: Settings, migrations: ops.MigrationPlan, *, host: str = "127.0.0.1") -> None:
    """Apply the migrations, then serve everything until interrupted."""
    if settings.log_level == "INFO":
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    settings = settings.replace(dev_mail=dev_mail_allowed(settings, host))
    await ops.apply_migrations(settings, migrations)
    await demo.seed(settings)
    app = AllInOne(settings)
    settle_gc()
    config = uvicorn.Config(app, host=host, port=settings.port, **server_options(settings))
    server = uvicorn.Server(config)
    # The job worker outlives Redis restarts (run_worker); /readyz says while it is failing.
    worker = create_worker(settings, settings_health=app.loop("job_worker_site_settings"))
    worker_stop = asyncio.Event()
    worker_task = asyncio.create_task(run_worker(worker, worker_stop, app.loop("job_worker")), name="arq-worker")
    announce = asyncio.create_task(_announce(server, settings, host))
    try:
        await server.serve()
    finally:
        announce.cancel()
        worker_stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task
        await close_worker(worker)
        markdown.close_render_pool()  # last: the worker's jobs may have rendered after the apps stopped


async def _announce(server: uvicorn.Server, settings: Settings, host: str) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.05)
    print(banner(settings, host), flush=True)

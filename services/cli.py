"""The `tica` command: run everything, serve one service, run the worker, migrate, seed.

Sits above the services: the one place (with services/allinone.py) that knows all
three. Every command reads the settings once; with DATABASE_URL / REDIS_URL unset it
finds or starts the embedded servers under DATA_DIR, shared with any `tica run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from services import ops
from services.forum import app as forum
from services.forum import commands as forum_commands
from services.notify import app as notify
from services.ops import CommandError, MigrationPlan, servers
from services.search import app as search
from shared import db, embedded, logs, markdown
from shared.settings import Settings, SettingsError
from shared.web import settle_gc

SERVICES = {"forum": forum, "notify": notify, "search": search}
log = logging.getLogger("tica.cli")


def migration_plan() -> MigrationPlan:
    """Every service's migrations, by schema."""
    return {mod.SCHEMA: db.load_migrations(mod.SCHEMA, mod.MIGRATIONS_DIR) for mod in SERVICES.values()}


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply every service's pending migrations; the names applied."""
    return await ops.apply_migrations(settings, migration_plan())


# --- commands --------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    with servers(settings) as ready:
        applied = asyncio.run(apply_migrations(ready))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> None:
    from services.forum import demo

    with servers(settings) as ready:
        asyncio.run(apply_migrations(ready))
        created = asyncio.run(demo.seed(ready, force=True))
    print("demo data seeded" if created else "demo data was already there")


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from services import runner

    with servers(settings) as ready:
        asyncio.run(runner.run_all(ready, migration_plan(), host=args.host))
    print("tica stopped.", flush=True)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from services import workers
    from services.runner import server_options

    with servers(settings) as ready:
        if args.migrate:
            asyncio.run(apply_migrations(ready))
        # Worker processes read the environment again: hand them the resolved servers.
        os.environ.update(
            {
                "DATABASE_URL": ready.database_url or "",
                "REDIS_URL": ready.redis_url or "",
                "TICA_SECRET_KEY": ready.secret_key or "",
                "TICA_SERVICE": args.service,
            }
        )
        if ready.smtp_url is None:
            log.warning("SMTP_URL is unset: mail is not sent, and tica serve never shows it (/dev/mail is off)")
        options: dict[str, Any] = {
            **server_options(ready),
            "factory": True,
            "host": args.host,
            "port": args.port or ready.port,
            "workers": args.workers,
        }
        if args.workers > 1 and workers.reuse_port_supported():
            # A socket per worker, so the kernel spreads connections evenly (services/workers.py).
            supervisor = workers.ReusePortWorkers(uvicorn.Config("services.cli:service_app_from_env", **options))
            try:
                supervisor.run()
            except OSError as exc:  # the port is taken, or the address is not this machine's
                raise CommandError(f"cannot listen on {args.host}:{options['port']}: {exc.strerror}") from None
            except KeyboardInterrupt:
                pass
        else:
            uvicorn.run("services.cli:service_app_from_env", **options)


def service_app_from_env() -> Any:
    """uvicorn factory for `tica serve`: one service app from the environment."""
    from services import openapi

    settings = Settings.from_env()
    logs.configure(settings.log_level)
    name = os.environ["TICA_SERVICE"]
    app = SERVICES[name].create_app(settings)
    if name == "forum":  # the document covers all three services: built here, above them
        openapi.serve_on(app)
    settle_gc()
    return app


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    with servers(settings) as ready, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_worker(ready, burst=args.burst))


async def _run_worker(settings: Settings, *, burst: bool) -> None:
    """Run the worker until Ctrl-C or SIGTERM (with --burst: until the queue is empty); it outlives
    Redis restarts. Made here, in the running loop: arq starts its jobs on the loop it was made in."""
    from services.notify.worker import close_worker, create_worker, run_worker

    worker = create_worker(settings, burst=burst)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await run_worker(worker, stop)
    finally:
        await close_worker(worker)
        markdown.close_render_pool()


# --- digests (implementation: services/notify/digests.py) ------------------------------


def cmd_digests_run(settings: Settings, args: argparse.Namespace) -> None:
    from services.notify import digests

    with servers(settings) as ready:
        print(asyncio.run(digests.command_run(ready, now=args.now)))


def cmd_digests_send(settings: Settings, args: argparse.Namespace) -> None:
    from services.notify import digests

    with servers(settings) as ready:
        try:
            print(asyncio.run(digests.command_send(ready, args.user)))
        except digests.DigestError as exc:
            raise CommandError(str(exc)) from None


def add_digest_commands(sub: Any) -> None:
    digests = sub.add_parser("digests", help="the summary emails: send what is due, or one member's now")
    actions = digests.add_subparsers(dest="digests_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="queue the digests that are due for the worker (--now: send them here)")
    run.add_argument("--now", action="store_true", help="send them now, in this process")
    run.set_defaults(func=cmd_digests_run)
    send = actions.add_parser("send", help="build and send one member's digest now, whatever its schedule")
    send.add_argument("--user", required=True, metavar="U", help="username or id")
    send.set_defaults(func=cmd_digests_send)


# --- search (implementation: services/search/reindex.py) --------------------------------


def cmd_search_reindex(settings: Settings, args: argparse.Namespace) -> None:
    from services.search import reindex

    with servers(settings) as ready:
        forum_url = (args.forum_url or ready.public_url).rstrip("/")
        try:
            report = asyncio.run(reindex.run(ready, forum_url=forum_url, page_size=args.page_size))
        except reindex.ReindexError as exc:
            raise CommandError(f"search reindex: {exc}") from None
    print(report.summary())


def add_search_commands(sub: Any) -> None:
    search_cmd = sub.add_parser("search", help="the search index")
    actions = search_cmd.add_subparsers(dest="search_command", required=True, metavar="ACTION")
    reindex_cmd = actions.add_parser(
        "reindex", help="rebuild the search index from the forum's export API, without downtime"
    )
    reindex_cmd.add_argument("--forum-url", default=None, help="the forum's base URL (default: TICA_BASE_URL)")
    reindex_cmd.add_argument("--page-size", type=int, default=500, help="rows per export page (default 500)")
    reindex_cmd.set_defaults(func=cmd_search_reindex)


# --- parsing ---------------------------------------------------------------------

Command = Callable[[Settings, argparse.Namespace], None]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tica", description="tica: a trauma-informed care community forum")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="everything in one process on PORT, embedded servers when unset")
    run.add_argument("--host", default="127.0.0.1")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="one service under uvicorn")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: PORT")
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="the arq worker (email, digests, reminders)")
    worker.add_argument("--burst", action="store_true", help="run the queued jobs, then exit")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="apply every service's migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed-demo", help="a small demo community").set_defaults(func=cmd_seed_demo)
    forum_commands.add_commands(sub, migration_plan)
    add_digest_commands(sub)
    add_search_commands(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tica` console script."""
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level)
        func: Command = args.func
        func(settings, args)
    except (SettingsError, CommandError, db.MigrationError, embedded.EmbeddedError) as exc:
        print(f"tica: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

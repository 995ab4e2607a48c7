#!/usr/bin/env python3
"""License Desk: the single entry point.

    python app.py serve [--demo]     serve the bot (migrates first)
    python app.py migrate            create or upgrade the database schema
    python app.py demo-data          load the demo account (once)
    python app.py export-audit --account ID [--out FILE]
    python app.py manifest --app-id ID --domain HOST [--out FILE]
    python app.py roll-over          start the next billing period where one ended
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _settings():
    from bootstrap import load_settings

    return load_settings()


def _licensing(settings, *, with_gateway: bool = True):
    """The core; commands that take no payment skip building the payment gateway."""
    from bootstrap import build_licensing

    return build_licensing(settings, with_gateway=with_gateway)


def cmd_migrate(args) -> int:
    from core.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print("Database schema is up to date.")
    return 0


def cmd_demo_data(args) -> int:
    from core.demo import demo_account_id, load_demo
    from core.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    lic = _licensing(settings, with_gateway=False)
    created = load_demo(lic)
    print(f"Demo account Contoso {'created' if created else 'already present'} (id {demo_account_id(lic)}).")
    return 0


def cmd_export_audit(args) -> int:
    from core.errors import NotFound

    lic = _licensing(_settings(), with_gateway=False)
    try:
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                lic.audit.export_csv(args.account, fh)
            print(f"Audit log of account {args.account} written to {args.out}.")
        else:
            sys.stdout.write(lic.audit.export_csv(args.account))
    except NotFound as e:
        print(e.message, file=sys.stderr)
        return 1
    return 0


def cmd_manifest(args) -> int:
    from manifest.build import build_package

    try:
        path = build_package(args.app_id, args.domain, Path(args.out))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"Teams app package written to {path}.")
    return 0


def cmd_roll_over(args) -> int:
    lic = _licensing(_settings(), with_gateway=False)
    print(f"{lic.periods.roll_over()} billing period(s) rolled over.")
    return 0


def cmd_serve(args) -> int:
    from aiohttp import web

    from bootstrap import build_server
    from core.demo import load_demo
    from core.migrate import upgrade
    from web.app import SERVER_OPTIONS

    settings = _settings()
    upgrade(settings.database_url)
    lic = _licensing(settings)
    if args.demo and load_demo(lic):
        print("Loaded the demo account Contoso.")
    app = build_server(settings, lic, background=True).app
    print(f"License Desk on http://127.0.0.1:{settings.port} (payments: {settings.payments}, "
          f"database: {lic.db.engine.url.render_as_string(hide_password=True)})", flush=True)
    web.run_app(app, host=args.host, port=settings.port, print=None, access_log=None, **SERVER_OPTIONS)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="app.py", description="License Desk: software licenses from a Teams chat.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the bot on PORT (default 3978); migrates first")
    p.add_argument("--demo", action="store_true", help="load the demo account if the database has none")
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (default 0.0.0.0)")  # noqa: S104
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("demo-data", help="load the demo account Contoso (once)")
    p.set_defaults(fn=cmd_demo_data)

    p = sub.add_parser("export-audit", help="write an account's audit log as CSV")
    p.add_argument("--account", type=int, required=True, help="account id")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(fn=cmd_export_audit)

    p = sub.add_parser("manifest", help="build the Teams app package (dist/license-desk.zip)")
    p.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (a GUID)")
    p.add_argument("--domain", required=True, help="the public host name serving the bot, e.g. bot.example.com")
    p.add_argument("--out", default="dist/license-desk.zip", help="output file (default dist/license-desk.zip)")
    p.set_defaults(fn=cmd_manifest)

    p = sub.add_parser("roll-over", help="start the next billing period where one ended")
    p.set_defaults(fn=cmd_roll_over)

    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

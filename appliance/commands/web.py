"""``tapsift web``: serve the console (FastAPI app from ``webui.create_app``) with uvicorn."""

from __future__ import annotations

import argparse
import sys


def add_console_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``web`` and ``user``: the settings file and the paths it names."""
    p.add_argument("--config", metavar="PATH", help="console settings (YAML; its web: section if it has one)")
    p.add_argument("--console-db", metavar="DSN",
                   help="the console's database (users, audit, versions): a SQLite path, or on PostgreSQL "
                        "the alert store's DSN")


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from webui.settings import load_console_settings

    names = ("alert_db", "console_db", "policy_path", "sensor_pid_file", "stats_file", "evidence_dir",
             "fingerprint_library", "host", "port", "tls_cert", "tls_key", "content_db", "packet_store")
    return load_console_settings(args.config, **{n: getattr(args, n, None) for n in names})


def _serve(args: argparse.Namespace) -> int:
    from webui.settings import ConsoleSettingsError

    if (args.tls_cert is None) != (args.tls_key is None):
        print("tapsift: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        settings = _settings(args)
    except ConsoleSettingsError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    import uvicorn

    from appliance.store import StoreError
    from webui import create_app
    from webui.services.users import ensure_first_admin

    try:
        app = create_app(settings)
    except StoreError as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    password = ensure_first_admin(app.state.db, app.state.passwords)
    if password is not None:
        print(f"tapsift: first start: created user 'admin' with password {password}\n"
              "tapsift: it is shown only this once; change it on the account page", file=sys.stderr)
    from appliance.store import Dsn

    alerts = Dsn.parse(settings.alert_db)
    if alerts.path is not None and not alerts.path.exists():
        print(f"tapsift: warning: no alert store at {alerts.path} yet (the sensor creates it)", file=sys.stderr)
    tls = settings.tls_cert is not None
    print(f"tapsift: console on {'https' if tls else 'http'}://{settings.host}:{settings.port}/"
          + (f" (HSTS max-age {settings.hsts_max_age_s} s)" if tls and settings.hsts_max_age_s else ""),
          file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port,
                ssl_certfile=str(settings.tls_cert) if tls else None,
                ssl_keyfile=str(settings.tls_key) if settings.tls_key is not None else None,
                proxy_headers=settings.trust_proxy_headers, forwarded_allow_ips="*" if settings.trust_proxy_headers
                else None, server_header=False, log_level=args.log_level, access_log=not args.no_access_log)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("web", help="serve the web console")
    add_console_options(p)
    p.add_argument("--alert-db", metavar="DSN",
                   help="the sensor's alert store (read-only): a SQLite path or a postgresql:// DSN "
                        "(which then holds the console's tables too)")
    p.add_argument("--policy", dest="policy_path", metavar="PATH", help="the sensor's policy file")
    p.add_argument("--sensor-pid-file", metavar="PATH", help="sensor pid file (a reload sends it SIGHUP)")
    p.add_argument("--stats-file", metavar="PATH", help="the sensor's JSON stats file")
    p.add_argument("--evidence-dir", metavar="DIR", help="thumbnails and transcripts the sensor writes")
    p.add_argument("--fingerprint-library", metavar="PATH", help="the fingerprint library file")
    p.add_argument("--content-db", metavar="DSN", help="the retained content (the sensor's retention.store)")
    p.add_argument("--packet-store", metavar="DIR", help="the sensor's packet store (PCAPs of sessions)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain (sends HSTS)")
    p.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--no-access-log", action="store_true")
    p.set_defaults(func=_serve)

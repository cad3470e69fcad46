"""webui stage of tapsift: the FastAPI console (``create_app(settings)``; ``tapsift web`` serves it)."""

from webui.settings import ConsoleSettings, load_console_settings


def create_app(settings: ConsoleSettings | None = None, **overrides: object):  # type: ignore[no-untyped-def]
    """The console app (see `webui.app.create_app`)."""
    from webui.app import create_app as _create

    return _create(settings, **overrides)


__all__ = ["ConsoleSettings", "create_app", "load_console_settings"]

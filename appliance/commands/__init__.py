"""``tapsift`` subcommands beyond ``read``: one module per command group.

Each module defines ``register(subparsers) -> None`` that adds its parser(s) and sets
``func`` to a function taking the parsed arguments and returning the exit status. The
CLI imports the modules listed in `COMMAND_MODULES` that exist in this package.
"""

COMMAND_MODULES = (
    "policy",
    "run",
    "iface",
    "web",
    "user",
    "db",
    "fingerprint",
    "darkword",
    "ml",
    "ingest",  # fleet (docs/fleet.md)
    "inspect_worker",  # fleet
)

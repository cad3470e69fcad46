"""Redis ACL users for the fleet: each program gets the commands and keys it needs, and no more.

`acl_rules(bus)` gives the rules of ``ACL SETUSER <user> …`` (or an ``aclfile`` line) per role, for
the key names of *bus* (``output.bus``); ``tapsift ingest --print-acl`` prints them. Rules use
Redis 7 selectors (``(…)``): a command is allowed when the user's root permissions or one selector
allow both the command and its keys, so e.g. a sensor may ``XADD`` to the alert stream but not
read it through a group.

- ``sensor`` may append to the events, alert and heartbeat streams and to the job streams (with
  their byte counter), read those streams' lengths, and read the policy stream; it may not read any
  stream through a group, acknowledge, trim, delete, take jobs or write the policy stream.
- ``worker`` may take jobs through their group and finish them (the script acknowledges, appends
  the results, deletes the job and counts bytes; Redis checks each command a script runs against
  these rules too), append results and heartbeats, read the policy stream and the alert stream's
  length; it may not read the alert or event streams, touch other keys, trim, or write the policy.
- ``ingester`` may read the events, alert and heartbeat streams through groups, acknowledge, claim,
  trim, append to their ``…:rejected`` streams and to the policy stream; it may not touch jobs,
  delete keys or run administrative commands.

All: ``PING``, ``HELLO``, ``SELECT``, ``TIME``, ``MULTI``/``EXEC``. No role gets
``KEYS``, ``FLUSHALL``, ``CONFIG``, ``DEBUG`` or pub/sub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.settings import BusSettings

__all__ = ["ROLES", "acl_rules", "setuser_commands"]

ROLES = ("sensor", "worker", "ingester")
_BASE = "resetkeys resetchannels -@all +ping +hello +select +time +multi +exec +discard"


def acl_rules(bus: BusSettings) -> dict[str, str]:
    """Role → ACL rules (without ``on`` and the password) for the key names of *bus*."""
    ev, al, hb, pol, jobs = bus.events_key, bus.alerts_key, bus.sensors_key, bus.policy_key, bus.jobs_key
    reader = "+xrevrange +xread"
    group = "+xreadgroup +xack +xautoclaim +xclaim +xpending +xgroup|create +xinfo|groups +xlen +xrange +xrevrange"
    return {
        "sensor": f"{_BASE} (~{ev} ~{al} ~{hb} ~{jobs}:* +xadd +xlen +get +incrby) (%R~{pol} {reader})",
        "worker": f"{_BASE} +script|load (~{jobs}:* ~{al} ~{ev} +evalsha +eval) (~{jobs}:* {group} +xdel +decrby "
                  f"+get) (~{al} ~{ev} ~{hb} +xadd +xlen) (%R~{pol} {reader})",
        "ingester": f"{_BASE} (~{ev} ~{al} ~{hb} {group} +xtrim) (~{ev}:rejected ~{al}:rejected ~{hb}:rejected "
                    f"+xadd) (~{pol} +xadd {reader})",
    }


def setuser_commands(bus: BusSettings, users: dict[str, str] | None = None) -> list[str]:
    """``ACL SETUSER`` lines; *users* maps role → user name (default: ``tapsift-<role>``). Passwords
    are left as ``>PASSWORD`` to fill in (or use ``#<sha256>`` of it)."""
    names = users or {r: f"tapsift-{r}" for r in ROLES}
    return [f"ACL SETUSER {names[r]} reset on >PASSWORD {rules}" for r, rules in acl_rules(bus).items()]

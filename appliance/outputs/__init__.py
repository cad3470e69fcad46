"""Alert outputs: the canonical alert record and its renderings (EVE JSON, CEF, LEEF) and senders.

``alertjson`` builds the one JSON record of an alert that every output starts from (the SQLite
store, the EVE file, syslog, webhooks). ``cef`` and ``leef`` render it for SIEMs; ``syslog``
and ``webhook`` deliver it through a durable disk ``spool`` so that a receiver outage loses
nothing. See ``docs/siem.md``.
"""

from appliance.outputs.alertjson import alert_record, dumps, fit_json
from appliance.outputs.spool import Spool, SpooledOutput
from appliance.outputs.syslog import SyslogOutput
from appliance.outputs.webhook import WebhookOutput

__all__ = ["Spool", "SpooledOutput", "SyslogOutput", "WebhookOutput", "alert_record", "dumps", "fit_json"]

"""The protocol table: one entry per protocol, in probing order (port hints go first).

Adding a protocol: a module with its `AppProtocol` and one line here.
"""

from __future__ import annotations

from reassembly.applayer.base import AppProtocol
from reassembly.applayer.dns import DNS, DNS_TCP
from reassembly.applayer.ftp import FTP, FTP_DATA
from reassembly.applayer.h2 import HTTP2
from reassembly.applayer.http import HTTP
from reassembly.applayer.imap import IMAP
from reassembly.applayer.irc import IRC, IRC_DCC
from reassembly.applayer.pop3 import POP3
from reassembly.applayer.quic import QUIC
from reassembly.applayer.raw import RAW
from reassembly.applayer.smb import SMB
from reassembly.applayer.smtp import SMTP
from reassembly.applayer.socks import SOCKS
from reassembly.applayer.ssh import SSH
from reassembly.applayer.tls import TLS
from reassembly.applayer.websocket import WEBSOCKET

PROTOCOLS: tuple[AppProtocol, ...] = (
    HTTP2,
    HTTP,
    SMTP,
    FTP,
    IMAP,
    POP3,
    IRC,
    SMB,
    SOCKS,
    TLS,
    SSH,
    DNS_TCP,
    FTP_DATA,
    IRC_DCC,
    WEBSOCKET,
    RAW,
    DNS,
    QUIC,
)

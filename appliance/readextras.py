"""What `tapsift read` writes besides EVE and alerts: the packet store and the retained content.

``--packet-store DIR`` (or ``packet_store.dir``) tees the capture's packets into a packet store
(`appliance.packetstore`); ``--content-db DSN`` (or ``retention.store``) retains every object
(`appliance.retention`). Both make the read one pipeline (no ``--workers`` sharding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.packetstore import PacketStore, tee
from appliance.retention import RetentionConfig, RetentionWriter

__all__ = ["ReadExtras", "retention_config"]


def retention_config(settings: Any, store: str) -> RetentionConfig:
    """The writer's configuration from the ``retention`` settings, for *store*."""
    r = settings.retention
    return RetentionConfig(store=store, max_age_s=r.max_age_days * 86400, max_bytes=r.max_bytes,
                           max_text_bytes=r.max_text_bytes, keep_bytes=r.keep_bytes, objects=r.objects,
                           queue=r.queue, queue_bytes=r.queue_bytes, batch=r.batch)


@dataclass(slots=True)
class ReadExtras:
    packets: PacketStore | None = None
    retention: RetentionWriter | None = None

    @classmethod
    def open(cls, packet_dir: str | None, content_db: str | None, settings: Any, outputs: Any) -> ReadExtras:
        """Open what is asked for; the retention writer becomes ``outputs.retain``."""
        from appliance.store import StoreError

        out = cls()
        ps = settings.packet_store
        packet_dir = packet_dir or ps.dir
        if packet_dir:
            out.packets = PacketStore(packet_dir, worker="read", max_bytes=ps.max_bytes, max_age_s=ps.max_age_s,
                                      file_bytes=ps.file_bytes)
        content_db = content_db or settings.retention.store
        if content_db:
            try:
                out.retention = RetentionWriter(retention_config(settings, content_db))
            except StoreError as exc:
                raise OSError(f"cannot open the content store {content_db}: {exc}") from None
            outputs.retain = out.retention
        return out

    def tee(self, source: Any) -> Any:
        return tee(source, self.packets)

    def close(self) -> None:
        if self.packets is not None:
            self.packets.close()
        if self.retention is not None:
            self.retention.close()

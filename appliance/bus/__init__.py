"""The fleet's event bus: append-only streams read through consumer groups (docs/fleet.md).

- `base` — the interface (`Bus`, `Message`, `BusError`) and `open_bus(settings)`;
- `redis` — the Redis Streams backend (redis-py);
- `publish` — `StreamOutput`: a sensor's ordered, disk-spooled publishing to one stream.

The interface is small on purpose: a Kafka backend (topics, consumer groups, offsets committed
after the store commit) can stand behind it without touching the sensor, the ingester or the
inspection workers.
"""

from appliance.bus.base import EVE_FIELD, SENSOR_FIELD, Bus, BusError, Message, open_bus

__all__ = ["EVE_FIELD", "SENSOR_FIELD", "Bus", "BusError", "Message", "open_bus"]

"""The fleet's processes around the bus (docs/fleet.md).

- `consumer` — `GroupConsumer`: at-least-once reading through a consumer group (own pending entries
  first after a restart, stale ones of dead consumers claimed, acknowledgement only after the
  handler's effect is durable, back-off while the bus or the store is down);
- `ingest` — `Ingester` (``tapsift ingest``): alerts and heartbeats into the store, SIEM forwarding;
- `policy` — the policy relay (store → bus, in the ingester) and follower (bus → a live sensor);
- `sensorlink` — a sensor's heartbeats and policy follower;
- `worker` — `InspectWorker` (``tapsift inspect-worker``): inspection jobs from the bus.
"""

"""Throughput benchmark of the capture stage (reader and decoder), with a pcap generator.

    python bench/decode_bench.py gen /tmp/bench.pcap --packets 1000000
    python bench/decode_bench.py read /tmp/bench.pcap          # reader only
    python bench/decode_bench.py decode /tmp/bench.pcap        # reader + Decoder, per checksum mode

The generated capture is Ethernet/IPv4/TCP with correct checksums: 35 % of the packets carry
no payload, 55 % a full 1460-byte segment, the rest 1 to 1460 bytes (mean frame ≈ 900 B).
"""

from __future__ import annotations

import argparse
import gzip
import random
import struct
import sys
import time


def _csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, payload: bytes) -> bytes:
    """An Ethernet/IPv4/TCP frame with correct checksums."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, 0x18, 65535, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    c = _csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp


def generate(path: str, packets: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    blob = rnd.randbytes(1460)
    # a pool of distinct frames (checksums are per frame), reused in random order
    pool = []
    for i in range(2000):
        r = rnd.random()
        n = 0 if r < 0.35 else 1460 if r < 0.90 else rnd.randint(1, 1460)
        src = bytes((10, 77, 0, 1 + i % 200))
        pool.append(tcp_frame(src, b"\x0a\x4d\x00\xfa", 1024 + i, 80, rnd.getrandbits(32), blob[:n]))
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        rec = struct.Struct("<IIII").pack
        t = 1_700_000_000 * 1_000_000
        out = []
        for _ in range(packets):
            fr = pool[rnd.randrange(2000)]
            t += 25
            out.append(rec(t // 1_000_000, t % 1_000_000, len(fr), len(fr)))
            out.append(fr)
            if len(out) > 20000:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))


def _cpu() -> float:
    return time.process_time()


def bench_read(path: str) -> None:
    from capture.pcapfile import open_capture

    with open_capture(path) as cap:
        t = _cpu()
        n = nbytes = 0
        for fr in cap.frames():
            n += 1
            nbytes += len(fr[1])
        dt = _cpu() - t
    print(f"read: {n} frames in {dt:.2f} CPU-s = {n / dt / 1e3:.0f} kframes/s, "
          f"{nbytes * 8 / dt / 1e6:.0f} Mbit/s  anomalies={cap.anomalies}")


def bench_decode(path: str) -> None:
    from capture.decode import Decoder
    from capture.pcapfile import open_capture

    with open_capture(path) as cap:
        frames = list(cap.frames())
    for checksums in ("off", "verify", "auto"):
        dec = Decoder(checksums=checksums)
        d = dec.decode
        t = _cpu()
        for fr in frames:
            d(fr)
        dt = _cpu() - t
        print(f"decode (checksums={checksums}): {len(frames)} frames in {dt:.2f} CPU-s = "
              f"{len(frames) / dt / 1e3:.0f} kpkt/s  counters={dec.counters}")
    dec = Decoder(checksums="off")
    d = dec.decode
    with open_capture(path) as cap:
        t = _cpu()
        n = 0
        for fr in cap.frames():
            d(fr)
            n += 1
        dt = _cpu() - t
    print(f"read+decode (checksums=off): {n} frames in {dt:.2f} CPU-s = {n / dt / 1e3:.0f} kpkt/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/decode_bench.py")
    ap.add_argument("mode", choices=("gen", "read", "decode"))
    ap.add_argument("path")
    ap.add_argument("--packets", type=int, default=1_000_000)
    a = ap.parse_args(argv)
    if a.mode == "gen":
        generate(a.path, a.packets)
    elif a.mode == "read":
        bench_read(a.path)
    else:
        bench_decode(a.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

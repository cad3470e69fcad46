/* The fast path's frame decoder: the C twin of capture/decode.py for the frames it can take.
 *
 * decode_frame() reads one Ethernet frame and says what the fast path may do with it:
 *   DF_TCP      a TCP segment the fast path can follow: Ethernet with at most one 802.1Q tag (in
 *               the frame, or in the ring's metadata), IPv4 without options or fragmentation or
 *               IPv6 without extension headers, possibly inside one tunnel (GRE with Ethernet or
 *               ERSPAN I/II/III, VXLAN, Geneve with Ethernet/IPv4/IPv6); *d gives its flow key,
 *               the segment and the IP layers whose checksums apply to it;
 *   DF_OTHER    a frame Python decodes into a packet that is not TCP (ARP, ICMP, plain UDP): it
 *               is handed back without flushing any run;
 *   DF_BARRIER  anything else: Python may decode a TCP packet out of it (fragments, options,
 *               other tunnels...), and so create or evict a flow.
 * It only parses. Checksums are the caller's business (verify_layers in _fastpath.c): a bad one
 * is counted by Python, it does not change what the frame is.
 *
 * What counts as a VXLAN or Geneve tunnel (udp_tunnel, inner_ok) follows capture/decode.py
 * (_udp_tunnel, _tunnel_by_content, _inner_ok) rule for rule; DF_OTHER is only returned when
 * Python cannot find a tunnel in the frame. tests/capture/test_fastpath.py keeps both equal.
 * Every length is checked before it is read: the bytes are hostile.
 */
#ifndef TAPSIFT_DECODE_FRAME_H
#define TAPSIFT_DECODE_FRAME_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "csum.h"

enum { DF_BARRIER = 0, DF_OTHER = 1, DF_TCP = 2 };

/* flow key: family (4 or 6), source and destination address (16 bytes each, IPv4 in the first
 * 4), source and destination port, VLAN id (big endian), one byte of padding */
#define KEYLEN 40
#define K_SRC 1
#define K_DST 17
#define K_SP 33
#define K_DP 35
#define K_VL 37

#define TUN_VXLAN_PORT 4789
#define TUN_VXLAN_LINUX_PORT 8472
#define TUN_GENEVE_PORT 6081

typedef struct {
    const unsigned char *ip; /* IPv4 or IPv6 header */
    const unsigned char *l4; /* its TCP or UDP header; NULL: no transport checksum to verify */
    Py_ssize_t l4len;        /* transport header + payload */
    uint8_t family;          /* 4 or 6 */
    uint8_t proto;           /* 6, 17 or 47 */
} IpLayer;

typedef struct {
    unsigned char key[KEYLEN];
    const unsigned char *tcp;
    Py_ssize_t seglen; /* TCP header + payload */
    unsigned hl;       /* TCP header length */
    int nlayers;       /* 1, or 2 inside a tunnel (the carrier first) */
    IpLayer layer[2];
} Decoded;

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline int fold_ok(uint64_t s) { return csum_fold(s) == 0xFFFF; }
static inline int is_vlan_et(unsigned et) { return et == 0x8100 || et == 0x88A8 || et == 0x9100 || et == 0x9200; }

static int dec_ether(const unsigned char *q, Py_ssize_t qlen, long ring_tag, int depth, unsigned vlan,
                     Decoded *d);
static int dec_ip(const unsigned char *ip, Py_ssize_t avail, unsigned et, int depth, unsigned vlan, Decoded *d);

/* -- tunnels ------------------------------------------------------------------------------- */

/* a plausible inner frame of ethertype et at o (0x6558: Ethernet with at most two VLAN tags
 * before IPv4/IPv6): an IPv4 header with a valid checksum, or an IPv6 header whose payload
 * length matches what follows (padding, and a datagram cut short by the capture, allowed) */
static int inner_ok(const unsigned char *o, Py_ssize_t n, unsigned et, int cut)
{
    if (et == 0x6558) {
        if (n < 14)
            return 0;
        et = be16(o + 12);
        o += 14;
        n -= 14;
        for (int i = 0; i < 2 && is_vlan_et(et); i++) {
            if (n < 4)
                return 0;
            et = be16(o + 2);
            o += 4;
            n -= 4;
        }
    }
    if (et == 0x0800) {
        if (n < 20 || (o[0] >> 4) != 4)
            return 0;
        Py_ssize_t ihl = (Py_ssize_t)(o[0] & 15) << 2, tot = be16(o + 2);
        return ihl >= 20 && ihl <= n && ihl <= tot && (tot <= n || cut) && fold_ok(sum16(o, ihl, 0));
    }
    if (et == 0x86DD) {
        if (n < 40 || (o[0] >> 4) != 6)
            return 0;
        Py_ssize_t size = 40 + (Py_ssize_t)be16(o + 4);
        return size > 40 && (size == n || (size > n && cut) || (size < n && n <= 46));
    }
    return 0;
}

/* VXLAN or Geneve in the UDP payload u[0:n] (capture/decode.py _udp_tunnel): 1 with the inner
 * ethertype (0x6558 Ethernet, 0x0800, 0x86DD) in *et and its offset in *off, else 0 */
static int udp_tunnel(const unsigned char *u, Py_ssize_t n, unsigned sport, unsigned dport, int cut,
                      unsigned *et, Py_ssize_t *off)
{
    if (sport == TUN_VXLAN_PORT || dport == TUN_VXLAN_PORT || sport == TUN_VXLAN_LINUX_PORT ||
        dport == TUN_VXLAN_LINUX_PORT) {
        if (n < 22 || !(u[0] & 0x08))
            return 0;
        *et = 0x6558;
        *off = 8;
        return 1;
    }
    if (n < 8)
        return 0;
    unsigned gp = be16(u + 2);
    Py_ssize_t goff = 8 + ((Py_ssize_t)(u[0] & 0x3F) << 2);
    if (sport == TUN_GENEVE_PORT || dport == TUN_GENEVE_PORT) {
        if ((u[0] & 0xC0) || !(gp == 0x6558 || gp == 0x0800 || gp == 0x86DD))
            return 0;
        *et = gp;
        *off = goff;
        return 1;
    }
    /* any other port: the content must prove it */
    if (u[0] == 0x08) {
        if ((u[1] | u[2] | u[3] | u[7]) || !inner_ok(u + 8, n - 8, 0x6558, cut))
            return 0;
        *et = 0x6558;
        *off = 8;
        return 1;
    }
    if ((u[0] & 0xC0) || (u[1] & 0x3F) || u[7] || goff > n || !inner_ok(u + goff, n - goff, gp, cut))
        return 0;
    *et = gp;
    *off = goff;
    return 1;
}

static void push_layer(Decoded *d, const unsigned char *ip, int family, unsigned proto,
                       const unsigned char *l4, Py_ssize_t l4len)
{
    IpLayer *l = &d->layer[d->nlayers++];
    l->ip = ip;
    l->family = (uint8_t)family;
    l->proto = (uint8_t)proto;
    l->l4 = l4;
    l->l4len = l4len;
}

/* UDP (u[0:avail]) in the IP layer ip: a tunnel the fast path opens, one it leaves to Python,
 * or plain UDP (DF_OTHER) */
static int dec_udp(const unsigned char *ip, int family, const unsigned char *u, Py_ssize_t avail, int depth,
                   Decoded *d)
{
    if (avail < 8)
        return DF_BARRIER;
    Py_ssize_t ulen = be16(u + 4);
    if (ulen < 8 || ulen > avail)
        return DF_BARRIER; /* a bad length: Python decides what the datagram holds */
    unsigned et;
    Py_ssize_t off;
    if (!udp_tunnel(u + 8, ulen - 8, be16(u), be16(u + 2), 0, &et, &off))
        return DF_OTHER;
    if (depth > 0 || off > ulen - 8)
        return DF_BARRIER; /* a tunnel in a tunnel, or a header past the datagram */
    push_layer(d, ip, family, 17, be16(u + 6) ? u : NULL, ulen);
    const unsigned char *inner = u + 8 + off;
    Py_ssize_t n = ulen - 8 - off;
    return et == 0x6558 ? dec_ether(inner, n, -1, 1, 0, d) : dec_ip(inner, n, et, 1, 0, d);
}

/* GRE (g[0:avail]) carrying Ethernet or ERSPAN I/II/III Ethernet frames; other GRE payloads
 * (IP, MPLS, ERSPAN III with IP frames) are left to Python */
static int dec_gre(const unsigned char *ip, int family, const unsigned char *g, Py_ssize_t avail, int depth,
                   Decoded *d)
{
    if (depth > 0 || avail < 4 || (g[1] & 7) || (g[0] & 0x40))
        return DF_BARRIER;
    unsigned gf = g[0], gp = be16(g + 2), ev = 0;
    Py_ssize_t h = 4 + (gf & 0x80 ? 4 : 0) + (gf & 0x20 ? 4 : 0) + (gf & 0x10 ? 4 : 0);
    if (h > avail)
        return DF_BARRIER;
    if (gp == 0x88BE) {
        if (gf & 0x10) { /* type II: 8-byte header */
            if (avail - h < 8 || (g[h] >> 4) != 1)
                return DF_BARRIER;
            ev = (unsigned)(g[h] & 0x0F) << 8 | g[h + 1];
            h += 8;
        } /* else type I: the frame follows the GRE header */
    } else if (gp == 0x22EB) { /* type III: 12 bytes + optional 8-byte platform subheader */
        if (avail - h < 12 || (g[h] >> 4) != 2 || ((g[h + 10] >> 2) & 0x1F) != 0)
            return DF_BARRIER;
        ev = (unsigned)(g[h] & 0x0F) << 8 | g[h + 1];
        h += (g[h + 11] & 1) ? 20 : 12;
        if (h > avail)
            return DF_BARRIER;
    } else if (gp != 0x6558) {
        return DF_BARRIER;
    }
    push_layer(d, ip, family, 47, NULL, 0);
    return dec_ether(g + h, avail - h, -1, 1, ev, d);
}

/* -- layers -------------------------------------------------------------------------------- */

static int dec_tcp(const unsigned char *ip, int family, const unsigned char *tcp, Py_ssize_t seglen,
                   unsigned vlan, Decoded *d)
{
    if (seglen < 20)
        return DF_BARRIER;
    unsigned hl = (unsigned)(tcp[12] >> 4) << 2;
    if (hl < 20 || (Py_ssize_t)hl > seglen)
        return DF_BARRIER;
    unsigned char *k = d->key;
    memset(k, 0, KEYLEN);
    k[0] = (unsigned char)family;
    if (family == 4) {
        memcpy(k + K_SRC, ip + 12, 4);
        memcpy(k + K_DST, ip + 16, 4);
    } else {
        memcpy(k + K_SRC, ip + 8, 16);
        memcpy(k + K_DST, ip + 24, 16);
    }
    memcpy(k + K_SP, tcp, 4);
    k[K_VL] = (unsigned char)(vlan >> 8);
    k[K_VL + 1] = (unsigned char)vlan;
    d->tcp = tcp;
    d->seglen = seglen;
    d->hl = hl;
    push_layer(d, ip, family, 6, tcp, seglen);
    return DF_TCP;
}

static int dec_ipv4(const unsigned char *ip, Py_ssize_t avail, int depth, unsigned vlan, Decoded *d)
{
    if (avail < 20)
        return DF_BARRIER;
    Py_ssize_t tot = be16(ip + 2);
    unsigned proto = ip[9];
    if (ip[0] != 0x45 || (be16(ip + 6) & 0x3FFF) || tot < 20 || tot > avail)
        return DF_BARRIER; /* options, fragments, bad or truncated lengths */
    switch (proto) {
    case 6:
        return dec_tcp(ip, 4, ip + 20, tot - 20, vlan, d);
    case 17:
        return dec_udp(ip, 4, ip + 20, tot - 20, depth, d);
    case 47:
        return dec_gre(ip, 4, ip + 20, tot - 20, depth, d);
    case 4:
    case 41:
        return DF_BARRIER; /* IP in IP */
    default:
        return DF_OTHER;
    }
}

static int dec_ipv6(const unsigned char *ip, Py_ssize_t avail, int depth, unsigned vlan, Decoded *d)
{
    if (avail < 40)
        return DF_BARRIER;
    Py_ssize_t plen = be16(ip + 4);
    if ((ip[0] >> 4) != 6 || plen == 0 || 40 + plen > avail)
        return DF_BARRIER; /* jumbograms, TSO, truncated */
    switch (ip[6]) {
    case 6:
        return dec_tcp(ip, 6, ip + 40, plen, vlan, d);
    case 17:
        return dec_udp(ip, 6, ip + 40, plen, depth, d);
    case 47:
        return dec_gre(ip, 6, ip + 40, plen, depth, d);
    case 58:
        return DF_OTHER; /* ICMPv6 */
    default:
        return DF_BARRIER; /* extension headers (fragments, routing...) and tunnels */
    }
}

static int dec_ip(const unsigned char *ip, Py_ssize_t avail, unsigned et, int depth, unsigned vlan, Decoded *d)
{
    return et == 0x0800 ? dec_ipv4(ip, avail, depth, vlan, d) : dec_ipv6(ip, avail, depth, vlan, d);
}

/* Ethernet q[0:qlen]; ring_tag: (tpid << 16 | tci) of a tag the kernel moved to the ring's
 * metadata, or -1; vlan: the VLAN a tunnel header gave (ERSPAN), else 0 */
static int dec_ether(const unsigned char *q, Py_ssize_t qlen, long ring_tag, int depth, unsigned vlan,
                     Decoded *d)
{
    if (qlen < 14)
        return DF_BARRIER;
    Py_ssize_t off = 14;
    unsigned et = be16(q + 12);
    if (ring_tag >= 0) {
        if (is_vlan_et(et) || !is_vlan_et((unsigned)(ring_tag >> 16)))
            return DF_BARRIER;
        vlan = (unsigned)ring_tag & 0x0FFF;
    } else if (et == 0x8100) {
        if (qlen < 18)
            return DF_BARRIER;
        vlan = be16(q + 14) & 0x0FFF;
        et = be16(q + 16);
        off = 18;
    }
    if (et == 0x0800 || et == 0x86DD)
        return dec_ip(q + off, qlen - off, et, depth, vlan, d);
    return (et == 0x0806 && off == 14 && ring_tag < 0) ? DF_OTHER : DF_BARRIER;
}

/* one Ethernet frame p[0:n] (see the top of this file) */
static int decode_frame(const unsigned char *p, Py_ssize_t n, long ring_tag, Decoded *d)
{
    d->nlayers = 0;
    return dec_ether(p, n, ring_tag, 0, 0, d);
}

#endif

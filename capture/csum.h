/* Internet checksum (RFC 1071) summing, shared by capture/_csum.c and reassembly/_fastpath.c. */
#ifndef TAPSIFT_CSUM_H
#define TAPSIFT_CSUM_H

#include <Python.h>
#include <stdint.h>

/* add the big-endian 16-bit words of p[0:n] (an odd last byte is padded) to sum */
static inline uint64_t sum16(const unsigned char *p, Py_ssize_t n, uint64_t sum)
{
    while (n >= 8) {
        sum += ((uint32_t)p[0] << 8 | p[1]) + ((uint32_t)p[2] << 8 | p[3])
             + ((uint32_t)p[4] << 8 | p[5]) + ((uint32_t)p[6] << 8 | p[7]);
        p += 8;
        n -= 8;
    }
    while (n >= 2) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
    }
    if (n)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

/* the ones' complement sum folded to 16 bits */
static inline unsigned csum_fold(uint64_t s)
{
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (unsigned)s;
}

#endif

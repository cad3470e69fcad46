/* The checksum mode and, in "auto", the checksum-offload state of each side (source address on
 * an interface): the C twin of capture/checksums.py (PyOffloadTracker), shared by the Python
 * decoder (capture/decode.py calls state/observe) and the fast path (capture/_fastpath.c reads
 * it for every segment it verifies), so that both paths verify the same packets. */
#ifndef TAPSIFT_OFFLOAD_H
#define TAPSIFT_OFFLOAD_H

#include <Python.h>
#include <stdint.h>

/* what to do with the checksums of one IP layer (capture.checksums SKIP, VERIFY, LEARN) */
enum { CK_SKIP = 0, CK_VERIFY = 1, CK_LEARN = 2 };
enum { MODE_AUTO = 0, MODE_VERIFY = 1, MODE_OFF = 2 };

#define OFFLOAD_LEARN_WINDOW 64 /* capture.checksums.LEARN_WINDOW */
#define OFFLOAD_MIN_BAD 4       /* capture.checksums.OFFLOAD_MIN_BAD */
#define OFFLOAD_MAX_SIDES 16384 /* capture.checksums.MAX_SIDES */

typedef struct {
    uint8_t used;
    uint8_t state; /* CK_* */
    uint8_t alen;  /* address length (4 or 16) */
    uint32_t iface;
    uint32_t seen, bad;
    unsigned char addr[16];
} OffloadSide;

typedef struct {
    PyObject_HEAD
    int mode;           /* MODE_* */
    OffloadSide *tab;   /* open addressing, cap a power of two, at most half full */
    Py_ssize_t cap, used;
    PyObject *ifaces;   /* interface name -> id (int) */
    PyObject *names;    /* id -> interface name */
    PyObject *found;    /* [(iface, address bytes)] of the sides found offloaded */
} OffloadTracker;

extern PyTypeObject tapsift_OffloadTrackerType;

/* the id of interface name `iface` (a str), interned on first use; -1 with an exception set */
long tapsift_offload_iface(OffloadTracker *t, PyObject *iface);
/* CK_SKIP, CK_VERIFY or CK_LEARN for a layer from addr[0:alen] on interface id `iface` */
int tapsift_offload_state(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen);
/* a checked layer of a CK_LEARN side: 1 when it makes the side offloaded, 0, -1 on error */
int tapsift_offload_observe(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen, int bad);

#endif

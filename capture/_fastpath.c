/* In-order TCP fast path for reassembly.tcp: frames -> joined in-order payload runs.
 *
 * What Python does per packet (read the record, decode Ethernet/IP/TCP, verify checksums,
 * look up the direction, append in-order payload) costs 3-4 us; here it costs well under
 * 0.5 us, and the in-order payload of consecutive segments of one direction reaches Python as
 * one joined chunk. Everything else (handshakes, FIN/RST, out-of-order data, retransmissions,
 * other protocols, fragments, bad checksums) is handed back to Python as a frame tuple and takes
 * the normal path in capture.decode and reassembly.tcp, which stays the single source of truth:
 * this module only acts for directions that Python has "armed" (see capture/fastpath.py for
 * the contract), and only while nothing but in-order data and ACKs arrive for them.
 *
 * The file reads in three parts:
 *   decode_frame.h  what a frame is (the decoder: Ethernet, VLAN, IPv4/IPv6, tunnels, TCP);
 *   offload.h/.c    which checksums to verify (the checksum mode, offload state per side,
 *                   shared with capture.decode);
 *   this file       what to do with a decoded segment: track armed directions, join runs,
 *                   hand frames back (the flow table, runs, barriers), and the three inputs
 *                   (pcap records, TPACKET_V3 ring blocks, frame tuples).
 *
 * Ordering. Frames go to Python (on_frame) synchronously, in capture order, so Python's
 * table is always exact when it acts. Per flow, events keep packet order: a direction's run
 * is flushed (on_run) before the other direction's data is buffered and before any packet of
 * the flow is handed to Python (which also disarms the flow until Python re-arms it). A
 * packet that may create a flow in Python (unknown key, SYN: creation can evict another
 * flow) or that the decoder cannot attribute to a flow (DF_BARRIER) flushes every run first.
 * Runs never outlive a pcap() call: they point into its buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "csum.h"         /* capture/csum.h: sum16, csum_fold */
#include "decode_frame.h" /* capture/decode_frame.h: decode_frame, Decoded, the flow key layout */
#include "offload.h"      /* capture/offload.h: OffloadTracker */

#define RUN_CAP (256 * 1024) /* a run is flushed once it holds this many payload bytes */
#define RUN_SEGS 256         /* ... or this many segments (tiny segments must not grow it) */
#define SEGS_KEEP 32         /* an idle direction keeps a segment array of at most this size */

enum { E_EMPTY = 0, E_USED = 1, E_TOMB = 2 };

typedef struct {
    const unsigned char *p;
    Py_ssize_t n;
} Seg;

typedef struct {
    unsigned char key[KEYLEN];
    uint8_t used;    /* E_* */
    uint8_t armed;   /* Python says: fast path allowed (holds `half`) */
    uint8_t data_ok; /* in-order data may be appended (exp valid) */
    uint8_t ack_ok;  /* ACKs need no look at the peer's buffer */
    uint8_t dirty;   /* in the dirty list with something to flush */
    uint32_t exp;    /* next expected sequence number */
    PyObject *half;  /* owned while armed */
    Seg *segs;
    Py_ssize_t nseg, capseg, nbytes, npkts;
    long long last_ts;
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *tab;
    Py_ssize_t cap, used, tombs;
    Py_ssize_t *dirty;
    Py_ssize_t ndirty, capdirty;
    PyObject *on_frame; /* on_frame((ts, data, wirelen, linktype, iface)) */
    PyObject *on_run;   /* on_run(half, data | None, npkts, last_ts) */
    int busy;           /* inside pcap() */
    /* configuration */
    int verify;               /* without a tracker: verify every checksum (1) or none (0) */
    OffloadTracker *tracker;  /* the checksum mode and offload state shared with capture.decode, or NULL */
    PyObject *ck_iface;       /* the interface whose tracker id is ck_iface_id (owned) */
    long ck_iface_id;
    int linktype;
    PyObject *iface;
    /* counters (cumulative) */
    long long frames, wire_bytes, fast_tcp, fast_bytes, runs, slow, barriers;
    long long last_ts; /* highest record time seen */
    long cur_tag;      /* tpacket: (tpid << 16 | tci) of a tag the kernel stripped, else -1 */
    PyObject *cur_frame; /* frames(): the frame tuple being handled (borrowed), handed back as is */
    PyObject *hold;      /* frames(): the frames the pending runs point into */
} FastPath;

/* ------------------------------------------------------------------------------------------ */

static inline uint64_t hash_key(const unsigned char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < KEYLEN; i++) {
        h ^= k[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static Py_ssize_t find(FastPath *self, const unsigned char *k)
{
    if (!self->cap)
        return -1;
    Py_ssize_t mask = self->cap - 1;
    Py_ssize_t i = (Py_ssize_t)(hash_key(k) & (uint64_t)mask);
    for (;;) {
        Entry *e = &self->tab[i];
        if (e->used == E_EMPTY)
            return -1;
        if (e->used == E_USED && memcmp(e->key, k, KEYLEN) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static int grow(FastPath *self, Py_ssize_t ncap)
{
    Entry *old = self->tab;
    Py_ssize_t ocap = self->cap;
    Entry *tab = PyMem_Calloc((size_t)ncap, sizeof(Entry));
    if (!tab) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t mask = ncap - 1;
    for (Py_ssize_t j = 0; j < ocap; j++) {
        if (old[j].used != E_USED)
            continue;
        Py_ssize_t i = (Py_ssize_t)(hash_key(old[j].key) & (uint64_t)mask);
        while (tab[i].used == E_USED)
            i = (i + 1) & mask;
        tab[i] = old[j];
    }
    PyMem_Free(old);
    self->tab = tab;
    self->cap = ncap;
    self->tombs = 0;
    /* a callback may grow the table in the middle of a batch: re-index the dirty runs */
    self->ndirty = 0;
    for (Py_ssize_t j = 0; j < ncap; j++)
        if (tab[j].used == E_USED && tab[j].dirty)
            self->dirty[self->ndirty++] = j;
    return 0;
}

/* insert (or find) the entry for k; only called between batches (nothing buffered) */
static Py_ssize_t insert(FastPath *self, const unsigned char *k)
{
    Py_ssize_t i = find(self, k);
    if (i >= 0)
        return i;
    if ((self->used + self->tombs + 1) * 2 > self->cap) {
        Py_ssize_t ncap = self->cap ? self->cap : 1024;
        while ((self->used + 1) * 4 > ncap)
            ncap *= 2;
        if (ncap == self->cap && self->tombs == 0)
            ncap *= 2;
        if (grow(self, ncap) < 0)
            return -1;
    }
    Py_ssize_t mask = self->cap - 1;
    i = (Py_ssize_t)(hash_key(k) & (uint64_t)mask);
    while (self->tab[i].used == E_USED)
        i = (i + 1) & mask;
    Entry *e = &self->tab[i];
    if (e->used == E_TOMB)
        self->tombs--;
    memset(e, 0, sizeof(Entry));
    memcpy(e->key, k, KEYLEN);
    e->used = E_USED;
    self->used++;
    return i;
}

/* key tuple (src: bytes, sport, dst: bytes, dport, vlan) -> packed key; 0 if the addresses are
 * neither IPv4 (4 bytes) nor IPv6 (16 bytes) */
static int pack_key(PyObject *t, unsigned char *k)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
        PyErr_SetString(PyExc_TypeError, "key must be (src, sport, dst, dport, vlan)");
        return -1;
    }
    PyObject *src = PyTuple_GET_ITEM(t, 0), *dst = PyTuple_GET_ITEM(t, 2);
    if (!PyBytes_Check(src) || !PyBytes_Check(dst)) {
        PyErr_SetString(PyExc_TypeError, "addresses must be bytes");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(src);
    if ((n != 4 && n != 16) || PyBytes_GET_SIZE(dst) != n)
        return 0;
    long sport = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
    long dport = PyLong_AsLong(PyTuple_GET_ITEM(t, 3));
    long vlan = PyLong_AsLong(PyTuple_GET_ITEM(t, 4));
    if (PyErr_Occurred())
        return -1;
    memset(k, 0, KEYLEN);
    k[0] = n == 4 ? 4 : 6;
    memcpy(k + K_SRC, PyBytes_AS_STRING(src), (size_t)n);
    memcpy(k + K_DST, PyBytes_AS_STRING(dst), (size_t)n);
    k[K_SP] = (unsigned char)(sport >> 8);
    k[K_SP + 1] = (unsigned char)sport;
    k[K_DP] = (unsigned char)(dport >> 8);
    k[K_DP + 1] = (unsigned char)dport;
    k[K_VL] = (unsigned char)(vlan >> 8);
    k[K_VL + 1] = (unsigned char)vlan;
    return 1;
}

static inline void reverse_key(const unsigned char *k, unsigned char *r)
{
    r[0] = k[0];
    memcpy(r + K_SRC, k + K_DST, 16);
    memcpy(r + K_DST, k + K_SRC, 16);
    memcpy(r + K_SP, k + K_DP, 2);
    memcpy(r + K_DP, k + K_SP, 2);
    memcpy(r + K_VL, k + K_VL, 3);
}

/* ------------------------------------------------------------------------------------------ */

/* emit (half, data|None, npkts, last_ts) for entry i and reset its run */
static int flush_entry(FastPath *self, Py_ssize_t i)
{
    Entry *e = &self->tab[i];
    if (!e->dirty)
        return 0;
    e->dirty = 0;
    if (!e->npkts)
        return 0;
    PyObject *data;
    if (e->nbytes) {
        data = PyBytes_FromStringAndSize(NULL, e->nbytes);
        if (!data)
            return -1;
        char *w = PyBytes_AS_STRING(data);
        for (Py_ssize_t s = 0; s < e->nseg; s++) {
            memcpy(w, e->segs[s].p, (size_t)e->segs[s].n);
            w += e->segs[s].n;
        }
    } else {
        data = Py_NewRef(Py_None);
    }
    PyObject *half = Py_NewRef(e->half ? e->half : Py_None);
    Py_ssize_t npkts = e->npkts;
    long long last = e->last_ts;
    e->nseg = e->nbytes = e->npkts = 0;
    if (e->capseg > SEGS_KEEP) { /* memory per tracked direction stays small between runs */
        PyMem_Free(e->segs);
        e->segs = NULL;
        e->capseg = 0;
    }
    self->runs++;
    /* e may move or vanish during the call */
    PyObject *r = PyObject_CallFunction(self->on_run, "NNnL", half, data, npkts, last);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int flush_all(FastPath *self)
{
    while (self->ndirty > 0) {
        Py_ssize_t i = self->dirty[--self->ndirty];
        if (flush_entry(self, i) < 0)
            return -1;
    }
    return 0;
}

/* after an exception in a callback: forget the runs still held (they point into the buffer) */
static void drop_runs(FastPath *self)
{
    for (Py_ssize_t j = 0; j < self->cap; j++) {
        Entry *e = &self->tab[j];
        e->dirty = 0;
        e->nseg = e->nbytes = e->npkts = 0;
    }
    self->ndirty = 0;
}

static void disarm_entry(Entry *e)
{
    e->armed = e->data_ok = e->ack_ok = 0;
    Py_CLEAR(e->half);
}

/* flush both directions of the flow of key k and disarm them */
static int flush_flow(FastPath *self, const unsigned char *k)
{
    unsigned char r[KEYLEN];
    reverse_key(k, r);
    /* a flow has at most one direction with buffered data (the other direction's data
     * flushes it), so the order of the two flushes does not matter; look each entry up
     * again after a flush, since the callback may have changed the table */
    Py_ssize_t i = find(self, k);
    if (i >= 0 && flush_entry(self, i) < 0)
        return -1;
    Py_ssize_t j = find(self, r);
    if (j >= 0 && flush_entry(self, j) < 0)
        return -1;
    i = find(self, k);
    j = find(self, r);
    if (i >= 0)
        disarm_entry(&self->tab[i]);
    if (j >= 0)
        disarm_entry(&self->tab[j]);
    return 0;
}

static int mark_dirty(FastPath *self, Py_ssize_t i)
{
    Entry *e = &self->tab[i];
    if (e->dirty)
        return 0;
    if (self->ndirty == self->capdirty) {
        Py_ssize_t n = self->capdirty ? self->capdirty * 2 : 256;
        Py_ssize_t *d = PyMem_Realloc(self->dirty, (size_t)n * sizeof(Py_ssize_t));
        if (!d) {
            PyErr_NoMemory();
            return -1;
        }
        self->dirty = d;
        self->capdirty = n;
    }
    self->dirty[self->ndirty++] = i;
    e->dirty = 1;
    return 0;
}

static int add_seg(Entry *e, const unsigned char *p, Py_ssize_t n)
{
    if (e->nseg == e->capseg) {
        Py_ssize_t c = e->capseg ? e->capseg * 2 : 16;
        Seg *s = PyMem_Realloc(e->segs, (size_t)c * sizeof(Seg));
        if (!s) {
            PyErr_NoMemory();
            return -1;
        }
        e->segs = s;
        e->capseg = c;
    }
    e->segs[e->nseg].p = p;
    e->segs[e->nseg].n = n;
    e->nseg++;
    e->nbytes += n;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static int emit_frame(FastPath *self, long long ts, const unsigned char *p, Py_ssize_t caplen,
                      long long wirelen)
{
    PyObject *frame;
    if (self->cur_frame) {
        frame = Py_NewRef(self->cur_frame);
    } else if (self->cur_tag >= 0 && caplen >= 12) {
        /* put back the 802.1Q tag the kernel moved to the ring's metadata (as libpcap does) */
        PyObject *data = PyBytes_FromStringAndSize(NULL, caplen + 4);
        if (!data)
            return -1;
        unsigned char *w = (unsigned char *)PyBytes_AS_STRING(data);
        memcpy(w, p, 12);
        w[12] = (unsigned char)(self->cur_tag >> 24);
        w[13] = (unsigned char)(self->cur_tag >> 16);
        w[14] = (unsigned char)(self->cur_tag >> 8);
        w[15] = (unsigned char)self->cur_tag;
        memcpy(w + 16, p + 12, (size_t)(caplen - 12));
        frame = Py_BuildValue("(LNLiO)", ts, data, wirelen, self->linktype, self->iface);
    } else {
        frame = Py_BuildValue("(Ly#LiO)", ts, (const char *)p, caplen, wirelen, self->linktype, self->iface);
    }
    if (!frame)
        return -1;
    self->slow++;
    PyObject *r = PyObject_CallOneArg(self->on_frame, frame);
    Py_DECREF(frame);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

#define R_CONTINUE 0
#define R_ERROR (-1)

/* barrier: flush every run, then hand the frame to Python (which may create or evict flows,
 * or decode it into a packet of any flow) */
static int barrier(FastPath *self, long long ts, const unsigned char *p, Py_ssize_t caplen,
                   long long wirelen)
{
    self->barriers++;
    if (flush_all(self) < 0 || emit_frame(self, ts, p, caplen, wirelen) < 0)
        return R_ERROR;
    return R_CONTINUE;
}

/* -- checksums ------------------------------------------------------------------------------ */

/* what the checksum mode says for IP layer l of the current frame (CK_*); -1 on error */
static int layer_ck(FastPath *self, const IpLayer *l)
{
    OffloadTracker *t = self->tracker;
    if (!t)
        return self->verify ? CK_VERIFY : CK_SKIP;
    if (t->mode != MODE_AUTO)
        return t->mode == MODE_VERIFY ? CK_VERIFY : CK_SKIP;
    if (self->iface != self->ck_iface) {
        long id = tapsift_offload_iface(t, self->iface);
        if (id < 0)
            return -1;
        Py_INCREF(self->iface);
        Py_XSETREF(self->ck_iface, self->iface);
        self->ck_iface_id = id;
    }
    return tapsift_offload_state(t, (uint32_t)self->ck_iface_id, l->ip + (l->family == 4 ? 12 : 8),
                                 l->family == 4 ? 4 : 16);
}

/* verify the checksums of the segment's IP layers as the mode says: 1 when none failed, 0 when
 * one did (Python then counts it), -1 on error; learn[i] is set for the layers the offload
 * tracker must hear about if the segment is taken (capture.checksums: one observation per IP
 * layer whose TCP/UDP checksum was verified) */
static int verify_layers(FastPath *self, const Decoded *d, int *learn)
{
    for (int i = 0; i < d->nlayers; i++) {
        const IpLayer *l = &d->layer[i];
        int ck = layer_ck(self, l);
        learn[i] = 0;
        if (ck < 0)
            return -1;
        if (ck == CK_SKIP)
            continue;
        uint64_t s;
        if (l->family == 4) {
            if (!fold_ok(sum16(l->ip, 20, 0)))
                return 0;
            s = sum16(l->ip + 12, 8, 0);
        } else {
            s = sum16(l->ip + 8, 32, 0);
        }
        if (l->l4) {
            if (!fold_ok(sum16(l->l4, l->l4len, s + l->proto + (uint64_t)l->l4len)))
                return 0;
            learn[i] = ck == CK_LEARN;
        }
    }
    return 1;
}

/* the segment is taken: tell the tracker that its learning layers were good */
static int commit_layers(FastPath *self, const Decoded *d, const int *learn)
{
    for (int i = 0; i < d->nlayers; i++) {
        const IpLayer *l = &d->layer[i];
        if (learn[i] && tapsift_offload_observe(self->tracker, (uint32_t)self->ck_iface_id,
                                                l->ip + (l->family == 4 ? 12 : 8), l->family == 4 ? 4 : 16,
                                                0) < 0)
            return -1;
    }
    return 0;
}

/* -- tracking: a decoded TCP segment ------------------------------------------------------- */

/* take the segment d (of frame p) into its direction's run, or hand the frame to Python */
static int track(FastPath *self, long long ts, const unsigned char *p, Py_ssize_t caplen, long long wirelen,
                 const Decoded *d)
{
    const unsigned char *k = d->key, *tcp = d->tcp;
    Py_ssize_t i = find(self, k);
    if (i < 0)
        return barrier(self, ts, p, caplen, wirelen); /* Python may create a flow (and evict) */
    unsigned flags = tcp[13];
    Entry *e = &self->tab[i];
    int ok = e->armed && !(flags & 0x07) && (!(flags & 0x10) || e->ack_ok);
    Py_ssize_t plen = d->seglen - d->hl;
    uint32_t seq = be32(tcp + 4);
    if (ok && plen && (!e->data_ok || seq != e->exp))
        ok = 0;
    int learn[2] = {0, 0};
    if (ok && (ok = verify_layers(self, d, learn)) < 0)
        return R_ERROR;
    if (!ok) {
        if (flags & 0x02) { /* SYN: Python may retire this flow and create another */
            if (flush_flow(self, k) < 0)
                return R_ERROR;
            return barrier(self, ts, p, caplen, wirelen);
        }
        if (flush_flow(self, k) < 0 || emit_frame(self, ts, p, caplen, wirelen) < 0)
            return R_ERROR;
        return R_CONTINUE;
    }
    if (plen) {
        unsigned char r[KEYLEN];
        reverse_key(k, r);
        Py_ssize_t j = find(self, r);
        if (j >= 0 && self->tab[j].nbytes) {
            if (flush_entry(self, j) < 0)
                return R_ERROR;
            i = find(self, k);
            if (i < 0 || !self->tab[i].armed) { /* the callback changed the flow: let Python decide */
                if (flush_flow(self, k) < 0 || emit_frame(self, ts, p, caplen, wirelen) < 0)
                    return R_ERROR;
                return R_CONTINUE;
            }
        }
    }
    if (commit_layers(self, d, learn) < 0)
        return R_ERROR;
    self->fast_tcp++;
    e = &self->tab[i];
    if (plen) {
        if (add_seg(e, tcp + d->hl, plen) < 0)
            return R_ERROR;
        e->exp = seq + (uint32_t)plen;
        self->fast_bytes += plen;
    }
    e->npkts++;
    e->last_ts = ts;
    if (!e->dirty && mark_dirty(self, i) < 0)
        return R_ERROR;
    if ((self->tab[i].nbytes >= RUN_CAP || self->tab[i].nseg >= RUN_SEGS) && flush_entry(self, i) < 0)
        return R_ERROR;
    return R_CONTINUE;
}

/* one frame: (p, caplen) is what Python gets back if the fast path does not take it */
static int handle(FastPath *self, long long ts, const unsigned char *p, Py_ssize_t caplen,
                  long long wirelen)
{
    self->frames++;
    self->wire_bytes += wirelen;
    if (ts > self->last_ts)
        self->last_ts = ts;
    if (self->linktype != 1)
        return barrier(self, ts, p, caplen, wirelen);
    Decoded d;
    switch (decode_frame(p, caplen, self->cur_tag, &d)) {
    case DF_TCP:
        return track(self, ts, p, caplen, wirelen, &d);
    case DF_OTHER:
        return emit_frame(self, ts, p, caplen, wirelen) < 0 ? R_ERROR : R_CONTINUE;
    default:
        return barrier(self, ts, p, caplen, wirelen);
    }
}

/* ------------------------------------------------------------------------------------------ */

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"on_frame", "on_run", "verify_checksums", "linktype", "iface", "checksums", NULL};
    int verify = 1, lt = 1;
    PyObject *on_frame, *on_run, *iface = NULL, *tracker = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|piUO", kwlist, &on_frame, &on_run, &verify, &lt, &iface,
                                     &tracker))
        return -1;
    if (!PyCallable_Check(on_frame) || !PyCallable_Check(on_run)) {
        PyErr_SetString(PyExc_TypeError, "on_frame and on_run must be callable");
        return -1;
    }
    if (tracker != Py_None && !PyObject_TypeCheck(tracker, &tapsift_OffloadTrackerType)) {
        PyErr_SetString(PyExc_TypeError, "checksums must be a capture._fastpath.OffloadTracker (Decoder.checksums)");
        return -1;
    }
    self->verify = verify;
    Py_XSETREF(self->tracker, tracker == Py_None ? NULL : (OffloadTracker *)Py_NewRef(tracker));
    Py_CLEAR(self->ck_iface);
    self->linktype = lt;
    self->cur_tag = -1;
    if (!iface)
        iface = PyUnicode_FromString("");
    else
        Py_INCREF(iface);
    if (!iface)
        return -1;
    Py_XSETREF(self->iface, iface);
    Py_XSETREF(self->on_frame, Py_NewRef(on_frame));
    if (!self->hold && !(self->hold = PyList_New(0)))
        return -1;
    Py_XSETREF(self->on_run, Py_NewRef(on_run));
    return 0;
}

static void FastPath_dealloc(FastPath *self)
{
    for (Py_ssize_t i = 0; i < self->cap; i++) {
        Py_XDECREF(self->tab[i].half);
        PyMem_Free(self->tab[i].segs);
    }
    PyMem_Free(self->tab);
    PyMem_Free(self->dirty);
    Py_XDECREF(self->on_frame);
    Py_XDECREF(self->on_run);
    Py_XDECREF(self->hold);
    Py_XDECREF(self->iface);
    Py_XDECREF(self->tracker);
    Py_XDECREF(self->ck_iface);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* known(key): Python has this direction in its table (packets for it are not a new flow) */
static PyObject *FastPath_known(FastPath *self, PyObject *key)
{
    unsigned char k[KEYLEN];
    int r = pack_key(key, k);
    if (r < 0)
        return NULL;
    if (r && insert(self, k) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* arm(key, half, exp, ack_ok): fast path allowed; exp < 0: only ACKs without data */
static PyObject *FastPath_arm(FastPath *self, PyObject *args)
{
    PyObject *key, *half;
    long long exp;
    int ack_ok;
    unsigned char k[KEYLEN];
    if (!PyArg_ParseTuple(args, "OOLp", &key, &half, &exp, &ack_ok))
        return NULL;
    int r = pack_key(key, k);
    if (r < 0)
        return NULL;
    if (!r)
        Py_RETURN_NONE;
    Py_ssize_t i = insert(self, k);
    if (i < 0)
        return NULL;
    Entry *e = &self->tab[i];
    if (e->dirty && e->npkts) {
        /* cannot happen under the contract (a flow's runs are flushed before Python sees
         * any of its packets); refuse rather than mix two views of the stream */
        PyErr_SetString(PyExc_RuntimeError, "arm() on a direction with a pending run");
        return NULL;
    }
    Py_INCREF(half);
    Py_XSETREF(e->half, half);
    e->armed = 1;
    e->data_ok = exp >= 0;
    e->exp = exp >= 0 ? (uint32_t)exp : 0;
    e->ack_ok = (uint8_t)ack_ok;
    Py_RETURN_NONE;
}

/* the entry of k with its pending run flushed first (-1: none, -2: the callback raised) */
static Py_ssize_t flushed(FastPath *self, const unsigned char *k)
{
    Py_ssize_t i = find(self, k);
    if (i >= 0 && self->tab[i].dirty && self->tab[i].npkts) {
        if (flush_entry(self, i) < 0)
            return -2;
        i = find(self, k); /* the callback may have changed the table */
    }
    return i;
}

static PyObject *FastPath_disarm(FastPath *self, PyObject *key)
{
    unsigned char k[KEYLEN];
    int r = pack_key(key, k);
    if (r < 0)
        return NULL;
    if (r) {
        Py_ssize_t i = flushed(self, k);
        if (i == -2)
            return NULL;
        if (i >= 0)
            disarm_entry(&self->tab[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *FastPath_forget(FastPath *self, PyObject *key)
{
    unsigned char k[KEYLEN];
    int r = pack_key(key, k);
    if (r < 0)
        return NULL;
    if (r) {
        Py_ssize_t i = flushed(self, k);
        if (i == -2)
            return NULL;
        if (i >= 0) {
            Entry *e = &self->tab[i];
            disarm_entry(e);
            PyMem_Free(e->segs);
            memset(e, 0, sizeof(Entry));
            e->used = E_TOMB;
            self->used--;
            self->tombs++;
        }
    }
    Py_RETURN_NONE;
}

/* pcap(buf, off, big_endian, nsec, hdrlen, max_record, stop_ts, max_frames) -> (off, status)
 * status 0: consumed every complete record (off = first incomplete or oversized record);
 *        1: stopped early (a record time >= stop_ts, or max_frames records).
 * Every run is flushed before it returns.
 */
static PyObject *FastPath_pcap(FastPath *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t off, hdrlen, max_rec, max_frames;
    int big, nsec;
    long long stop_ts;
    if (!PyArg_ParseTuple(args, "y*nppnnLn", &view, &off, &big, &nsec, &hdrlen, &max_rec, &stop_ts,
                          &max_frames))
        return NULL;
    if (self->busy) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "FastPath.pcap() is not re-entrant");
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t end = view.len;
    if (off < 0 || off > end || hdrlen < 16) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "bad offset or record header length");
        return NULL;
    }
    self->busy = 1;
    long long mult = nsec ? 1 : 1000;
    int status = 0;
    Py_ssize_t nframes = 0;
    while (end - off >= hdrlen) {
        const unsigned char *h = buf + off;
        uint32_t sec, frac, incl, orig;
        if (big) {
            sec = be32(h);
            frac = be32(h + 4);
            incl = be32(h + 8);
            orig = be32(h + 12);
        } else {
            sec = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
            frac = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
            incl = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
            orig = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
        }
        if ((Py_ssize_t)incl > max_rec || (Py_ssize_t)incl > end - off - hdrlen)
            break;
        long long ts = (long long)sec * 1000000000LL + (long long)frac * mult;
        off += hdrlen + (Py_ssize_t)incl;
        nframes++;
        if (handle(self, ts, h + hdrlen, (Py_ssize_t)incl, (long long)orig) < 0)
            goto fail;
        if (ts >= stop_ts || nframes >= max_frames) {
            status = 1;
            break;
        }
    }
    if (flush_all(self) < 0)
        goto fail;
    self->busy = 0;
    PyBuffer_Release(&view);
    return Py_BuildValue("(ni)", off, status);
fail:
    /* an exception in a callback: drop the runs still held (they point into the buffer) */
    drop_runs(self);
    self->busy = 0;
    PyBuffer_Release(&view);
    return NULL;
}

/* tpacket(buf, off, count, linktype, iface, stop_ts)
 *   -> (next_off, remaining, wire_bytes, vlan_restored, truncated)
 * Walks `count` TPACKET_V3 frames of a ring block starting at the frame header at `off`
 * (block base + offset_to_first_pkt); stops after a frame with time >= stop_ts.
 * Every run is flushed before it returns.
 */
static PyObject *FastPath_tpacket(FastPath *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t off, count;
    int lt;
    PyObject *iface;
    long long stop_ts;
    if (!PyArg_ParseTuple(args, "y*nniUL", &view, &off, &count, &lt, &iface, &stop_ts))
        return NULL;
    if (self->busy) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "FastPath is not re-entrant");
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t end = view.len;
    self->busy = 1;
    int saved_lt = self->linktype;
    PyObject *saved_iface = self->iface;
    self->linktype = lt;
    self->iface = iface;
    long long nbytes = 0, nvlan = 0, ntrunc = 0;
    while (count > 0) {
        if (off < 0 || end - off < 38) {
            PyErr_SetString(PyExc_ValueError, "tpacket frame header outside the ring");
            goto fail;
        }
        const unsigned char *h = buf + off;
        uint32_t next, sec, nsec, snap, wlen, status, tci;
        uint16_t mac, tpid;
        memcpy(&next, h, 4);
        memcpy(&sec, h + 4, 4);
        memcpy(&nsec, h + 8, 4);
        memcpy(&snap, h + 12, 4);
        memcpy(&wlen, h + 16, 4);
        memcpy(&status, h + 20, 4);
        memcpy(&mac, h + 24, 2);
        memcpy(&tci, h + 32, 4);
        memcpy(&tpid, h + 36, 2);
        if ((Py_ssize_t)mac + (Py_ssize_t)snap > end - off) {
            PyErr_SetString(PyExc_ValueError, "tpacket frame outside the ring");
            goto fail;
        }
        long long ts = (long long)sec * 1000000000LL + nsec;
        long long wl = wlen;
        if (status & 0x10) { /* TP_STATUS_VLAN_VALID: the wire frame had the tag */
            self->cur_tag = (long)((status & 0x40 ? tpid : 0x8100) & 0xFFFF) << 16 | (tci & 0xFFFF);
            nvlan++;
            wl += 4;
        } else {
            self->cur_tag = -1;
        }
        if (snap < wlen)
            ntrunc++;
        nbytes += wl;
        int r = handle(self, ts, h + mac, (Py_ssize_t)snap, wl);
        self->cur_tag = -1;
        if (r < 0)
            goto fail;
        count--;
        off += next;
        if (ts >= stop_ts)
            break;
    }
    if (flush_all(self) < 0)
        goto fail;
    self->linktype = saved_lt;
    self->iface = saved_iface;
    self->busy = 0;
    PyBuffer_Release(&view);
    return Py_BuildValue("(nnLLL)", off, count, nbytes, nvlan, ntrunc);
fail:
    drop_runs(self);
    self->cur_tag = -1;
    self->linktype = saved_lt;
    self->iface = saved_iface;
    self->busy = 0;
    PyBuffer_Release(&view);
    return NULL;
}

/* take_frames(list, start, stop_ts) -> next index
 * Frames as Python already holds them ((ts, data, wirelen, linktype, iface) tuples: pcapng,
 * libpcap, several merged rings), from list[start]; stops after a frame with time >= stop_ts.
 * Every run is flushed before it returns.
 */
static PyObject *FastPath_frames(FastPath *self, PyObject *args)
{
    PyObject *list;
    Py_ssize_t start;
    long long stop_ts;
    if (!PyArg_ParseTuple(args, "O!nL", &PyList_Type, &list, &start, &stop_ts))
        return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath is not re-entrant");
        return NULL;
    }
    Py_INCREF(list); /* callbacks must not free the frames the runs point into */
    self->busy = 1;
    int saved_lt = self->linktype;
    PyObject *saved_iface = self->iface;
    Py_ssize_t i = start < 0 ? 0 : start;
    while (i < PyList_GET_SIZE(list)) {
        PyObject *f = PyList_GET_ITEM(list, i);
        i++;
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) < 5 || !PyBytes_Check(PyTuple_GET_ITEM(f, 1))) {
            PyErr_SetString(PyExc_TypeError, "frames must be (ts, data: bytes, wirelen, linktype, iface)");
            goto fail;
        }
        long long ts = PyLong_AsLongLong(PyTuple_GET_ITEM(f, 0));
        long long wl = PyLong_AsLongLong(PyTuple_GET_ITEM(f, 2));
        long lt = PyLong_AsLong(PyTuple_GET_ITEM(f, 3));
        if (PyErr_Occurred())
            goto fail;
        PyObject *data = PyTuple_GET_ITEM(f, 1);
        Py_INCREF(f); /* the list may change under a callback; the frame stays */
        self->linktype = (int)lt;
        self->iface = PyTuple_GET_ITEM(f, 4);
        self->cur_frame = f;
        self->cur_tag = -1;
        int r = handle(self, ts, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), wl);
        self->cur_frame = NULL;
        /* runs may still point into this frame's bytes: keep it until they are flushed */
        if (PyList_Append(self->hold, f) < 0) {
            Py_DECREF(f);
            goto fail;
        }
        Py_DECREF(f);
        if (r < 0)
            goto fail;
        if (ts >= stop_ts)
            break;
    }
    if (flush_all(self) < 0)
        goto fail;
    PyList_SetSlice(self->hold, 0, PY_SSIZE_T_MAX, NULL);
    self->linktype = saved_lt;
    self->iface = saved_iface;
    self->busy = 0;
    Py_DECREF(list);
    return PyLong_FromSsize_t(i);
fail:
    drop_runs(self);
    self->cur_frame = NULL;
    PyList_SetSlice(self->hold, 0, PY_SSIZE_T_MAX, NULL);
    self->linktype = saved_lt;
    self->iface = saved_iface;
    self->busy = 0;
    Py_DECREF(list);
    return NULL;
}

static PyObject *FastPath_clear(FastPath *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath.clear() inside pcap()");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->cap; i++) {
        Py_CLEAR(self->tab[i].half);
        PyMem_Free(self->tab[i].segs);
    }
    PyMem_Free(self->tab);
    self->tab = NULL;
    self->cap = self->used = self->tombs = 0;
    Py_RETURN_NONE;
}

static PyObject *FastPath_counters(FastPath *self, PyObject *unused)
{
    return Py_BuildValue("{sLsLsLsLsLsLsLsn}", "frames", self->frames, "wire_bytes", self->wire_bytes,
                         "fast_tcp", self->fast_tcp, "fast_bytes", self->fast_bytes, "runs", self->runs,
                         "slow", self->slow, "barriers", self->barriers, "entries", self->used);
}

static PyObject *FastPath_get_last_ts(FastPath *self, void *c) { return PyLong_FromLongLong(self->last_ts); }
static PyObject *FastPath_get_frames(FastPath *self, void *c) { return PyLong_FromLongLong(self->frames); }
static PyObject *FastPath_get_wire(FastPath *self, void *c) { return PyLong_FromLongLong(self->wire_bytes); }
static PyObject *FastPath_get_fast(FastPath *self, void *c) { return PyLong_FromLongLong(self->fast_tcp); }

static PyGetSetDef FastPath_getset[] = {
    {"last_ts", (getter)FastPath_get_last_ts, NULL, "highest record time seen (ns)", NULL},
    {"frames", (getter)FastPath_get_frames, NULL, "records seen", NULL},
    {"wire_bytes", (getter)FastPath_get_wire, NULL, "wire length of the records seen", NULL},
    {"fast_tcp", (getter)FastPath_get_fast, NULL, "TCP packets handled here", NULL},
    {NULL},
};

static PyMethodDef FastPath_methods[] = {
    {"known", (PyCFunction)FastPath_known, METH_O, "known(key): a direction Python tracks"},
    {"arm", (PyCFunction)FastPath_arm, METH_VARARGS, "arm(key, half, exp, ack_ok)"},
    {"disarm", (PyCFunction)FastPath_disarm, METH_O, "disarm(key)"},
    {"forget", (PyCFunction)FastPath_forget, METH_O, "forget(key): the direction left Python's table"},
    {"pcap", (PyCFunction)FastPath_pcap, METH_VARARGS,
     "pcap(buf, off, big_endian, nsec, hdrlen, max_record, stop_ts, max_frames) -> (off, status)"},
    {"tpacket", (PyCFunction)FastPath_tpacket, METH_VARARGS,
     "tpacket(buf, off, count, linktype, iface, stop_ts) -> (next_off, remaining, wire_bytes, vlan_restored, truncated)"},
    {"take_frames", (PyCFunction)FastPath_frames, METH_VARARGS,
     "take_frames(list, start, stop_ts) -> next index (frame tuples Python already holds)"},
    {"clear", (PyCFunction)FastPath_clear, METH_NOARGS, "forget every direction"},
    {"counters", (PyCFunction)FastPath_counters, METH_NOARGS, "counters as a dict"},
    {NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "capture._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
    .tp_getset = FastPath_getset,
    .tp_doc = "In-order TCP fast path over frames (see capture/fastpath.py).",
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "capture._fastpath", "In-order TCP fast path.", -1, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&FastPathType) < 0 || PyType_Ready(&tapsift_OffloadTrackerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&tapsift_OffloadTrackerType);
    if (PyModule_AddObject(m, "OffloadTracker", (PyObject *)&tapsift_OffloadTrackerType) < 0) {
        Py_DECREF(&tapsift_OffloadTrackerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* capture._fastpath.OffloadTracker: see offload.h and capture/checksums.py (same rules). */
#define PY_SSIZE_T_CLEAN
#include "offload.h"

#include <string.h>

static uint64_t side_hash(uint32_t iface, const unsigned char *addr, int alen)
{
    uint64_t h = 1469598103934665603ULL ^ iface;
    h *= 1099511628211ULL;
    for (int i = 0; i < alen; i++) {
        h ^= addr[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static OffloadSide *side_find(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen)
{
    if (!t->cap)
        return NULL;
    Py_ssize_t mask = t->cap - 1;
    Py_ssize_t i = (Py_ssize_t)(side_hash(iface, addr, alen) & (uint64_t)mask);
    for (;;) {
        OffloadSide *s = &t->tab[i];
        if (!s->used)
            return NULL;
        if (s->iface == iface && s->alen == alen && memcmp(s->addr, addr, (size_t)alen) == 0)
            return s;
        i = (i + 1) & mask;
    }
}

static OffloadSide *side_insert(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen)
{
    if ((t->used + 1) * 2 > t->cap) {
        Py_ssize_t ncap = t->cap ? t->cap * 2 : 256;
        OffloadSide *tab = PyMem_Calloc((size_t)ncap, sizeof(OffloadSide));
        if (!tab) {
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t j = 0; j < t->cap; j++) {
            OffloadSide *o = &t->tab[j];
            if (!o->used)
                continue;
            Py_ssize_t i = (Py_ssize_t)(side_hash(o->iface, o->addr, o->alen) & (uint64_t)(ncap - 1));
            while (tab[i].used)
                i = (i + 1) & (ncap - 1);
            tab[i] = *o;
        }
        PyMem_Free(t->tab);
        t->tab = tab;
        t->cap = ncap;
    }
    Py_ssize_t mask = t->cap - 1;
    Py_ssize_t i = (Py_ssize_t)(side_hash(iface, addr, alen) & (uint64_t)mask);
    while (t->tab[i].used)
        i = (i + 1) & mask;
    OffloadSide *s = &t->tab[i];
    memset(s, 0, sizeof(*s));
    s->used = 1;
    s->state = CK_LEARN;
    s->alen = (uint8_t)alen;
    s->iface = iface;
    memcpy(s->addr, addr, (size_t)alen);
    t->used++;
    return s;
}

long tapsift_offload_iface(OffloadTracker *t, PyObject *iface)
{
    if (!PyUnicode_Check(iface)) {
        PyErr_SetString(PyExc_TypeError, "the interface name must be a str");
        return -1;
    }
    PyObject *id = PyDict_GetItemWithError(t->ifaces, iface);
    if (id)
        return PyLong_AsLong(id);
    if (PyErr_Occurred())
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(t->names);
    PyObject *v = PyLong_FromSsize_t(n);
    if (!v)
        return -1;
    int r = PyDict_SetItem(t->ifaces, iface, v);
    Py_DECREF(v);
    if (r < 0 || PyList_Append(t->names, iface) < 0)
        return -1;
    return (long)n;
}

int tapsift_offload_state(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen)
{
    if (t->mode != MODE_AUTO)
        return t->mode == MODE_VERIFY ? CK_VERIFY : CK_SKIP;
    OffloadSide *s = side_find(t, iface, addr, alen);
    if (s)
        return s->state;
    return t->used < OFFLOAD_MAX_SIDES ? CK_LEARN : CK_VERIFY;
}

int tapsift_offload_observe(OffloadTracker *t, uint32_t iface, const unsigned char *addr, int alen, int bad)
{
    if (t->mode != MODE_AUTO)
        return 0;
    OffloadSide *s = side_find(t, iface, addr, alen);
    if (!s) {
        if (t->used >= OFFLOAD_MAX_SIDES)
            return 0;
        if (!(s = side_insert(t, iface, addr, alen)))
            return -1;
    } else if (s->state != CK_LEARN) {
        return 0;
    }
    s->seen++;
    if (bad) {
        s->bad++;
        if (s->bad >= OFFLOAD_MIN_BAD && s->bad * 2 > s->seen) {
            s->state = CK_SKIP;
            PyObject *rec = Py_BuildValue("(Oy#)", PyList_GET_ITEM(t->names, s->iface), (const char *)s->addr,
                                          (Py_ssize_t)s->alen);
            if (!rec || PyList_Append(t->found, rec) < 0) {
                Py_XDECREF(rec);
                return -1;
            }
            Py_DECREF(rec);
            return 1;
        }
    }
    if (s->seen >= OFFLOAD_LEARN_WINDOW)
        s->state = CK_VERIFY;
    return 0;
}

/* -- the Python type ----------------------------------------------------------------------- */

static int Tracker_init(OffloadTracker *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"mode", NULL};
    const char *mode = "auto";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|s", kwlist, &mode))
        return -1;
    if (strcmp(mode, "auto") == 0)
        self->mode = MODE_AUTO;
    else if (strcmp(mode, "verify") == 0)
        self->mode = MODE_VERIFY;
    else if (strcmp(mode, "off") == 0)
        self->mode = MODE_OFF;
    else {
        PyErr_Format(PyExc_ValueError, "checksum mode must be one of auto, verify, off, not '%s'", mode);
        return -1;
    }
    PyMem_Free(self->tab);
    self->tab = NULL;
    self->cap = self->used = 0;
    Py_XSETREF(self->ifaces, PyDict_New());
    Py_XSETREF(self->names, PyList_New(0));
    Py_XSETREF(self->found, PyList_New(0));
    return self->ifaces && self->names && self->found ? 0 : -1;
}

static void Tracker_dealloc(OffloadTracker *self)
{
    PyMem_Free(self->tab);
    Py_XDECREF(self->ifaces);
    Py_XDECREF(self->names);
    Py_XDECREF(self->found);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* the (iface id, address) of the arguments (iface: str, src: bytes); 0, or -1 with an exception */
static int side_args(OffloadTracker *self, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want,
                     uint32_t *id, const unsigned char **addr, int *alen)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    if (!self->ifaces) {
        PyErr_SetString(PyExc_RuntimeError, "OffloadTracker not initialised");
        return -1;
    }
    if (!PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) > 16) {
        PyErr_SetString(PyExc_TypeError, "the address must be bytes of at most 16");
        return -1;
    }
    long i = tapsift_offload_iface(self, args[0]);
    if (i < 0)
        return -1;
    *id = (uint32_t)i;
    *addr = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    *alen = (int)PyBytes_GET_SIZE(args[1]);
    return 0;
}

static PyObject *Tracker_state(OffloadTracker *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (self->mode != MODE_AUTO && nargs == 2) /* the common case of the other modes, no lookup */
        return PyLong_FromLong(self->mode == MODE_VERIFY ? CK_VERIFY : CK_SKIP);
    uint32_t id;
    const unsigned char *addr;
    int alen;
    if (side_args(self, args, nargs, 2, &id, &addr, &alen) < 0)
        return NULL;
    return PyLong_FromLong(tapsift_offload_state(self, id, addr, alen));
}

static PyObject *Tracker_observe(OffloadTracker *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t id;
    const unsigned char *addr;
    int alen;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "observe(iface, src, bad)");
        return NULL;
    }
    if (side_args(self, args, 2, 2, &id, &addr, &alen) < 0)
        return NULL;
    int bad = PyObject_IsTrue(args[2]);
    if (bad < 0)
        return NULL;
    int r = tapsift_offload_observe(self, id, addr, alen, bad);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *Tracker_offloaded(OffloadTracker *self, PyObject *unused)
{
    return self->found ? PyList_GetSlice(self->found, 0, PY_SSIZE_T_MAX) : PyList_New(0);
}

static PyObject *Tracker_get_mode(OffloadTracker *self, void *c)
{
    return PyUnicode_FromString(self->mode == MODE_AUTO ? "auto" : self->mode == MODE_VERIFY ? "verify" : "off");
}

static Py_ssize_t Tracker_len(OffloadTracker *self) { return self->used; }

static PyGetSetDef Tracker_getset[] = {
    {"mode", (getter)Tracker_get_mode, NULL, "auto, verify or off", NULL},
    {NULL},
};

static PyMethodDef Tracker_methods[] = {
    {"state", (PyCFunction)(void (*)(void))Tracker_state, METH_FASTCALL,
     "state(iface, src) -> 0 skip, 1 verify, 2 verify and observe"},
    {"observe", (PyCFunction)(void (*)(void))Tracker_observe, METH_FASTCALL,
     "observe(iface, src, bad) -> True when the side is now offloaded"},
    {"offloaded", (PyCFunction)Tracker_offloaded, METH_NOARGS, "[(iface, address)] of the offloaded sides"},
    {NULL},
};

static PySequenceMethods Tracker_seq = {.sq_length = (lenfunc)Tracker_len};

PyTypeObject tapsift_OffloadTrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "capture._fastpath.OffloadTracker",
    .tp_basicsize = sizeof(OffloadTracker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tracker_init,
    .tp_dealloc = (destructor)Tracker_dealloc,
    .tp_methods = Tracker_methods,
    .tp_getset = Tracker_getset,
    .tp_as_sequence = &Tracker_seq,
    .tp_doc = "Checksum mode and per-side offload state (see capture/checksums.py).",
};

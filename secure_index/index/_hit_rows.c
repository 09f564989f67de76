/*
 * Search hits from hnswlib's result arrays, built in one C call.
 *
 * hit_rows(labels, distances, doc_ids, owners, hit_type, offset, finite_only)
 *
 *   labels       C-contiguous 2-D array of 8-byte integers (hnswlib's uint64 labels)
 *   distances    C-contiguous 2-D float32 array of the same shape
 *   doc_ids      list indexed by label: the document id (str) or None (tombstone)
 *   owners       list indexed by label: the owning node (str) or None
 *   hit_type     a tuple subclass without instance dict (secure_index Hit)
 *   offset       score = offset - distance (1.0 for inner product / cosine, 0.0 for l2)
 *   finite_only  when true, a non-finite distance makes the call return None
 *
 * Returns one list of hits per row; labels past the table or naming a tombstone are
 * skipped, exactly as the pure-Python rule in hnsw_collection.py does. The query path of
 * the index calls this after every search: the Python equivalent (two tolist calls, a map
 * per field, a tuple per hit) costs about 15 us per query on top of a 230 us search
 * (benchmarks/RESULTS.md, issue 4). Reads only the buffers and lists it is given; keeps
 * no state; holds the GIL throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *empty_owner; /* "" for a live row without an owner */

static const char *
without_byte_order(const char *format)
{
    return (format[0] == '<' || format[0] == '=' || format[0] == '@') ? format + 1 : format;
}

static int
is_int64_format(const char *format)
{
    if (format == NULL) {
        return 0;
    }
    format = without_byte_order(format);
    return strcmp(format, "L") == 0 || strcmp(format, "Q") == 0 ||
           strcmp(format, "l") == 0 || strcmp(format, "q") == 0;
}

static int
is_float32_format(const char *format)
{
    return format != NULL && strcmp(without_byte_order(format), "f") == 0;
}

static PyObject *
build_row(const uint64_t *labels, const float *distances, Py_ssize_t k, PyObject *doc_ids,
          PyObject *owners, PyTypeObject *hit_type, double offset, int finite_only,
          int *non_finite)
{
    Py_ssize_t size = PyList_GET_SIZE(doc_ids);
    Py_ssize_t owner_size = PyList_GET_SIZE(owners);
    PyObject *row = PyList_New(0);
    if (row == NULL) {
        return NULL;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        double distance = (double)distances[j];
        if (finite_only && !isfinite(distance)) {
            *non_finite = 1;
            Py_DECREF(row);
            return NULL;
        }
        uint64_t label = labels[j];
        if (label >= (uint64_t)size) {
            continue;
        }
        PyObject *doc_id = PyList_GET_ITEM(doc_ids, (Py_ssize_t)label);
        if (doc_id == Py_None) {
            continue;
        }
        PyObject *owner = (Py_ssize_t)label < owner_size
                              ? PyList_GET_ITEM(owners, (Py_ssize_t)label)
                              : Py_None;
        if (owner == Py_None) {
            owner = empty_owner;
        }
        PyObject *score = PyFloat_FromDouble(offset - distance);
        if (score == NULL) {
            Py_DECREF(row);
            return NULL;
        }
        PyObject *hit = hit_type->tp_alloc(hit_type, 3);
        if (hit == NULL) {
            Py_DECREF(score);
            Py_DECREF(row);
            return NULL;
        }
        Py_INCREF(doc_id);
        Py_INCREF(owner);
        PyTuple_SET_ITEM(hit, 0, doc_id);
        PyTuple_SET_ITEM(hit, 1, owner);
        PyTuple_SET_ITEM(hit, 2, score);
        int failed = PyList_Append(row, hit);
        Py_DECREF(hit);
        if (failed) {
            Py_DECREF(row);
            return NULL;
        }
    }
    return row;
}

static PyObject *
hit_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError,
                     "hit_rows takes 7 arguments (labels, distances, doc_ids, owners, "
                     "hit_type, offset, finite_only), got %zd", nargs);
        return NULL;
    }
    PyObject *doc_ids = args[2];
    PyObject *owners = args[3];
    if (!PyList_CheckExact(doc_ids) || !PyList_CheckExact(owners)) {
        PyErr_SetString(PyExc_TypeError, "hit_rows: doc_ids and owners must be lists");
        return NULL;
    }
    if (!PyType_Check(args[4]) || !PyType_IsSubtype((PyTypeObject *)args[4], &PyTuple_Type) ||
        ((PyTypeObject *)args[4])->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "hit_rows: hit_type must be a tuple subclass with __slots__ = ()");
        return NULL;
    }
    PyTypeObject *hit_type = (PyTypeObject *)args[4];
    double offset = PyFloat_AsDouble(args[5]);
    if (offset == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int finite_only = PyObject_IsTrue(args[6]);
    if (finite_only < 0) {
        return NULL;
    }
    Py_buffer labels, distances;
    if (PyObject_GetBuffer(args[0], &labels, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &distances, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&labels);
        return NULL;
    }
    PyObject *result = NULL;
    if (labels.ndim != 2 || distances.ndim != 2 || labels.shape[0] != distances.shape[0] ||
        labels.shape[1] != distances.shape[1]) {
        PyErr_SetString(PyExc_ValueError,
                        "hit_rows: labels and distances must be 2-D arrays of one shape");
        goto done;
    }
    if (labels.itemsize != 8 || !is_int64_format(labels.format)) {
        PyErr_SetString(PyExc_TypeError, "hit_rows: labels must hold 8-byte integers");
        goto done;
    }
    if (distances.itemsize != 4 || !is_float32_format(distances.format)) {
        PyErr_SetString(PyExc_TypeError, "hit_rows: distances must be float32");
        goto done;
    }
    Py_ssize_t rows = labels.shape[0];
    Py_ssize_t k = labels.shape[1];
    result = PyList_New(rows);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        int non_finite = 0;
        PyObject *row = build_row((const uint64_t *)labels.buf + i * k,
                                  (const float *)distances.buf + i * k, k, doc_ids, owners,
                                  hit_type, offset, finite_only, &non_finite);
        if (row == NULL) {
            Py_CLEAR(result);
            if (non_finite) {
                result = Py_NewRef(Py_None);
            }
            goto done;
        }
        PyList_SET_ITEM(result, i, row);
    }
done:
    PyBuffer_Release(&distances);
    PyBuffer_Release(&labels);
    return result;
}

static PyMethodDef methods[] = {
    {"hit_rows", (PyCFunction)(void (*)(void))hit_rows, METH_FASTCALL,
     "hit_rows(labels, distances, doc_ids, owners, hit_type, offset, finite_only)\n--\n\n"
     "Hits per row of hnswlib's (labels, distances); None when finite_only and a "
     "distance is not finite."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_hit_rows",
    "Search hits from hnswlib's result arrays in one C call.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__hit_rows(void)
{
    empty_owner = PyUnicode_InternFromString("");
    if (empty_owner == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}

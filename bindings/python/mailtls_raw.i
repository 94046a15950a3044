/*
 * mailtls_raw.i -- the SWIG interface of the raw layer of the Python
 * bindings: mailtls.h as it is, plus small helpers (mt_*) where a C
 * signature does not map onto Python by itself (buffers the caller fills,
 * out-structures of pointers, callbacks).  The hand-written package
 * `mailtls` (mailtls/__init__.py) is the API users are meant to see; this
 * layer follows mailtls.h one to one so that nothing is lost below it.
 *
 * The GIL: every call that can wait on a descriptor (handshake, read,
 * write, close, relay, STARTTLS, UCSPI-TLS, the proxy) runs without it,
 * either through SWIG's thread feature (%thread below) or, in the helpers,
 * between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS.  The callbacks
 * (verification hook, proxy's on_tls) take it back with PyGILState_Ensure.
 *
 * errno: a failed call's errno is saved right after the call, before the
 * interpreter can touch it, and read back with mt_errno().
 *
 * ISC license: see LICENSE.
 */
%module(package="mailtls", threads="1") mailtls_raw

%{
#define PY_SSIZE_T_CLEAN
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include "mailtls.h"

/* errno of the last wrapped call of this thread (see mt_errno). */
static __thread int mt_saved_errno;
%}

/* No GIL release by default: most calls are quick and pure. */
%nothread;

/* Every wrapper saves errno right after its C call. */
%exception {
	errno = 0;
	$action
	mt_saved_errno = errno;
}

%include <stdint.i>

/* size_t / ssize_t as Python ints. */
typedef unsigned long size_t;
typedef long ssize_t;

/* Calls that may block run without the GIL. */
%thread mailtls_handshake;
%thread mailtls_handshake_timeout;
%thread mailtls_close;
%thread mailtls_close_timeout;
%thread mailtls_relay;
%thread mailtls_starttls_client;
%thread mailtls_smtp_ehlo;
%thread mailtls_ucspitls_wait;
%thread mailtls_ucspitls_reply;
%thread mailtls_config_set_keypair_file;
%thread mailtls_config_add_keypair_file;
%thread mailtls_config_add_sni_keypair_file;
%thread mailtls_config_set_ca;
%thread mailtls_config_from_env;
%thread mailtls_config_set_ticket_keys_file;
%thread mailtls_proxyproto_read;

/* Functions whose buffers or callbacks need a helper: the helpers below
 * stand for them (named in each helper's comment). */
%ignore mailtls_config_set_keypair_mem;
%ignore mailtls_config_add_sni_keypair_mem;
%ignore mailtls_config_set_ca_mem;
%ignore mailtls_config_set_verify_cb;
%ignore mailtls_config_set_ticket_keys;
%ignore mailtls_config_set_ticket_keys_mem;
%ignore mailtls_tlsa_parse;
%ignore mailtls_set_dane;
%ignore mailtls_proxyproto_parse;
%ignore mailtls_tlsa;
%ignore mailtls_mem_feed;
%ignore mailtls_mem_drain;
%ignore mailtls_set_verify_names;
%ignore mailtls_set_session;
%ignore mailtls_get_session;
%ignore mailtls_read;
%ignore mailtls_write;
%ignore mailtls_timeoutread;
%ignore mailtls_timeoutwrite;
%ignore mailtls_env;
%ignore mailtls_escape;
%ignore mailtls_ucspitls_env;
%ignore mailtls_proxy_client_line;
%ignore mailtls_proxy_server_line;
%ignore mailtls_proxy_tls_started;
%ignore mailtls_proxy_run;
%ignore mailtls_proxy_out;
%ignore mailtls_proxy_io;
%ignore mailtls_verify_cb;
/* The descriptor arrays of struct mailtls_ucspitls: see fd()/set_fd(). */
%ignore mailtls_ucspitls::ctl;
%ignore mailtls_ucspitls::rd;
%ignore mailtls_ucspitls::wr;
/* Texts of struct mailtls_starttls_info are read through mt_info_text. */
%immutable mailtls_starttls_info::greeting;
%immutable mailtls_starttls_info::ehlo;
%immutable mailtls_starttls_info::capabilities;
%immutable mailtls_starttls_info::starttls_reply;
%immutable mailtls_proxyproto::srcip;
%immutable mailtls_proxyproto::dstip;
%immutable mailtls_proxyproto::error;

/* The enum and struct that share a name with a function are renamed. */
%rename(mailtls_errcode_enum, %$isenum) mailtls_errcode;
%rename(mailtls_dane_result_t, %$isclass) mailtls_dane_result;

/* The header, as the contract says.  SWIG does not define __GNUC__, so
 * MAILTLS_EXPORT and MAILTLS_WUR are empty here. */
%include "mailtls.h"

%extend mailtls_ucspitls {
	/* Descriptor |i| of ctl[0], ctl[1], rd[0], rd[1], wr[0], wr[1] (0..5). */
	int fd(int i) {
		int *a = i < 2 ? $self->ctl : i < 4 ? $self->rd : $self->wr;
		return (i < 0 || i > 5) ? -1 : a[i % 2];
	}
	void set_fd(int i, int v) {
		int *a = i < 2 ? $self->ctl : i < 4 ? $self->rd : $self->wr;
		if (i >= 0 && i <= 5)
			a[i % 2] = v;
	}
}

%{
/* A read-only view of bytes, bytearray, memoryview (or str as UTF-8);
 * None gives NULL when |none_ok|.  Returns 0, or -1 with a Python error. */
typedef struct {
	Py_buffer view;
	int have;
	const char *p;
	size_t n;
} mt_in;

static int mt_in_get(PyObject *o, mt_in *in, int none_ok)
{
	in->have = 0;
	if (o == Py_None && none_ok) {
		in->p = NULL;
		in->n = 0;
		return 0;
	}
	if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		in->p = PyUnicode_AsUTF8AndSize(o, &n);
		if (!in->p)
			return -1;
		in->n = (size_t)n;
		return 0;
	}
	if (PyObject_GetBuffer(o, &in->view, PyBUF_SIMPLE) < 0)
		return -1;
	in->have = 1;
	in->p = in->view.buf;
	in->n = (size_t)in->view.len;
	return 0;
}

static void mt_in_release(mt_in *in)
{
	if (in->have)
		PyBuffer_Release(&in->view);
	in->have = 0;
}

/* (rc, errno) */
static PyObject *mt_rc(Py_ssize_t rc, int err)
{
	return Py_BuildValue("(ni)", rc, err);
}

/* The verification hook's trampoline: |arg| is the Python callable, called
 * as cb(session_pointer, [der, ...], result); it returns 0 to accept, -1
 * to refuse, or a str to refuse with that message.  An exception counts as
 * a refusal (the package's hook wrapper catches and keeps it first). */
static swig_type_info *mt_session_type(void);

static int mt_verify_tramp(void *arg, struct mailtls *s, const unsigned char *const *der,
    const size_t *derlen, size_t n, int result)
{
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *chain = NULL, *sp = NULL, *r = NULL;
	int ret = -1;
	size_t i;

	chain = PyList_New((Py_ssize_t)n);
	if (!chain)
		goto out;
	for (i = 0; i < n; i++) {
		PyObject *b = PyBytes_FromStringAndSize((const char *)der[i], (Py_ssize_t)derlen[i]);
		if (!b)
			goto out;
		PyList_SET_ITEM(chain, (Py_ssize_t)i, b);
	}
	sp = SWIG_NewPointerObj(s, mt_session_type(), 0);
	if (!sp)
		goto out;
	r = PyObject_CallFunction((PyObject *)arg, "OOi", sp, chain, result);
	if (!r)
		goto out;
	if (PyUnicode_Check(r)) {
		const char *m = PyUnicode_AsUTF8(r);
		if (m)
			mailtls_set_verify_error(s, m);
	} else if (PyLong_Check(r)) {
		ret = PyLong_AsLong(r) == 0 ? 0 : -1;
	}
out:
	if (PyErr_Occurred()) {
		PyErr_Clear();
		mailtls_set_verify_error(s, "the Python verification hook failed");
		ret = -1;
	}
	Py_XDECREF(r);
	Py_XDECREF(sp);
	Py_XDECREF(chain);
	PyGILState_Release(g);
	return ret;
}

/* The proxy's on_tls trampoline: arg is the callable, called with the
 * session pointer; a false result or an exception ends the proxy. */
static int mt_on_tls_tramp(void *arg, struct mailtls *s)
{
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *sp, *r = NULL;
	int ret = -1;

	sp = SWIG_NewPointerObj(s, mt_session_type(), 0);
	if (sp)
		r = PyObject_CallFunction((PyObject *)arg, "O", sp);
	if (r)
		ret = PyObject_IsTrue(r) ? 0 : -1;
	if (PyErr_Occurred()) {
		PyErr_Clear();
		ret = -1;
	}
	Py_XDECREF(r);
	Py_XDECREF(sp);
	PyGILState_Release(g);
	return ret;
}

static PyObject *mt_out_tuple(int rc, const struct mailtls_proxy_out *o)
{
	return Py_BuildValue("(iy#y#)", rc, o->client ? o->client : "", (Py_ssize_t)(o->client ? o->client_len : 0),
	    o->prog ? o->prog : "", (Py_ssize_t)(o->prog ? o->prog_len : 0));
}
%}

%exception;

%inline %{
/* mt_errno returns errno as the last wrapped call of this thread left it. */
int mt_errno(void)
{
	return mt_saved_errno;
}

/* mailtls_config_set_keypair_mem (add_sni: 0) and
 * mailtls_config_add_sni_keypair_mem (|name| given). */
PyObject *mt_config_keypair_mem(struct mailtls_config *cfg, const char *name, PyObject *cert, PyObject *key)
{
	mt_in c, k;
	int rc;

	if (mt_in_get(cert, &c, 0) < 0)
		return NULL;
	if (mt_in_get(key, &k, 1) < 0) {
		mt_in_release(&c);
		return NULL;
	}
	errno = 0;
	rc = name ? mailtls_config_add_sni_keypair_mem(cfg, name, c.p, c.n, k.p, k.n)
	          : mailtls_config_set_keypair_mem(cfg, c.p, c.n, k.p, k.n);
	mt_saved_errno = errno;
	mt_in_release(&c);
	mt_in_release(&k);
	return PyLong_FromLong(rc);
}

/* mailtls_config_set_ca_mem. */
PyObject *mt_config_set_ca_mem(struct mailtls_config *cfg, PyObject *pem)
{
	mt_in p;
	int rc;

	if (mt_in_get(pem, &p, 0) < 0)
		return NULL;
	errno = 0;
	rc = mailtls_config_set_ca_mem(cfg, p.p, p.n);
	mt_saved_errno = errno;
	mt_in_release(&p);
	return PyLong_FromLong(rc);
}

/* mailtls_config_set_ticket_keys. */
PyObject *mt_config_set_ticket_keys(struct mailtls_config *cfg, PyObject *keys)
{
	mt_in p;
	int rc;

	if (mt_in_get(keys, &p, 0) < 0)
		return NULL;
	rc = mailtls_config_set_ticket_keys(cfg, (const unsigned char *)p.p, p.n);
	mt_in_release(&p);
	return PyLong_FromLong(rc);
}

/* mailtls_config_set_verify_cb with the Python callable |cb| (None: no
 * hook).  The reference is borrowed: the caller keeps |cb| alive as long
 * as the configuration may run it (the package's Config does). */
void mt_config_set_verify_cb(struct mailtls_config *cfg, PyObject *cb)
{
	if (cb == Py_None)
		mailtls_config_set_verify_cb(cfg, NULL, NULL);
	else
		mailtls_config_set_verify_cb(cfg, mt_verify_tramp, cb);
}

/* mailtls_mem_feed. */
PyObject *mt_mem_feed(struct mailtls *s, PyObject *data)
{
	mt_in p;
	ssize_t rc;

	if (mt_in_get(data, &p, 0) < 0)
		return NULL;
	rc = mailtls_mem_feed(s, p.p, p.n);
	mt_in_release(&p);
	return PyLong_FromSsize_t(rc);
}

/* mailtls_mem_drain: up to |n| bytes (b"" when none wait). */
PyObject *mt_mem_drain(struct mailtls *s, size_t n)
{
	PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
	ssize_t got;

	if (!b)
		return NULL;
	got = mailtls_mem_drain(s, PyBytes_AS_STRING(b), n);
	if (got < 0)
		got = 0;
	if (_PyBytes_Resize(&b, got) < 0)
		return NULL;
	return b;
}

/* mailtls_set_verify_names with a sequence of str. */
PyObject *mt_set_verify_names(struct mailtls *s, PyObject *names)
{
	PyObject *seq = PySequence_Fast(names, "names must be a sequence of str");
	const char **v;
	Py_ssize_t i, n;
	int rc;

	if (!seq)
		return NULL;
	n = PySequence_Fast_GET_SIZE(seq);
	v = calloc((size_t)n + 1, sizeof *v);
	if (!v) {
		Py_DECREF(seq);
		return PyErr_NoMemory();
	}
	for (i = 0; i < n; i++) {
		v[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
		if (!v[i]) {
			free(v);
			Py_DECREF(seq);
			return NULL;
		}
	}
	rc = mailtls_set_verify_names(s, v, (size_t)n);
	free(v);
	Py_DECREF(seq);
	return PyLong_FromLong(rc);
}

/* mailtls_set_session. */
PyObject *mt_set_session(struct mailtls *s, PyObject *data)
{
	mt_in p;
	int rc;

	if (mt_in_get(data, &p, 0) < 0)
		return NULL;
	rc = mailtls_set_session(s, (const unsigned char *)p.p, p.n);
	mt_in_release(&p);
	return PyLong_FromLong(rc);
}

/* mailtls_get_session: the bytes, None when there is no session to save,
 * or the int -1 on error. */
PyObject *mt_get_session(struct mailtls *s)
{
	ssize_t n = mailtls_get_session(s, NULL, 0), got;
	PyObject *b;

	if (n < 0)
		return PyLong_FromLong(-1);
	if (n == 0)
		Py_RETURN_NONE;
	b = PyBytes_FromStringAndSize(NULL, n);
	if (!b)
		return NULL;
	got = mailtls_get_session(s, (unsigned char *)PyBytes_AS_STRING(b), (size_t)n);
	if (got <= 0) {
		Py_DECREF(b);
		if (got == 0)
			Py_RETURN_NONE;
		return PyLong_FromLong(-1);
	}
	if (_PyBytes_Resize(&b, got) < 0)
		return NULL;
	return b;
}

/* mailtls_read (|secs| < 0) or mailtls_timeoutread(secs), without the GIL:
 * (rc, bytes or None, errno); bytes when rc > 0, b"" when rc == 0. */
PyObject *mt_read(struct mailtls *s, size_t n, int secs)
{
	PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
	ssize_t rc;
	int err;

	if (!b)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	rc = secs < 0 ? mailtls_read(s, PyBytes_AS_STRING(b), n)
	              : mailtls_timeoutread(secs, s, PyBytes_AS_STRING(b), n);
	err = errno;
	Py_END_ALLOW_THREADS
	mt_saved_errno = err;
	if (rc < 0) {
		Py_DECREF(b);
		return Py_BuildValue("(nOi)", (Py_ssize_t)rc, Py_None, err);
	}
	if (_PyBytes_Resize(&b, rc) < 0)
		return NULL;
	return Py_BuildValue("(nNi)", (Py_ssize_t)rc, b, err);
}

/* mailtls_write (|secs| < 0) or mailtls_timeoutwrite(secs), without the
 * GIL: (rc, errno). */
PyObject *mt_write(struct mailtls *s, PyObject *data, int secs)
{
	mt_in p;
	ssize_t rc;
	int err;

	if (mt_in_get(data, &p, 0) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	rc = secs < 0 ? mailtls_write(s, p.p, p.n) : mailtls_timeoutwrite(secs, s, p.p, p.n);
	err = errno;
	Py_END_ALLOW_THREADS
	mt_saved_errno = err;
	mt_in_release(&p);
	return mt_rc(rc, err);
}

/* mailtls_env: the block "NAME=value\0...\0\0" as bytes, or None on error. */
PyObject *mt_env(struct mailtls *s)
{
	ssize_t n = mailtls_env(s, NULL, 0);
	PyObject *b;

	if (n < 0)
		Py_RETURN_NONE;
	b = PyBytes_FromStringAndSize(NULL, n);
	if (!b)
		return NULL;
	n = mailtls_env(s, PyBytes_AS_STRING(b), (size_t)n);
	if (n < 0) {
		Py_DECREF(b);
		Py_RETURN_NONE;
	}
	if (_PyBytes_Resize(&b, n) < 0)
		return NULL;
	return b;
}

/* mailtls_escape of |data|: the escaped text as str. */
PyObject *mt_escape(PyObject *data)
{
	mt_in p;
	ssize_t need, n;
	char *out;
	PyObject *r;

	if (mt_in_get(data, &p, 0) < 0)
		return NULL;
	need = mailtls_escape(NULL, 0, p.p, p.n);
	out = need > 0 ? malloc((size_t)need) : NULL;
	if (!out) {
		mt_in_release(&p);
		return PyErr_NoMemory();
	}
	n = mailtls_escape(out, (size_t)need, p.p, p.n);
	mt_in_release(&p);
	r = n < 0 ? (PyErr_SetString(PyExc_ValueError, "mailtls_escape failed"), NULL)
	          : PyUnicode_DecodeASCII(out, n, "strict");
	free(out);
	return r;
}

/* mailtls_ucspitls_env: "SSLCTLFD=n\0SSLREADFD=n\0SSLWRITEFD=n\0" as bytes. */
PyObject *mt_ucspitls_env(const struct mailtls_ucspitls *u)
{
	char buf[128];
	ssize_t n = mailtls_ucspitls_env(u, buf, sizeof buf);

	if (n < 0) {
		PyErr_SetString(PyExc_ValueError, "mailtls_ucspitls_env failed");
		return NULL;
	}
	return PyBytes_FromStringAndSize(buf, n);
}

/* The text fields of struct mailtls_starttls_info as bytes (|which|:
 * "greeting", "ehlo", "capabilities", "starttls_reply"). */
PyObject *mt_info_text(const struct mailtls_starttls_info *i, const char *which)
{
	const char *t = !strcmp(which, "greeting") ? i->greeting : !strcmp(which, "ehlo") ? i->ehlo
	    : !strcmp(which, "capabilities") ? i->capabilities : !strcmp(which, "starttls_reply")
	    ? i->starttls_reply : NULL;

	if (!t) {
		PyErr_SetString(PyExc_KeyError, which);
		return NULL;
	}
	return PyBytes_FromStringAndSize(t, (Py_ssize_t)strnlen(t, MAILTLS_TEXT_MAX));
}

/* mailtls_proxy_client_line: (action or -1, bytes for the client, bytes
 * for the program). */
PyObject *mt_proxy_client_line(struct mailtls_proxy *p, PyObject *line, int more)
{
	struct mailtls_proxy_out o = { 0 };
	mt_in l;
	int rc;

	if (mt_in_get(line, &l, 0) < 0)
		return NULL;
	errno = 0;
	rc = mailtls_proxy_client_line(p, l.p, l.n, more, &o);
	mt_saved_errno = errno;
	mt_in_release(&l);
	return mt_out_tuple(rc, &o);
}

/* mailtls_proxy_server_line: as mt_proxy_client_line. */
PyObject *mt_proxy_server_line(struct mailtls_proxy *p, PyObject *line)
{
	struct mailtls_proxy_out o = { 0 };
	mt_in l;
	int rc;

	if (mt_in_get(line, &l, 0) < 0)
		return NULL;
	errno = 0;
	rc = mailtls_proxy_server_line(p, l.p, l.n, &o);
	mt_saved_errno = errno;
	mt_in_release(&l);
	return mt_out_tuple(rc, &o);
}

/* mailtls_proxy_tls_started: as mt_proxy_client_line. */
PyObject *mt_proxy_tls_started(struct mailtls_proxy *p)
{
	struct mailtls_proxy_out o = { 0 };
	int rc;

	errno = 0;
	rc = mailtls_proxy_tls_started(p, &o);
	mt_saved_errno = errno;
	return mt_out_tuple(rc, &o);
}

/* mailtls_proxy_run without the GIL; |on_tls| a callable (or None) called
 * with the session pointer once the handshake is done: (rc, errno). */
PyObject *mt_proxy_run(struct mailtls_proxy *p, struct mailtls *s, int prog_rfd, int prog_wfd,
    int handshake_secs, int io_secs, PyObject *on_tls)
{
	struct mailtls_proxy_io io;
	int rc, err;

	memset(&io, 0, sizeof io);
	io.prog_rfd = prog_rfd;
	io.prog_wfd = prog_wfd;
	io.handshake_secs = handshake_secs;
	io.io_secs = io_secs;
	if (on_tls != Py_None) {
		io.on_tls = mt_on_tls_tramp;
		io.arg = on_tls;
	}
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	rc = mailtls_proxy_run(p, s, &io);
	err = errno;
	Py_END_ALLOW_THREADS
	mt_saved_errno = err;
	return mt_rc(rc, err);
}
/* mailtls_config_set_ticket_keys_mem. */
PyObject *mt_config_set_ticket_keys_mem(struct mailtls_config *cfg, PyObject *keys)
{
	mt_in p;
	int rc;

	if (mt_in_get(keys, &p, 0) < 0)
		return NULL;
	errno = 0;
	rc = mailtls_config_set_ticket_keys_mem(cfg, (const unsigned char *)p.p, p.n);
	mt_saved_errno = errno;
	mt_in_release(&p);
	return PyLong_FromLong(rc);
}

/* mailtls_tlsa_parse: (usage, selector, mtype, data), or (-1, errno). */
PyObject *mt_tlsa_parse(PyObject *text)
{
	struct mailtls_tlsa t;
	unsigned char *buf;
	mt_in p;
	int rc, err;
	PyObject *r;

	if (mt_in_get(text, &p, 0) < 0)
		return NULL;
	buf = malloc(p.n / 2 + 1);
	if (!buf) {
		mt_in_release(&p);
		return PyErr_NoMemory();
	}
	errno = 0;
	rc = mailtls_tlsa_parse(p.p, p.n, &t, buf, p.n / 2 + 1);
	err = errno;
	mt_in_release(&p);
	r = rc < 0 ? Py_BuildValue("(ii)", -1, err)
	           : Py_BuildValue("(iiiy#)", t.usage, t.selector, t.mtype, (const char *)t.data, (Py_ssize_t)t.len);
	free(buf);
	return r;
}

/* mailtls_set_dane with |records| a sequence of (usage, selector, mtype,
 * data) and |names| a sequence of str. */
PyObject *mt_set_dane(struct mailtls *s, PyObject *records, PyObject *names)
{
	PyObject *rs = NULL, *ns = NULL, *ret = NULL;
	struct mailtls_tlsa *t = NULL;
	const char **v = NULL;
	Py_ssize_t i, n, nn;
	int rc;

	rs = PySequence_Fast(records, "records must be a sequence of (usage, selector, mtype, data)");
	ns = rs ? PySequence_Fast(names, "names must be a sequence of str") : NULL;
	if (!ns)
		goto out;
	n = PySequence_Fast_GET_SIZE(rs);
	nn = PySequence_Fast_GET_SIZE(ns);
	t = calloc((size_t)n + 1, sizeof *t);
	v = calloc((size_t)nn + 1, sizeof *v);
	if (!t || !v) {
		PyErr_NoMemory();
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *d;
		Py_ssize_t dl;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(rs, i), "iiiy#", &t[i].usage, &t[i].selector,
		    &t[i].mtype, &d, &dl))
			goto out;
		t[i].data = (const unsigned char *)d;
		t[i].len = (size_t)dl;
	}
	for (i = 0; i < nn; i++) {
		v[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(ns, i));
		if (!v[i])
			goto out;
	}
	errno = 0;
	rc = mailtls_set_dane(s, t, (size_t)n, v, (size_t)nn);
	mt_saved_errno = errno;
	ret = PyLong_FromLong(rc);
out:
	free(t);
	free(v);
	Py_XDECREF(ns);
	Py_XDECREF(rs);
	return ret;
}

/* mailtls_proxyproto_parse into |out|: (rc, need). */
PyObject *mt_proxyproto_parse(PyObject *buf, struct mailtls_proxyproto *out)
{
	mt_in p;
	size_t need = 0;
	int rc;

	if (mt_in_get(buf, &p, 0) < 0)
		return NULL;
	errno = 0;
	rc = mailtls_proxyproto_parse(p.p, p.n, out, &need);
	mt_saved_errno = errno;
	mt_in_release(&p);
	return Py_BuildValue("(in)", rc, (Py_ssize_t)need);
}
%}

%{
static swig_type_info *mt_session_type(void)
{
	return SWIGTYPE_p_mailtls;
}
%}

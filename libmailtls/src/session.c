/* session.c -- a TLS session over a read and a write descriptor, or over
 * memory.  See mailtls.h for every public function's contract. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int mt_ex_index(void)
{
	pthread_once(&ex_once, ex_init);
	return ex_index;
}

struct mailtls *mt_from_ssl(const SSL *ssl)
{
	return SSL_get_ex_data(ssl, mt_ex_index());
}

static struct mailtls *session_new(struct mailtls_config *cfg, int server)
{
	struct mailtls *s;
	if (!cfg) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->ssl = SSL_new(cfg->ctx);
	if (!s->ssl || mt_ex_index() < 0 || !SSL_set_ex_data(s->ssl, mt_ex_index(), s)) {
		SSL_free(s->ssl);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	mailtls_config_ref(cfg);
	s->cfg = cfg;
	s->is_server = server;
	s->verify_mode = server && !cfg->verify_mode_set ? MAILTLS_VERIFY_NONE : cfg->verify_mode;
	s->r.fd = s->w.fd = -1;
	s->verify_result = MAILTLS_E_NONE;
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Certificates and keys leave the session once the handshake is done. */
	SSL_set_shed_handshake_config(s->ssl, 1);
	if (server) {
		static const int modes[] = {
			SSL_VERIFY_NONE, SSL_VERIFY_PEER,
			SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		};
		SSL_set_accept_state(s->ssl);
		if (s->verify_mode != MAILTLS_VERIFY_NONE)
			SSL_set_custom_verify(s->ssl, modes[s->verify_mode], mt_verify_cb);
	} else {
		SSL_set_connect_state(s->ssl);
		if (s->verify_mode != MAILTLS_VERIFY_NONE || cfg->npins)
			SSL_set_custom_verify(s->ssl, SSL_VERIFY_PEER, mt_verify_cb);
	}
	return s;
}

static int attach_fds(struct mailtls *s, int rfd, int wfd)
{
	BIO *rb, *wb;
	if (rfd < 0 || wfd < 0) {
		errno = EINVAL;
		return -1;
	}
	mt_fd_init(&s->r, rfd);
	mt_fd_init(&s->w, wfd);
	rb = mt_bio_new(s);
	wb = mt_bio_new(s);
	if (!rb || !wb) {
		BIO_free(rb);
		BIO_free(wb);
		errno = ENOMEM;
		return -1;
	}
	SSL_set_bio(s->ssl, rb, wb);
	return 0;
}

static int attach_mem(struct mailtls *s)
{
	s->is_mem = 1;
	s->mem_in = BIO_new(BIO_s_mem());
	s->mem_out = BIO_new(BIO_s_mem());
	if (!s->mem_in || !s->mem_out) {
		BIO_free(s->mem_in);
		BIO_free(s->mem_out);
		errno = ENOMEM;
		return -1;
	}
	/* An empty input means "not yet", until mailtls_mem_feed_eof. */
	BIO_set_mem_eof_return(s->mem_in, -1);
	SSL_set_bio(s->ssl, s->mem_in, s->mem_out);
	return 0;
}

static int set_servername(struct mailtls *s, const char *name)
{
	if (!name || !*name)
		return 0;
	s->servername = mt_strdup(name);
	if (!s->servername)
		return -1;
	/* An address literal is verified (IP SAN) but never sent as SNI (RFC 6066). */
	if (!mt_is_ip_literal(name) && !SSL_set_tlsext_host_name(s->ssl, name))
		return -1;
	return 0;
}

static struct mailtls *finish(struct mailtls *s, int ok)
{
	if (!ok) {
		int saved = errno ? errno : ENOMEM;
		mailtls_free(s);
		errno = saved;
		return NULL;
	}
	return s;
}

struct mailtls *mailtls_server(struct mailtls_config *cfg, int rfd, int wfd)
{
	struct mailtls *s = session_new(cfg, 1);
	if (!s)
		return NULL;
	return finish(s, attach_fds(s, rfd, wfd) == 0);
}

struct mailtls *mailtls_client(struct mailtls_config *cfg, int rfd, int wfd, const char *servername)
{
	struct mailtls *s = session_new(cfg, 0);
	if (!s)
		return NULL;
	return finish(s, attach_fds(s, rfd, wfd) == 0 && set_servername(s, servername) == 0);
}

struct mailtls *mailtls_server_mem(struct mailtls_config *cfg)
{
	struct mailtls *s = session_new(cfg, 1);
	if (!s)
		return NULL;
	return finish(s, attach_mem(s) == 0);
}

struct mailtls *mailtls_client_mem(struct mailtls_config *cfg, const char *servername)
{
	struct mailtls *s = session_new(cfg, 0);
	if (!s)
		return NULL;
	return finish(s, attach_mem(s) == 0 && set_servername(s, servername) == 0);
}

ssize_t mailtls_mem_feed(struct mailtls *s, const void *buf, size_t len)
{
	size_t done = 0;
	if (!s || !s->is_mem)
		return -1;
	while (done < len) {
		int chunk = len - done > INT_MAX ? INT_MAX : (int)(len - done);
		int n = BIO_write(s->mem_in, (const char *)buf + done, chunk);
		if (n <= 0) {
			mt_seterr(s, MAILTLS_E_NOMEM, "memory transport: out of memory");
			return -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)len;
}

ssize_t mailtls_mem_drain(struct mailtls *s, void *buf, size_t len)
{
	int n;
	if (!s || !s->is_mem)
		return -1;
	if (len == 0 || BIO_pending(s->mem_out) == 0)
		return 0;
	n = BIO_read(s->mem_out, buf, len > INT_MAX ? INT_MAX : (int)len);
	return n > 0 ? n : 0;
}

void mailtls_mem_feed_eof(struct mailtls *s)
{
	if (s && s->is_mem)
		BIO_set_mem_eof_return(s->mem_in, 0);
}

void mailtls_free(struct mailtls *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	SSL_SESSION_free(s->last_session);
	mailtls_config_free(s->cfg);
	free(s->servername);
	for (size_t i = 0; i < s->nvnames; i++)
		free(s->vnames[i]);
	free(s->vnames);
	free(s->vhook_msg);
	free(s->f_subject);
	free(s->f_issuer);
	free(s->f_cn);
	free(s->f_fp);
	free(s->f_serial);
	free(s->f_nb);
	free(s->f_na);
	free(s);
}

int mailtls_release_config(struct mailtls *s)
{
	mt_clearerr(s);
	if (!s->handshake_done) {
		mt_seterr(s, MAILTLS_E_USAGE, "the configuration is released after the handshake");
		return -1;
	}
	mailtls_config_free(s->cfg);
	s->cfg = NULL;
	return 0;
}

int mailtls_set_verify_names(struct mailtls *s, const char *const *names, size_t n)
{
	char **v = NULL;
	mt_clearerr(s);
	if (s->is_server || s->hs_begun || (n && !names)) {
		mt_seterr(s, MAILTLS_E_USAGE, "verify names are set on a client before its handshake");
		return -1;
	}
	if (n) {
		v = calloc(n, sizeof *v);
		if (!v)
			goto nomem;
		for (size_t i = 0; i < n; i++)
			if (!(v[i] = mt_strdup(names[i]))) {
				while (i--)
					free(v[i]);
				free(v);
				goto nomem;
			}
	}
	for (size_t i = 0; i < s->nvnames; i++)
		free(s->vnames[i]);
	free(s->vnames);
	s->vnames = v;
	s->nvnames = n;
	return 0;
nomem:
	mt_seterr(s, MAILTLS_E_NOMEM, "out of memory");
	return -1;
}

/* The handshake is over: a resumed session skipped the verify callback, so
 * its peer is checked again here against today's configuration, unless
 * the verdict the saved session carried stands (verdict.c).  Only a
 * peer that passes makes the handshake done; one that fails stays failed
 * for every later call (hs_failed), since the engine itself finished. */
static int after_handshake(struct mailtls *s)
{
	if (SSL_session_reused(s->ssl) && SSL_get0_peer_certificates(s->ssl)) {
		uint8_t alert;
		int mode = s->verify_mode;
		if ((s->is_server && mode != MAILTLS_VERIFY_NONE) ||
		    (!s->is_server && (mode != MAILTLS_VERIFY_NONE || s->cfg->npins))) {
			if (!mt_verdict_keep(s) && !mt_verify_peer(s, &alert)) {
				SSL_send_fatal_alert(s->ssl, alert);
				s->hs_failed = s->errcode;
				return -1;
			}
		}
	}
	s->handshake_done = 1;
	return 0;
}

int mt_handshake_step(struct mailtls *s)
{
	int r;
	if (s->handshake_done)
		return 0;
	if (s->hs_failed) {
		mt_seterr(s, s->hs_failed, "handshake: the resumed peer failed verification");
		return -1;
	}
	errno = 0;
	s->hs_begun = 1;
	r = SSL_do_handshake(s->ssl);
	if (r == 1)
		return after_handshake(s);
	r = mt_ssl_result(s, r, "handshake");
	if (r == 0) {
		/* close_notify before the handshake ended: no session, not a success. */
		mt_seterr(s, MAILTLS_E_TLS, "handshake: the peer closed the connection before the handshake was done");
		return -1;
	}
	return r;
}

int mailtls_handshake(struct mailtls *s)
{
	mt_clearerr(s);
	return mt_handshake_step(s);
}

ssize_t mt_read_step(struct mailtls *s, void *buf, size_t len)
{
	int r;
	if (!s->handshake_done && (r = mt_handshake_step(s)) != 0)
		return r;
	if (len == 0 || s->peer_closed)
		return 0;
	errno = 0;
	r = SSL_read(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0)
		return r;
	return mt_ssl_result(s, r, "read");
}

ssize_t mailtls_read(struct mailtls *s, void *buf, size_t len)
{
	mt_clearerr(s);
	return mt_read_step(s, buf, len);
}

ssize_t mt_write_step(struct mailtls *s, const void *buf, size_t len)
{
	int r;
	if (!s->handshake_done && (r = mt_handshake_step(s)) != 0)
		return r;
	if (len == 0)
		return 0;
	if (s->close_sent) {
		mt_seterr(s, MAILTLS_E_USAGE, "write after mailtls_close");
		return -1;
	}
	errno = 0;
	r = SSL_write(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0)
		return r;
	r = mt_ssl_result(s, r, "write");
	if (r == 0) {
		mt_seterr(s, MAILTLS_E_TLS, "write: the peer closed the session");
		return -1;
	}
	return r;
}

ssize_t mailtls_write(struct mailtls *s, const void *buf, size_t len)
{
	size_t done = 0;
	mt_clearerr(s);
	while (done < len) {
		ssize_t r = mt_write_step(s, (const char *)buf + done, len - done);
		if (r < 0)
			return done > 0 && r != -1 ? (ssize_t)done : r;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int mailtls_close(struct mailtls *s)
{
	int r;
	mt_clearerr(s);
	if (s->close_sent)
		return 0;
	if (!s->handshake_done) {
		s->close_sent = 1;
		return 0;
	}
	errno = 0;
	r = SSL_shutdown(s->ssl);
	if (r >= 0) {
		s->close_sent = 1;
		return 0;
	}
	r = mt_ssl_result(s, r, "close");
	if (r == 0) {
		s->close_sent = 1;
	}
	return r;
}

size_t mailtls_pending(struct mailtls *s)
{
	int n = SSL_pending(s->ssl);
	return n > 0 ? (size_t)n : 0;
}

int mailtls_peer_closed(struct mailtls *s)
{
	return s->peer_closed || (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

int mailtls_read_fd(struct mailtls *s)
{
	return s->is_mem ? -1 : s->r.fd;
}

int mailtls_write_fd(struct mailtls *s)
{
	return s->is_mem ? -1 : s->w.fd;
}

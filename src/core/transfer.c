/* One HTTP transfer on libcurl, without Lua (transfer.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "transfer.h"

int buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;
		while (cap < b->len + n + 1)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q, b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL, b->len = b->cap = 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;

	if (t->max_body >= 0 && t->received + len > (size_t)t->max_body) {
		t->too_large = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	t->received += len;
	if (t->out) {
		if (fwrite(p, 1, len, t->out) != len) {
			t->write_errno = errno ? errno : EIO;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	}
	return buf_add(&t->body, p, len) ? CURL_WRITEFUNC_ERROR : len;
}

/* Connections are not inherited by the programs a script starts
 * (os.execute, io.popen): a child that outlives the request would keep
 * the connection open, and the server waiting on it. */
static int on_socket(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	int flags = fcntl(fd, F_GETFD);

	(void)ud, (void)purpose;
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	return CURL_SOCKOPT_OK;
}

/* Headers of every response are collected; a new status line (after a
 * 100 Continue or a proxy CONNECT) starts the list again. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		t->headers.len = 0;
		t->nheaders = 0;
		return len;
	}
	if (++t->nheaders > t->max_headers ||
	    t->headers.len + len > t->max_header_bytes) {
		t->too_large = 1;
		return 0;
	}
	return buf_add(&t->headers, p, len) ? 0 : len;
}

void transfer_release(struct transfer *t)
{
	if (t->easy) {
		loop_remove(t->loop, t);
		loop_easy_put(t->loop, t->easy);
		t->easy = NULL;
	}
	if (t->req_headers)
		curl_slist_free_all(t->req_headers);
	t->req_headers = NULL;
	buf_free(&t->body);
	buf_free(&t->headers);
	if (t->out) {
		fs_pending_discard(&t->pending);
		fclose(t->out);
		t->out = NULL;
	}
	free(t->out_path);
	t->out_path = NULL;
}

int transfer_header(struct transfer *t, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), n = nl + vl + 3;
	char small[256], *line = small;
	struct curl_slist *s;

	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -1;
	if (n > sizeof small && !(line = malloc(n)))
		return -2;
	/* "Name: value"; "Name;" sends the header empty. */
	memcpy(line, name, nl);
	if (vl) {
		memcpy(line + nl, ": ", 2);
		memcpy(line + nl + 2, value, vl + 1);
	} else {
		memcpy(line + nl, ";", 2);
	}
	s = curl_slist_append(t->req_headers, line);
	if (line != small)
		free(line);
	if (!s)
		return -2;
	t->req_headers = s;
	t->has_expect |= strcasecmp(name, "expect") == 0;
	t->has_ua |= strcasecmp(name, "user-agent") == 0;
	return 0;
}

static void open_output(struct transfer *t, const char *path)
{
	mode_t mask;

	t->out_path = strdup(path);
	if (!t->out_path) {
		t->open_errno = ENOMEM;
		return;
	}
	if (fs_pending_open(&t->pending, path) < 0) {
		t->open_errno = errno;
		return;
	}
	/* The pending file is 0600; the finished file gets the mode any new
	 * file would (0666 less the umask), as curl -o gives it. */
	mask = umask(0);
	umask(mask);
	fchmod(t->pending.fd, 0666 & ~mask);
	t->out = fdopen(t->pending.fd, "w+b");
	if (!t->out) {
		t->open_errno = errno;
		fs_pending_discard(&t->pending);
		close(t->pending.fd);
	}
}

/* The error message names the origin and path, never the query (nor
 * the fragment) and never the user:password of the URL. */
static void set_where(struct transfer *t, const char *url)
{
	const char *end = url + strcspn(url, "?#");
	const char *host = strstr(url, "://");
	const char *rest, *p;

	host = host && host + 3 <= end ? host + 3 : url;
	rest = host;
	for (p = host; p < end && *p != '/'; p++)
		if (*p == '@')
			rest = p + 1;
	snprintf(t->where, sizeof t->where, "%.*s%.*s", (int)(host - url), url,
		 (int)(end - rest), rest);
}

static void set_callbacks(struct transfer *t)
{
	CURL *e = t->easy;

	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_socket);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
}

static void set_connection(CURL *e, const struct request *r)
{
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)r->follow_redirects);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout * 1000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(r->connect_timeout * 1000));
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* libcurl silently resends a request whose reused connection died
	 * before any answer: for a create, that could create twice. Callers
	 * ask for a new connection where a repeat is not safe. */
	if (r->fresh_connect)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
}

static void set_tls(CURL *e, const struct request *r)
{
	if (r->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
	/* A client certificate (PEM), for servers that ask for one (etcd
	 * with --client-cert-auth). */
	if (r->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, r->cert_file);
	if (r->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, r->key_file);
	if (r->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static int is(const char *method, const char *m)
{
	return strcmp(method, m) == 0;
}

static void set_method(CURL *e, const struct request *r)
{
	const char *m = r->method;

	if (is(m, "GET") && !r->has_body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (is(m, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		if (r->has_body || is(m, "POST") || is(m, "PUT") ||
		    is(m, "PATCH")) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)r->body_len);
			curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
					 r->has_body ? r->body : "");
		}
		if (!is(m, "POST"))
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
	}
}

/* The headers every request carries unless the caller set its own. A
 * request body is sent at once: no 100-continue round trip. */
static int default_headers(struct transfer *t)
{
	struct curl_slist *s = t->req_headers;

	if (!t->has_expect)
		s = s ? curl_slist_append(s, "Expect:")
		      : curl_slist_append(NULL, "Expect:");
	if (s && !t->has_ua)
		s = curl_slist_append(s, "User-Agent: " TRANSFER_USER_AGENT);
	if (!s)
		return -1;
	t->req_headers = s;
	return 0;
}

const char *transfer_setup(struct transfer *t, struct loop *l,
			   const struct request *r)
{
	t->loop = l;
	t->max_body = r->max_body;
	t->max_headers = 256;
	t->max_header_bytes = 256 * 1024;
	snprintf(t->method, sizeof t->method, "%s", r->method);
	t->easy = loop_easy_get(l);
	if (!t->easy)
		return "cannot create a curl handle";
	set_callbacks(t);
	set_connection(t->easy, r);
	set_tls(t->easy, r);
	set_method(t->easy, r);
	if (default_headers(t) < 0)
		return "out of memory";
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->req_headers);
	if (r->output) {
		/* libcurl reads 16 KiB per call by default; a download to a
		 * file reads 128 KiB (curl's own tool reads 100 KiB), with
		 * a sixth of the recv, poll and write calls. */
		curl_easy_setopt(t->easy, CURLOPT_BUFFERSIZE, 128L * 1024);
		open_output(t, r->output);
	}
	set_where(t, r->url);
	return NULL;
}

int transfer_start(struct transfer *t)
{
	if (t->out_path && !t->out)
		return -1;
	return loop_add(t->loop, t);
}

/* Moves the finished output file into place, or, for an error status,
 * reads the (bounded) error body back so the caller can decode it. */
static int finish_output(struct transfer *t)
{
	int ok = t->status >= 200 && t->status < 300;
	FILE *f = t->out;

	t->out = NULL;
	if (fflush(f) != 0 || (ok && fsync(fileno(f)) != 0)) {
		t->write_errno = errno;
		fs_pending_discard(&t->pending);
		fclose(f);
		return -1;
	}
	if (!ok) {
		char chunk[8192];
		size_t n;
		rewind(f);
		while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 &&
		       t->body.len < 1 << 20)
			buf_add(&t->body, chunk, n);
		fs_pending_discard(&t->pending);
		fclose(f);
		return 0;
	}
	if (fs_pending_place(&t->pending, t->out_path) != 0) {
		t->write_errno = errno;
		fs_pending_discard(&t->pending);
		fclose(f);
		return -1;
	}
	fclose(f); /* after fsync, nothing is left for it to report */
	return 0;
}

int transfer_finish(struct transfer *t)
{
	if (t->interrupted || !t->done || t->result != CURLE_OK)
		return -1;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	if (t->out && finish_output(t) < 0)
		return -1;
	return 0;
}

static const char *kind_of(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return "tls";
	default:
		return "network";
	}
}

/* libcurl refuses a header line over 100 KiB (CURL_MAX_HTTP_HEADER) as
 * out of memory, or from 8.6 as CURLE_TOO_LARGE: an answer too large. */
static int curl_too_large(CURLcode rc)
{
#if LIBCURL_VERSION_NUM >= 0x080600
	if (rc == CURLE_TOO_LARGE)
		return 1;
#endif
	return rc == CURLE_OUT_OF_MEMORY;
}

const char *transfer_failure(struct transfer *t, char *msg, size_t n)
{
	const char *detail =
		t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);

	if (t->out_path && !t->out && !t->done) {
		snprintf(msg, n, "cannot create %s: %s", t->out_path,
			 strerror(t->open_errno));
		return "io";
	}
	if (t->interrupted) {
		snprintf(msg, n, "%s %s: interrupted", t->method, t->where);
		return "interrupted";
	}
	if (t->too_large || curl_too_large(t->result)) {
		snprintf(msg, n, "%s %s: response exceeds the size limit%s%s%s",
			 t->method, t->where, t->too_large ? "" : " (libcurl: ",
			 t->too_large ? "" : detail, t->too_large ? "" : ")");
		return "too_large";
	}
	if (t->write_errno) {
		snprintf(msg, n, "%s %s: writing %s: %s", t->method, t->where,
			 t->out_path, strerror(t->write_errno));
		return "io";
	}
	snprintf(msg, n, "%s %s: %s", t->method, t->where, detail);
	return kind_of(t->result);
}

/*
 * tevent_echo_req: an echo server on C tevent requests, structured as the
 * tevent tutorial's nested-request example (and examples/echo_server.rs):
 *
 *   - an accept request waits for the listening socket and accepts one
 *     client; the main loop starts an echo request for it and a new accept
 *     request;
 *   - per client, an echo request runs a read request (a fresh fd event
 *     waiting for READ, one read of up to 16 KiB), then a write request for
 *     what was read, then the next read, until the client closes;
 *   - a write request first writes at once; when that writes everything it
 *     is done and posted (tevent_req_post), so its caller still hears of it
 *     from the loop; otherwise it waits for WRITE with an fd event.
 *
 *   tevent_echo_req [PORT]
 *
 * Listens on 127.0.0.1:PORT (none or 0: a free port), prints
 * `LISTEN 127.0.0.1:<port> PID=<pid>` on stdout, sets TCP_NODELAY on every
 * client, and echoes until SIGINT or SIGTERM, then exits 0. Exit status 1 if
 * it cannot listen, 2 for a bad command line.
 */
#define _GNU_SOURCE /* accept4 */
#define BENCHES_SERVER
#include <stdbool.h>
#include <signal.h>

#include <talloc.h>
#include <tevent.h>

#include "common.h"

/* The errno of a failed request (0 when it succeeded). */
static int req_errno(struct tevent_req *req)
{
	enum tevent_req_state state;
	uint64_t err = 0;

	if (!tevent_req_is_error(req, &state, &err)) {
		return 0;
	}
	if (state == TEVENT_REQ_USER_ERROR) {
		return (int)err;
	}
	return state == TEVENT_REQ_NO_MEMORY ? ENOMEM : EINVAL;
}

/* ---- accept: one client from the listening socket --------------------- */

struct accept_state {
	int listen_fd;
	int client_fd;
};

static void accept_readable(struct tevent_context *ev, struct tevent_fd *fde,
			    uint16_t flags, void *data)
{
	struct tevent_req *req = talloc_get_type_abort(data, struct tevent_req);
	struct accept_state *state = tevent_req_data(req, struct accept_state);
	int fd;

	(void)ev;
	(void)fde;
	(void)flags;
	fd = accept_client(state->listen_fd);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
			return; /* wait for the next one */
		}
		tevent_req_error(req, errno);
		return;
	}
	state->client_fd = fd;
	tevent_req_done(req);
}

static struct tevent_req *accept_send(TALLOC_CTX *mem, struct tevent_context *ev,
				      int listen_fd)
{
	struct accept_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct accept_state);
	struct tevent_fd *fde;

	if (req == NULL) {
		return NULL;
	}
	state->listen_fd = listen_fd;
	state->client_fd = -1;
	fde = tevent_add_fd(ev, state, listen_fd, TEVENT_FD_READ, accept_readable, req);
	if (tevent_req_nomem(fde, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static int accept_recv(struct tevent_req *req, int *perr)
{
	struct accept_state *state = tevent_req_data(req, struct accept_state);

	*perr = req_errno(req);
	return *perr == 0 ? state->client_fd : -1;
}

/* ---- read: one read of up to `size` bytes, once the fd is readable ---- */

struct read_state {
	int fd;
	unsigned char *buf;
	size_t size;
	ssize_t got;
};

static void read_readable(struct tevent_context *ev, struct tevent_fd *fde,
			  uint16_t flags, void *data)
{
	struct tevent_req *req = talloc_get_type_abort(data, struct tevent_req);
	struct read_state *state = tevent_req_data(req, struct read_state);
	ssize_t n;

	(void)ev;
	(void)fde;
	(void)flags;
	n = read(state->fd, state->buf, state->size);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			return;
		}
		tevent_req_error(req, errno);
		return;
	}
	state->got = n;
	tevent_req_done(req);
}

static struct tevent_req *read_send(TALLOC_CTX *mem, struct tevent_context *ev,
				    int fd, unsigned char *buf, size_t size)
{
	struct read_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct read_state);
	struct tevent_fd *fde;

	if (req == NULL) {
		return NULL;
	}
	state->fd = fd;
	state->buf = buf;
	state->size = size;
	fde = tevent_add_fd(ev, state, fd, TEVENT_FD_READ, read_readable, req);
	if (tevent_req_nomem(fde, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

/* Bytes read (0: the peer closed), or -1 with *perr set. */
static ssize_t read_recv(struct tevent_req *req, int *perr)
{
	struct read_state *state = tevent_req_data(req, struct read_state);

	*perr = req_errno(req);
	return *perr == 0 ? state->got : -1;
}

/* ---- write: all of a buffer ------------------------------------------- */

struct write_state {
	int fd;
	const unsigned char *buf;
	size_t len;
	size_t off;
};

/* Writes what it can; 0, or the errno that ends the request. */
static int write_some(struct write_state *state)
{
	while (state->off < state->len) {
		ssize_t n = write(state->fd, state->buf + state->off,
				  state->len - state->off);

		if (n < 0) {
			return errno == EAGAIN || errno == EINTR ? 0 : errno;
		}
		state->off += (size_t)n;
	}
	return 0;
}

static void write_writable(struct tevent_context *ev, struct tevent_fd *fde,
			   uint16_t flags, void *data)
{
	struct tevent_req *req = talloc_get_type_abort(data, struct tevent_req);
	struct write_state *state = tevent_req_data(req, struct write_state);
	int err = write_some(state);

	(void)ev;
	(void)fde;
	(void)flags;
	if (err != 0) {
		tevent_req_error(req, err);
	} else if (state->off == state->len) {
		tevent_req_done(req);
	}
}

static struct tevent_req *write_send(TALLOC_CTX *mem, struct tevent_context *ev,
				     int fd, const unsigned char *buf, size_t len)
{
	struct write_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct write_state);
	struct tevent_fd *fde;
	int err;

	if (req == NULL) {
		return NULL;
	}
	state->fd = fd;
	state->buf = buf;
	state->len = len;
	err = write_some(state);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (state->off == state->len) {
		/* All written at once: done, reported from the loop. */
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	fde = tevent_add_fd(ev, state, fd, TEVENT_FD_WRITE, write_writable, req);
	if (tevent_req_nomem(fde, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static int write_recv(struct tevent_req *req)
{
	return req_errno(req);
}

/* ---- echo: read, write back, repeat, until the client closes ---------- */

struct echo_state {
	struct tevent_context *ev;
	int fd;
	unsigned char buf[ECHO_BUF];
};

static void echo_read_done(struct tevent_req *subreq);
static void echo_write_done(struct tevent_req *subreq);

static bool echo_next_read(struct tevent_req *req, struct echo_state *state)
{
	struct tevent_req *subreq = read_send(state, state->ev, state->fd,
					      state->buf, sizeof(state->buf));

	if (tevent_req_nomem(subreq, req)) {
		return false;
	}
	tevent_req_set_callback(subreq, echo_read_done, req);
	return true;
}

static struct tevent_req *echo_send(TALLOC_CTX *mem, struct tevent_context *ev,
				    int fd)
{
	struct echo_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct echo_state);

	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->fd = fd;
	if (!echo_next_read(req, state)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void echo_read_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	struct echo_state *state = tevent_req_data(req, struct echo_state);
	int err;
	ssize_t n = read_recv(subreq, &err);

	TALLOC_FREE(subreq);
	if (n < 0) {
		tevent_req_error(req, err);
		return;
	}
	if (n == 0) {
		tevent_req_done(req);
		return;
	}
	subreq = write_send(state, state->ev, state->fd, state->buf, (size_t)n);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, echo_write_done, req);
}

static void echo_write_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	struct echo_state *state = tevent_req_data(req, struct echo_state);
	int err = write_recv(subreq);

	TALLOC_FREE(subreq);
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	echo_next_read(req, state);
}

/* The client's fd, to close once the request (and its fd events) is freed. */
static int echo_recv(struct tevent_req *req, int *pfd)
{
	struct echo_state *state = tevent_req_data(req, struct echo_state);

	*pfd = state->fd;
	return req_errno(req);
}

/* ---- the server ---------------------------------------------------------- */

struct server {
	struct tevent_context *ev;
	int listen_fd;
	bool stop;
};

static void client_done(struct tevent_req *req)
{
	int fd;

	(void)echo_recv(req, &fd);
	TALLOC_FREE(req);
	close(fd);
}

static void accepted(struct tevent_req *subreq);

static void accept_next(struct server *srv)
{
	struct tevent_req *req = accept_send(srv, srv->ev, srv->listen_fd);

	if (req == NULL) {
		fail("out of memory");
	}
	tevent_req_set_callback(req, accepted, srv);
}

static void accepted(struct tevent_req *subreq)
{
	struct server *srv = tevent_req_callback_data(subreq, struct server);
	struct tevent_req *echo;
	int err;
	int fd = accept_recv(subreq, &err);

	TALLOC_FREE(subreq);
	if (fd < 0) {
		fprintf(stderr, "accept: %s\n", strerror(err));
	} else {
		echo = echo_send(srv, srv->ev, fd);
		if (echo == NULL) {
			close(fd);
		} else {
			tevent_req_set_callback(echo, client_done, NULL);
		}
	}
	accept_next(srv);
}

static void stop_signal(struct tevent_context *ev, struct tevent_signal *se,
			int signum, int count, void *siginfo, void *data)
{
	(void)ev;
	(void)se;
	(void)signum;
	(void)count;
	(void)siginfo;
	((struct server *)data)->stop = true;
}

int main(int argc, char **argv)
{
	int port = port_arg(argc, argv);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct server *srv = talloc_zero(mem, struct server);

	if (srv == NULL || (srv->ev = tevent_context_init(mem)) == NULL) {
		fail("tevent_context_init failed");
	}
	srv->listen_fd = listen_loopback(port);
	if (tevent_add_signal(srv->ev, mem, SIGTERM, 0, stop_signal, srv) == NULL ||
	    tevent_add_signal(srv->ev, mem, SIGINT, 0, stop_signal, srv) == NULL) {
		fail("out of memory");
	}
	accept_next(srv);
	while (!srv->stop) {
		if (tevent_loop_once(srv->ev) != 0) {
			fail("tevent_loop_once: %s", strerror(errno));
		}
	}
	close(srv->listen_fd);
	/* The clients' requests first, then the context. */
	talloc_free(srv);
	talloc_free(mem);
	return 0;
}

/*
 * tevent_echo_fd: an echo server on C tevent's fd events, no requests: one
 * fd event per connection for the connection's whole life, reading up to
 * 16 KiB and writing it back from the handler (the design of
 * examples/echo_raw.rs).
 *
 *   tevent_echo_fd [PORT]
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

struct client {
	struct tevent_fd *fde;
	int fd;
	/* Bytes read and not yet written back: buf[off..len). */
	size_t off;
	size_t len;
	unsigned char buf[ECHO_BUF];
};

/* Writes what is pending; false when the connection is over. */
static bool flush_pending(struct client *c)
{
	while (c->off < c->len) {
		ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);

		if (n < 0) {
			return errno == EAGAIN || errno == EINTR;
		}
		c->off += (size_t)n;
	}
	return true;
}

static void client_ready(struct tevent_context *ev, struct tevent_fd *fde,
			 uint16_t flags, void *data)
{
	struct client *c = data;
	ssize_t n;

	(void)ev;
	if (flags & TEVENT_FD_WRITE) {
		if (!flush_pending(c)) {
			goto gone;
		}
		if (c->off == c->len) {
			/* All out: read again. */
			tevent_fd_set_flags(fde, TEVENT_FD_READ);
		}
		return;
	}
	n = read(c->fd, c->buf, sizeof(c->buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		goto gone;
	}
	c->off = 0;
	c->len = (size_t)n;
	if (!flush_pending(c)) {
		goto gone;
	}
	if (c->off < c->len) {
		/* The socket is full: stop reading until the rest is out. */
		tevent_fd_set_flags(fde, TEVENT_FD_WRITE);
	}
	return;
gone:
	/* Frees the fd event, which closes the fd (auto close). */
	talloc_free(c);
}

static void accept_ready(struct tevent_context *ev, struct tevent_fd *fde,
			 uint16_t flags, void *data)
{
	int listen_fd = *(int *)data;

	(void)fde;
	(void)flags;
	for (;;) {
		struct client *c;
		int fd = accept_client(listen_fd);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			if (errno != EAGAIN) {
				fprintf(stderr, "accept: %s\n", strerror(errno));
			}
			return;
		}
		c = talloc_zero(ev, struct client);
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->fde = tevent_add_fd(ev, c, fd, TEVENT_FD_READ, client_ready, c);
		if (c->fde == NULL) {
			close(fd);
			talloc_free(c);
			continue;
		}
		tevent_fd_set_auto_close(c->fde);
	}
}

static void stop_signal(struct tevent_context *ev, struct tevent_signal *se,
			int signum, int count, void *siginfo, void *data)
{
	(void)ev;
	(void)se;
	(void)signum;
	(void)count;
	(void)siginfo;
	*(bool *)data = true;
}

int main(int argc, char **argv)
{
	int port = port_arg(argc, argv);
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	bool stop = false;
	int listen_fd;

	if (ev == NULL) {
		fail("tevent_context_init failed");
	}
	listen_fd = listen_loopback(port);
	if (tevent_add_fd(ev, mem, listen_fd, TEVENT_FD_READ, accept_ready,
			  &listen_fd) == NULL ||
	    tevent_add_signal(ev, mem, SIGTERM, 0, stop_signal, &stop) == NULL ||
	    tevent_add_signal(ev, mem, SIGINT, 0, stop_signal, &stop) == NULL) {
		fail("out of memory");
	}
	while (!stop) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once: %s", strerror(errno));
		}
	}
	talloc_free(mem);
	close(listen_fd);
	return 0;
}

/*
 * common.h: helpers for the C tevent programs of benches/ (clock reads, the
 * splitmix64 generator the Rust bench uses for timer deadlines, the result
 * line, argument parsing). Uses only libc.
 */
#ifndef BENCHES_COMMON_H
#define BENCHES_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMPL_NAME "tevent-c"

/* The seed of examples/bench.rs (SEED): both see the same deadlines. */
#define TIMER_SEED 0x5eed5eed12345678ull

static inline void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static inline uint64_t clock_ns(clockid_t which)
{
	struct timespec ts;

	if (clock_gettime(which, &ts) != 0) {
		fail("clock_gettime: %s", strerror(errno));
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wall time, monotonic. */
static inline uint64_t wall_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* CPU time of the whole process (user + system). */
static inline uint64_t cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z;

	*state += 0x9e3779b97f4a7c15ull;
	z = *state;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Warm-up size: N/10 operations, at least 1, at most 200 000 (as bench.rs). */
static inline uint64_t warmup_of(uint64_t n)
{
	uint64_t w = n / 10;

	if (w > 200000) {
		w = 200000;
	}
	return w == 0 ? 1 : w;
}

/*
 * Prints the one result line:
 *   workload=W impl=tevent-c n=N ns_per_op=F ops_per_s=F<extra>
 */
static inline void print_result(const char *workload, uint64_t n, uint64_t ns,
				const char *extra)
{
	double per_op = (double)ns / (double)n;

	printf("workload=%s impl=%s n=%" PRIu64 " ns_per_op=%.3f ops_per_s=%.1f%s\n",
	       workload, IMPL_NAME, n, per_op, per_op > 0 ? 1e9 / per_op : 0.0,
	       extra != NULL ? extra : "");
	fflush(stdout);
}

/* A positive decimal integer, or -1. */
static inline long long parse_positive(const char *s)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0) {
		return -1;
	}
	return v;
}


/* ---- for the echo servers ------------------------------------------------ */
#ifdef BENCHES_SERVER
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read at a time by every echo server of benches/. */
#define ECHO_BUF 16384

/*
 * The port of `prog [PORT]` (none: 0, a free port); exits 2 with the usage
 * on a bad command line.
 */
static inline int port_arg(int argc, char **argv)
{
	const char *p = argc > 1 ? argv[1] : "0";
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(p, &end, 10);
	if (argc > 2 || errno != 0 || end == p || *end != '\0' || v < 0 || v > 65535) {
		fprintf(stderr, "usage: %s [PORT]   (PORT: 0 to 65535)\n", argv[0]);
		exit(2);
	}
	return (int)v;
}

/*
 * A non-blocking listening socket on 127.0.0.1:port (backlog 1024, as the
 * Rust servers'), after printing `LISTEN 127.0.0.1:<port> PID=<pid>`.
 * Exits 1 on failure.
 */
static inline int listen_loopback(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		fail("socket: %s", strerror(errno));
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		fail("bind/listen on 127.0.0.1:%d: %s", port, strerror(errno));
	}
	printf("LISTEN 127.0.0.1:%d PID=%d\n", ntohs(sa.sin_port), (int)getpid());
	fflush(stdout);
	return fd;
}

/* A new client, non-blocking, with TCP_NODELAY; -1 with errno when none. */
static inline int accept_client(int listen_fd)
{
	int one = 1;
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd >= 0) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}
#endif

#endif /* BENCHES_COMMON_H */

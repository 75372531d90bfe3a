/*
 * tevent_bench: the workloads of examples/bench.rs on Samba's C tevent
 * library (public <tevent.h> API, linked against the system libtevent).
 *
 *   tevent_bench <workload> <N>
 *
 * Workloads (one "op" each; see benches/README.md for the full table):
 *   immediate            one dispatch of an immediate that reschedules itself
 *   immediate_alloc      one hop of a chain of fresh immediates
 *   timers               one timer added and fired (N deadlines over 50 ms);
 *                        ns_per_op is process CPU time
 *   fd                   one fd event dispatched: a byte bounced between the
 *                        two ends of a socket pair, one read event on each
 *   req_lifecycle        one request created, finished and posted in its
 *                        send, delivered from the loop, received and freed
 *   req_lifecycle_batch  the same, 1000 chains at once
 *   nested               one (sub)request of a 16-deep chain whose innermost
 *                        waits for tevent_wakeup_send(zero); odd reps fail
 *                        there with EPROTO, which propagates out
 *
 * Output: one line on stdout,
 *   workload=W impl=tevent-c n=N ns_per_op=F ops_per_s=F [reqs_per_op=F]
 * and '#' diagnostics on stderr. Each workload first runs a warm-up of N/10
 * ops (at most 200 000). Exit status: 0; 1 when a self-check fails; 2 for a
 * bad command line.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <talloc.h>
#include <tevent.h>

#include "common.h"

#define CHAIN_DEPTH 16
#define BATCH 1000
#define SPREAD_US 50000
#define INJECTED EPROTO
#define MAGIC 0xa5a5a5a5a5a5a5a5ull

/* The errno a failed request carries (tevent_req_simple_recv_unix is in
 * Samba's util library, not in libtevent-dev: this is the same idea on the
 * public tevent_req_is_error). */
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

/* ---- immediate -------------------------------------------------------- */

struct imm_count {
	TALLOC_CTX *mem;
	uint64_t done;
	uint64_t want;
};

static void imm_again(struct tevent_context *ev, struct tevent_immediate *im,
		      void *data)
{
	struct imm_count *c = data;

	if (++c->done < c->want) {
		tevent_schedule_immediate(im, ev, imm_again, c);
	}
}

static uint64_t immediate(struct tevent_context *ev, TALLOC_CTX *mem, uint64_t n)
{
	struct imm_count c = { .mem = mem, .want = n };
	struct tevent_immediate *im = tevent_create_immediate(mem);
	uint64_t t0, t1;

	if (im == NULL) {
		fail("immediate: out of memory");
	}
	t0 = wall_ns();
	tevent_schedule_immediate(im, ev, imm_again, &c);
	if (tevent_loop_wait(ev) != 0) {
		fail("tevent_loop_wait failed");
	}
	t1 = wall_ns();
	if (c.done != n) {
		fail("immediate: %" PRIu64 " of %" PRIu64 " fired", c.done, n);
	}
	talloc_free(im);
	return t1 - t0;
}

/* ---- immediate_alloc: each hop a fresh immediate, the old one freed in
 * its own handler ---------------------------------------------------------- */

static void imm_hop(struct tevent_context *ev, struct tevent_immediate *im,
		    void *data)
{
	struct imm_count *c = data;

	if (++c->done < c->want) {
		struct tevent_immediate *next = tevent_create_immediate(c->mem);

		if (next == NULL) {
			fail("immediate_alloc: out of memory");
		}
		tevent_schedule_immediate(next, ev, imm_hop, c);
	}
	talloc_free(im);
}

static uint64_t immediate_alloc(struct tevent_context *ev, TALLOC_CTX *mem,
				uint64_t n)
{
	struct imm_count c = { .mem = mem, .want = n };
	struct tevent_immediate *first;
	uint64_t t0, t1;

	t0 = wall_ns();
	first = tevent_create_immediate(mem);
	if (first == NULL) {
		fail("immediate_alloc: out of memory");
	}
	tevent_schedule_immediate(first, ev, imm_hop, &c);
	if (tevent_loop_wait(ev) != 0) {
		fail("tevent_loop_wait failed");
	}
	t1 = wall_ns();
	if (c.done != n) {
		fail("immediate_alloc: %" PRIu64 " of %" PRIu64 " fired", c.done, n);
	}
	return t1 - t0;
}

/* ---- timers ------------------------------------------------------------- */

struct timer_check {
	uint64_t fired;
	uint64_t out_of_order;
	uint64_t early;
	struct timeval last;
};

struct timer_one {
	struct timer_check *check;
	struct timeval due;
};

static void timer_fired(struct tevent_context *ev, struct tevent_timer *te,
			struct timeval now, void *data)
{
	struct timer_one *t = data;
	struct timer_check *c = t->check;

	(void)ev;
	(void)te;
	if (tevent_timeval_compare(&t->due, &c->last) < 0) {
		c->out_of_order++;
	} else {
		c->last = t->due;
	}
	if (tevent_timeval_compare(&now, &t->due) < 0) {
		c->early++;
	}
	c->fired++;
}

/* Returns process CPU ns; *wall gets the wall time. */
static uint64_t timers(struct tevent_context *ev, TALLOC_CTX *mem, uint64_t n,
		       uint64_t *wall)
{
	struct timer_check c = { 0 };
	TALLOC_CTX *scope = talloc_new(mem);
	struct timer_one *all = talloc_array(scope, struct timer_one, n);
	uint64_t seed = TIMER_SEED, i, c0, w0;
	uint32_t *offs = talloc_array(scope, uint32_t, n);
	struct timeval base;

	if (scope == NULL || all == NULL || offs == NULL) {
		fail("timers: out of memory");
	}
	for (i = 0; i < n; i++) {
		offs[i] = (uint32_t)(splitmix64(&seed) % SPREAD_US);
	}
	c0 = cpu_ns();
	w0 = wall_ns();
	base = tevent_timeval_current();
	for (i = 0; i < n; i++) {
		all[i].check = &c;
		all[i].due = tevent_timeval_add(&base, 0, offs[i]);
		if (tevent_add_timer(ev, scope, all[i].due, timer_fired, &all[i]) == NULL) {
			fail("timers: out of memory");
		}
	}
	if (tevent_loop_wait(ev) != 0) {
		fail("tevent_loop_wait failed");
	}
	*wall = wall_ns() - w0;
	c0 = cpu_ns() - c0;
	if (c.fired != n || c.out_of_order != 0 || c.early != 0) {
		fail("timers: %" PRIu64 " of %" PRIu64 " fired, %" PRIu64
		     " out of order, %" PRIu64 " early",
		     c.fired, n, c.out_of_order, c.early);
	}
	talloc_free(scope);
	return c0;
}

/* ---- fd: a byte bounced between the two ends of a socket pair ----------- */

struct bounce {
	int fds[2];
	struct tevent_fd *fde[2];
	uint64_t done;
	uint64_t want;
	uint64_t bad;
};

static void bounce_readable(struct tevent_context *ev, struct tevent_fd *fde,
			    uint16_t flags, void *data)
{
	struct bounce *b = data;
	int side = fde == b->fde[0] ? 0 : 1;
	unsigned char byte;

	(void)ev;
	(void)flags;
	if (read(b->fds[side], &byte, 1) != 1) {
		fail("fd: read: %s", strerror(errno));
	}
	if (byte != (unsigned char)b->done) {
		b->bad++;
	}
	if (++b->done < b->want) {
		byte = (unsigned char)b->done;
		if (write(b->fds[side], &byte, 1) != 1) {
			fail("fd: write: %s", strerror(errno));
		}
	}
}

static uint64_t fd_bounce(struct tevent_context *ev, TALLOC_CTX *mem, uint64_t n)
{
	struct bounce b = { .want = n };
	unsigned char first = 0;
	uint64_t t0, t1;
	int i;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, b.fds) != 0) {
		fail("socketpair: %s", strerror(errno));
	}
	for (i = 0; i < 2; i++) {
		fcntl(b.fds[i], F_SETFL, fcntl(b.fds[i], F_GETFL) | O_NONBLOCK);
		b.fde[i] = tevent_add_fd(ev, mem, b.fds[i], TEVENT_FD_READ,
					 bounce_readable, &b);
		if (b.fde[i] == NULL) {
			fail("fd: out of memory");
		}
	}
	t0 = wall_ns();
	/* The first byte goes in at end 1, so end 0 reads it first. */
	if (write(b.fds[1], &first, 1) != 1) {
		fail("fd: write: %s", strerror(errno));
	}
	while (b.done < n) {
		if (tevent_loop_once(ev) != 0) {
			fail("tevent_loop_once failed");
		}
	}
	t1 = wall_ns();
	if (b.bad != 0) {
		fail("fd: %" PRIu64 " bytes out of sequence", b.bad);
	}
	talloc_free(b.fde[0]);
	talloc_free(b.fde[1]);
	close(b.fds[0]);
	close(b.fds[1]);
	return t1 - t0;
}

/* ---- req_lifecycle ------------------------------------------------------- */

struct lc_state {
	uint64_t out;
};

/* A request with a small state that is finished inside its send. */
static struct tevent_req *lc_send(TALLOC_CTX *mem, struct tevent_context *ev,
				  uint64_t id)
{
	struct lc_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct lc_state);

	if (req == NULL) {
		return NULL;
	}
	state->out = id ^ MAGIC;
	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static int lc_recv(struct tevent_req *req, uint64_t *out)
{
	struct lc_state *state = tevent_req_data(req, struct lc_state);
	int err = req_errno(req);

	if (err == 0) {
		*out = state->out;
	}
	tevent_req_received(req);
	return err;
}

struct lc_run {
	struct tevent_context *ev;
	TALLOC_CTX *mem;
	uint64_t per_chain;
	uint64_t completed;
	uint64_t errors;
};

/* One chain of sequential requests; the callback's private data. */
struct lc_chain {
	struct lc_run *run;
	uint64_t index;
	uint64_t issued;
};

static void lc_finished(struct tevent_req *subreq);

static void lc_next(struct lc_chain *chain)
{
	struct tevent_req *subreq = lc_send(chain->run->mem, chain->run->ev,
					    (chain->index << 32) | chain->issued);

	if (subreq == NULL) {
		fail("req_lifecycle: out of memory");
	}
	chain->issued++;
	tevent_req_set_callback(subreq, lc_finished, chain);
}

static void lc_finished(struct tevent_req *subreq)
{
	struct lc_chain *chain = tevent_req_callback_data(subreq, struct lc_chain);
	uint64_t out = 0;
	int err = lc_recv(subreq, &out);

	TALLOC_FREE(subreq);
	if (err != 0 ||
	    out != (((chain->index << 32) | (chain->issued - 1)) ^ MAGIC)) {
		chain->run->errors++;
	}
	chain->run->completed++;
	if (chain->issued < chain->run->per_chain) {
		lc_next(chain);
	}
}

static uint64_t req_lifecycle(struct tevent_context *ev, TALLOC_CTX *mem,
			      uint64_t width, uint64_t per_chain)
{
	struct lc_run run = { .ev = ev, .mem = mem, .per_chain = per_chain };
	TALLOC_CTX *scope = talloc_new(mem);
	struct lc_chain **chains = talloc_array(scope, struct lc_chain *, width);
	uint64_t i, t0, t1;

	if (chains == NULL) {
		fail("req_lifecycle: out of memory");
	}
	/* tevent_req_callback_data() checks the talloc type of the data. */
	for (i = 0; i < width; i++) {
		chains[i] = talloc_zero(scope, struct lc_chain);
		if (chains[i] == NULL) {
			fail("req_lifecycle: out of memory");
		}
		chains[i]->run = &run;
		chains[i]->index = i;
	}
	t0 = wall_ns();
	for (i = 0; i < width; i++) {
		lc_next(chains[i]);
	}
	if (tevent_loop_wait(ev) != 0) {
		fail("tevent_loop_wait failed");
	}
	t1 = wall_ns();
	if (run.completed != width * per_chain || run.errors != 0) {
		fail("req_lifecycle: %" PRIu64 " of %" PRIu64 " completed, %" PRIu64
		     " wrong", run.completed, width * per_chain, run.errors);
	}
	talloc_free(scope);
	return t1 - t0;
}

/* ---- nested -------------------------------------------------------------- */

struct nest_state {
	bool fail;
};

static void nest_woken(struct tevent_req *subreq);
static void nest_inner_done(struct tevent_req *subreq);

static struct tevent_req *nest_send(TALLOC_CTX *mem, struct tevent_context *ev,
				    unsigned depth, bool fail_it)
{
	struct nest_state *state;
	struct tevent_req *req = tevent_req_create(mem, &state, struct nest_state);
	struct tevent_req *subreq;

	if (req == NULL) {
		return NULL;
	}
	state->fail = fail_it;
	if (depth == 0) {
		subreq = tevent_wakeup_send(state, ev, tevent_timeval_zero());
		if (tevent_req_nomem(subreq, req)) {
			return tevent_req_post(req, ev);
		}
		tevent_req_set_callback(subreq, nest_woken, req);
	} else {
		subreq = nest_send(state, ev, depth - 1, fail_it);
		if (tevent_req_nomem(subreq, req)) {
			return tevent_req_post(req, ev);
		}
		tevent_req_set_callback(subreq, nest_inner_done, req);
	}
	return req;
}

static void nest_woken(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	struct nest_state *state = tevent_req_data(req, struct nest_state);
	bool ok = tevent_wakeup_recv(subreq);

	TALLOC_FREE(subreq);
	if (!ok) {
		tevent_req_error(req, EIO);
	} else if (state->fail) {
		tevent_req_error(req, INJECTED);
	} else {
		tevent_req_done(req);
	}
}

static void nest_inner_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data(subreq, struct tevent_req);
	int err = req_errno(subreq);

	tevent_req_received(subreq);
	TALLOC_FREE(subreq);
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

struct nest_run {
	struct tevent_context *ev;
	TALLOC_CTX *mem;
	uint64_t reps;
	uint64_t issued;
	uint64_t errors;
};

static void nest_rep_done(struct tevent_req *req);

static void nest_rep(struct nest_run *run)
{
	struct tevent_req *req = nest_send(run->mem, run->ev, CHAIN_DEPTH - 1,
					   run->issued % 2 == 1);

	if (req == NULL) {
		fail("nested: out of memory");
	}
	run->issued++;
	tevent_req_set_callback(req, nest_rep_done, run);
}

static void nest_rep_done(struct tevent_req *req)
{
	struct nest_run *run = tevent_req_callback_data(req, struct nest_run);
	int want = (run->issued - 1) % 2 == 1 ? INJECTED : 0;
	int err = req_errno(req);

	tevent_req_received(req);
	TALLOC_FREE(req);
	if (err != want) {
		run->errors++;
	}
	if (run->issued < run->reps) {
		nest_rep(run);
	}
}

static uint64_t nested(struct tevent_context *ev, TALLOC_CTX *mem, uint64_t reps)
{
	struct nest_run *run = talloc_zero(mem, struct nest_run);
	uint64_t t0, t1;

	if (run == NULL) {
		fail("nested: out of memory");
	}
	run->ev = ev;
	run->mem = mem;
	run->reps = reps;
	t0 = wall_ns();
	nest_rep(run);
	if (tevent_loop_wait(ev) != 0) {
		fail("tevent_loop_wait failed");
	}
	t1 = wall_ns();
	if (run->issued != reps || run->errors != 0) {
		fail("nested: %" PRIu64 " of %" PRIu64 " reps, %" PRIu64 " wrong",
		     run->issued, reps, run->errors);
	}
	talloc_free(run);
	return t1 - t0;
}

/* ---- main ----------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr,
		"usage: tevent_bench <workload> <N>\n"
		"workloads: immediate immediate_alloc timers fd req_lifecycle "
		"req_lifecycle_batch nested\n");
	return 2;
}

int main(int argc, char **argv)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	const char *w;
	long long parsed;
	uint64_t n, ns, wall = 0;
	char extra[96] = "";

	if (argc != 3) {
		return usage();
	}
	w = argv[1];
	parsed = parse_positive(argv[2]);
	if (parsed < 0) {
		fprintf(stderr, "error: bad N '%s' (want a positive integer)\n", argv[2]);
		return 2;
	}
	n = (uint64_t)parsed;
	mem = talloc_new(NULL);
	ev = tevent_context_init(mem);
	if (mem == NULL || ev == NULL) {
		fail("tevent_context_init failed");
	}
	if (strcmp(w, "immediate") == 0) {
		immediate(ev, mem, warmup_of(n));
		ns = immediate(ev, mem, n);
	} else if (strcmp(w, "immediate_alloc") == 0) {
		immediate_alloc(ev, mem, warmup_of(n));
		ns = immediate_alloc(ev, mem, n);
	} else if (strcmp(w, "timers") == 0) {
		timers(ev, mem, warmup_of(n), &wall);
		ns = timers(ev, mem, n, &wall);
		fprintf(stderr, "# timers: ns_per_op is process CPU time; wall=%.3f ms\n",
			(double)wall / 1e6);
	} else if (strcmp(w, "fd") == 0) {
		fd_bounce(ev, mem, warmup_of(n));
		ns = fd_bounce(ev, mem, n);
	} else if (strcmp(w, "req_lifecycle") == 0) {
		req_lifecycle(ev, mem, 1, warmup_of(n));
		ns = req_lifecycle(ev, mem, 1, n);
	} else if (strcmp(w, "req_lifecycle_batch") == 0) {
		uint64_t per_chain = (n + BATCH - 1) / BATCH;

		n = per_chain * BATCH;
		req_lifecycle(ev, mem, BATCH, per_chain / 10 > 0 ? per_chain / 10 : 1);
		ns = req_lifecycle(ev, mem, BATCH, per_chain);
	} else if (strcmp(w, "nested") == 0) {
		uint64_t reps = n / CHAIN_DEPTH > 0 ? n / CHAIN_DEPTH : 1;

		n = reps * CHAIN_DEPTH;
		nested(ev, mem, warmup_of(reps));
		ns = nested(ev, mem, reps);
		snprintf(extra, sizeof(extra), " reqs_per_op=%.4f",
			 (double)(CHAIN_DEPTH + 1) / CHAIN_DEPTH);
	} else {
		talloc_free(mem);
		return usage();
	}
	print_result(w, n, ns, extra);
	talloc_free(mem);
	return 0;
}

/*
 * What port_diff.c and kq_diff.c share: the seeded generator, the files
 * (pipes or socketpairs whose ends sit at fixed numbers), a result's
 * printing, and main's loop over the seeds. Included once by each.
 */
#ifndef EVSHIM_TESTBINS_DIFF_WALK_H
#define EVSHIM_TESTBINS_DIFF_WALK_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kFiles = 6, kFirstNumber = 100 };

struct file {
  int r, w; /* -1: closed */
};

static uint64_t rng_state;

static void seed_rand(unsigned seed) {
  rng_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull);
}

static unsigned next_rand(unsigned n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

/* Each file's ends sit at fixed numbers (kFirstNumber + 2 * its index, and
 * the next), whatever descriptors the engine holds in either mode, so the
 * walk's numbers and their reuse are the same in both. */
static int place(int fd, int number) {
  if (fd == number) return fd;
  if (dup2(fd, number) != number) {
    perror("dup2");
    exit(2);
  }
  close(fd);
  return number;
}

static void open_file(struct file *f, int index, int socket) {
  int p[2];
  int ok = socket ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) : pipe2(p, O_NONBLOCK);
  if (ok != 0) {
    perror("open_file");
    exit(2);
  }
  f->r = place(p[0], kFirstNumber + 2 * index);
  f->w = place(p[1], kFirstNumber + 2 * index + 1);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void result(int r) {
  if (r < 0) {
    printf(" = -1 %s", strerrorname_np(errno));
  } else {
    printf(" = %d", r);
  }
}

/* The file steps both walks take on file `index` of `files`, each printing
 * its line's text. `buf` holds `size` bytes to write, and takes reads. */
static void write_step(struct file *f, char *buf, size_t size) {
  const size_t n = next_rand(8) == 0 ? size : 1 + next_rand(3);
  printf(" write fd=%d n=%zu", f->w, n);
  ssize_t w = f->w < 0 ? (errno = EBADF, -1) : write(f->w, buf, n);
  printf(" = %zd%s%s", w, w < 0 ? " " : "", w < 0 ? strerrorname_np(errno) : "");
}

static void drain_step(struct file *f, char *buf, size_t size) {
  printf(" drain fd=%d", f->r);
  ssize_t total = 0, got;
  while (f->r >= 0 && (got = read(f->r, buf, size)) > 0) total += got;
  printf(" = %zd", total);
}

/* The file closed and opened again (a pipe or a socketpair) at its numbers. */
static void reopen_step(struct file *files, int index) {
  struct file *f = &files[index];
  const int socket = (int)next_rand(2);
  printf(" reopen fd=%d,%d socket=%d", f->r, f->w, socket);
  close_fd(&f->r);
  close_fd(&f->w);
  open_file(f, index, socket);
  printf(" -> %d,%d", f->r, f->w);
}

static void close_writer_step(struct file *f) {
  printf(" close-writer fd=%d", f->w);
  close_fd(&f->w);
}

/* Another file's reader moved over this one's number: the number names
 * another file now (illumos rule 10; knote_fdclose, OB kern_event.c:
 * 1826-1845, for the closed file). Moved, not copied: two numbers of one
 * file woken together activate their events in an order the seeds do not
 * give (pollwakeup's, the socket layer's), and the two paths differ there
 * (fast: the order of epoll's wait queue). */
static void move_step(struct file *files, struct file *f) {
  struct file *g = &files[next_rand(kFiles)];
  printf(" move %d over %d", g->r, f->r);
  if (g != f && g->r >= 0 && f->r >= 0) {
    result(dup2(g->r, f->r));
    close_fd(&g->r);
  } else {
    printf(" = skipped");
  }
}

/* PROG FIRST_SEED LAST_SEED STEPS: walk(seed, steps) for each seed. */
static int walk_main(int argc, char **argv, void (*walk)(unsigned seed, unsigned steps)) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FIRST_SEED LAST_SEED STEPS\n", argv[0]);
    return 2;
  }
  const unsigned first = (unsigned)strtoul(argv[1], NULL, 10), last = (unsigned)strtoul(argv[2], NULL, 10);
  const unsigned steps = (unsigned)strtoul(argv[3], NULL, 10);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  signal(SIGPIPE, SIG_IGN); /* a write to a closed reader: EPIPE */
  for (unsigned seed = first; seed <= last; seed++) walk(seed, steps);
  return 0;
}

#endif

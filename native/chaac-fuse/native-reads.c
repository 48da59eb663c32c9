// The native read path. When every byte of an open file is in balls with a
// copy in a local bin, JS gives the binding a read plan for the handle: per
// chunk, the ball file, its header length, block size and block hashes. A
// read of a handle with a plan is then served here by a few worker threads,
// without the JS thread: pread of the blocks, SHA-256 of each block not yet
// verified (OpenSSL, from the node binary), the reply from the buffers read
// into (fuse_reply_iov). Large spans of blocks not yet verified (the kernel's
// read-ahead) are read with O_DIRECT: a cold sequential read was bound by the
// CPU of two copies per byte besides the hash (page cache to buffer, buffer to
// reply), and the ball file's page cache only doubled the mount's. Anything that
// does not go exactly right (a block failing its hash, a short read, a file
// gone, a range outside the plan) is not answered here: the request goes to
// JS, whose path handles it as it handles any read (another copy, repair,
// EIO), so this path never answers anything but verified bytes.
//
// Plans are dropped before they can be stale: by the event loop when a
// write, a truncating setattr or open, or a release of the handle arrives,
// and by JS when a file's content changes otherwise (see src/fuse/fuse-ops.ts).
//
// Which blocks of a ball file were verified is kept per ball, with the file's
// identity (device, inode, size, mtime, ctime) when they were: checked on
// every read, so that a ball file rewritten or modified in place is verified
// again. Balls no plan names stay known (closed, their bitmaps kept) up to
// MAX_IDLE_BALLS and MAX_IDLE_BYTES of hashes, least recently used first out.
//
// How often each ball was read goes back to JS in batches (a ball's count
// once it reaches REPORT_EVERY, and what is left when no plan names it any
// more), so that the store's use counts, eviction order and promotion into
// the memory level see these reads as they see their own. A read counts one
// for each READ_UNIT of a ball it covers, so that the counts do not depend on
// how large the kernel makes its requests (up to 1 MiB). A plan may ask for
// a ball's count right after a given number of reads: the read that makes
// the store promote the ball is reported at once.
#define _GNU_SOURCE
#include "native-reads.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/sha.h>

#define HASH_SIZE 32
#define BUCKETS 1024
#define MAX_IDLE_BALLS 4096
#define MAX_IDLE_BYTES (16 << 20)
#define REPORT_EVERY 16
// The kernel's read-ahead: a sequential pass over a 4 MiB ball counts 32 reads, whatever the requests.
#define READ_UNIT (128 * 1024)
// O_DIRECT reads start and end on this boundary (the largest logical block size in use).
#define DIRECT_ALIGN 4096
// Spans of unverified blocks from this size up are read with O_DIRECT (see
// read_span): the kernel's read-ahead of a file read in order. Smaller reads,
// at random, go through the ball file's page cache, which keeps the rest of
// each block they verify for the reads that follow into it.
#define DIRECT_FROM (256 * 1024)

// A ball file held open; closed when the last user lets go.
typedef struct {
  int fd;
  // The same file opened for O_DIRECT: -2 until a read needs it, -1 when refused.
  int dfd;
  int users;
} file_t;

typedef struct ball {
  char id[65];
  char *path;
  uint32_t header_len;
  uint32_t block_size;
  uint32_t size;
  uint32_t nblocks;
  uint8_t *hashes;
  // The open ball file: NULL until a read needs it, and again after a block
  // failed its hash (the next read opens the path anew: JS may have repaired it).
  file_t *file;
  // Blocks verified (a bitmap, set atomically) of the file whose identity is
  // `seen`; `gen` counts resets, so a verification of the old file is not recorded for the new one.
  uint8_t *verified;
  struct stat seen;
  int has_seen;
  uint64_t gen;
  // Plans naming the ball; at 0 it is idle (on the LRU list, its file closed).
  int plans;
  // Reads not yet reported to JS, and those left before a report at once (0: none due).
  uint32_t unreported;
  uint32_t report_in;
  struct ball *hnext;
  struct ball *older;
  struct ball *newer;
} ball_t;

typedef struct plan {
  int refs;
  uint64_t fh;
  fuse_ino_t ino;
  uint64_t size;
  uint32_t chunk_size;
  uint32_t nchunks;
  // Reads of a file read without caching (cache skip) feed no use counts.
  int skip_cache;
  ball_t **chunks;
  struct plan *hnext;
} plan_t;

typedef struct note {
  char id[65];
  uint32_t reads;
  struct note *next;
} note_t;

typedef struct job {
  fuse_req_t req;
  plan_t *plan;
  fuse_ino_t ino;
  uint64_t fh;
  size_t size;
  off_t off;
  struct job *next;
} job_t;

struct readers {
  // Guards everything below but the counters and the bitmaps' bits.
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t *threads;
  int nthreads;
  int stopping;
  job_t *head, *tail;
  job_t *fwd_head, *fwd_tail;
  note_t *notes;
  plan_t *plans[BUCKETS];
  ball_t *balls[BUCKETS];
  // How many plans each inode has, by the same hashing: a write to a file without one costs a lookup.
  int ino_plans[BUCKETS];
  ball_t *idle_oldest, *idle_newest;
  int idle;
  size_t idle_bytes;
  forward_fn forward;
  void *arg;
  uint64_t reads, ball_reads, bytes, forwarded, verified;
};

static unsigned id_bucket (const char *id) {
  unsigned h = 0;
  for (int i = 0; i < 8; i++) h = h * 31 + (unsigned char) id[i];
  return h % BUCKETS;
}

static unsigned num_bucket (uint64_t n) {
  return (unsigned) ((n * 0x9e3779b97f4a7c15ULL) >> 54) % BUCKETS;
}

static void add (uint64_t *counter, uint64_t n) {
  __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

// ---- balls (under r->lock) ----

static void file_release (file_t *f) {
  if (--f->users > 0) return;
  close(f->fd);
  if (f->dfd >= 0) close(f->dfd);
  free(f);
}

static size_t ball_bytes (const ball_t *b) {
  return sizeof(ball_t) + (size_t) b->nblocks * HASH_SIZE + b->nblocks / 8 + 1;
}

static void idle_unlink (readers_t *r, ball_t *b) {
  if (b->older) b->older->newer = b->newer;
  else r->idle_oldest = b->newer;
  if (b->newer) b->newer->older = b->older;
  else r->idle_newest = b->older;
  b->older = b->newer = NULL;
  r->idle--;
  r->idle_bytes -= ball_bytes(b);
}

static void ball_free (readers_t *r, ball_t *b) {
  ball_t **p = &r->balls[id_bucket(b->id)];
  while (*p != b) p = &(*p)->hnext;
  *p = b->hnext;
  if (b->file) file_release(b->file);
  free(b->path);
  free(b->hashes);
  free(b->verified);
  free(b);
}

// Queues a ball's unreported reads for JS; 1 when JS must be woken for them.
static int report (readers_t *r, ball_t *b) {
  if (b->unreported == 0) return 0;
  note_t *n = malloc(sizeof(note_t));
  // Out of memory: the counts are a hint; they are lost, not the read.
  if (n != NULL) {
    memcpy(n->id, b->id, 65);
    n->reads = b->unreported;
    n->next = r->notes;
    r->notes = n;
  }
  b->unreported = 0;
  return n != NULL;
}

static void ball_unref (readers_t *r, ball_t *b) {
  if (--b->plans > 0) return;
  // Woken by whoever made the plan go (a worker, or the event loop, which drains notes as it drains reads).
  report(r, b);
  // An idle ball keeps no file open: an evicted ball file must free its space.
  if (b->file) {
    file_release(b->file);
    b->file = NULL;
  }
  b->older = r->idle_newest;
  if (r->idle_newest) r->idle_newest->newer = b;
  else r->idle_oldest = b;
  r->idle_newest = b;
  r->idle++;
  r->idle_bytes += ball_bytes(b);
  while (r->idle > MAX_IDLE_BALLS || r->idle_bytes > MAX_IDLE_BYTES) {
    ball_t *old = r->idle_oldest;
    idle_unlink(r, old);
    ball_free(r, old);
  }
}

static ball_t *ball_find (readers_t *r, const char *id) {
  for (ball_t *b = r->balls[id_bucket(id)]; b != NULL; b = b->hnext) {
    if (memcmp(b->id, id, 64) == 0) return b;
  }
  return NULL;
}

static ball_t *ball_take (readers_t *r, const plan_chunk_t *c) {
  ball_t *b = ball_find(r, c->id);
  if (b != NULL) {
    if (b->plans == 0) idle_unlink(r, b);
    // Another copy of the same bytes: opened instead the next time the file is (re)opened.
    if (strcmp(b->path, c->path) != 0) {
      char *path = strdup(c->path);
      if (path == NULL) return NULL;
      free(b->path);
      b->path = path;
    }
    b->plans++;
    if (c->report_at > 0) b->report_in = c->report_at;
    return b;
  }
  b = calloc(1, sizeof(ball_t));
  uint32_t nblocks = (uint32_t) (((uint64_t) c->size + c->block_size - 1) / c->block_size);
  if (b == NULL) return NULL;
  b->path = strdup(c->path);
  b->hashes = malloc((size_t) nblocks * HASH_SIZE + 1);
  b->verified = calloc(nblocks / 8 + 1, 1);
  if (b->path == NULL || b->hashes == NULL || b->verified == NULL) {
    free(b->path);
    free(b->hashes);
    free(b->verified);
    free(b);
    return NULL;
  }
  memcpy(b->id, c->id, 64);
  b->header_len = c->header_len;
  b->block_size = c->block_size;
  b->size = c->size;
  b->nblocks = nblocks;
  memcpy(b->hashes, c->hashes, (size_t) nblocks * HASH_SIZE);
  b->plans = 1;
  b->report_in = c->report_at;
  unsigned h = id_bucket(b->id);
  b->hnext = r->balls[h];
  r->balls[h] = b;
  return b;
}

// ---- plans (under r->lock) ----

static void plan_unref (readers_t *r, plan_t *p) {
  if (--p->refs > 0) return;
  for (uint32_t i = 0; i < p->nchunks; i++) if (p->chunks[i]) ball_unref(r, p->chunks[i]);
  free(p->chunks);
  free(p);
}

static void plan_remove (readers_t *r, plan_t **at) {
  plan_t *p = *at;
  *at = p->hnext;
  r->ino_plans[num_bucket(p->ino)]--;
  plan_unref(r, p);
}

static plan_t *plan_find (readers_t *r, uint64_t fh) {
  for (plan_t *p = r->plans[num_bucket(fh)]; p != NULL; p = p->hnext) if (p->fh == fh) return p;
  return NULL;
}

// ---- serving a read (worker threads) ----

static int same_file (const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
    a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int is_verified (ball_t *b, uint32_t block) {
  return (__atomic_load_n(&b->verified[block >> 3], __ATOMIC_ACQUIRE) >> (block & 7)) & 1;
}

// The ball's open file, held for the caller (file_release under r->lock); NULL when it cannot be opened.
static file_t *ball_file (readers_t *r, ball_t *b) {
  pthread_mutex_lock(&r->lock);
  file_t *f = b->file;
  if (f == NULL) {
    int fd = open(b->path, O_RDONLY | O_CLOEXEC);
    f = fd < 0 ? NULL : malloc(sizeof(file_t));
    if (f == NULL) {
      if (fd >= 0) close(fd);
      pthread_mutex_unlock(&r->lock);
      return NULL;
    }
    f->fd = fd;
    f->dfd = -2;
    f->users = 1;
    b->file = f;
  }
  f->users++;
  pthread_mutex_unlock(&r->lock);
  return f;
}

// The file's descriptor for O_DIRECT reads (the same open file, reopened), or
// -1 where the file system refuses them (tmpfs, the memory level).
static int direct_fd (readers_t *r, file_t *f) {
  pthread_mutex_lock(&r->lock);
  if (f->dfd == -2) {
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
    f->dfd = open(proc, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (f->dfd < 0) f->dfd = -1;
  }
  int fd = f->dfd;
  pthread_mutex_unlock(&r->lock);
  return fd;
}

// Each worker keeps the buffers of its last read for the next: a fresh one
// of a MiB costs its page faults and zeroing again.
#define KEPT_BUFFERS 2
static __thread struct { char *p; size_t cap; int used; } kept[KEPT_BUFFERS];

static char *buffer_get (size_t len) {
  int spare = -1;
  for (int i = 0; i < KEPT_BUFFERS; i++) {
    if (kept[i].used) continue;
    if (kept[i].cap >= len) {
      kept[i].used = 1;
      return kept[i].p;
    }
    spare = i;
  }
  void *p;
  if (posix_memalign(&p, DIRECT_ALIGN, len) != 0) return NULL;
  if (spare >= 0) {
    free(kept[spare].p);
    kept[spare].p = p;
    kept[spare].cap = len;
    kept[spare].used = 1;
  }
  return p;
}

static void buffer_put (char *p) {
  for (int i = 0; i < KEPT_BUFFERS; i++) {
    if (kept[i].p == p) {
      kept[i].used = 0;
      return;
    }
  }
  free(p);
}

// Bytes [from, to) of a ball file into a buffer of buffer_get; NULL when they
// cannot be read. `direct`: with O_DIRECT where the file system allows it:
// blocks read to be verified are hashed here and land in the mount's page
// cache, so a copy in the ball file's page cache would only cost a copy and memory.
static char *read_span (readers_t *r, file_t *f, off_t from, off_t to, int direct, char **data) {
  int dfd = direct ? direct_fd(r, f) : -1;
  if (dfd >= 0) {
    off_t lo = from & ~(off_t) (DIRECT_ALIGN - 1);
    size_t len = (size_t) (((to + DIRECT_ALIGN - 1) & ~(off_t) (DIRECT_ALIGN - 1)) - lo);
    char *buf = buffer_get(len);
    if (buf == NULL) return NULL;
    // The last block of a file not a multiple of DIRECT_ALIGN comes back short.
    if (pread(dfd, buf, len, lo) >= to - lo) {
      *data = buf + (from - lo);
      return buf;
    }
    buffer_put(buf);
  }
  char *buf = buffer_get((size_t) (to - from));
  if (buf == NULL) return NULL;
  if (pread(f->fd, buf, (size_t) (to - from), from) != to - from) {
    buffer_put(buf);
    return NULL;
  }
  *data = buf;
  return buf;
}

// Verified bytes [within, within + n) of a ball's data at *data, in the
// returned buffer (the caller gives it back with buffer_put); NULL when they cannot be had.
static char *read_ball (readers_t *r, ball_t *b, uint32_t within, uint32_t n, char **data) {
  file_t *f = ball_file(r, b);
  if (f == NULL) return NULL;

  char *buf = NULL;
  struct stat st;
  if (fstat(f->fd, &st) != 0) goto done;
  pthread_mutex_lock(&r->lock);
  if (!b->has_seen || !same_file(&st, &b->seen)) {
    // A new or changed ball file: its blocks are verified again.
    memset(b->verified, 0, b->nblocks / 8 + 1);
    b->seen = st;
    b->has_seen = 1;
    b->gen++;
  }
  uint64_t gen = b->gen;
  pthread_mutex_unlock(&r->lock);

  uint32_t bs = b->block_size;
  uint32_t first = within / bs, last = (within + n - 1) / bs;
  int all = 1;
  for (uint32_t i = first; i <= last && all; i++) all = is_verified(b, i);
  if (all) {
    buf = read_span(r, f, (off_t) b->header_len + within, (off_t) b->header_len + within + n, 0, data);
    goto done;
  }
  uint32_t start = first * bs;
  uint32_t end = (uint64_t) (last + 1) * bs < b->size ? (last + 1) * bs : b->size;
  char *span;
  buf = read_span(r, f, (off_t) b->header_len + start, (off_t) b->header_len + end, end - start >= DIRECT_FROM, &span);
  if (buf == NULL) goto done;
  for (uint32_t i = first; i <= last; i++) {
    if (is_verified(b, i)) continue;
    uint32_t from = i * bs - start;
    uint32_t len = (i == last ? end - start : (i + 1) * bs - start) - from;
    unsigned char digest[HASH_SIZE];
    SHA256((const unsigned char *) span + from, len, digest);
    if (memcmp(digest, b->hashes + (size_t) i * HASH_SIZE, HASH_SIZE) != 0) {
      // A bad copy: this file is not read again; JS decides what to do about it.
      pthread_mutex_lock(&r->lock);
      if (b->file == f) {
        b->file = NULL;
        file_release(f);
        b->has_seen = 0;
      }
      pthread_mutex_unlock(&r->lock);
      buffer_put(buf);
      buf = NULL;
      goto done;
    }
    add(&r->verified, 1);
    pthread_mutex_lock(&r->lock);
    if (b->gen == gen) __atomic_fetch_or(&b->verified[i >> 3], (uint8_t) (1 << (i & 7)), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&r->lock);
  }
  *data = span + (within - start);
done:
  pthread_mutex_lock(&r->lock);
  file_release(f);
  pthread_mutex_unlock(&r->lock);
  return buf;
}

// Answers a read from its plan: 0, or -1 (not answered) when any part of it cannot be served here.
static int serve (readers_t *r, job_t *j) {
  plan_t *p = j->plan;
  uint64_t off = (uint64_t) j->off;
  uint64_t end = off + j->size < p->size ? off + j->size : p->size;
  if (j->off < 0 || off >= end) return -1;
  // One piece per ball the read covers, each answered from the buffer it was read into.
  size_t most = (size_t) ((end - 1) / p->chunk_size - off / p->chunk_size + 1);
  struct iovec iov_here[4];
  char *bufs_here[4];
  struct iovec *iov = most <= 4 ? iov_here : malloc(most * sizeof(struct iovec));
  char **bufs = most <= 4 ? bufs_here : malloc(most * sizeof(char *));
  size_t pieces = 0;
  int rc = -1;
  if (iov == NULL || bufs == NULL) goto done;
  for (uint64_t pos = off; pos < end;) {
    uint64_t idx = pos / p->chunk_size;
    uint32_t within = (uint32_t) (pos - idx * p->chunk_size);
    uint64_t n = p->chunk_size - within < end - pos ? p->chunk_size - within : end - pos;
    ball_t *b = idx < p->nchunks ? p->chunks[idx] : NULL;
    char *data;
    if (b == NULL || within + n > b->size || (bufs[pieces] = read_ball(r, b, within, (uint32_t) n, &data)) == NULL) goto done;
    iov[pieces++] = (struct iovec) { .iov_base = data, .iov_len = n };
    if (!p->skip_cache) {
      pthread_mutex_lock(&r->lock);
      uint32_t units = (uint32_t) ((n + READ_UNIT - 1) / READ_UNIT);
      int due = b->report_in > 0 && (b->report_in <= units ? (b->report_in = 0, 1) : (b->report_in -= units, 0));
      b->unreported += units;
      int wake = (b->unreported >= REPORT_EVERY || due) && report(r, b);
      pthread_mutex_unlock(&r->lock);
      if (wake) r->forward(r->arg);
    }
    pos += n;
  }
  // A reply the kernel no longer waits for (interrupted, or the session ended) is no failure of ours.
  fuse_reply_iov(j->req, iov, (int) pieces);
  add(&r->reads, 1);
  add(&r->ball_reads, pieces);
  add(&r->bytes, end - off);
  rc = 0;
done:
  for (size_t i = 0; i < pieces; i++) buffer_put(bufs[i]);
  if (iov != iov_here) free(iov);
  if (bufs != bufs_here) free(bufs);
  return rc;
}

static void *work (void *arg) {
  readers_t *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (r->head == NULL && !r->stopping) pthread_cond_wait(&r->wake, &r->lock);
    job_t *j = r->head;
    if (j == NULL) break;
    r->head = j->next;
    if (r->head == NULL) r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    int rc = serve(r, j);
    pthread_mutex_lock(&r->lock);
    int noted = r->notes != NULL;
    plan_unref(r, j->plan);
    j->plan = NULL;
    if (rc == 0) {
      free(j);
      // The last plan naming a ball went with this read: its count goes to JS.
      if (!noted && r->notes != NULL) {
        pthread_mutex_unlock(&r->lock);
        r->forward(r->arg);
        pthread_mutex_lock(&r->lock);
      }
      continue;
    }
    j->next = NULL;
    if (r->fwd_tail) r->fwd_tail->next = j;
    else r->fwd_head = j;
    r->fwd_tail = j;
    add(&r->forwarded, 1);
    pthread_mutex_unlock(&r->lock);
    r->forward(r->arg);
    pthread_mutex_lock(&r->lock);
  }
  pthread_mutex_unlock(&r->lock);
  for (int i = 0; i < KEPT_BUFFERS; i++) free(kept[i].p);
  return NULL;
}

// ---- the event loop's side ----

readers_t *readers_new (int threads, forward_fn forward, void *arg) {
  readers_t *r = calloc(1, sizeof(readers_t));
  if (r == NULL) return NULL;
  r->threads = calloc(threads, sizeof(pthread_t));
  if (r->threads == NULL) {
    free(r);
    return NULL;
  }
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->wake, NULL);
  r->forward = forward;
  r->arg = arg;
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&r->threads[i], NULL, work, r) != 0) break;
    r->nthreads++;
  }
  if (r->nthreads == 0) {
    readers_free(r);
    return NULL;
  }
  return r;
}

void readers_stop (readers_t *r) {
  pthread_mutex_lock(&r->lock);
  r->stopping = 1;
  pthread_cond_broadcast(&r->wake);
  pthread_mutex_unlock(&r->lock);
  for (int i = 0; i < r->nthreads; i++) pthread_join(r->threads[i], NULL);
  r->nthreads = 0;
}

void readers_free (readers_t *r) {
  for (int i = 0; i < BUCKETS; i++) while (r->plans[i]) plan_remove(r, &r->plans[i]);
  while (r->idle_oldest) {
    ball_t *b = r->idle_oldest;
    idle_unlink(r, b);
    ball_free(r, b);
  }
  while (r->notes) {
    note_t *n = r->notes;
    r->notes = n->next;
    free(n);
  }
  pthread_cond_destroy(&r->wake);
  pthread_mutex_destroy(&r->lock);
  free(r->threads);
  free(r);
}

int readers_take (readers_t *r, fuse_req_t req, uint64_t fh, size_t size, off_t off) {
  pthread_mutex_lock(&r->lock);
  plan_t *p = r->stopping ? NULL : plan_find(r, fh);
  // A read the plan does not cover (a hole, a ball not here, past the end) goes to JS at once.
  uint64_t end = p == NULL || off < 0 ? 0 : ((uint64_t) off + size < p->size ? (uint64_t) off + size : p->size);
  if (p != NULL && (off < 0 || (uint64_t) off >= end)) p = NULL;
  for (uint64_t idx = p == NULL ? 0 : (uint64_t) off / p->chunk_size; p != NULL && idx * p->chunk_size < end; idx++) {
    if (idx >= p->nchunks || p->chunks[idx] == NULL) p = NULL;
  }
  job_t *j = p == NULL ? NULL : malloc(sizeof(job_t));
  if (j == NULL) {
    pthread_mutex_unlock(&r->lock);
    return 0;
  }
  p->refs++;
  *j = (job_t) { .req = req, .plan = p, .ino = p->ino, .fh = fh, .size = size, .off = off, .next = NULL };
  if (r->tail) r->tail->next = j;
  else r->head = j;
  r->tail = j;
  pthread_cond_signal(&r->wake);
  pthread_mutex_unlock(&r->lock);
  return 1;
}

int readers_forwarded (readers_t *r, fuse_req_t *req, fuse_ino_t *ino, uint64_t *fh, size_t *size, off_t *off) {
  pthread_mutex_lock(&r->lock);
  job_t *j = r->fwd_head;
  if (j != NULL) {
    r->fwd_head = j->next;
    if (r->fwd_head == NULL) r->fwd_tail = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  if (j == NULL) return 0;
  *req = j->req;
  *ino = j->ino;
  *fh = j->fh;
  *size = j->size;
  *off = j->off;
  free(j);
  return 1;
}

int readers_note (readers_t *r, char id[65], uint32_t *reads) {
  pthread_mutex_lock(&r->lock);
  note_t *n = r->notes;
  if (n != NULL) r->notes = n->next;
  pthread_mutex_unlock(&r->lock);
  if (n == NULL) return 0;
  memcpy(id, n->id, 65);
  *reads = n->reads;
  free(n);
  return 1;
}

int readers_set_plan (readers_t *r, uint64_t fh, fuse_ino_t ino, uint64_t file_size, uint32_t chunk_size, int skip_cache,
                      const plan_chunk_t *chunks, uint32_t count) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < count; i++) if (chunks[i].index + 1 > n) n = chunks[i].index + 1;
  plan_t *p = calloc(1, sizeof(plan_t));
  ball_t **slots = calloc(n + 1, sizeof(ball_t *));
  if (p == NULL || slots == NULL) {
    free(p);
    free(slots);
    return -1;
  }
  *p = (plan_t) { .refs = 1, .fh = fh, .ino = ino, .size = file_size, .chunk_size = chunk_size, .nchunks = n, .skip_cache = skip_cache, .chunks = slots };
  pthread_mutex_lock(&r->lock);
  int rc = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (slots[chunks[i].index] != NULL) continue;
    slots[chunks[i].index] = ball_take(r, &chunks[i]);
    if (slots[chunks[i].index] == NULL) rc = -1;
  }
  if (rc != 0) {
    plan_unref(r, p);
  } else {
    unsigned h = num_bucket(fh);
    for (plan_t **at = &r->plans[h]; *at != NULL; at = &(*at)->hnext) {
      if ((*at)->fh == fh) {
        plan_remove(r, at);
        break;
      }
    }
    p->hnext = r->plans[h];
    r->plans[h] = p;
    r->ino_plans[num_bucket(ino)]++;
  }
  int wake = r->notes != NULL;
  pthread_mutex_unlock(&r->lock);
  if (wake) r->forward(r->arg);
  return rc;
}

void readers_drop_fh (readers_t *r, uint64_t fh) {
  pthread_mutex_lock(&r->lock);
  for (plan_t **at = &r->plans[num_bucket(fh)]; *at != NULL; at = &(*at)->hnext) {
    if ((*at)->fh == fh) {
      plan_remove(r, at);
      break;
    }
  }
  int wake = r->notes != NULL;
  pthread_mutex_unlock(&r->lock);
  if (wake) r->forward(r->arg);
}

void readers_drop_ino (readers_t *r, fuse_ino_t ino) {
  pthread_mutex_lock(&r->lock);
  if (r->ino_plans[num_bucket(ino)] > 0) {
    for (int i = 0; i < BUCKETS; i++) {
      for (plan_t **at = &r->plans[i]; *at != NULL;) {
        if ((*at)->ino == ino) plan_remove(r, at);
        else at = &(*at)->hnext;
      }
    }
  }
  int wake = r->notes != NULL;
  pthread_mutex_unlock(&r->lock);
  if (wake) r->forward(r->arg);
}

void readers_stats (readers_t *r, double out[5]) {
  out[0] = (double) __atomic_load_n(&r->reads, __ATOMIC_RELAXED);
  out[1] = (double) __atomic_load_n(&r->ball_reads, __ATOMIC_RELAXED);
  out[2] = (double) __atomic_load_n(&r->bytes, __ATOMIC_RELAXED);
  out[3] = (double) __atomic_load_n(&r->forwarded, __ATOMIC_RELAXED);
  out[4] = (double) __atomic_load_n(&r->verified, __ATOMIC_RELAXED);
}

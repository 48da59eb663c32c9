// Chaac's FUSE binding: libfuse 2.9's low-level (inode-based) API for Node.
//
// The kernel names every file by the inode number the agent gives it, so hard
// links share one kernel inode, an open or unlinked file is reached by its
// number (never by a path that may be gone), and inode lifetimes follow the
// kernel's lookup counts (forget). The JS thread's event loop reads requests
// from /dev/fuse (non-blocking, through a libuv poll handle) and dispatches
// each to JS at once: no thread hop between the kernel and the agent, which
// is most of the cost of a small request. JS answers each request once,
// later, with one of the reply functions. Nothing here blocks the JS thread.
// Reads of handles with a read plan are the exception: a few C threads serve
// them from local ball files, without JS (native-reads.c).
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>

#include "native-reads.h"
#include "pid-io.h"
#include "kernel-init.h"
#include "takeover.h"
#include "direct-write.h"
#include "verify-blocks.h"
#include "pool-job.h"

// Worker threads of the native read path.
#define READERS 4

enum {
  OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK, OP_RMDIR,
  OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE, OP_FSYNC,
  OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_CREATE, OP_STOPPED, OP_BALL_READS, OP_INIT
};

// What JS gets of the kernel's FUSE_INIT: what it sent, then what this session asked for.
enum { IN_MAJOR, IN_MINOR, IN_MAX_READAHEAD, IN_FLAGS, IN_WANT, IN_MAX_WRITE, IN_COUNT };

// Values of a setattr, in the order JS reads them.
enum { SA_MODE, SA_UID, SA_GID, SA_SIZE, SA_ATIME, SA_MTIME, SA_COUNT };

// Attributes as JS sends them (a Float64Array), times in milliseconds.
enum { AT_INO, AT_MODE, AT_NLINK, AT_UID, AT_GID, AT_RDEV, AT_SIZE, AT_BLOCKS, AT_ATIME, AT_MTIME, AT_CTIME, AT_BLKSIZE, AT_COUNT };

typedef struct {
  struct fuse_session *se;
  struct fuse_chan *ch;
  napi_env env;
  napi_ref dispatch;
  napi_async_context async_context;
  uv_poll_t poll;
  char *buf;
  size_t bufsize;
  double entry_timeout;
  double attr_timeout;
  // Busy polling, see on_readable.
  int64_t busy_poll_ns;
  int64_t answered_at;
  int spin;
  // Requests handed to JS and not answered yet.
  int pending;
  // The native read path, and how its workers hand back reads they could not serve.
  readers_t *readers;
  uv_async_t forward;
  // The kernel ended the session: reads handed back are refused, no longer sent to JS.
  int stopped;
  int open_handles;
  // The kernel's FUSE_INIT, kept so that a later agent can take the connection over (takeover.c).
  init_params_t init;
  int inited;
  // Set while a takeover feeds libfuse its INIT: JS already knows those values.
  int quiet_init;
  // Requests the kernel sent again after a takeover.
  double resent;
} session_t;

static int64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// One request on its way to JS. Strings are copies; write data is lent
// (libfuse's read buffer, valid until the op callback returns: JS gets it
// for the length of its dispatch call, see call_js).
typedef struct {
  int op;
  fuse_req_t req;
  fuse_ino_t ino;
  fuse_ino_t ino2;
  char *name;
  char *name2;
  uint64_t fh;
  int has_fh;
  int flags;
  uint32_t mode;
  uint64_t rdev;
  uint64_t size;
  int64_t off;
  const char *data;
  double setattr[SA_COUNT];
  double init[IN_COUNT];
  uint32_t uid;
  uint32_t gid;
} request_t;

// What JS holds of a request: the request until it is answered, then NULL.
typedef struct { fuse_req_t req; } token_t;

static void free_token (napi_env env, void *data, void *hint) {
  free(data);
}

static request_t *request (int op, fuse_req_t req, fuse_ino_t ino) {
  request_t *r = calloc(1, sizeof(request_t));
  if (r == NULL) return NULL;
  r->op = op;
  r->req = req;
  r->ino = ino;
  if (req != NULL) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    r->uid = ctx->uid;
    r->gid = ctx->gid;
  }
  return r;
}

static void request_free (request_t *r) {
  free(r->name);
  free(r->name2);
  free(r);
}

static void set_fh (request_t *r, struct fuse_file_info *fi) {
  if (fi == NULL) return;
  r->fh = fi->fh;
  r->has_fh = 1;
}

static void call_js (session_t *s, request_t *r);

// Hands a request to JS; answers ENOMEM at once when it cannot.
static void enqueue (fuse_req_t req, request_t *r) {
  if (r == NULL) {
    if (req != NULL) fuse_reply_err(req, ENOMEM);
    return;
  }
  call_js(fuse_req_userdata(req), r);
}

static char *copy (const char *s) {
  return s == NULL ? NULL : strdup(s);
}

static double ms_of (const struct timespec *ts) {
  return floor((double) ts->tv_sec * 1000 + (double) ts->tv_nsec / 1e6);
}

// ---- requests (read by the event loop, see on_readable) ----

static void ll_init (void *userdata, struct fuse_conn_info *conn) {
  session_t *s = userdata;
  // O_TRUNC arrives with open, saving a setattr round trip.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_BIG_WRITES) conn->want |= FUSE_CAP_BIG_WRITES;
  s->inited = 1;
  if (s->quiet_init) return;
  // JS keeps these for the agent that may take the connection over.
  request_t *r = request(OP_INIT, NULL, 0);
  if (r == NULL) return;
  r->init[IN_MAJOR] = s->init.major;
  r->init[IN_MINOR] = s->init.minor;
  r->init[IN_MAX_READAHEAD] = s->init.max_readahead;
  r->init[IN_FLAGS] = s->init.flags;
  r->init[IN_WANT] = conn->want;
  r->init[IN_MAX_WRITE] = kernel_max_write(&s->init, conn->max_write);
  call_js(s, r);
}

static void ll_lookup (fuse_req_t req, fuse_ino_t parent, const char *name) {
  request_t *r = request(OP_LOOKUP, req, parent);
  if (r) r->name = copy(name);
  enqueue(req, r);
}

static void ll_forget (fuse_req_t req, fuse_ino_t ino, unsigned long nlookup) {
  session_t *s = fuse_req_userdata(req);
  request_t *r = request(OP_FORGET, NULL, ino);
  fuse_reply_none(req);
  if (r == NULL) return;
  r->size = nlookup;
  call_js(s, r);
}

static void ll_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  request_t *r = request(OP_GETATTR, req, ino);
  if (r) set_fh(r, fi);
  enqueue(req, r);
}

// A change of a file's bytes arrived: reads from now on go to JS, which sees it.
static void drop_plans (fuse_req_t req, fuse_ino_t ino) {
  session_t *s = fuse_req_userdata(req);
  readers_drop_ino(s->readers, ino);
}

static void ll_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  if (to_set & FUSE_SET_ATTR_SIZE) drop_plans(req, ino);
  request_t *r = request(OP_SETATTR, req, ino);
  if (r) {
    set_fh(r, fi);
    r->flags = to_set;
    r->setattr[SA_MODE] = attr->st_mode;
    r->setattr[SA_UID] = attr->st_uid;
    r->setattr[SA_GID] = attr->st_gid;
    r->setattr[SA_SIZE] = attr->st_size;
    r->setattr[SA_ATIME] = ms_of(&attr->st_atim);
    r->setattr[SA_MTIME] = ms_of(&attr->st_mtim);
  }
  enqueue(req, r);
}

static void ll_readlink (fuse_req_t req, fuse_ino_t ino) {
  enqueue(req, request(OP_READLINK, req, ino));
}

static void ll_mknod (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  request_t *r = request(OP_MKNOD, req, parent);
  if (r) {
    r->name = copy(name);
    r->mode = mode;
    r->rdev = rdev;
  }
  enqueue(req, r);
}

static void ll_mkdir (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  request_t *r = request(OP_MKDIR, req, parent);
  if (r) {
    r->name = copy(name);
    r->mode = mode;
  }
  enqueue(req, r);
}

static void ll_unlink (fuse_req_t req, fuse_ino_t parent, const char *name) {
  request_t *r = request(OP_UNLINK, req, parent);
  if (r) r->name = copy(name);
  enqueue(req, r);
}

static void ll_rmdir (fuse_req_t req, fuse_ino_t parent, const char *name) {
  request_t *r = request(OP_RMDIR, req, parent);
  if (r) r->name = copy(name);
  enqueue(req, r);
}

static void ll_symlink (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  request_t *r = request(OP_SYMLINK, req, parent);
  if (r) {
    r->name = copy(name);
    r->name2 = copy(link);
  }
  enqueue(req, r);
}

static void ll_rename (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname) {
  request_t *r = request(OP_RENAME, req, parent);
  if (r) {
    r->name = copy(name);
    r->ino2 = newparent;
    r->name2 = copy(newname);
  }
  enqueue(req, r);
}

static void ll_link (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  request_t *r = request(OP_LINK, req, ino);
  if (r) {
    r->ino2 = newparent;
    r->name2 = copy(newname);
  }
  enqueue(req, r);
}

static void ll_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (fi->flags & O_TRUNC) drop_plans(req, ino);
  request_t *r = request(OP_OPEN, req, ino);
  if (r) r->flags = fi->flags;
  enqueue(req, r);
}

static void ll_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = fuse_req_userdata(req);
  pid_io_add(fuse_req_ctx(req)->pid, size, 0);
  if (fi != NULL && readers_take(s->readers, req, fi->fh, size, off)) return;
  request_t *r = request(OP_READ, req, ino);
  if (r) {
    set_fh(r, fi);
    r->size = size;
    r->off = off;
  }
  enqueue(req, r);
}

static void ll_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  drop_plans(req, ino);
  pid_io_add(fuse_req_ctx(req)->pid, 0, size);
  request_t *r = request(OP_WRITE, req, ino);
  if (r) {
    set_fh(r, fi);
    r->size = size;
    r->off = off;
    r->data = buf;
  }
  enqueue(req, r);
}

static void ll_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  request_t *r = request(OP_FLUSH, req, ino);
  if (r) set_fh(r, fi);
  enqueue(req, r);
}

static void ll_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = fuse_req_userdata(req);
  readers_drop_fh(s->readers, fi->fh);
  request_t *r = request(OP_RELEASE, req, ino);
  if (r) set_fh(r, fi);
  enqueue(req, r);
}

static void ll_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  request_t *r = request(OP_FSYNC, req, ino);
  if (r) {
    set_fh(r, fi);
    r->flags = datasync;
  }
  enqueue(req, r);
}

static void ll_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  request_t *r = request(OP_OPENDIR, req, ino);
  if (r) r->flags = fi->flags;
  enqueue(req, r);
}

static void ll_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  request_t *r = request(OP_READDIR, req, ino);
  if (r) {
    set_fh(r, fi);
    r->size = size;
    r->off = off;
  }
  enqueue(req, r);
}

static void ll_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  request_t *r = request(OP_RELEASEDIR, req, ino);
  if (r) set_fh(r, fi);
  enqueue(req, r);
}

static void ll_fsyncdir (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  request_t *r = request(OP_FSYNCDIR, req, ino);
  if (r) {
    set_fh(r, fi);
    r->flags = datasync;
  }
  enqueue(req, r);
}

static void ll_statfs (fuse_req_t req, fuse_ino_t ino) {
  enqueue(req, request(OP_STATFS, req, ino));
}

static void ll_create (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  request_t *r = request(OP_CREATE, req, parent);
  if (r) {
    r->name = copy(name);
    r->mode = mode;
    r->flags = fi->flags;
  }
  enqueue(req, r);
}

static const struct fuse_lowlevel_ops ops = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .create = ll_create,
};

// ---- the JS side of a request ----

static napi_value num (napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value str (napi_env env, const char *s) {
  napi_value out;
  if (s == NULL) napi_get_null(env, &out);
  else napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

// A Float64Array holding a copy of `n` values.
static napi_value float64s (napi_env env, const double *v, size_t n) {
  napi_value ab, out;
  void *raw;
  napi_create_arraybuffer(env, n * sizeof(double), &raw, &ab);
  memcpy(raw, v, n * sizeof(double));
  napi_create_typedarray(env, napi_float64_array, n, ab, 0, &out);
  return out;
}

// Calls dispatch(op, req, ino, ...args). Runs from a libuv callback, outside
// any JS frame: make_callback opens the callback scope, so promise jobs the
// dispatcher starts run when it returns, as after any other I/O callback.
static void call_js (session_t *s, request_t *r) {
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[9];
  size_t argc = 3;
  napi_value lent = NULL;
  argv[0] = num(env, r->op);
  if (r->req != NULL) {
    token_t *token = malloc(sizeof(token_t));
    if (token == NULL) {
      fuse_reply_err(r->req, ENOMEM);
      request_free(r);
      napi_close_handle_scope(env, scope);
      return;
    }
    token->req = r->req;
    napi_create_external(env, token, free_token, NULL, &argv[1]);
    s->pending++;
  } else {
    napi_get_null(env, &argv[1]);
  }
  argv[2] = num(env, (double) r->ino);
  napi_value fh = r->has_fh ? num(env, (double) r->fh) : NULL;
  if (fh == NULL) napi_get_null(env, &fh);
  switch (r->op) {
    case OP_LOOKUP: case OP_UNLINK: case OP_RMDIR:
      argv[argc++] = str(env, r->name);
      break;
    case OP_FORGET:
      argv[argc++] = num(env, (double) r->size);
      break;
    case OP_GETATTR: case OP_FLUSH: case OP_RELEASE: case OP_RELEASEDIR:
      argv[argc++] = fh;
      break;
    case OP_SETATTR:
      argv[argc++] = num(env, r->flags);
      argv[argc++] = float64s(env, r->setattr, SA_COUNT);
      argv[argc++] = fh;
      break;
    case OP_MKNOD:
      argv[argc++] = str(env, r->name);
      argv[argc++] = num(env, r->mode);
      argv[argc++] = num(env, (double) r->rdev);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_MKDIR:
      argv[argc++] = str(env, r->name);
      argv[argc++] = num(env, r->mode);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_SYMLINK:
      argv[argc++] = str(env, r->name);
      argv[argc++] = str(env, r->name2);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_RENAME:
      argv[argc++] = str(env, r->name);
      argv[argc++] = num(env, (double) r->ino2);
      argv[argc++] = str(env, r->name2);
      break;
    case OP_LINK:
      argv[argc++] = num(env, (double) r->ino2);
      argv[argc++] = str(env, r->name2);
      break;
    case OP_OPEN: case OP_OPENDIR:
      argv[argc++] = num(env, r->flags);
      break;
    case OP_READ: case OP_READDIR:
      argv[argc++] = fh;
      argv[argc++] = num(env, (double) r->size);
      argv[argc++] = num(env, (double) r->off);
      break;
    case OP_WRITE:
      // No copy: the agent copies what it keeps before its first await
      // (OpenFile.write); the Buffer is detached below, so a reference kept
      // by mistake reads as empty, never as the next request's bytes.
      napi_create_external_buffer(env, r->size, (void *) r->data, NULL, NULL, &lent);
      argv[argc++] = fh;
      argv[argc++] = lent;
      argv[argc++] = num(env, (double) r->off);
      break;
    case OP_FSYNC: case OP_FSYNCDIR:
      argv[argc++] = fh;
      argv[argc++] = num(env, r->flags);
      break;
    case OP_CREATE:
      argv[argc++] = str(env, r->name);
      argv[argc++] = num(env, r->mode);
      argv[argc++] = num(env, r->flags);
      argv[argc++] = num(env, r->uid);
      argv[argc++] = num(env, r->gid);
      break;
    case OP_INIT:
      argv[argc++] = float64s(env, r->init, IN_COUNT);
      break;
    case OP_STATFS: case OP_READLINK: case OP_STOPPED: case OP_BALL_READS:
      break;
  }
  request_free(r);
  napi_value dispatch, global;
  napi_get_reference_value(env, s->dispatch, &dispatch);
  napi_get_global(env, &global);
  napi_status status = napi_make_callback(env, s->async_context, global, dispatch, argc, argv, NULL);
  if (status == napi_pending_exception) {
    // A throwing dispatcher is a bug in the agent: surface it as Node would.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  if (lent != NULL) {
    napi_value ab;
    napi_get_typedarray_info(env, lent, NULL, NULL, NULL, &ab, NULL);
    napi_detach_arraybuffer(env, ab);
  }
  napi_close_handle_scope(env, scope);
}

// ---- reading /dev/fuse on the event loop ----

// Requests handled per wake-up before other I/O gets its turn.
#define MAX_BATCH 64

// /dev/fuse is readable: handle the requests waiting there. A failed read
// (ENODEV: the chaac path was unmounted) ends the session, as in libfuse's own loop.
//
// Busy polling: a caller often sends its next request right after an answer
// (a small-file create is five requests in a row), and on a VM waking the
// agent's sleeping vCPU for it costs about as much as the request itself. So
// once every request is answered, /dev/fuse is read again for up to
// busy_poll_ns before the loop goes back to sleep. Only then: a request still
// being worked on waits for the event loop, which the spin holds up. And only
// while it pays: after a spin that found nothing, the next happens once a
// request again came within the window.
// Keeps what a takeover needs of the kernel's INIT, and counts requests sent
// again. Whether the request is the kernel's INIT.
static int note_request (session_t *s, int len) {
  uint32_t opcode;
  uint64_t unique;
  if (len < INIT_HEADER_BYTES) return 0;
  memcpy(&opcode, s->buf + 4, sizeof(opcode));
  memcpy(&unique, s->buf + 8, sizeof(unique));
  if (unique & UNIQUE_RESEND) s->resent++;
  if (opcode != INIT_OPCODE || len < INIT_HEADER_BYTES + (int) sizeof(init_params_t)) return 0;
  memcpy(&s->init, s->buf + INIT_HEADER_BYTES, sizeof(init_params_t));
  return 1;
}

static void on_readable (uv_poll_t *handle, int status, int events) {
  session_t *s = handle->data;
  for (int i = 0; i < MAX_BATCH;) {
    struct fuse_chan *ch = s->ch;
    int res = fuse_chan_recv(&ch, s->buf, s->bufsize);
    if (res == -EAGAIN) {
      if (s->spin && s->pending == 0 && now_ns() - s->answered_at < s->busy_poll_ns) continue;
      if (s->pending == 0) s->spin = 0;
      return;
    }
    if (res == -EINTR) continue;
    if (res > 0 && !fuse_session_exited(s->se)) {
      int init = note_request(s, res);
      s->spin = s->busy_poll_ns > 0 && now_ns() - s->answered_at < s->busy_poll_ns;
      // The first INIT is answered with larger requests than libfuse can ask for (kernel-init.c).
      if (init && !s->inited && kernel_init(s->se, fuse_chan_fd(ch), &s->init, s->buf, res, s->bufsize) == 0) {
        i++;
        continue;
      }
      fuse_session_process(s->se, s->buf, res, ch);
      i++;
      continue;
    }
    uv_poll_stop(&s->poll);
    s->stopped = 1;
    request_t *r = request(OP_STOPPED, NULL, 0);
    if (r != NULL) call_js(s, r);
    return;
  }
}

// dispatch(BALL_READS, null, 0, ids, counts): how often the read threads
// read each ball lately, for the store's use counts (see native-reads.c).
static void call_js_ball_reads (session_t *s) {
  enum { MAX_NOTES = 1024 };
  char id[65];
  uint32_t reads;
  uint32_t n = 0;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[5], ab;
  void *raw;
  napi_create_array(env, &argv[3]);
  napi_create_arraybuffer(env, MAX_NOTES * sizeof(double), &raw, &ab);
  double *counts = raw;
  while (n < MAX_NOTES && readers_note(s->readers, id, &reads)) {
    napi_set_element(env, argv[3], n, str(env, id));
    counts[n++] = reads;
  }
  if (n > 0) {
    argv[0] = num(env, OP_BALL_READS);
    napi_get_null(env, &argv[1]);
    argv[2] = num(env, 0);
    napi_create_typedarray(env, napi_float64_array, n, ab, 0, &argv[4]);
    napi_value dispatch, global;
    napi_get_reference_value(env, s->dispatch, &dispatch);
    napi_get_global(env, &global);
    if (napi_make_callback(env, s->async_context, global, dispatch, 5, argv, NULL) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
  // More than one call takes: the rest on the next turn.
  if (n == MAX_NOTES) uv_async_send(&s->forward);
}

// Reads the workers handed back (see native-reads.c): to JS, as any read;
// and the counts of reads they served.
static void on_forward (uv_async_t *handle) {
  session_t *s = handle->data;
  if (!s->stopped) call_js_ball_reads(s);
  fuse_req_t req;
  fuse_ino_t ino;
  uint64_t fh;
  size_t size;
  off_t off;
  while (readers_forwarded(s->readers, &req, &ino, &fh, &size, &off)) {
    if (s->stopped) {
      fuse_reply_err(req, EIO);
      continue;
    }
    request_t *r = request(OP_READ, req, ino);
    if (r) {
      r->fh = fh;
      r->has_fh = 1;
      r->size = size;
      r->off = off;
    }
    enqueue(req, r);
  }
}

static void wake_forward (void *arg) {
  session_t *s = arg;
  uv_async_send(&s->forward);
}

// Called for each of the session's two handles once closed.
static void free_session (uv_handle_t *handle) {
  session_t *s = handle->data;
  if (--s->open_handles > 0) return;
  free(s->buf);
  free(s);
}

// ---- exported functions ----

#define THROW(env, msg) do { napi_throw_error(env, NULL, msg); return NULL; } while (0)
#define ARGS(n) \
  size_t argc = n; \
  napi_value argv[n]; \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) THROW(env, "wrong number of arguments");

// The request a reply_* call answers. Each answers one exactly once: a second
// answer (or one to something else than a request) throws instead of handing
// libfuse a request it freed with the first.
static fuse_req_t req_of (napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type != napi_external || napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "not a request");
    return NULL;
  }
  token_t *token = data;
  fuse_req_t req = token->req;
  if (req == NULL) {
    napi_throw_error(env, "ERR_ANSWERED", "the request was answered already");
    return NULL;
  }
  token->req = NULL;
  session_t *s = fuse_req_userdata(req);
  s->pending--;
  s->answered_at = now_ns();
  return req;
}

static double *doubles_of (napi_env env, napi_value v, size_t want) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != napi_float64_array || length < want) return NULL;
  return data;
}

static void fill_stat (const double *a, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = (ino_t) a[AT_INO];
  st->st_mode = (mode_t) a[AT_MODE];
  st->st_nlink = (nlink_t) a[AT_NLINK];
  st->st_uid = (uid_t) a[AT_UID];
  st->st_gid = (gid_t) a[AT_GID];
  st->st_rdev = (dev_t) a[AT_RDEV];
  st->st_size = (off_t) a[AT_SIZE];
  st->st_blocks = (blkcnt_t) a[AT_BLOCKS];
  st->st_blksize = (blksize_t) a[AT_BLKSIZE];
  const double *times[3] = { &a[AT_ATIME], &a[AT_MTIME], &a[AT_CTIME] };
  struct timespec *ts[3] = { &st->st_atim, &st->st_mtim, &st->st_ctim };
  for (int i = 0; i < 3; i++) {
    double ms = *times[i];
    double sec = floor(ms / 1000);
    ts[i]->tv_sec = (time_t) sec;
    ts[i]->tv_nsec = (long) round((ms - sec * 1000) * 1e6);
    if (ts[i]->tv_nsec >= 1000000000) ts[i]->tv_nsec = 999999999;
  }
}

static int fill_entry (napi_env env, napi_value attrs, struct fuse_entry_param *e, session_t *s) {
  const double *a = doubles_of(env, attrs, AT_COUNT);
  if (a == NULL) return 0;
  memset(e, 0, sizeof(*e));
  fill_stat(a, &e->attr);
  e->ino = (fuse_ino_t) a[AT_INO];
  e->generation = 1;
  e->attr_timeout = s->attr_timeout;
  e->entry_timeout = s->entry_timeout;
  return 1;
}

static napi_value result (napi_env env, int rc) {
  napi_value out;
  napi_create_int32(env, rc, &out);
  return out;
}

static session_t *session_of (napi_env env, napi_value v);

// Undoes a session that did not start: a mount made for it goes (takeover: the keeper keeps the connection).
static void abandon (session_t *s, const char *mnt) {
  if (s->se != NULL) fuse_session_destroy(s->se); // also closes the channel
  else if (s->ch != NULL) fuse_chan_destroy(s->ch);
  if (mnt != NULL) fuse_unmount(mnt, NULL);
}

// The session's options, timeouts and busy polling from JS: argv[0..] are
// (lowlevelOptions, entryTimeout, attrTimeout, busyPollMicroseconds).
static session_t *session_new (napi_env env, napi_value *argv, char *lopts, size_t lopts_size) {
  size_t len;
  session_t *s = calloc(1, sizeof(session_t));
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, argv[0], lopts, lopts_size, &len);
  napi_get_value_double(env, argv[1], &s->entry_timeout);
  napi_get_value_double(env, argv[2], &s->attr_timeout);
  double busy_poll_us = 0;
  napi_get_value_double(env, argv[3], &busy_poll_us);
  s->busy_poll_ns = (int64_t) (busy_poll_us * 1000);
  return s;
}

// libfuse's session on channel s->ch. 0, or a message.
static const char *session_open (session_t *s, char *lopts) {
  char *largv[] = { "chaac", "-o", lopts, NULL };
  struct fuse_args largs = FUSE_ARGS_INIT(lopts[0] ? 3 : 1, largv);
  s->se = fuse_lowlevel_new(&largs, &ops, sizeof(ops), s);
  fuse_opt_free_args(&largs);
  if (s->se == NULL) return "libfuse rejected the options (see stderr)";
  fuse_session_add_chan(s->se, s->ch);
  return NULL;
}

// Watches the session's /dev/fuse on the event loop and starts the read
// threads; returns the session for JS, or throws (after `abandon`).
static napi_value serve (napi_env env, session_t *s, napi_value dispatch, const char *mnt) {
  int fd = fuse_chan_fd(s->ch);
  uv_loop_t *loop = NULL;
  // Room for the largest WRITE the kernel may send (a request header, its arguments, KERNEL_MAX_WRITE bytes).
  s->bufsize = fuse_chan_bufsize(s->ch);
  if (s->bufsize < KERNEL_MAX_WRITE + 4096) s->bufsize = KERNEL_MAX_WRITE + 4096;
  s->buf = malloc(s->bufsize);
  napi_get_uv_event_loop(env, &loop);
  // Close-on-exec: only the keeper, given the descriptor on purpose, may hold the connection beyond the agent.
  if (s->buf == NULL || loop == NULL || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
      uv_poll_init(loop, &s->poll, fd) != 0) {
    abandon(s, mnt);
    free(s->buf);
    free(s);
    THROW(env, "could not watch /dev/fuse");
  }
  s->poll.data = s;
  s->forward.data = s;
  s->open_handles = 1;
  if (uv_async_init(loop, &s->forward, on_forward) == 0) {
    s->open_handles = 2;
    s->readers = readers_new(READERS, wake_forward, s);
  }
  if (s->readers == NULL) {
    // Initialised handles are freed through uv_close; the last one frees the session.
    abandon(s, mnt);
    int both = s->open_handles == 2;
    uv_close((uv_handle_t *) &s->poll, free_session);
    if (both) uv_close((uv_handle_t *) &s->forward, free_session);
    THROW(env, "could not start the read threads");
  }
  uv_unref((uv_handle_t *) &s->forward);
  s->env = env;
  napi_value name;
  napi_create_string_utf8(env, "chaac-fuse", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->async_context);
  napi_create_reference(env, dispatch, 1, &s->dispatch);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  // The mount alone does not keep the process alive.
  uv_unref((uv_handle_t *) &s->poll);
  napi_value out;
  napi_create_external(env, s, NULL, NULL, &out);
  return out;
}

// mount(mountpoint, mountOptions, lowlevelOptions, entryTimeout, attrTimeout, dispatch, busyPollMicroseconds) -> session
static napi_value mount (napi_env env, napi_callback_info info) {
  ARGS(7)
  char mnt[4096], mopts[4096], lopts[4096];
  size_t len;
  napi_get_value_string_utf8(env, argv[0], mnt, sizeof(mnt), &len);
  napi_get_value_string_utf8(env, argv[1], mopts, sizeof(mopts), &len);
  napi_value opts[4] = { argv[2], argv[3], argv[4], argv[6] };
  session_t *s = session_new(env, opts, lopts, sizeof(lopts));
  if (s == NULL) THROW(env, "out of memory");

  char *margv[] = { "chaac", "-o", mopts, NULL };
  struct fuse_args margs = FUSE_ARGS_INIT(mopts[0] ? 3 : 1, margv);
  s->ch = fuse_mount(mnt, &margs);
  fuse_opt_free_args(&margs);
  if (s->ch == NULL) {
    free(s);
    THROW(env, "could not mount (see stderr)");
  }
  const char *err = session_open(s, lopts);
  if (err != NULL) {
    fuse_unmount(mnt, s->ch);
    free(s);
    THROW(env, err);
  }
  return serve(env, s, argv[5], mnt);
}

// takeover(keeperPid, fd, init, lowlevelOptions, entryTimeout, attrTimeout, dispatch, busyPollMicroseconds) -> session
// Serves the connection whose /dev/fuse descriptor `fd` of process
// keeperPid holds (see takeover.c). init: [major, minor, maxReadahead, flags]
// of the kernel's FUSE_INIT, as the INIT dispatch gave them. Throws, with
// the mount untouched, when the connection cannot be taken over.
static napi_value takeover (napi_env env, napi_callback_info info) {
  ARGS(8)
  int32_t pid, fdnum;
  char lopts[4096];
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &fdnum) != napi_ok || pid <= 0 || fdnum < 0) {
    THROW(env, "takeover: a keeper pid and a descriptor number");
  }
  const double *in = doubles_of(env, argv[2], 4);
  if (in == NULL) THROW(env, "takeover: init must be a Float64Array [major, minor, maxReadahead, flags]");
  napi_value opts[4] = { argv[3], argv[4], argv[5], argv[7] };
  session_t *s = session_new(env, opts, lopts, sizeof(lopts));
  if (s == NULL) THROW(env, "out of memory");
  s->init = (init_params_t) { (uint32_t) in[0], (uint32_t) in[1], (uint32_t) in[2], (uint32_t) in[3] };
  char msg[256];
  int fd = takeover_getfd((pid_t) pid, fdnum);
  if (fd < 0) {
    free(s);
    snprintf(msg, sizeof(msg), "could not copy descriptor %d of the keeper (pid %d): %s", fdnum, pid, strerror(-fd));
    THROW(env, msg);
  }
  s->ch = fuse_kern_chan_new(fd);
  if (s->ch == NULL) {
    close(fd);
    free(s);
    THROW(env, "libfuse could not make a channel of the keeper's descriptor");
  }
  const char *err = session_open(s, lopts);
  if (err == NULL) {
    s->quiet_init = 1;
    takeover_init(s->se, s->ch, &s->init);
    s->quiet_init = 0;
    if (!s->inited) err = "libfuse refused the saved FUSE_INIT";
  }
  int rc = err == NULL ? takeover_resend(fd) : 0;
  if (err == NULL && rc < 0) {
    snprintf(msg, sizeof(msg), "the kernel refused FUSE_NOTIFY_RESEND (Linux 6.9 or later needed): %s", strerror(-rc));
    err = msg;
  }
  if (err != NULL) {
    abandon(s, NULL);
    free(s);
    THROW(env, err);
  }
  return serve(env, s, argv[6], NULL);
}

// detach(session): stops reading requests, without ending the session: the
// connection stays with the keeper for the next agent (a start that failed
// after a takeover), which gets again what this one read and left unanswered.
static napi_value detach (napi_env env, napi_callback_info info) {
  ARGS(1)
  session_t *s = session_of(env, argv[0]);
  if (s == NULL) THROW(env, "not a session");
  uv_poll_stop(&s->poll);
  return NULL;
}

// resent(session) -> requests the kernel sent again after a takeover, so far.
static napi_value resent (napi_env env, napi_callback_info info) {
  ARGS(1)
  session_t *s = session_of(env, argv[0]);
  if (s == NULL) THROW(env, "not a session");
  return num(env, s->resent);
}

// closeOnExec() -> 0 or a negative errno: see takeover_cloexec_all.
static napi_value close_on_exec (napi_env env, napi_callback_info info) {
  return result(env, takeover_cloexec_all());
}

// sessionFd(session) -> the session's /dev/fuse descriptor, for the keeper to hold.
static napi_value session_fd (napi_env env, napi_callback_info info) {
  ARGS(1)
  session_t *s = session_of(env, argv[0]);
  if (s == NULL) THROW(env, "not a session");
  return num(env, fuse_chan_fd(s->ch));
}

// destroy(session): after the loop stopped (the mount is gone) and every request was answered.
static napi_value destroy (napi_env env, napi_callback_info info) {
  ARGS(1)
  session_t *s = NULL;
  napi_get_value_external(env, argv[0], (void **) &s);
  if (s == NULL) THROW(env, "not a session");
  // The workers finish the reads they have (the kernel refuses the answers
  // of a session that ended), then reads handed back meanwhile are refused.
  readers_stop(s->readers);
  s->stopped = 1;
  on_forward(&s->forward);
  readers_free(s->readers);
  s->readers = NULL;
  // The poll stopped when the session ended, before its fd closes here.
  fuse_session_destroy(s->se); // also closes the channel
  napi_async_destroy(env, s->async_context);
  napi_delete_reference(env, s->dispatch);
  uv_close((uv_handle_t *) &s->poll, free_session);
  uv_close((uv_handle_t *) &s->forward, free_session);
  return NULL;
}

// replyErr(req, errno): 0 answers success for ops without data.
static napi_value reply_err (napi_env env, napi_callback_info info) {
  ARGS(2)
  int32_t err;
  napi_get_value_int32(env, argv[1], &err);
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  return result(env, fuse_reply_err(req, err));
}

// replyEntry(req, attrs)
static napi_value reply_entry (napi_env env, napi_callback_info info) {
  ARGS(2)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  struct fuse_entry_param e;
  if (!fill_entry(env, argv[1], &e, fuse_req_userdata(req))) return result(env, fuse_reply_err(req, EIO));
  return result(env, fuse_reply_entry(req, &e));
}

static void fill_open (napi_env env, napi_value fh, napi_value keep, struct fuse_file_info *fi) {
  double v;
  bool b;
  memset(fi, 0, sizeof(*fi));
  napi_get_value_double(env, fh, &v);
  napi_get_value_bool(env, keep, &b);
  fi->fh = (uint64_t) v;
  fi->keep_cache = b ? 1 : 0;
}

// replyCreate(req, attrs, fh, keepCache)
static napi_value reply_create (napi_env env, napi_callback_info info) {
  ARGS(4)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  struct fuse_entry_param e;
  struct fuse_file_info fi;
  if (!fill_entry(env, argv[1], &e, fuse_req_userdata(req))) return result(env, fuse_reply_err(req, EIO));
  fill_open(env, argv[2], argv[3], &fi);
  return result(env, fuse_reply_create(req, &e, &fi));
}

// replyAttr(req, attrs)
static napi_value reply_attr (napi_env env, napi_callback_info info) {
  ARGS(2)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  const double *a = doubles_of(env, argv[1], AT_COUNT);
  if (a == NULL) return result(env, fuse_reply_err(req, EIO));
  struct stat st;
  fill_stat(a, &st);
  session_t *s = fuse_req_userdata(req);
  return result(env, fuse_reply_attr(req, &st, s->attr_timeout));
}

// replyReadlink(req, target)
static napi_value reply_readlink (napi_env env, napi_callback_info info) {
  ARGS(2)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  size_t len;
  napi_get_value_string_utf8(env, argv[1], NULL, 0, &len);
  char *target = malloc(len + 1);
  if (target == NULL) return result(env, fuse_reply_err(req, ENOMEM));
  napi_get_value_string_utf8(env, argv[1], target, len + 1, &len);
  int rc = fuse_reply_readlink(req, target);
  free(target);
  return result(env, rc);
}

// struct fuse_open_out's flags (the kernel's protocol; libfuse 2.9 sends only
// KEEP_CACHE, so open and opendir answer it themselves).
#define KEEP_CACHE_FLAG (1 << 1)
#define CACHE_DIR_FLAG (1 << 3)
#define NOFLUSH_FLAG (1 << 5)

static napi_value reply_open_flags (napi_env env, napi_value token, napi_value fh_value, uint32_t flags) {
  double fh;
  napi_get_value_double(env, fh_value, &fh);
  struct { uint64_t fh; uint32_t open_flags; uint32_t padding; } out = { (uint64_t) fh, flags, 0 };
  fuse_req_t req = req_of(env, token);
  if (req == NULL) return NULL;
  return result(env, fuse_reply_buf(req, (const char *) &out, sizeof(out)));
}

static uint32_t flag_if (napi_env env, napi_value v, uint32_t flag) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b ? flag : 0;
}

// replyOpen(req, fh, keepCache, noFlush): with noFlush the kernel sends no
// FLUSH at the handle's closes (FOPEN_NOFLUSH), a round trip less for each
// close of a file only read; the release still comes.
static napi_value reply_open (napi_env env, napi_callback_info info) {
  ARGS(4)
  return reply_open_flags(env, argv[0], argv[1], flag_if(env, argv[2], KEEP_CACHE_FLAG) | flag_if(env, argv[3], NOFLUSH_FLAG));
}

// replyOpendir(req, fh, keepCache): the kernel keeps the listings it reads
// through the handle in its cache (FOPEN_CACHE_DIR), and with keepCache
// those it kept from before serve this open.
static napi_value reply_opendir (napi_env env, napi_callback_info info) {
  ARGS(3)
  return reply_open_flags(env, argv[0], argv[1], CACHE_DIR_FLAG | flag_if(env, argv[2], KEEP_CACHE_FLAG));
}

// replyBuf(req, buffer, length)
static napi_value reply_buf (napi_env env, napi_callback_info info) {
  ARGS(3)
  void *data;
  size_t size;
  uint32_t n;
  napi_get_buffer_info(env, argv[1], &data, &size);
  napi_get_value_uint32(env, argv[2], &n);
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  return result(env, fuse_reply_buf(req, data, n < size ? n : size));
}

// A READ answered from JS: the reply, which copies the bytes into the
// kernel's page cache of the file, is made on a thread of libuv's pool.
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ref; // the buffer, alive until the reply is made
  fuse_req_t req;
  const char *data;
  size_t n;
  int rc;
} reply_job_t;

static void reply_execute (napi_env env, void *arg) {
  reply_job_t *j = arg;
  j->rc = fuse_reply_buf(j->req, j->data, j->n);
}

static void reply_complete (napi_env env, napi_status status, void *arg) {
  reply_job_t *j = arg;
  napi_value rc;
  napi_create_int32(env, status == napi_ok ? j->rc : -EIO, &rc);
  napi_resolve_deferred(env, j->deferred, rc);
  napi_delete_reference(env, j->ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

// replyBufLater(req, buffer, length) -> Promise<rc>: as replyBuf, the copy
// into the kernel off the JS thread (a large read's largest cost there: a
// fifth of the reading agent's thread during remote reads). The request counts as
// answered at once; the session must not be destroyed before the promise
// settles, and the buffer must not change until then.
static napi_value reply_buf_later (napi_env env, napi_callback_info info) {
  ARGS(3)
  void *data;
  size_t size;
  uint32_t n;
  if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok) THROW(env, "replyBufLater(req, buffer, length): not a buffer");
  napi_get_value_uint32(env, argv[2], &n);
  reply_job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) THROW(env, "out of memory");
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) {
    free(j);
    return NULL;
  }
  *j = (reply_job_t) { .req = req, .data = data, .n = n < size ? n : size };
  napi_create_reference(env, argv[1], 1, &j->ref);
  return queue_pool_job(env, "chaac.replyBuf", reply_execute, reply_complete, j, &j->deferred, &j->work);
}

// replyWrite(req, count)
static napi_value reply_write (napi_env env, napi_callback_info info) {
  ARGS(2)
  uint32_t n;
  napi_get_value_uint32(env, argv[1], &n);
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  return result(env, fuse_reply_write(req, n));
}

// replyStatfs(req, Float64Array [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax])
static napi_value reply_statfs (napi_env env, napi_callback_info info) {
  ARGS(2)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  const double *a = doubles_of(env, argv[1], 11);
  if (a == NULL) return result(env, fuse_reply_err(req, EIO));
  struct statvfs st;
  memset(&st, 0, sizeof(st));
  st.f_bsize = a[0];
  st.f_frsize = a[1];
  st.f_blocks = a[2];
  st.f_bfree = a[3];
  st.f_bavail = a[4];
  st.f_files = a[5];
  st.f_ffree = a[6];
  st.f_favail = a[7];
  st.f_fsid = a[8];
  st.f_flag = a[9];
  st.f_namemax = a[10];
  return result(env, fuse_reply_statfs(req, &st));
}

// replyDirents(req, size, names, Float64Array [ino, mode, ...], firstOffset) -> entries sent.
// Entry i carries offset firstOffset + i + 1: where the next readdir resumes.
static napi_value reply_dirents (napi_env env, napi_callback_info info) {
  ARGS(5)
  fuse_req_t req = req_of(env, argv[0]);
  if (req == NULL) return NULL;
  uint32_t size, count;
  double first;
  napi_get_value_uint32(env, argv[1], &size);
  napi_get_array_length(env, argv[2], &count);
  napi_get_value_double(env, argv[4], &first);
  // An empty Float64Array may have no data pointer at all: the end of the directory.
  const double *a = count > 0 ? doubles_of(env, argv[3], (size_t) count * 2) : NULL;
  char *buf = malloc(size > 0 ? size : 1);
  if ((count > 0 && a == NULL) || buf == NULL) {
    free(buf);
    fuse_reply_err(req, a == NULL ? EIO : ENOMEM);
    return result(env, 0);
  }
  size_t pos = 0;
  uint32_t i;
  char name[1024];
  for (i = 0; i < count; i++) {
    napi_value v;
    size_t len;
    napi_get_element(env, argv[2], i, &v);
    napi_get_value_string_utf8(env, v, name, sizeof(name), &len);
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = (ino_t) a[2 * i];
    st.st_mode = (mode_t) a[2 * i + 1];
    size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t) (first + i + 1));
    if (need > size - pos) break;
    pos += need;
  }
  fuse_reply_buf(req, buf, pos);
  free(buf);
  return result(env, i);
}

// invalAttrs(session, ino, pages): the kernel drops the attributes it cached
// of an inode (a change made on another host), so the next stat or read past
// the cached size asks again. A file's pages stay (keep_cache at open decides
// about them): with a negative offset the kernel takes no page lock, so this
// cannot wait on a request that waits for the JS thread. With `pages` (for a
// directory) its cached listings go too: the kernel fills those pages only
// after a READDIR was answered, never holding one locked while it waits.
static napi_value inval_attrs (napi_env env, napi_callback_info info) {
  ARGS(3)
  session_t *s = NULL;
  double ino;
  bool pages;
  napi_get_value_external(env, argv[0], (void **) &s);
  napi_get_value_double(env, argv[1], &ino);
  napi_get_value_bool(env, argv[2], &pages);
  if (s == NULL) THROW(env, "not a session");
  // Offset 0 and length 0: every cached page of the inode as well (a directory's listings).
  return result(env, fuse_lowlevel_notify_inval_inode(s->ch, (fuse_ino_t) ino, pages ? 0 : -1, 0));
}

// notify(path, message) -> 0 or a negative errno: one datagram to a unix
// socket, as systemd's sd_notify sends its state to NOTIFY_SOCKET (Node has
// no unix datagram sockets). A path starting with '@' names the abstract
// namespace. Non-blocking: a receiver that does not read costs EAGAIN, never
// the event loop.
static napi_value notify (napi_env env, napi_callback_info info) {
  ARGS(2)
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  // One byte more than sun_path holds, so that a path too long shows as one.
  char path[sizeof(addr.sun_path) + 1];
  size_t plen, mlen;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &plen) != napi_ok) THROW(env, "the socket path must be a string");
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &mlen) != napi_ok) THROW(env, "the message must be a string");
  if (plen == 0 || plen >= sizeof(addr.sun_path)) return result(env, -EINVAL);
  char *msg = malloc(mlen + 1);
  if (msg == NULL) return result(env, -ENOMEM);
  if (napi_get_value_string_utf8(env, argv[1], msg, mlen + 1, &mlen) != napi_ok) {
    free(msg);
    THROW(env, "the message must be a string");
  }
  memcpy(addr.sun_path, path, plen);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  // An abstract name is exactly its bytes; a file path may carry its NUL.
  socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
  int rc = 0;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    rc = -errno;
  } else {
    if (sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *) &addr, len) < 0) rc = -errno;
    close(fd);
  }
  free(msg);
  return result(env, rc);
}

static session_t *session_of (napi_env env, napi_value v) {
  session_t *s = NULL;
  napi_get_value_external(env, v, (void **) &s);
  return s != NULL && s->readers != NULL ? s : NULL;
}

static int u32_prop (napi_env env, napi_value obj, const char *key, uint32_t *out) {
  napi_value v;
  double d;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 4294967295.0) || d != floor(d)) return 0;
  *out = (uint32_t) d;
  return 1;
}

static char *str_prop (napi_env env, napi_value obj, const char *key) {
  napi_value v;
  size_t len;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *out = malloc(len + 1);
  if (out != NULL) napi_get_value_string_utf8(env, v, out, len + 1, &len);
  return out;
}

// setReadPlan(session, fh, ino, fileSize, chunkSize, skipCache, chunks): reads
// of the handle are served by the read threads from now on, until a change of
// the file drops the plan. chunks: [{ index, id, path, headerLength, blockSize, size, hashes, reportAt }].
static napi_value set_read_plan (napi_env env, napi_callback_info info) {
  ARGS(7)
  session_t *s = session_of(env, argv[0]);
  double fh, ino, file_size;
  uint32_t chunk_size, count;
  bool skip_cache;
  if (s == NULL) THROW(env, "not a session");
  if (napi_get_value_double(env, argv[1], &fh) != napi_ok || napi_get_value_double(env, argv[2], &ino) != napi_ok ||
      napi_get_value_double(env, argv[3], &file_size) != napi_ok || napi_get_value_uint32(env, argv[4], &chunk_size) != napi_ok ||
      chunk_size == 0 || napi_get_value_bool(env, argv[5], &skip_cache) != napi_ok ||
      napi_get_array_length(env, argv[6], &count) != napi_ok) THROW(env, "bad read plan");
  plan_chunk_t *chunks = calloc(count + 1, sizeof(plan_chunk_t));
  if (chunks == NULL) THROW(env, "out of memory");
  const char *bad = NULL;
  for (uint32_t i = 0; i < count && bad == NULL; i++) {
    napi_value c;
    plan_chunk_t *pc = &chunks[i];
    void *hashes;
    size_t hashes_len;
    napi_value hv;
    if (napi_get_element(env, argv[6], i, &c) != napi_ok || !u32_prop(env, c, "index", &pc->index) ||
        !u32_prop(env, c, "headerLength", &pc->header_len) || !u32_prop(env, c, "blockSize", &pc->block_size) ||
        !u32_prop(env, c, "size", &pc->size) || !u32_prop(env, c, "reportAt", &pc->report_at) ||
        napi_get_named_property(env, c, "hashes", &hv) != napi_ok ||
        napi_get_buffer_info(env, hv, &hashes, &hashes_len) != napi_ok) {
      bad = "bad read plan chunk";
      break;
    }
    pc->hashes = hashes;
    pc->id = str_prop(env, c, "id");
    pc->path = str_prop(env, c, "path");
    if (pc->id == NULL || pc->path == NULL || strlen(pc->id) != 64 || pc->block_size == 0 || pc->size == 0 ||
        pc->size > chunk_size || (uint64_t) pc->index * chunk_size >= (uint64_t) file_size ||
        hashes_len != 32 * (((uint64_t) pc->size + pc->block_size - 1) / pc->block_size)) bad = "bad read plan chunk";
  }
  int rc = bad == NULL ? readers_set_plan(s->readers, (uint64_t) fh, (fuse_ino_t) ino, (uint64_t) file_size, chunk_size, skip_cache, chunks, count) : 0;
  for (uint32_t i = 0; i < count; i++) {
    free((char *) chunks[i].id);
    free((char *) chunks[i].path);
  }
  free(chunks);
  if (bad != NULL) THROW(env, bad);
  if (rc != 0) THROW(env, "out of memory");
  return NULL;
}

// dropReadPlans(session, ino): reads of the inode's handles go to JS from now on.
static napi_value drop_read_plans (napi_env env, napi_callback_info info) {
  ARGS(2)
  session_t *s = session_of(env, argv[0]);
  double ino;
  if (s == NULL) THROW(env, "not a session");
  napi_get_value_double(env, argv[1], &ino);
  readers_drop_ino(s->readers, (fuse_ino_t) ino);
  return NULL;
}

// readStats(session) -> Float64Array [reads served, ball reads, bytes, reads handed to JS, blocks verified]
static napi_value read_stats (napi_env env, napi_callback_info info) {
  ARGS(1)
  session_t *s = session_of(env, argv[0]);
  if (s == NULL) THROW(env, "not a session");
  napi_value ab, out;
  void *raw;
  napi_create_arraybuffer(env, 5 * sizeof(double), &raw, &ab);
  readers_stats(s->readers, raw);
  napi_create_typedarray(env, napi_float64_array, 5, ab, 0, &out);
  return out;
}

// pidIo() -> [[container, bytes asked to read, bytes written], ...] per requesting
// process since the last call (of every session); container is "" outside any.
static napi_value pid_io (napi_env env, napi_callback_info info) {
  enum { MAX = 1024 };
  static pid_io_t taken[MAX];
  uint32_t n = pid_io_take(taken, MAX);
  napi_value out;
  napi_create_array_with_length(env, n, &out);
  for (uint32_t i = 0; i < n; i++) {
    napi_value row;
    napi_create_array_with_length(env, 3, &row);
    napi_set_element(env, row, 0, str(env, taken[i].container));
    napi_set_element(env, row, 1, num(env, (double) taken[i].read));
    napi_set_element(env, row, 2, num(env, (double) taken[i].written));
    napi_set_element(env, out, i, row);
  }
  return out;
}

NAPI_MODULE_INIT () {
  napi_property_descriptor fns[] = {
    { "mount", NULL, mount, NULL, NULL, NULL, napi_default, NULL },
    { "destroy", NULL, destroy, NULL, NULL, NULL, napi_default, NULL },
    { "replyErr", NULL, reply_err, NULL, NULL, NULL, napi_default, NULL },
    { "replyEntry", NULL, reply_entry, NULL, NULL, NULL, napi_default, NULL },
    { "replyCreate", NULL, reply_create, NULL, NULL, NULL, napi_default, NULL },
    { "replyAttr", NULL, reply_attr, NULL, NULL, NULL, napi_default, NULL },
    { "replyReadlink", NULL, reply_readlink, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpen", NULL, reply_open, NULL, NULL, NULL, napi_default, NULL },
    { "writeDirect", NULL, direct_write, NULL, NULL, NULL, napi_default, NULL },
    { "verifyBlocks", NULL, verify_blocks, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpendir", NULL, reply_opendir, NULL, NULL, NULL, napi_default, NULL },
    { "replyBuf", NULL, reply_buf, NULL, NULL, NULL, napi_default, NULL },
    { "replyBufLater", NULL, reply_buf_later, NULL, NULL, NULL, napi_default, NULL },
    { "replyWrite", NULL, reply_write, NULL, NULL, NULL, napi_default, NULL },
    { "replyStatfs", NULL, reply_statfs, NULL, NULL, NULL, napi_default, NULL },
    { "replyDirents", NULL, reply_dirents, NULL, NULL, NULL, napi_default, NULL },
    { "invalAttrs", NULL, inval_attrs, NULL, NULL, NULL, napi_default, NULL },
    { "notify", NULL, notify, NULL, NULL, NULL, napi_default, NULL },
    { "setReadPlan", NULL, set_read_plan, NULL, NULL, NULL, napi_default, NULL },
    { "dropReadPlans", NULL, drop_read_plans, NULL, NULL, NULL, napi_default, NULL },
    { "readStats", NULL, read_stats, NULL, NULL, NULL, napi_default, NULL },
    { "pidIo", NULL, pid_io, NULL, NULL, NULL, napi_default, NULL },
    { "takeover", NULL, takeover, NULL, NULL, NULL, napi_default, NULL },
    { "resent", NULL, resent, NULL, NULL, NULL, napi_default, NULL },
    { "detach", NULL, detach, NULL, NULL, NULL, napi_default, NULL },
    { "closeOnExec", NULL, close_on_exec, NULL, NULL, NULL, napi_default, NULL },
    { "sessionFd", NULL, session_fd, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}

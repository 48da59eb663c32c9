// libfuse 2.9 speaks the kernel's FUSE protocol as of version 7.19: it cannot
// ask for requests larger than 32 pages (max_pages came with 7.28), so every
// 1 MiB write a program makes arrives as eight requests, each a round trip
// through the agent. Its answer to FUSE_INIT is made here into a channel that
// keeps it instead of sending it; the flags libfuse wants stay as they are,
// and when the kernel offers max_pages the answer claims protocol 7.28 and
// asks for 256 pages. Nothing else changes between 7.19 and 7.28 unless the
// daemon asks for it (flags libfuse never sets), or the kernel sends requests
// libfuse answers ENOSYS to, which the kernel then stops sending (RENAME2
// with flags, LSEEK, COPY_FILE_RANGE), as it does for 7.19.
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kernel-init.h"

// From the kernel's include/uapi/linux/fuse.h.
#define FUSE_MAX_PAGES (1u << 22)
#define MAX_PAGES_MINOR 28

struct out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

// struct fuse_init_out as of 7.36 (64 bytes; libfuse 2.9 sends the first 24).
struct init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t unused[7];
};
_Static_assert(sizeof(struct init_out) == 64, "fuse_init_out is 64 bytes");

typedef struct {
  char bytes[sizeof(struct out_header) + sizeof(struct init_out)];
  size_t len;
} captured_t;

static int keep_reply (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  captured_t *c = fuse_chan_data(ch);
  c->len = 0;
  for (size_t i = 0; i < count; i++) {
    if (c->len + iov[i].iov_len > sizeof(c->bytes)) return -EINVAL;
    memcpy(c->bytes + c->len, iov[i].iov_base, iov[i].iov_len);
    c->len += iov[i].iov_len;
  }
  return 0;
}

static int no_receive (struct fuse_chan **ch, char *buf, size_t size) {
  return -EIO;
}

static int offers_max_pages (const init_params_t *kernel) {
  return kernel->minor >= MAX_PAGES_MINOR && (kernel->flags & FUSE_MAX_PAGES) != 0;
}

uint32_t kernel_max_write (const init_params_t *kernel, uint32_t asked) {
  return offers_max_pages(kernel) ? KERNEL_MAX_WRITE : asked;
}

int kernel_init (struct fuse_session *se, int fd, const init_params_t *kernel, char *buf, size_t len, size_t bufsize) {
  struct fuse_chan_ops ops = { .receive = no_receive, .send = keep_reply, .destroy = NULL };
  captured_t c = { .len = 0 };
  // The channel's buffer size is the session's: libfuse cuts max_write to it
  // (and warns "buffer size too small" for less than 8 KiB).
  struct fuse_chan *keeper = fuse_chan_new(&ops, -1, bufsize, &c);
  if (keeper == NULL) return -ENOMEM;
  fuse_session_process(se, buf, len, keeper);
  fuse_chan_destroy(keeper);
  if (c.len < sizeof(struct out_header)) return -EIO;
  struct out_header h;
  memcpy(&h, c.bytes, sizeof(h));
  struct init_out out;
  size_t got = c.len - sizeof(h);
  memset(&out, 0, sizeof(out));
  memcpy(&out, c.bytes + sizeof(h), got < sizeof(out) ? got : sizeof(out));
  size_t send = c.len;
  if (h.error == 0 && got >= 24 && offers_max_pages(kernel) && out.minor < MAX_PAGES_MINOR) {
    out.minor = MAX_PAGES_MINOR;
    out.flags |= FUSE_MAX_PAGES;
    out.max_pages = KERNEL_MAX_WRITE / 4096;
    out.max_write = KERNEL_MAX_WRITE;
    // The kernel reads the answer only as far as its protocol version has fields.
    send = sizeof(h) + sizeof(out);
    h.len = (uint32_t) send;
  }
  struct iovec iov[2] = { { &h, sizeof(h) }, { &out, send - sizeof(h) } };
  ssize_t n = writev(fd, iov, 2);
  if (n < 0) return -errno;
  return n == (ssize_t) send ? 0 : -EIO;
}

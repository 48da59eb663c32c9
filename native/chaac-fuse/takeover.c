// Taking over a FUSE connection from an agent that died. A small keeper
// process holds a copy of the connection's /dev/fuse descriptor, so the
// kernel keeps the connection (and every process using the mount waits)
// after the agent is gone; the next agent copies that descriptor out of the
// keeper, brings libfuse's session state up as if it had just mounted, and
// has the kernel send again the requests the dead agent had read.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "takeover.h"

// Not in the kernel headers this is built against (they stop at 7.38).
#define NOTIFY_RESEND 7
// The reply to the synthetic INIT goes here: no request has this id, and 0 would be a notification.
#define NOBODY_UNIQUE 0xFFFFFFFFFFFF0001ULL

struct in_header {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint32_t padding;
};

struct out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

int takeover_getfd (pid_t pid, int fdnum) {
  int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return -errno;
  int fd = (int) syscall(SYS_pidfd_getfd, pidfd, fdnum, 0);
  int err = errno;
  close(pidfd);
  return fd < 0 ? -err : fd;
}

int takeover_init (struct fuse_session *se, struct fuse_chan *ch, const init_params_t *p) {
  // Aligned for libfuse, which reads the header and the arguments in place.
  union { char bytes[INIT_HEADER_BYTES + sizeof(init_params_t)]; uint64_t align; } buf;
  struct in_header h;
  _Static_assert(sizeof(struct in_header) == INIT_HEADER_BYTES, "fuse_in_header is 40 bytes");
  memset(&h, 0, sizeof(h));
  h.len = sizeof(buf.bytes);
  h.opcode = INIT_OPCODE;
  h.unique = NOBODY_UNIQUE;
  memcpy(buf.bytes, &h, sizeof(h));
  memcpy(buf.bytes + sizeof(h), p, sizeof(*p));
  fuse_session_process(se, buf.bytes, sizeof(buf.bytes), ch);
  // libfuse answers every request after INIT with EIO until an INIT went through:
  // a second (real) INIT would now be refused, which is how the kernel's own was.
  return fuse_session_exited(se) ? -1 : 0;
}

int takeover_resend (int fd) {
  struct out_header h = { sizeof(struct out_header), NOTIFY_RESEND, 0 };
  ssize_t n = write(fd, &h, sizeof(h));
  if (n < 0) return -errno;
  return n == (ssize_t) sizeof(h) ? 0 : -EIO;
}

int takeover_cloexec_all (void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -errno;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd <= 2 || fd == self) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  closedir(d);
  return 0;
}

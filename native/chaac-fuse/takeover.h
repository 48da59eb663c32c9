// Taking over a FUSE connection from an agent that died (see takeover.c).
#ifndef CHAAC_TAKEOVER_H
#define CHAAC_TAKEOVER_H

#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

// What the kernel sent in its FUSE_INIT request (struct fuse_init_in, the
// part libfuse 2.9 reads), kept by the agent that mounted.
typedef struct {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
} init_params_t;

// Size of the FUSE_INIT header plus the part of fuse_init_in above, and where
// that part starts in a request read from /dev/fuse.
#define INIT_HEADER_BYTES 40
#define INIT_OPCODE 26

// Bit 63 of a request's unique: the kernel sent it again (FUSE_NOTIFY_RESEND).
#define UNIQUE_RESEND (1ULL << 63)

// libfuse 2.9 exports it without declaring it in its headers (fuse_kern_chan.h stays private).
struct fuse_chan *fuse_kern_chan_new (int fd);

// A copy of descriptor `fdnum` of process `pid` (pidfd_open + pidfd_getfd),
// or -errno.
int takeover_getfd (pid_t pid, int fdnum);

// Initialises a new session on a connection the kernel already initialised:
// a FUSE_INIT request made from `p` goes through libfuse, whose reply goes to
// a request id nobody has (the kernel refuses it with ENOENT, which libfuse
// ignores). 0, or -1 when libfuse did not take it.
int takeover_init (struct fuse_session *se, struct fuse_chan *ch, const init_params_t *p);

// Asks the kernel to queue again every request the connection's daemon read
// and did not answer (FUSE_NOTIFY_RESEND, Linux 6.9). 0 or -errno.
int takeover_resend (int fd);

// Marks every descriptor above 2 close-on-exec (some libraries open files
// without it), so that a child started next inherits only what it is given.
// 0 or -errno.
int takeover_cloexec_all (void);

#endif

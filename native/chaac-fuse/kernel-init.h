// Answering the kernel's FUSE_INIT with what libfuse 2.9 cannot ask for (see kernel-init.c).
#ifndef CHAAC_KERNEL_INIT_H
#define CHAAC_KERNEL_INIT_H

#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "takeover.h"

// The largest WRITE (and READ) the kernel is asked to send: 256 pages.
#define KERNEL_MAX_WRITE (1024 * 1024)

// Has libfuse work out its answer to the kernel's FUSE_INIT request `buf`
// (`len` bytes, whose arguments `kernel` holds) without sending it, then
// sends it on the connection's descriptor `fd` with requests of up to
// KERNEL_MAX_WRITE bytes asked for when the kernel offers them. `bufsize`:
// the session's read buffer, which libfuse sizes its answer's max_write by.
// 0, or -errno.
int kernel_init (struct fuse_session *se, int fd, const init_params_t *kernel, char *buf, size_t len, size_t bufsize);

// The largest WRITE the kernel sends once kernel_init answered its INIT
// `kernel`, libfuse having asked for `asked` bytes.
uint32_t kernel_max_write (const init_params_t *kernel, uint32_t asked);

#endif

// The least any FUSE filesystem can do for a cached read: one file, served
// from memory by libfuse 2's low-level API (the library chaac's agent uses),
// mounted with the agent's read options and kept in the kernel's page cache
// across opens. bench/single-host.ts re-reads it hot beside chaac and the
// native folder, so the results show what part of the gap is the kernel's.
//
//   fuse-floor SIZE_MIB MOUNTPOINT     (foreground; SIGTERM unmounts)
//
// The file is MOUNTPOINT/f, SIZE_MIB MiB of pseudo-random bytes (not zeros:
// a hypervisor may share zero pages between guests' memory).
#define FUSE_USE_VERSION 26
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATTERN (4u << 20)
#define MAX_READ (1u << 20)
#define FILE_INO 2
#define TIMEOUT 3600.0

static off_t file_size;
// PATTERN bytes, then its first MAX_READ bytes again, so that any read of up
// to MAX_READ bytes is one contiguous slice at (offset % PATTERN).
static char *pattern;

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = file_size;
		st->st_blocks = file_size / 512;
	}
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	if (parent != FUSE_ROOT_ID || strcmp(name, "f") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_stat(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	// As chaac does for a file that did not change: the cached pages stay.
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > MAX_READ)
		size = MAX_READ;
	if ((off_t)size > file_size - off)
		size = file_size - off;
	fuse_reply_buf(req, pattern + off % PATTERN, size);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.open = floor_open,
	.read = floor_read,
};

int main(int argc, char *argv[])
{
	char *margv[] = { argv[0], "-o", "fsname=fuse-floor,subtype=floor,max_read=1048576" };
	char *largv[] = { argv[0], "-o", "max_write=1048576,max_readahead=1048576" };
	struct fuse_args margs = FUSE_ARGS_INIT(3, margv);
	struct fuse_args largs = FUSE_ARGS_INIT(3, largv);
	struct fuse_chan *ch;
	struct fuse_session *se;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	long mib;
	int err = 1;

	if (argc != 3 || (mib = strtol(argv[1], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: %s SIZE_MIB MOUNTPOINT\n", argv[0]);
		return 2;
	}
	file_size = (off_t)mib << 20;
	pattern = malloc(PATTERN + MAX_READ);
	if (pattern == NULL) {
		perror("malloc");
		return 1;
	}
	for (size_t i = 0; i < PATTERN; i += sizeof(x)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(pattern + i, &x, sizeof(x));
	}
	memcpy(pattern + PATTERN, pattern, MAX_READ);

	ch = fuse_mount(argv[2], &margs);
	if (ch == NULL)
		return 1;
	se = fuse_lowlevel_new(&largs, &ops, sizeof(ops), NULL);
	if (se != NULL) {
		if (fuse_set_signal_handlers(se) == 0) {
			fuse_session_add_chan(se, ch);
			err = fuse_session_loop(se);
			fuse_remove_signal_handlers(se);
			fuse_session_remove_chan(ch);
		}
		fuse_session_destroy(se);
	}
	fuse_unmount(argv[2], ch);
	return err ? 1 : 0;
}

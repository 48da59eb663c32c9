// What speaking the kernel's FUSE protocol on /dev/fuse ourselves would bring
// over libfuse 2 (which chaac-fuse uses): a minimal server, no libfuse, that
// serves one read-only file `f` backed by a real file on the local disk.
// bench/fuse-proto.ts mounts it in each mode beside the local disk and
// bench/fuse-floor.c.
//
//   fuse-proto [--max-pages N] [--threads N] [--clone] [--passthrough] BACKING MOUNTPOINT
//
//   --max-pages N   requests of up to N pages (FUSE_MAX_PAGES, protocol 7.28;
//                   the kernel caps N at fs.fuse.max_pages_limit, 256 by
//                   default). libfuse 2 cannot ask: the kernel then uses 32
//                   (128 KiB). Default 32.
//   --threads N     N threads read /dev/fuse (default 1), each reply a pread
//                   of the backing file.
//   --clone         each thread reads its own clone of the /dev/fuse fd
//                   (FUSE_DEV_IOC_CLONE), as libfuse 3's clone_fd does.
//   --passthrough   FUSE_PASSTHROUGH (protocol 7.40, kernel 6.9): the backing
//                   file is registered with FUSE_DEV_IOC_BACKING_OPEN and every
//                   OPEN answers FOPEN_PASSTHROUGH, so the kernel reads and
//                   maps it itself; no READ ever reaches this process.
//
// Foreground; SIGTERM or SIGINT unmounts (lazily) and exits, and so does an
// unmount from outside. On SIGUSR1 and on exit it prints to stderr what it
// served since the last such line, so that the bench can tell the request
// sizes the kernel really sent for each workload:
//   fuse-proto: reads N bytes B max M opens O
// Runs as root: mount(2) of a fuse file system and the passthrough ioctl need it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

// Protocol 7.40 (kernel 6.9) added passthrough. An older <linux/fuse.h>
// (Debian 12's is 7.38) lacks it; the ABI is fixed, so it is spelled out
// here: max_stack_depth took init_out.unused[0], backing_id open_out.padding.
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#define FOPEN_PASSTHROUGH (1 << 7)
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define MAX_STACK_DEPTH(o) ((o)->unused[0])
#define BACKING_ID(o) ((o)->padding)
#else
#define MAX_STACK_DEPTH(o) ((o)->max_stack_depth)
#define BACKING_ID(o) ((o)->backing_id)
#endif

#define FILE_INO 2
#define FILE_NAME "f"
#define TIMEOUT 3600 // seconds: nothing changes under the mount
#define PAGE 4096u
// The protocol version spoken: the first with passthrough.
#define OUR_MINOR 40

static struct {
	int max_pages;
	int threads;
	int clone;
	int passthrough;
	int backing_fd;
	off_t size;
	const char *mountpoint;
	int dev_fd;
	int backing_id;
	uint32_t minor; // agreed in INIT
	size_t buf_size;
} cfg = { .max_pages = 32, .threads = 1 };

static struct {
	uint64_t reads, read_bytes, max_read, opens;
} stats;

static void add_stat(uint64_t *field, uint64_t n)
{
	__atomic_fetch_add(field, n, __ATOMIC_RELAXED);
}

static uint64_t take_stat(uint64_t *field)
{
	return __atomic_exchange_n(field, 0, __ATOMIC_RELAXED);
}

// What was served since the last report; the counters start again from zero.
static void report(void)
{
	unsigned long long reads = take_stat(&stats.reads), bytes = take_stat(&stats.read_bytes);
	unsigned long long max = take_stat(&stats.max_read), opens = take_stat(&stats.opens);
	fprintf(stderr, "fuse-proto: reads %llu bytes %llu max %llu opens %llu\n", reads, bytes, max, opens);
}

static void fill_attr(uint64_t ino, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->blksize = PAGE;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->size = cfg.size;
		a->blocks = (cfg.size + 511) / 512;
	}
}

// One reply: the header, then up to two pieces of payload. A failed write
// (ENOENT: the request was interrupted; ENODEV: unmounted) needs no action.
static void reply(int fd, uint64_t unique, int error, const void *a, size_t alen, const void *b, size_t blen)
{
	struct fuse_out_header out = { .len = sizeof(out) + alen + blen, .error = -error, .unique = unique };
	struct iovec iov[3] = { { &out, sizeof(out) }, { (void *)a, alen }, { (void *)b, blen } };
	if (writev(fd, iov, 1 + (alen > 0) + (blen > 0)) < 0 && errno != ENOENT && errno != ENODEV)
		perror("fuse-proto: reply");
}

static void reply_err(int fd, uint64_t unique, int error)
{
	reply(fd, unique, error, NULL, 0, NULL, 0);
}

static void do_init(int fd, const struct fuse_in_header *in, const struct fuse_init_in *arg)
{
	struct fuse_init_out out;
	uint64_t offered = arg->flags;
	uint64_t wanted = FUSE_ASYNC_READ | FUSE_MAX_PAGES;

	if (arg->major != FUSE_KERNEL_VERSION || arg->minor < 28) {
		fprintf(stderr, "fuse-proto: kernel protocol %u.%u; need 7.28 or later\n", arg->major, arg->minor);
		exit(1);
	}
	if (offered & FUSE_INIT_EXT)
		offered |= (uint64_t)arg->flags2 << 32;
	if (cfg.passthrough) {
		if (!(offered & FUSE_PASSTHROUGH)) {
			fprintf(stderr, "fuse-proto: the kernel does not offer FUSE_PASSTHROUGH (CONFIG_FUSE_PASSTHROUGH)\n");
			exit(1);
		}
		wanted |= FUSE_INIT_EXT | FUSE_PASSTHROUGH;
	}
	wanted &= offered | FUSE_INIT_EXT;
	cfg.minor = arg->minor < OUR_MINOR ? arg->minor : OUR_MINOR;

	memset(&out, 0, sizeof(out));
	out.major = FUSE_KERNEL_VERSION;
	out.minor = cfg.minor;
	// The kernel offers its readahead (the mount's bdi read_ahead_kb) and takes the smaller.
	out.max_readahead = arg->max_readahead;
	out.flags = (uint32_t)wanted;
	out.flags2 = (uint32_t)(wanted >> 32);
	out.max_write = cfg.max_pages * PAGE;
	out.time_gran = 1;
	out.max_pages = cfg.max_pages;
	// Passthrough stacks this file system on the backing one (ext4: depth 0).
	if (cfg.passthrough)
		MAX_STACK_DEPTH(&out) = 1;
	reply(fd, in->unique, 0, &out, sizeof(out), NULL, 0);
}

static void do_lookup(int fd, const struct fuse_in_header *in, const char *name)
{
	struct fuse_entry_out out;
	if (in->nodeid != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		reply_err(fd, in->unique, ENOENT);
		return;
	}
	memset(&out, 0, sizeof(out));
	out.nodeid = FILE_INO;
	out.entry_valid = TIMEOUT;
	out.attr_valid = TIMEOUT;
	fill_attr(FILE_INO, &out.attr);
	reply(fd, in->unique, 0, &out, sizeof(out), NULL, 0);
}

static void do_getattr(int fd, const struct fuse_in_header *in)
{
	struct fuse_attr_out out;
	if (in->nodeid != FUSE_ROOT_ID && in->nodeid != FILE_INO) {
		reply_err(fd, in->unique, ENOENT);
		return;
	}
	memset(&out, 0, sizeof(out));
	out.attr_valid = TIMEOUT;
	fill_attr(in->nodeid, &out.attr);
	reply(fd, in->unique, 0, &out, sizeof(out), NULL, 0);
}

static void do_open(int fd, const struct fuse_in_header *in, const struct fuse_open_in *arg, int dir)
{
	struct fuse_open_out out;
	if (dir != (in->nodeid == FUSE_ROOT_ID)) {
		reply_err(fd, in->unique, dir ? ENOTDIR : EISDIR);
		return;
	}
	if ((arg->flags & O_ACCMODE) != O_RDONLY) {
		reply_err(fd, in->unique, EROFS);
		return;
	}
	memset(&out, 0, sizeof(out));
	if (!dir && cfg.passthrough) {
		out.open_flags = FOPEN_PASSTHROUGH;
		BACKING_ID(&out) = cfg.backing_id;
	} else if (!dir) {
		// As chaac does for a file that did not change: the cached pages stay.
		out.open_flags = FOPEN_KEEP_CACHE;
	}
	if (!dir)
		add_stat(&stats.opens, 1);
	reply(fd, in->unique, 0, &out, sizeof(out), NULL, 0);
}

static void do_read(int fd, const struct fuse_in_header *in, const struct fuse_read_in *arg, char *data)
{
	size_t want = arg->size;
	size_t got = 0;
	if (in->nodeid != FILE_INO) {
		reply_err(fd, in->unique, EISDIR);
		return;
	}
	if (want > (size_t)cfg.max_pages * PAGE)
		want = (size_t)cfg.max_pages * PAGE;
	while (got < want) {
		ssize_t n = pread(cfg.backing_fd, data + got, want - got, arg->offset + got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			reply_err(fd, in->unique, errno);
			return;
		}
		if (n == 0)
			break;
		got += n;
	}
	add_stat(&stats.reads, 1);
	add_stat(&stats.read_bytes, got);
	if (arg->size > __atomic_load_n(&stats.max_read, __ATOMIC_RELAXED))
		__atomic_store_n(&stats.max_read, arg->size, __ATOMIC_RELAXED);
	reply(fd, in->unique, 0, data, got, NULL, 0);
}

// Directory entries of the root: ".", ".." and the file, offsets 1..3.
static void do_readdir(int fd, const struct fuse_in_header *in, const struct fuse_read_in *arg)
{
	static const struct { const char *name; uint64_t ino; uint32_t type; } entries[] = {
		{ ".", FUSE_ROOT_ID, S_IFDIR >> 12 },
		{ "..", FUSE_ROOT_ID, S_IFDIR >> 12 },
		{ FILE_NAME, FILE_INO, S_IFREG >> 12 },
	};
	char buf[256];
	size_t used = 0;
	for (uint64_t i = arg->offset; i < sizeof(entries) / sizeof(entries[0]); i++) {
		size_t namelen = strlen(entries[i].name);
		size_t len = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
		struct fuse_dirent *d = (struct fuse_dirent *)(buf + used);
		if (used + len > arg->size || used + len > sizeof(buf))
			break;
		memset(d, 0, len);
		d->ino = entries[i].ino;
		d->off = i + 1;
		d->namelen = namelen;
		d->type = entries[i].type;
		memcpy(d->name, entries[i].name, namelen);
		used += len;
	}
	reply(fd, in->unique, 0, buf, used, NULL, 0);
}

static void do_statfs(int fd, const struct fuse_in_header *in)
{
	struct fuse_statfs_out out;
	memset(&out, 0, sizeof(out));
	out.st.blocks = (cfg.size + PAGE - 1) / PAGE;
	out.st.files = 2;
	out.st.bsize = PAGE;
	out.st.frsize = PAGE;
	out.st.namelen = 255;
	reply(fd, in->unique, 0, &out, sizeof(out), NULL, 0);
}

// Serves one request. Returns 0 to go on, -1 at DESTROY.
static int dispatch(int fd, const char *req, char *data)
{
	const struct fuse_in_header *in = (const void *)req;
	const void *arg = req + sizeof(*in);

	switch (in->opcode) {
	case FUSE_INIT:
		do_init(fd, in, arg);
		break;
	case FUSE_LOOKUP:
		do_lookup(fd, in, arg);
		break;
	case FUSE_GETATTR:
		do_getattr(fd, in);
		break;
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		do_open(fd, in, arg, in->opcode == FUSE_OPENDIR);
		break;
	case FUSE_READ:
		do_read(fd, in, arg, data);
		break;
	case FUSE_READDIR:
		do_readdir(fd, in, arg);
		break;
	case FUSE_STATFS:
		do_statfs(fd, in);
		break;
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FLUSH:
		reply_err(fd, in->unique, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		// No reply: nothing is cached per inode, and every request finishes quickly.
		break;
	case FUSE_DESTROY:
		reply_err(fd, in->unique, 0);
		return -1;
	default:
		reply_err(fd, in->unique, ENOSYS);
	}
	return 0;
}

// Reads one request into buf. Returns its length, or 0 once the connection is gone.
static ssize_t next_request(int fd, char *buf)
{
	for (;;) {
		ssize_t n = read(fd, buf, cfg.buf_size);
		if (n >= (ssize_t)sizeof(struct fuse_in_header))
			return n;
		// EINTR: a signal; ENOENT: the request was interrupted before we read it.
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
			continue;
		if (n < 0 && errno != ENODEV)
			perror("fuse-proto: read /dev/fuse");
		return 0;
	}
}

static void *worker(void *p)
{
	int fd = cfg.dev_fd;
	char *req = malloc(cfg.buf_size);
	char *data = malloc((size_t)cfg.max_pages * PAGE);
	(void)p;
	if (req == NULL || data == NULL) {
		perror("fuse-proto: malloc");
		exit(1);
	}
	if (cfg.clone) {
		uint32_t master = cfg.dev_fd;
		fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
			perror("fuse-proto: FUSE_DEV_IOC_CLONE");
			exit(1);
		}
	}
	while (next_request(fd, req) > 0)
		if (dispatch(fd, req, data) < 0)
			break;
	// The connection is gone (unmounted from outside): the main thread cleans up.
	kill(getpid(), SIGTERM);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--max-pages N] [--threads N] [--clone] [--passthrough] BACKING MOUNTPOINT\n", argv0);
	exit(2);
}

static void parse_args(int argc, char *argv[])
{
	int i;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--max-pages") == 0 && i + 1 < argc)
			cfg.max_pages = atoi(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			cfg.threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--clone") == 0)
			cfg.clone = 1;
		else if (strcmp(argv[i], "--passthrough") == 0)
			cfg.passthrough = 1;
		else
			usage(argv[0]);
	}
	if (argc - i != 2 || cfg.max_pages < 1 || cfg.max_pages > 1024 || cfg.threads < 1 || cfg.threads > 64)
		usage(argv[0]);
	cfg.backing_fd = open(argv[i], O_RDONLY | O_CLOEXEC);
	if (cfg.backing_fd < 0) {
		perror(argv[i]);
		exit(1);
	}
	cfg.mountpoint = argv[i + 1];
}

int main(int argc, char *argv[])
{
	char opts[256];
	struct stat st;
	sigset_t stop;
	pthread_t tid;
	char *req;
	int sig;

	parse_args(argc, argv);
	if (fstat(cfg.backing_fd, &st) < 0) {
		perror("fstat");
		return 1;
	}
	cfg.size = st.st_size;
	// The kernel refuses a read buffer smaller than one WRITE of max_write bytes with its headers.
	cfg.buf_size = (size_t)cfg.max_pages * PAGE + PAGE;

	// Signals wait for the main thread alone (sigwait below); workers inherit the mask.
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	cfg.dev_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (cfg.dev_fd < 0) {
		perror("/dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions", cfg.dev_fd);
	if (mount("fuse-proto", cfg.mountpoint, "fuse.fuse-proto", MS_NOSUID | MS_NODEV | MS_RDONLY, opts) < 0) {
		perror("mount");
		return 1;
	}

	// INIT first, on this thread: passthrough can be set up only once it is agreed.
	req = malloc(cfg.buf_size);
	if (req == NULL || next_request(cfg.dev_fd, req) == 0 || ((struct fuse_in_header *)req)->opcode != FUSE_INIT) {
		fprintf(stderr, "fuse-proto: no INIT from the kernel\n");
		umount2(cfg.mountpoint, MNT_DETACH);
		return 1;
	}
	dispatch(cfg.dev_fd, req, NULL);
	free(req);
	if (cfg.passthrough) {
		struct fuse_backing_map map = { .fd = cfg.backing_fd };
		cfg.backing_id = ioctl(cfg.dev_fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
		if (cfg.backing_id <= 0) {
			perror("fuse-proto: FUSE_DEV_IOC_BACKING_OPEN");
			umount2(cfg.mountpoint, MNT_DETACH);
			return 1;
		}
	}

	for (int i = 0; i < cfg.threads; i++) {
		if (pthread_create(&tid, NULL, worker, NULL) != 0) {
			fprintf(stderr, "fuse-proto: pthread_create failed\n");
			umount2(cfg.mountpoint, MNT_DETACH);
			return 1;
		}
		pthread_detach(tid);
	}
	fprintf(stderr, "fuse-proto: serving %s (protocol 7.%u, max_pages %d, threads %d%s%s)\n", cfg.mountpoint,
		cfg.minor, cfg.max_pages, cfg.threads, cfg.clone ? ", cloned fds" : "", cfg.passthrough ? ", passthrough" : "");

	while (sigwait(&stop, &sig) == 0 && sig == SIGUSR1)
		report();
	// Lazy: a reader still holding the file must not keep us from exiting;
	// our exit closes /dev/fuse, which ends the connection for good. EINVAL:
	// already unmounted from outside.
	if (umount2(cfg.mountpoint, MNT_DETACH) < 0 && errno != EINVAL)
		perror("fuse-proto: umount2");
	report();
	return 0;
}

// The native read path: reads of files whose bytes are all in local ball
// files, served by a few C threads without the JS thread (see native-reads.c).
#ifndef CHAAC_NATIVE_READS_H
#define CHAAC_NATIVE_READS_H

#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

typedef struct readers readers_t;

// One chunk of a plan: a ball's data, in a ball file of a local bin.
typedef struct {
  uint32_t index;        // chunk number in the file
  const char *id;        // 64 hex digits
  const char *path;      // the ball file
  uint32_t header_len;   // bytes before the data
  uint32_t block_size;
  uint32_t size;         // data bytes
  const uint8_t *hashes; // SHA-256 of each block, 32 bytes each
  uint32_t report_at;    // reads after which the ball's count goes to JS at once (0: in the next batch)
} plan_chunk_t;

// Reads the binding could not serve, and notes of reads served, go back
// through `forward` (called from a worker thread or the event loop; it must
// wake the JS thread, which takes them with readers_forwarded and readers_note).
typedef void (*forward_fn) (void *arg);

readers_t *readers_new (int threads, forward_fn forward, void *arg);
// Joins the workers; reads still queued are answered EIO (the session ended).
void readers_stop (readers_t *r);
void readers_free (readers_t *r);

// Takes a read of handle `fh` if it has a plan: 1 when taken (answered later by a worker).
int readers_take (readers_t *r, fuse_req_t req, uint64_t fh, size_t size, off_t off);
// A read a worker gave up on, for the JS path: 1 when there was one.
int readers_forwarded (readers_t *r, fuse_req_t *req, fuse_ino_t *ino, uint64_t *fh, size_t *size, off_t *off);

// Installs the plan of a handle (replacing any it had); 0, or -1 out of memory.
// skip_cache: the file is read without caching; its reads feed no use counts.
int readers_set_plan (readers_t *r, uint64_t fh, fuse_ino_t ino, uint64_t file_size, uint32_t chunk_size, int skip_cache,
                      const plan_chunk_t *chunks, uint32_t count);
// Reads of a ball served since its last note, for the store's use counts: 1 when there was one.
int readers_note (readers_t *r, char id[65], uint32_t *reads);
void readers_drop_fh (readers_t *r, uint64_t fh);
void readers_drop_ino (readers_t *r, fuse_ino_t ino);

// [reads served, ball reads (local cache hits), bytes served, reads forwarded to JS, blocks verified]
void readers_stats (readers_t *r, double out[5]);

#endif

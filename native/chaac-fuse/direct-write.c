// New ball files written with O_DIRECT on a thread of libuv's pool. The
// bytes go from one aligned buffer to the disk instead of through the page
// cache, and both the copy into that buffer and the write stay off the
// agent's JavaScript thread (V8 copies out of the shared chunk buffers byte
// by byte, slower than memcpy: a quarter of that thread's time on a
// sequential write when it was done there).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "direct-write.h"
#include "pool-job.h"

// What O_DIRECT asks of offsets, lengths and memory (the page size covers any block size a disk has).
#define ALIGN 4096
#define MAX_PARTS 4
// Buffers kept for the next writes, each large enough for a whole ball:
// fresh memory costs a page fault a page.
#define SPARE 4
#define SPARE_BYTES (4 * 1024 * 1024 + 2 * ALIGN)

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static void *spare[SPARE];
static int spares = 0;

static void *take (size_t size) {
  if (size <= SPARE_BYTES) {
    pthread_mutex_lock(&spare_lock);
    void *p = spares > 0 ? spare[--spares] : NULL;
    pthread_mutex_unlock(&spare_lock);
    if (p != NULL) return p;
    size = SPARE_BYTES;
  }
  void *p = NULL;
  return posix_memalign(&p, ALIGN, size) == 0 ? p : NULL;
}

static void give (void *p, size_t size) {
  if (size <= SPARE_BYTES) {
    pthread_mutex_lock(&spare_lock);
    if (spares < SPARE) {
      spare[spares++] = p;
      p = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
  }
  free(p);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  // The parts stay referenced (alive) until the write is done.
  napi_ref refs[MAX_PARTS];
  const uint8_t *data[MAX_PARTS];
  size_t len[MAX_PARTS];
  uint32_t parts;
  char *path;
  int err;
  int unsupported;
} job_t;

static void execute (napi_env env, void *arg) {
  job_t *j = arg;
  int fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0666);
  if (fd < 0) {
    if (errno == EINVAL) j->unsupported = 1;
    else j->err = errno;
    return;
  }
  size_t total = 0;
  for (uint32_t i = 0; i < j->parts; i++) total += j->len[i];
  // Whole blocks are written, and the file cut back to its length.
  size_t padded = (total + ALIGN - 1) / ALIGN * ALIGN;
  uint8_t *buf = padded > 0 ? take(padded) : NULL;
  if (padded > 0 && buf == NULL) j->err = ENOMEM;
  if (buf != NULL) {
    size_t pos = 0;
    for (uint32_t i = 0; i < j->parts; i++) {
      memcpy(buf + pos, j->data[i], j->len[i]);
      pos += j->len[i];
    }
    memset(buf + total, 0, padded - total);
    for (size_t done = 0; done < padded && j->err == 0;) {
      ssize_t n = pwrite(fd, buf + done, padded - done, (off_t) done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) j->err = n < 0 ? errno : EIO;
      else done += (size_t) n;
    }
    give(buf, padded);
  }
  if (j->err == 0 && padded != total && ftruncate(fd, (off_t) total) != 0) j->err = errno;
  if (close(fd) != 0 && j->err == 0) j->err = errno;
}

static void complete (napi_env env, napi_status status, void *arg) {
  job_t *j = arg;
  if (j->err != 0) {
    const char *name = strerrorname_np(j->err);
    char text[4200];
    snprintf(text, sizeof(text), "%s, write with O_DIRECT '%s'", strerror(j->err), j->path);
    napi_value code, msg, error;
    napi_create_string_utf8(env, name != NULL ? name : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_reject_deferred(env, j->deferred, error);
  } else {
    napi_value done;
    napi_get_boolean(env, !j->unsupported, &done);
    napi_resolve_deferred(env, j->deferred, done);
  }
  for (uint32_t i = 0; i < j->parts; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

// writeDirect(path, parts) -> Promise<boolean>: writes the buffers `parts`
// (up to 4), one after the other, as the new file `path` with O_DIRECT;
// false, with nothing created, where the filesystem refuses O_DIRECT. A
// failure rejects with an Error whose code is the errno's name.
napi_value direct_write (napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t parts = 0;
  size_t plen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok ||
      napi_get_array_length(env, argv[1], &parts) != napi_ok || parts > MAX_PARTS) {
    napi_throw_error(env, NULL, "writeDirect(path, parts): a path and up to 4 buffers");
    return NULL;
  }
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL || (j->path = malloc(plen + 1)) == NULL) {
    free(j);
    napi_throw_error(env, NULL, "no memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], j->path, plen + 1, &plen);
  for (uint32_t i = 0; i < parts; i++) {
    napi_value part;
    void *data;
    napi_get_element(env, argv[1], i, &part);
    if (napi_get_buffer_info(env, part, &data, &j->len[i]) != napi_ok) {
      for (uint32_t k = 0; k < j->parts; k++) napi_delete_reference(env, j->refs[k]);
      free(j->path);
      free(j);
      napi_throw_error(env, NULL, "writeDirect: every part must be a Buffer");
      return NULL;
    }
    j->data[i] = data;
    napi_create_reference(env, part, 1, &j->refs[i]);
    j->parts = i + 1;
  }
  return queue_pool_job(env, "chaac.writeDirect", execute, complete, j, &j->deferred, &j->work);
}

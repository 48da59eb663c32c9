// The SHA-256 check of a whole ball's blocks on a thread of libuv's pool. A
// ball fetched from a peer or the cloud tier is checked before any of it is
// used; on the agent's JavaScript thread that took a tenth of its time
// during remote reads, and a worker thread needed the bytes copied to it
// first (slower in the end, measured). Here the buffer is only referenced.
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verify-blocks.h"
#include "pool-job.h"

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  // Both buffers stay referenced (alive) until the check is done.
  napi_ref refs[2];
  const uint8_t *data;
  size_t len;
  const uint8_t *hashes;
  size_t hashes_len;
  uint32_t block_size;
  int good;
} job_t;

static void execute (napi_env env, void *arg) {
  job_t *j = arg;
  size_t blocks = (j->len + j->block_size - 1) / j->block_size;
  j->good = blocks * SHA256_DIGEST_LENGTH == j->hashes_len;
  for (size_t i = 0; i < blocks && j->good; i++) {
    size_t from = i * j->block_size;
    size_t n = j->len - from < j->block_size ? j->len - from : j->block_size;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(j->data + from, n, digest);
    j->good = memcmp(digest, j->hashes + i * SHA256_DIGEST_LENGTH, SHA256_DIGEST_LENGTH) == 0;
  }
}

static void complete (napi_env env, napi_status status, void *arg) {
  job_t *j = arg;
  napi_value good;
  napi_get_boolean(env, status == napi_ok && j->good, &good);
  napi_resolve_deferred(env, j->deferred, good);
  for (int i = 0; i < 2; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_async_work(env, j->work);
  free(j);
}

// verifyBlocks(data, blockSize, hashes) -> Promise<boolean>: whether every
// block of `data` (blockSize bytes each, the last one shorter) has the
// SHA-256 at its place in `hashes`, 32 bytes a block. Neither buffer may
// change until the promise settles.
napi_value verify_blocks (napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  job_t *j = calloc(1, sizeof(*j));
  void *data = NULL, *hashes = NULL;
  if (j == NULL || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_buffer_info(env, argv[0], &data, &j->len) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &j->block_size) != napi_ok || j->block_size == 0 ||
      napi_get_buffer_info(env, argv[2], &hashes, &j->hashes_len) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "verifyBlocks(data, blockSize, hashes): two buffers and a block size");
    return NULL;
  }
  j->data = data;
  j->hashes = hashes;
  napi_create_reference(env, argv[0], 1, &j->refs[0]);
  napi_create_reference(env, argv[2], 1, &j->refs[1]);
  return queue_pool_job(env, "chaac.verifyBlocks", execute, complete, j, &j->deferred, &j->work);
}

#ifndef CHAAC_POOL_JOB_H
#define CHAAC_POOL_JOB_H

#include <node_api.h>

// Queues `execute` on a thread of libuv's pool and `complete` back on the
// JS thread, which settles `*deferred`; returns the promise.
static inline napi_value queue_pool_job (napi_env env, const char *label, napi_async_execute_callback execute,
                                         napi_async_complete_callback complete, void *job, napi_deferred *deferred,
                                         napi_async_work *work) {
  napi_value promise, name;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, label, NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, work);
  napi_queue_async_work(env, *work);
  return promise;
}

#endif

#ifndef CHAAC_DIRECT_WRITE_H
#define CHAAC_DIRECT_WRITE_H

#include <node_api.h>

// writeDirect(path, parts) -> Promise<boolean>: see direct-write.c.
napi_value direct_write (napi_env env, napi_callback_info info);

#endif

#ifndef CHAAC_VERIFY_BLOCKS_H
#define CHAAC_VERIFY_BLOCKS_H

#include <node_api.h>

// verifyBlocks(data, blockSize, hashes) -> Promise<boolean>: see verify-blocks.c.
napi_value verify_blocks (napi_env env, napi_callback_info info);

#endif

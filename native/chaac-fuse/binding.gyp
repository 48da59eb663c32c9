{
  "targets": [{
    "target_name": "chaac_fuse",
    "sources": ["chaac-fuse.c", "direct-write.c", "kernel-init.c", "native-reads.c", "pid-io.c", "takeover.c", "verify-blocks.c"],
    "include_dirs": ["/usr/include/fuse"],
    "defines": ["FUSE_USE_VERSION=29", "_FILE_OFFSET_BITS=64", "NAPI_VERSION=8"],
    "libraries": ["-lfuse", "-lpthread"],
    "cflags": ["-g", "-O2", "-Wall", "-Wno-unused-parameter"]
  }]
}

{
  "targets": [{
    "target_name": "fuse",
    "sources": ["fuse-native.c"],
    "include_dirs": [
      "<!(node -e \"require('napi-macros')\")",
      "<!(node -e \"require('fuse-shared-library-linux/include')\")"
    ],
    "libraries": ["-l:libfuse.so.2"],
    "cflags": ["-g", "-O3", "-Wall"]
  }]
}

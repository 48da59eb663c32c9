#!/usr/bin/env python3
"""Small-file workload for bench/single-host.ts.

Usage: small-files.py DIR COUNT SIZE

Creates COUNT files of SIZE bytes in a new folder under DIR, then stats,
reads and unlinks them all, one phase after another, and prints the rate of
each phase as JSON: {"create": ops/s, "stat": ..., "read": ..., "unlink": ...}.

Plain syscalls through os.*, one file at a time, as a build or an unpacked
archive would do them. Each file gets different bytes (its index in front),
so a filesystem that stores identical content once cannot skip the writes.
"""
import json
import os
import sys
import time


def timed(items, op):
    start = time.perf_counter()
    for item in items:
        op(item)
    return len(items) / (time.perf_counter() - start)


def main():
    root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    folder = os.path.join(root, 'small-files')
    os.mkdir(folder)
    names = [os.path.join(folder, f'f{i:05d}') for i in range(count)]
    payload = os.urandom(size)

    def create(item):
        index, name = item
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, index.to_bytes(8, 'little') + payload[8:])
        finally:
            os.close(fd)

    def read(name):
        fd = os.open(name, os.O_RDONLY)
        try:
            if len(os.read(fd, size + 1)) != size:
                raise RuntimeError(f'{name}: short read')
        finally:
            os.close(fd)

    rates = {
        'create': timed(list(enumerate(names)), create),
        'stat': timed(names, os.stat),
        'read': timed(names, read),
        'unlink': timed(names, os.unlink),
    }
    os.rmdir(folder)
    print(json.dumps(rates))


if __name__ == '__main__':
    main()

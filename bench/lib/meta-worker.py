#!/usr/bin/env python3
"""One writer of bench/meta.ts: plain syscalls through os.*, one file at a time.

Usage:
  meta-worker.py PHASE DIR COUNT TAG START_AT [PER_DIR]
      PHASE: create, stat, readdir, rename, unlink (of the created names),
      unlink-renamed (of the renamed ones). Files are DIR/TAG-NNNNNN, or with
      PER_DIR > 0, DIR/dK/TAG-NNNNNN with PER_DIR files in each dK. Waits
      until the wall clock reaches START_AT (seconds since the epoch), so that
      every writer of a phase starts together, then prints
      {"ops": N, "start": T0, "end": T1}. readdir lists DIR 5 times (names
      only) and counts entries.
  meta-worker.py writer DIR STOP_FILE
      Creates DIR/fNNNNNNN (4 KiB, write, fsync, close) until STOP_FILE
      exists; after each acknowledged file prints "ok NAME START LATENCY_MS",
      after a failed one "err NAME START LATENCY_MS ERROR".
  meta-worker.py check DIR < NAMES
      Reads every name (a path under DIR) and compares its bytes with what
      writer wrote under that file name; prints
      {"checked": N, "missing": [...], "wrong": [...]}.
"""
import json
import os
import sys
import time

SIZE = 4096
READDIR_REPEATS = 5


def content(name):
    line = (name + '\n').encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


def phase(kind, root, count, tag, start_at, per_dir):
    def path(i, suffix=''):
        name = f'{tag}-{i:06d}{suffix}'
        return os.path.join(root, f'd{i // per_dir}', name) if per_dir > 0 else os.path.join(root, name)

    payload = os.urandom(SIZE)
    if kind == 'create':
        os.makedirs(root, exist_ok=True)
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    t0 = time.time()
    ops = count
    if kind == 'create':
        made = set()
        for i in range(count):
            if per_dir > 0 and i // per_dir not in made:
                os.makedirs(os.path.join(root, f'd{i // per_dir}'), exist_ok=True)
                made.add(i // per_dir)
            fd = os.open(path(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                # Different bytes in every file: nothing can be stored once for all.
                os.write(fd, i.to_bytes(8, 'little') + payload[8:])
            finally:
                os.close(fd)
    elif kind == 'stat':
        for i in range(count):
            os.stat(path(i))
    elif kind == 'readdir':
        ops = 0
        for _ in range(READDIR_REPEATS):
            with os.scandir(root) as it:
                for _entry in it:
                    ops += 1
    elif kind == 'rename':
        for i in range(count):
            os.rename(path(i), path(i, '.r'))
    elif kind in ('unlink', 'unlink-renamed'):
        suffix = '.r' if kind == 'unlink-renamed' else ''
        for i in range(count):
            os.unlink(path(i, suffix))
    else:
        raise SystemExit(f'unknown phase {kind}')
    print(json.dumps({'ops': ops, 'start': t0, 'end': time.time()}))


def writer(root, stop_file):
    os.makedirs(root, exist_ok=True)
    i = 0
    while not os.path.exists(stop_file):
        name = f'f{i:07d}'
        i += 1
        t0 = time.time()
        try:
            fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, content(name))
                os.fsync(fd)
            finally:
                os.close(fd)
            print(f'ok {name} {t0:.6f} {(time.time() - t0) * 1000:.3f}', flush=True)
        except OSError as e:
            print(f'err {name} {t0:.6f} {(time.time() - t0) * 1000:.3f} {e!r}', flush=True)
            time.sleep(0.05)


def check(root):
    names = [line.strip() for line in sys.stdin if line.strip()]
    missing, wrong = [], []
    for name in names:
        try:
            with open(os.path.join(root, name), 'rb') as f:
                if f.read() != content(os.path.basename(name)):
                    wrong.append(name)
        except FileNotFoundError:
            missing.append(name)
    print(json.dumps({'checked': len(names), 'missing': missing, 'wrong': wrong}))


def main():
    kind = sys.argv[1]
    if kind == 'writer':
        writer(sys.argv[2], sys.argv[3])
    elif kind == 'check':
        check(sys.argv[2])
    else:
        per_dir = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        phase(kind, sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), per_dir)


if __name__ == '__main__':
    main()

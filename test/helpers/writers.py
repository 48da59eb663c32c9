# One writer process of the concurrent-writers stress test
# (test/mount/concurrent-writers.test.ts), driven line by line: JSON commands
# on stdin, one line per result on stdout, flushed at once so that the driver
# holds every acknowledgement a writer made before the agent was killed.
#
# Commands:
#   {"cmd": "open", "paths": [...], "mode": "buf" | "direct" | "mmap", "readonly": bool}  -> "ok"
#   {"cmd": "run", "ops": [...]}  -> "d I" after op I, then "end" (or "e I ERRNO" and "end")
#   {"cmd": "read", "file": F}    -> "r SIZE SHA256", read through the descriptor held open
#   {"cmd": "close"}              -> "ok" (every descriptor; "open" again after)
#   {"cmd": "quit"}               -> exits
# Ops (F: the index of a path given to "open"):
#   ["w", F, OFF, LEN, TAG]  pwrite (from an aligned buffer in mode direct)
#   ["m", F, OFF, LEN, TAG]  store through a MAP_SHARED mapping, then msync (mode mmap)
#   ["a", F, LEN, TAG]       write to a descriptor opened with O_APPEND
#   ["s", F] fsync, ["d", F] fdatasync, ["c", F] close and open again,
#   ["t", F, SIZE] ftruncate, ["n", F, SIZE, TAG] write a new file and rename it over F
# Bytes written for TAG at position P (in the file; in the record for "a") are
# table(TAG)[P % 4093]: unique to each write, never zero, and shifted data shows.
import hashlib
import json
import mmap
import os
import sys

PERIOD = 4093
PAGE = mmap.PAGESIZE


def table(tag):
    raw = b''.join(hashlib.sha256(f'{tag}/{i}'.encode()).digest() for i in range((PERIOD + 31) // 32))
    return raw[:PERIOD].replace(b'\0', b'\1')


def pattern(tag, start, length):
    t = table(tag)
    s = start % PERIOD
    return (t * ((s + length) // PERIOD + 1))[s:s + length]


def say(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


class Writer:
    def __init__(self):
        self.paths = []
        self.mode = 'buf'
        self.fds = []
        self.appenders = {}
        self.readonly = False

    def open_one(self, f):
        flags = (os.O_RDONLY if self.readonly else os.O_RDWR) | (os.O_DIRECT if self.mode == 'direct' else 0)
        return os.open(self.paths[f], flags)

    def open(self, paths, mode, readonly):
        self.paths, self.mode, self.readonly = paths, mode, readonly
        self.fds = [self.open_one(f) for f in range(len(paths))]

    def close_one(self, f):
        fd, self.fds[f] = self.fds[f], None
        appender = self.appenders.pop(f, None)
        if appender is not None:
            os.close(appender)
        os.close(fd)

    def close(self):
        for f in range(len(self.fds)):
            if self.fds[f] is not None:
                self.close_one(f)

    def pwrite(self, fd, data, off):
        view = memoryview(data)
        while len(view) > 0:
            n = os.pwrite(fd, view, off)
            view, off = view[n:], off + n

    def op(self, op):
        kind, f = op[0], op[1]
        fd = self.fds[f]
        if kind == 'w':
            _, _, off, length, tag = op
            data = pattern(tag, off, length)
            if self.mode == 'direct':
                # O_DIRECT wants an aligned buffer: an anonymous mapping is page aligned.
                buf = mmap.mmap(-1, length)
                buf[:] = data
                self.pwrite(fd, buf, off)
                buf.close()
            else:
                self.pwrite(fd, data, off)
        elif kind == 'm':
            _, _, off, length, tag = op
            start = off - off % PAGE
            m = mmap.mmap(fd, off + length - start, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
            m[off - start:off - start + length] = pattern(tag, off, length)
            m.flush()
            m.close()
        elif kind == 'a':
            _, _, length, tag = op
            if f not in self.appenders:
                self.appenders[f] = os.open(self.paths[f], os.O_WRONLY | os.O_APPEND)
            # One write() per record: a record is never split by another appender.
            n = os.write(self.appenders[f], pattern(tag, 0, length))
            assert n == length, ('short append', n, length)
        elif kind == 's':
            os.fsync(fd)
        elif kind == 'd':
            os.fdatasync(fd)
        elif kind == 'c':
            self.close_one(f)
            self.fds[f] = self.open_one(f)
        elif kind == 't':
            os.ftruncate(fd, op[2])
        elif kind == 'n':
            _, _, size, tag = op
            tmp = self.paths[f] + '.new'
            with open(tmp, 'wb') as out:
                out.write(pattern(tag, 0, size))
            os.rename(tmp, self.paths[f])
        else:
            raise ValueError(f'unknown op {op!r}')

    def run(self, ops):
        for i, op in enumerate(ops):
            try:
                self.op(op)
            except OSError as err:
                say(f'e {i} {err.errno} {err.strerror}')
                break
            say(f'd {i}')
        say('end')

    def read(self, f):
        fd = self.fds[f]
        h = hashlib.sha256()
        size = 0
        if self.mode == 'direct':
            buf = mmap.mmap(-1, 1 << 20)
            while True:
                n = os.preadv(fd, [buf], size)
                h.update(buf[:n])
                size += n
                if n < len(buf):
                    break
            buf.close()
        else:
            while True:
                part = os.pread(fd, 1 << 20, size)
                if not part:
                    break
                h.update(part)
                size += len(part)
        say(f'r {size} {h.hexdigest()}')


def main():
    w = Writer()
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd['cmd'] == 'open':
                w.open(cmd['paths'], cmd['mode'], cmd.get('readonly', False))
                say('ok')
            elif cmd['cmd'] == 'run':
                w.run(cmd['ops'])
            elif cmd['cmd'] == 'read':
                w.read(cmd['file'])
            elif cmd['cmd'] == 'close':
                w.close()
                say('ok')
            elif cmd['cmd'] == 'quit':
                break
        except OSError as err:
            say(f'e - {err.errno} {err.strerror}')
    try:
        w.close()
    except OSError:
        pass  # the mount may be gone (the agent was killed)


if __name__ == '__main__':
    main()

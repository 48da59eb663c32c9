#!/usr/bin/env python3
"""How the kernel holds a file in its page cache: the share of pages that sit
in large folios (more than one page per folio) and the mean length of runs of
physically consecutive pages. A cached read copies folio by folio, and on a
virtual machine a scattered page costs more to reach, so these two explain
most of the difference between two hot re-reads of the same size.

    page-cache.py FILE     (as root: /proc/kpageflags; prints JSON)

Pages not in the cache are read in (the file is mapped and touched), so run
it right after the read whose cache it describes.
"""
import json
import mmap
import os
import struct
import sys

PAGE = 4096
COMPOUND_HEAD = 1 << 15
COMPOUND_TAIL = 1 << 16
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63
FLAG_SAMPLE = 16  # one page in 16 is looked up in kpageflags (a seek each)


def main(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        pages = os.fstat(fd).st_size // PAGE
        if pages < 2:
            raise SystemExit(f'{path}: too small to say')
        view = mmap.mmap(fd, pages * PAGE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    for i in range(pages):
        view[i * PAGE]
    start = None
    with open('/proc/self/maps') as maps:
        for line in maps:
            if line.rstrip().endswith(path):
                start = int(line.split('-')[0], 16)
                break
    if start is None:
        raise SystemExit(f'{path}: mapping not found')
    with open('/proc/self/pagemap', 'rb') as pagemap:
        pagemap.seek(start // PAGE * 8)
        entries = struct.unpack(f'{pages}Q', pagemap.read(pages * 8))
    if not all(e & PRESENT for e in entries):
        raise SystemExit(f'{path}: some pages are not mapped')
    pfns = [e & PFN_MASK for e in entries]
    if not any(pfns):
        raise SystemExit('page frame numbers are hidden: run as root')
    breaks = sum(1 for a, b in zip(pfns, pfns[1:]) if b != a + 1)
    large = sampled = 0
    with open('/proc/kpageflags', 'rb') as flags:
        for pfn in pfns[::FLAG_SAMPLE]:
            flags.seek(pfn * 8)
            (f,) = struct.unpack('Q', flags.read(8))
            sampled += 1
            large += 1 if f & (COMPOUND_HEAD | COMPOUND_TAIL) else 0
    print(json.dumps({'pages': pages, 'largeFolios': large / sampled, 'meanRun': pages / (breaks + 1)}))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit('usage: page-cache.py FILE')
    main(os.path.realpath(sys.argv[1]))

#!/usr/bin/env python3
"""Counts the log records of page store layer files, by kind, with their
bytes (docs/storage-format.md, "Log records"; docs/benchmarks.md, "Page
patches").

usage: scripts/layer-records.py HOME/store/layer-... [more layer files]

Reads each file from its 24-byte header to the first frame that is not a
record (an open log's zeroed tail, or a sealed layer's seal marker). CRCs
are not checked: this is for looking, not for verifying.
"""
import struct
import sys
from collections import Counter

KINDS = {1: "page", 2: "zero page", 3: "metadata", 4: "truncation", 5: "patch"}
HEADER_LEN = 24
MAX_PAYLOAD = 1 << 20


def scan(path, count, size):
    with open(path, "rb") as f:
        data = f.read()
    at = HEADER_LEN
    while at + 9 <= len(data):
        (length,) = struct.unpack_from("<I", data, at)
        if length == 0 or length > MAX_PAYLOAD or at + 8 + length > len(data):
            break
        kind = data[at + 8]
        count[kind] += 1
        size[kind] += 8 + length
        at += 8 + length


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    count, size = Counter(), Counter()
    for path in sys.argv[1:]:
        scan(path, count, size)
    total = sum(size.values()) or 1
    for kind in sorted(count):
        name = KINDS.get(kind, f"kind {kind}")
        print(f"{name:>11}: {count[kind]:>9} records {size[kind] / 1e6:>10.1f} MB"
              f" ({100 * size[kind] / total:.0f}%), {size[kind] / count[kind]:.0f} B each")


if __name__ == "__main__":
    main()

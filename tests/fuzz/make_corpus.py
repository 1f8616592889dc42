#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/api_fuzzer.cpp into tests/fuzz/corpus/.

Each input is a small program in the fuzzer's encoding (see the top of
api_fuzzer.cpp): one options byte, then operations. The files are committed;
run this again after changing the encoding:  python3 tests/fuzz/make_corpus.py
Files it does not write are kept: 13-finalizer-then-destroy is an input the
fuzzer found (a finalizer set just before the heap is destroyed), added by hand.
"""
import os
import random

# Opcodes, as in api_fuzzer.cpp's `enum Op`.
ALLOC, LINK, CLEAR, COLLECT, RELEASE, SET_FIN, CLEAR_FIN, ROOT_ADD, ROOT_REMOVE, REWRITE, HOP, GARBAGE = range(12)

# Options byte: bits 0-1 GOGC (off, 10, 50, 100), bit 2 two mark threads.
MANUAL, GOGC10, GOGC50, GOGC100, TWO_MARKERS = 0, 1, 2, 3, 4

# Kinds for ALLOC: low two bits tiny/small/medium/large, bit 2 noscan.
TINY, SMALL, MEDIUM, LARGE, NOSCAN = 0, 1, 2, 3, 4


def root(block, word):
    """A destination byte naming word `word` of root block `block` (0 and 1 start registered)."""
    return 0x80 | (block << 3) | word


def node_slot(k):
    """A destination byte naming an edge of the k-th live node (if it has edges)."""
    return k & 0x7F


def alloc(kind, size_byte, dest, edges=(), offset=0):
    return [ALLOC, kind, size_byte, len(edges), dest, *edges, offset]


def write(name, data):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", name)
    with open(path, "wb") as f:
        f.write(bytes(data))


def main():
    os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"), exist_ok=True)

    # Live-node references in edges: 0 = null, k+1 = the k-th live node.
    write("01-basic", [MANUAL,
                       *alloc(SMALL, 10, root(0, 0), edges=(0, 0)),
                       *alloc(TINY | NOSCAN, 7, root(0, 1)),
                       COLLECT,
                       *alloc(SMALL, 3, node_slot(0), edges=(1,)),
                       COLLECT])
    write("02-chain-then-drop", [MANUAL,
                                 *alloc(SMALL, 4, root(0, 0), edges=(0, 0, 0)),
                                 *alloc(SMALL, 5, node_slot(0), edges=(0, 0)),
                                 *alloc(SMALL, 6, node_slot(1), edges=(0,)),
                                 *alloc(SMALL | NOSCAN, 30, node_slot(2)),
                                 COLLECT,
                                 CLEAR, root(0, 0),
                                 COLLECT,
                                 *alloc(SMALL, 4, root(0, 0), edges=(0,)),
                                 COLLECT])
    write("03-large", [MANUAL,
                       *alloc(LARGE, 20, root(0, 2), edges=(0, 0, 0, 0)),
                       *alloc(LARGE | NOSCAN, 200, root(1, 3)),
                       *alloc(MEDIUM, 100, node_slot(0), edges=(1,)),
                       COLLECT, RELEASE,
                       CLEAR, root(1, 3),
                       COLLECT, RELEASE,
                       *alloc(LARGE, 90, root(1, 3), edges=(1, 2)),
                       COLLECT])
    write("04-finalizers", [MANUAL,
                            *alloc(SMALL, 12, root(0, 0), edges=(0, 0)),
                            *alloc(SMALL, 12, node_slot(0), edges=(1,)),
                            SET_FIN, 1,
                            SET_FIN, 0,
                            COLLECT,
                            CLEAR, root(0, 0),
                            COLLECT, COLLECT, COLLECT,
                            *alloc(SMALL, 12, root(0, 0)),
                            COLLECT])
    write("05-root-blocks", [MANUAL,
                             *alloc(SMALL, 8, root(2, 0), edges=(0,)),
                             ROOT_ADD, 2,
                             *alloc(SMALL, 8, root(2, 1), edges=(0,)),
                             *alloc(SMALL, 8, root(0, 0), edges=(1,)),
                             ROOT_REMOVE, 0,
                             COLLECT,
                             ROOT_ADD, 0,
                             ROOT_REMOVE, 2,
                             COLLECT,
                             ROOT_ADD, 3,
                             *alloc(MEDIUM, 1, root(3, 7)),
                             COLLECT])
    write("06-thread-hop", [MANUAL,
                            *alloc(SMALL, 9, root(0, 0), edges=(0, 0)),
                            HOP, 4,
                            *alloc(SMALL, 9, node_slot(0), edges=(1,)),
                            COLLECT,
                            *alloc(TINY | NOSCAN, 3, root(1, 0)),
                            LINK, root(1, 1), 1, 0,
                            COLLECT,
                            HOP, 1, COLLECT])
    write("07-pacer", [GOGC10,
                       *alloc(SMALL, 40, root(0, 0), edges=(0, 0, 0, 0)),
                       *[b for _ in range(12) for b in (GARBAGE, 15, 250)],
                       *alloc(MEDIUM, 200, node_slot(0), edges=(1,)),
                       *[b for _ in range(12) for b in (GARBAGE, 15, 255)],
                       *alloc(LARGE, 255, root(1, 1)),
                       *[b for _ in range(8) for b in (GARBAGE, 15, 255)]])
    write("08-interior-and-rewrite", [MANUAL,
                                      *alloc(SMALL, 60, root(0, 0), edges=(0, 0), offset=250),
                                      *alloc(MEDIUM | NOSCAN, 60, node_slot(0), offset=200),
                                      LINK, root(0, 1), 2, 230,
                                      REWRITE, 0, REWRITE, 1,
                                      COLLECT,
                                      CLEAR, root(0, 0),
                                      COLLECT,
                                      REWRITE, 0,
                                      COLLECT])
    write("09-cycles", [MANUAL,
                        *alloc(SMALL, 2, root(0, 0), edges=(0, 0)),
                        *alloc(SMALL, 2, node_slot(0), edges=(1, 0)),
                        LINK, node_slot(1), 2, 0,
                        SET_FIN, 1,
                        COLLECT,
                        CLEAR, root(0, 0),
                        COLLECT, COLLECT])
    write("10-two-markers", [GOGC50 | TWO_MARKERS,
                             *alloc(SMALL, 20, root(0, 0), edges=(0, 0, 0, 0, 0, 0)),
                             *[b for k in range(6) for b in alloc(SMALL, 20 + k, node_slot(0), edges=(1, 0))],
                             COLLECT,
                             *[b for _ in range(6) for b in (GARBAGE, 10, 100)],
                             COLLECT, RELEASE])
    write("11-clear-finalizer", [MANUAL,
                                 *alloc(SMALL, 5, root(0, 0), edges=(0,)),
                                 SET_FIN, 0, CLEAR_FIN, 0, SET_FIN, 0,
                                 COLLECT,
                                 CLEAR_FIN, 0,
                                 CLEAR, root(0, 0),
                                 COLLECT, COLLECT])
    rng = random.Random(7)
    write("12-random", [GOGC100] + [rng.randrange(256) for _ in range(240)])


if __name__ == "__main__":
    main()

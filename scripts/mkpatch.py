#!/usr/bin/env python3
"""Developer tool: regenerate a patch in patches/ from edited copies.

usage: mkpatch.py PRISTINE_TREE EDIT_TREE PATCH HEADER_FILE FILE...

Writes PATCH as a mail-style header (Subject, body, Signed-off-by) followed
by a unified diff of each FILE between the pristine tree and EDIT_TREE.
`patch -p1` skips the header; `git am` reads it when exporting the series.
"""
import difflib
import sys


def main():
    pristine, edit, out, header = sys.argv[1:5]
    files = sys.argv[5:]
    chunks = [open(header).read().rstrip("\n") + "\n---\n"]
    for f in files:
        try:
            a = open(f"{pristine}/{f}").read().splitlines(keepends=True)
        except FileNotFoundError:
            a = []
        b = open(f"{edit}/{f}").read().splitlines(keepends=True)
        chunks.append(f"diff --git a/{f} b/{f}\n")
        chunks.extend(difflib.unified_diff(a, b, f"a/{f}", f"b/{f}", n=3))
    chunks.append("-- \n2.39.5\n\n")
    open(out, "w").write("".join(chunks))


if __name__ == "__main__":
    main()

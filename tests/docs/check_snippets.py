#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The documentation's code stays what the compiled examples are.

A C++ block of README.md or docs/guide.md introduced by a paragraph that
links an example (docs/examples/NAME.cpp) and ends with a colon ("From
examples/coro_fib.cpp ...:") must be that example's code: every line of the
block but blank and comment-only lines, leading and trailing blanks aside,
must occur in the example file, which the suite compiles and runs. A block
of hello.cpp must be the whole file but its leading comment.

Usage: check_snippets.py SOURCE_ROOT
Exit status: 0 pass, 1 fail.
"""

import os
import re
import sys

LINK = re.compile(r"\]\((?:docs/)?examples/([a-z_]+\.cpp)\)")


def blocks_with_example(path):
    """Yields (line number, example file name, block lines) for every C++ block
    introduced by a paragraph (the lines just before it) that links an example
    and ends with a colon."""
    lines = open(path, encoding="utf-8").read().split("\n")
    paragraph = []  # the last paragraph before the current line
    in_paragraph = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            m = LINK.search(" ".join(paragraph))
            if line.startswith("```cpp") and m and paragraph[-1].rstrip().endswith(":"):
                yield i + 2, m.group(1), lines[i + 1:j]
            paragraph = []
            in_paragraph = False
            i = j + 1
            continue
        if line.strip() == "":
            in_paragraph = False
        else:
            if not in_paragraph:
                paragraph = []
                in_paragraph = True
            paragraph.append(line)
        i += 1


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    root = sys.argv[1]
    examples = os.path.join(root, "docs", "examples")
    checked = 0
    errors = 0
    for doc in ("README.md", os.path.join("docs", "guide.md")):
        for line_no, name, block in blocks_with_example(os.path.join(root, doc)):
            with open(os.path.join(examples, name), encoding="utf-8") as f:
                source = f.read().split("\n")
            stripped = {l.strip() for l in source}
            missing = [l for l in block
                       if l.strip() and not l.strip().startswith("//") and l.strip() not in stripped]
            for l in missing:
                print(f"{doc}:{line_no}: a line of the block is not in docs/examples/{name}: {l.strip()}")
            errors += len(missing)
            if name == "hello.cpp":
                body = source
                while body and (body[0].startswith("//") or body[0] == ""):
                    body = body[1:]
                while body and body[-1] == "":
                    body = body[:-1]
                if block != body:
                    print(f"{doc}:{line_no}: the block differs from docs/examples/hello.cpp (its comment aside)")
                    errors += 1
            checked += 1
    print(f"{checked} blocks checked against docs/examples, {errors} mismatches")
    if checked == 0:
        print("FAIL: no block found; the introducing lines changed?")
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

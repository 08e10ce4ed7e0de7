#!/usr/bin/env python3
"""The README's Rust quickstart is the crate examples/rust-quickstart, byte for byte.

The README's one ```toml block that starts with `[dependencies]` must equal the
`[dependencies]` table of examples/rust-quickstart/Cargo.toml (from its header to
the next table or the end of the file, trailing blank lines aside), and the
README's one ```rust block must equal examples/rust-quickstart/src/main.rs.
scripts/test.sh runs this, then builds and runs the crate. Exits 1 with a diff
when either differs.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CRATE = ROOT / "examples" / "rust-quickstart"


def fenced_blocks(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks of a Markdown text, each ending in a newline."""
    pattern = re.compile(r"^```" + re.escape(language) + r"[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
    return [m.group(1) for m in pattern.finditer(text)]


def dependencies_table(manifest: str) -> str:
    lines = manifest.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "[dependencies]")
    except StopIteration:
        return ""
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    return "".join(lines[start:end]).rstrip("\n") + "\n"


def same(name: str, readme_block: str, crate_text: str, crate_path: Path) -> bool:
    if readme_block == crate_text:
        return True
    print(f"README.md's {name} differs from {crate_path.relative_to(ROOT)}:", file=sys.stderr)
    sys.stderr.writelines(
        difflib.unified_diff(
            readme_block.splitlines(keepends=True),
            crate_text.splitlines(keepends=True),
            f"README.md ({name})",
            str(crate_path.relative_to(ROOT)),
        )
    )
    return False


def main() -> int:
    readme = README.read_text(encoding="utf-8")
    deps = [b for b in fenced_blocks(readme, "toml") if b.startswith("[dependencies]\n")]
    rust = fenced_blocks(readme, "rust")
    problems = []
    if len(deps) != 1:
        problems.append(f"README.md has {len(deps)} ```toml blocks starting with [dependencies], not 1")
    if len(rust) != 1:
        problems.append(f"README.md has {len(rust)} ```rust blocks, not 1")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    manifest = CRATE / "Cargo.toml"
    main_rs = CRATE / "src" / "main.rs"
    ok = same("[dependencies] block", deps[0], dependencies_table(manifest.read_text(encoding="utf-8")), manifest)
    ok = same("Rust block", rust[0], main_rs.read_text(encoding="utf-8"), main_rs) and ok
    if ok:
        print(f"README.md's Rust quickstart is {CRATE.relative_to(ROOT)} ({len(rust[0].splitlines())} lines of main.rs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Source gates that rustc and clippy do not enforce on their own, run by tests/run.sh.

1. Every library and binary crate root of the workspace declares #![forbid(unsafe_code)],
   except the crates listed in UNSAFE_ALLOWED (the AF_XDP/netlink/mmap code).
2. Every `unsafe` block, impl and fn has a `SAFETY:` comment (or, for an unsafe fn, a
   `# Safety` doc section) on its line or the three lines above it.
3. Every declared dependency is used: its library name appears in the sources of the targets
   that can use it (normal dependencies: the package's lib/bin sources; dev-dependencies: any
   of its sources).

Prints one line per problem and exits 1 if there is any; prints a summary line otherwise.
"""

import json
import os
import re
import subprocess
import sys

# Packages allowed to contain unsafe code, and why.
UNSAFE_ALLOWED = {
    "xdpcarve-xdp": "AF_XDP rings, UMEM mmap, netlink and ethtool syscalls",
    "xdpcarve-hash": "the SIMD kernels' loads and stores (x8.rs, x16.rs, stitch.rs: the crate denies unsafe code elsewhere)",
}

UNSAFE_RE = re.compile(r"\bunsafe\s*(\{|fn\b|impl\b|extern\b)")


def metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def rust_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git")]
        for f in filenames:
            if f.endswith(".rs"):
                yield os.path.join(dirpath, f)


def strip_line_comment(line):
    # Good enough for this code base: `//` inside string literals is rare in code lines that
    # also contain `unsafe`.
    i = line.find("//")
    return line if i < 0 else line[:i]


def check_safety_comments(files, problems):
    count = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            code = strip_line_comment(line)
            if not UNSAFE_RE.search(code) or "forbid(unsafe_code)" in code or "unsafe_op_in_unsafe_fn" in code:
                continue
            count += 1
            window = lines[max(0, i - 3) : i + 1]
            if any("SAFETY:" in w for w in window):
                continue
            if re.search(r"\bunsafe\s+fn\b", code):
                # An unsafe fn documents its contract in a `# Safety` section of its doc comment.
                j = i - 1
                doc = []
                while j >= 0 and lines[j].strip().startswith(("///", "#[")):
                    doc.append(lines[j])
                    j -= 1
                if any("# Safety" in d for d in doc):
                    continue
            problems.append(f"{path}:{i + 1}: unsafe without a SAFETY comment: {line.strip()}")
    return count


def lib_names(meta_all):
    """Package name -> library crate name, for every package cargo knows (deps included)."""
    names = {}
    for p in meta_all["packages"]:
        for t in p["targets"]:
            if any(k in ("lib", "rlib", "proc-macro", "cdylib", "dylib") for k in t["kind"]):
                names[p["name"]] = t["name"].replace("-", "_")
    return names


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    meta = metadata()
    full = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    libs = lib_names(full)
    problems = []
    roots = 0
    unsafe_sites = 0
    for pkg in meta["packages"]:
        pkg_dir = os.path.dirname(pkg["manifest_path"])
        # 1. forbid(unsafe_code) on lib and bin roots.
        for t in pkg["targets"]:
            if not any(k in ("lib", "bin") for k in t["kind"]):
                continue
            roots += 1
            with open(t["src_path"], encoding="utf-8") as f:
                src = f.read()
            has_forbid = "#![forbid(unsafe_code)]" in src
            if pkg["name"] in UNSAFE_ALLOWED:
                continue
            if not has_forbid:
                problems.append(f"{t['src_path']}: crate root of {pkg['name']} lacks #![forbid(unsafe_code)]")
        # 2. SAFETY comments everywhere in the package.
        files = list(rust_files(pkg_dir))
        # Nested packages (tests/toy-protocol inside tests/) are checked as their own package.
        unsafe_sites += check_safety_comments(files, problems)
        # 3. Declared dependencies are used.
        normal_src = []
        all_src = []
        for path in files:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            all_src.append(text)
            rel = os.path.relpath(path, pkg_dir)
            if rel.startswith("src" + os.sep) or rel == "build.rs":
                normal_src.append(text)
        # Test targets that live outside the package (the binary's end-to-end tests in tests/).
        for t in pkg["targets"]:
            outside = os.path.relpath(t["src_path"], pkg_dir).startswith("..")
            if outside and any(k in ("test", "bench", "example") for k in t["kind"]):
                for path in rust_files(os.path.dirname(t["src_path"])):
                    with open(path, encoding="utf-8") as f:
                        all_src.append(f.read())
        normal_text = "\n".join(normal_src)
        all_text = "\n".join(all_src)
        for dep in pkg["dependencies"]:
            if dep["kind"] == "build":
                continue
            name = dep.get("rename") or libs.get(dep["name"], dep["name"].replace("-", "_"))
            name = name.replace("-", "_")
            haystack = all_text if dep["kind"] == "dev" else normal_text
            if not re.search(r"\b" + re.escape(name) + r"\b", haystack):
                kind = "dev-dependency" if dep["kind"] == "dev" else "dependency"
                problems.append(f"{pkg['manifest_path']}: {kind} `{dep['name']}` is declared but never used")
    for p in problems:
        print(f"check_source: {p}")
    if problems:
        print(f"check_source: {len(problems)} problem(s)")
        return 1
    print(
        f"check_source: {roots} crate roots, {unsafe_sites} unsafe sites with SAFETY comments, "
        f"every dependency used; unsafe allowed only in {', '.join(sorted(UNSAFE_ALLOWED))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

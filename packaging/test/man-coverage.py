#!/usr/bin/env python3
"""Every configuration key mfad accepts is in mfad.toml(5), and every module
argument pam_mfa accepts is in pam_mfa(8).

The lists come from the code: the serde structs under mfad/src (walked from
`Config`, so a new key or table shows up by itself) and the match on the
argument names in pam_mfa/src/args.rs. A page entry for a key the code does
not accept fails too (a stale page).

Usage: man-coverage.py REPO_ROOT
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
problems = []


def fail(msg):
    print(f"man-coverage: {msg}", file=sys.stderr)
    sys.exit(1)


# --- config keys from the serde structs -----------------------------------

STRUCT = re.compile(
    r"((?:#\[[^\]]*\]\s*)+)pub\s+struct\s+(\w+)\s*\{(.*?)\n\}", re.S)
FIELD = re.compile(r"((?:#\[(?:[^\[\]]|\[[^\]]*\])*\]\s*)*)pub\s+(\w+)\s*:\s*([^,\n]+),")


def serde_structs():
    structs = {}
    for path in sorted((root / "mfad" / "src").rglob("*.rs")):
        text = path.read_text()
        for m in STRUCT.finditer(text):
            attrs, name, body = m.groups()
            if "Deserialize" not in attrs:
                continue
            if "rename_all" in attrs:
                fail(f"{path}: struct {name} has serde rename_all; teach this test about it")
            body = re.sub(r"//[^\n]*", "", body)
            fields = []
            for f in FIELD.finditer(body):
                fattrs, fname, ftype = f.groups()
                if "flatten" in fattrs:
                    fail(f"{path}: {name}.{fname} is flattened; teach this test about it")
                r = re.search(r'rename\s*=\s*"([^"]+)"', fattrs)
                fields.append((r.group(1) if r else fname, ftype.strip()))
            if not fields:
                fail(f"{path}: no fields found in struct {name}")
            structs[name] = fields
    return structs


def inner_type(t):
    m = re.fullmatch(r"Option<\s*(\w+)\s*>", t)
    return m.group(1) if m else t


structs = serde_structs()
if "Config" not in structs:
    fail("no serde struct Config under mfad/src")

code_keys = set()  # (table, key)


def walk(struct, table):
    for name, ftype in structs[struct]:
        t = inner_type(ftype)
        sub = f"{table}.{name}" if table else name
        if t in structs:
            if table:
                code_keys.add((table, name))  # a sub-table is listed in its parent too
            walk(t, sub)
        else:
            if not table:
                fail(f"top-level key {name} is not in a table; teach this test about it")
            code_keys.add((table, name))


walk("Config", "")
if len(code_keys) < 10:
    fail(f"found only {len(code_keys)} config keys in mfad/src: the parser of this test is broken")

# --- the entries of mfad.toml(5) ------------------------------------------

page = (root / "packaging" / "man" / "mfad.toml.5").read_text().splitlines()
page_keys = set()
table = None
for i, line in enumerate(page):
    m = re.match(r'\.SS\s+"?\[([\w.]+)\]"?\s*$', line)
    if m:
        table = m.group(1)
        continue
    if line.startswith(".SH"):
        table = None
    if line == ".TP" and table and i + 1 < len(page):
        m = re.match(r"\.B\s+(\w+)\s*$", page[i + 1])
        if m:
            page_keys.add((table, m.group(1)))

for t, k in sorted(code_keys - page_keys):
    problems.append(f"mfad.toml(5) does not describe [{t}] {k} (accepted by mfad)")
for t, k in sorted(page_keys - code_keys):
    problems.append(f"mfad.toml(5) describes [{t}] {k}, which mfad does not accept")

# --- module arguments from args.rs ----------------------------------------

args_rs = (root / "pam_mfa" / "src" / "args.rs").read_text()
m = re.search(r"pub fn parse\(.*?\n\}\n", args_rs, re.S)
if not m:
    fail("no `pub fn parse` in pam_mfa/src/args.rs")
code_args = set(re.findall(r'\(\s*"(\w+)"\s*,', m.group(0)))
if len(code_args) < 3:
    fail(f"found only {sorted(code_args)} module arguments in args.rs: the parser of this test is broken")

page = (root / "packaging" / "man" / "pam_mfa.8").read_text().splitlines()
page_args = set()
in_options = False
for i, line in enumerate(page):
    if line.startswith(".SH"):
        in_options = line.split(None, 1)[1].strip('"') == "OPTIONS"
    elif in_options and line == ".TP" and i + 1 < len(page):
        m = re.match(r"\.B[IR]?\s+(\w+)", page[i + 1])
        if m:
            page_args.add(m.group(1))

for a in sorted(code_args - page_args):
    problems.append(f"pam_mfa(8) OPTIONS does not describe {a} (accepted by args.rs)")
for a in sorted(page_args - code_args):
    problems.append(f"pam_mfa(8) OPTIONS describes {a}, which args.rs does not accept")

for p in problems:
    print(f"man-coverage: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"man-coverage: {len(code_keys)} config keys and {len(code_args)} module arguments, all in the man pages")

#!/usr/bin/env python3
"""The repository stands alone: its citations resolve inside it.

Fails (exit 1, one line per problem) when a file of the source tree
- cites the research notes that live outside the repository (`research/`,
  `shared/design`, or a bare `ports.md`, `kevent-abi.md`, `interpose.md`,
  `vm32.md`, `style.md`, `clients.md`), except in the few files allowed to
  name them;
- names a `tests/`, `testbins/`, `docs/`, `scripts/`, `abi/`, `emul/` or
  `shim/` path that does not exist;
- cites a section of docs/abi.md, docs/rules-ports.md or docs/rules-bsd.md
  that does not exist, or a rule number that docs/rules-ports.md does not
  have;
- cites a heading of a doc in quotes (docs/design.md "Close and exec") that
  the doc does not have, or a markdown link in a doc points to a missing
  file or heading anchor;
- names a testbins scenario (scenario `name`) or a gtest (Suite.Name, of a
  suite that exists) that does not exist.

Usage: check_citations.py SOURCE_ROOT
"""
import glob
import itertools
import os
import re
import sys

# Files allowed to name the research notes: this checker and the script
# that rewrites old citations.
ALLOWED_RESEARCH = {
    'tests/docs/check_citations.py',
    'scripts/lib/fix-research-citations.sh',
}

# Paths that look like the project's but name another source tree.
EXTERNAL_PATHS = {
    'tests/sys/kqueue',  # FreeBSD's kqueue tests (cponfork_notes)
}
# Cited before the file lands (another change in flight); each entry says
# which. Remove the entry when the file exists.
PENDING_PATHS: set = set()

SKIP_DIRS = {'.git', 'subprojects', '__pycache__'}
TEXT_SUFFIXES = ('.c', '.cc', '.h', '.md', '.py', '.sh', '.build', '.txt',
                 '.ini', '.def', '.json', '.in', '')

RESEARCH = re.compile(
    r'research/|shared/design'
    r'|(?<![-\w/])(?:ports|kevent-abi|interpose|vm32|style|clients)\.md\b')
# An old-style "abi.md §N" that meant the research notes' kevent-abi.md:
# outside docs/, the project's abi.md is always cited as docs/abi.md.
BARE_ABI = re.compile(r'(?<![-\w/\[])abi\.md §')

PATH = re.compile(
    r'(?<![\w./<>-])((?:tests|testbins|docs|scripts|abi|emul|shim)'
    r'/[\w./*{},<>-]*[\w*}>])')
SECTION = re.compile(
    r'docs/(abi|rules-ports|rules-bsd)\.md (§ ?[0-9][0-9.]*[0-9]|§ ?[0-9]+)'
    r'((?:,? ?§ ?[0-9][0-9.]*)*)')
RULE = re.compile(
    r'docs/rules-ports\.md (rules?) ([0-9]+)((?:(?:-|, | and )[0-9]+)*)')
QUOTED = re.compile(r'(?<![\w/.])docs/([\w-]+)\.md "([^"]+)"')
MD_LINK = re.compile(r'\]\(([\w./-]*\.md)?(?:#([\w-]+))?\)')
SCENARIO = re.compile(r'[Ss]cenarios? `([a-z0-9_]+)`((?:(?:, | and )`[a-z0-9_]+`)*)')
GTEST_DEF = re.compile(r'TEST(?:_F|_P)?\(\s*(\w+),\s*(\w+)')
GTEST_REF = re.compile(r'(?<![\w.])([A-Z]\w+)\.(\*|[A-Z]\w*\*?)')


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [
            d for d in dirnames
            if d not in SKIP_DIRS and not d.startswith('build')
            and not os.path.exists(os.path.join(dirpath, d, 'meson-private'))
        ]
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not name.endswith(TEXT_SUFFIXES) and '.' in name:
                continue
            yield rel


def read_text(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return None


def headings(text):
    """Heading titles, plus the bold lead-ins docs use as run-in titles."""
    out = []
    for line in text.splitlines():
        m = re.match(r'#+\s+(.*)', line)
        if m:
            out.append(m.group(1).strip())
        for b in re.findall(r'\*\*([^*]+)\*\*', line):
            out.append(b.strip())
    return out


def slug(title):
    """GitHub's anchor for a heading."""
    return re.sub(r'[^\w\- ]', '', title.lower()).replace(' ', '-')


def section_numbers(text):
    nums = set()
    for line in text.splitlines():
        m = re.match(r'#+\s+§?([0-9]+(?:\.[0-9]+)*)\.?\s', line)
        if m:
            nums.add(m.group(1))
    return nums


def rule_numbers(text):
    """Numbered items of section 4 of docs/rules-ports.md."""
    nums = set()
    in_rules = False
    for line in text.splitlines():
        if line.startswith('## '):
            in_rules = line.startswith('## 4.')
        if in_rules:
            m = re.match(r'([0-9]+)\. ', line)
            if m:
                nums.add(int(m.group(1)))
    return nums


def expand(path):
    """Brace alternatives and <placeholders> as glob patterns."""
    path = re.sub(r'<[^>]*>', '*', path)
    parts = re.split(r'\{([^}]*)\}', path)
    fixed, alts = parts[0::2], [p.split(',') for p in parts[1::2]]
    for choice in itertools.product(*alts):
        out = fixed[0]
        for c, f in zip(choice, fixed[1:]):
            out += c + f
        yield out


def path_exists(root, rel_dir, path):
    """Relative to the source root, or (meson.build files) to the file's own
    directory."""
    if '}' in path and '{' not in path:  # the end of a ${...} expansion
        path = path[:path.index('}')]
    path = path.rstrip('.')
    if path in EXTERNAL_PATHS or path in PENDING_PATHS:
        return True
    for candidate in expand(path):
        if not any(glob.glob(os.path.join(base, candidate)) or
                   glob.glob(os.path.join(base, candidate) + '*')
                   for base in (root, os.path.join(root, rel_dir))):
            return False
    return True


def title_matches(cited, titles):
    cited = cited.lower()
    for t in titles:
        t = re.sub(r'^§?[0-9][0-9.]*\s+', '', t).lower()
        if cited in t:
            return True
    return False


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else '.')
    docs = {}
    for name in os.listdir(os.path.join(root, 'docs')):
        if name.endswith('.md'):
            docs[name[:-3]] = read_text(os.path.join(root, 'docs', name)) or ''
    sections = {d: section_numbers(t) for d, t in docs.items()}
    titles = {d: headings(t) for d, t in docs.items()}
    rules = rule_numbers(docs.get('rules-ports', ''))
    gtests = set()
    scenario_text = ''
    for rel in source_files(root):
        if rel.startswith('tests/') and rel.endswith('.cc'):
            gtests.update(GTEST_DEF.findall(read_text(os.path.join(root, rel)) or ''))
        if rel.startswith('testbins/') and rel.endswith('.c'):
            scenario_text += read_text(os.path.join(root, rel)) or ''
    suites = {suite for suite, _ in gtests}

    problems = []
    for rel in sorted(source_files(root)):
        text = read_text(os.path.join(root, rel))
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f'{rel}:{lineno}'
            if rel not in ALLOWED_RESEARCH:
                m = RESEARCH.search(line)
                if m:
                    problems.append(f'{where}: cites "{m.group(0)}", outside the '
                                    'repository (docs/rules-ports.md, docs/rules-bsd.md)')
                if not rel.startswith('docs/') and BARE_ABI.search(line):
                    problems.append(f'{where}: "abi.md §": cite docs/abi.md or '
                                    'docs/rules-bsd.md')
            if rel in ALLOWED_RESEARCH:
                continue
            for m in PATH.finditer(line):
                if not path_exists(root, os.path.dirname(rel), m.group(1)):
                    problems.append(f'{where}: {m.group(1)} does not exist')
            for m in SECTION.finditer(line):
                doc = m.group(1)
                cited = [m.group(2)] + re.findall(r'§ ?[0-9][0-9.]*', m.group(3))
                for s in cited:
                    num = s.lstrip('§ ').rstrip('.')
                    if num not in sections.get(doc, set()):
                        problems.append(f'{where}: docs/{doc}.md has no §{num}')
            for m in RULE.finditer(line):
                nums = []
                for part in re.split(r', | and ', m.group(2) + m.group(3)):
                    lo, _, hi = part.partition('-')
                    nums += range(int(lo), int(hi or lo) + 1)
                for n in nums:
                    if n not in rules:
                        problems.append(f'{where}: docs/rules-ports.md has no rule {n}')
            for m in QUOTED.finditer(line):
                doc, title = m.group(1), re.sub(r'^#+\s*', '', m.group(2))
                if doc not in docs:
                    continue  # the path check reports it
                if not title_matches(title, titles[doc]):
                    problems.append(f'{where}: docs/{doc}.md has no heading "{title}"')
            if rel.endswith('.md'):
                for m in MD_LINK.finditer(line):
                    target, anchor = m.groups()
                    if target is None and anchor is None:
                        continue
                    if target is None:
                        doc_path = rel
                    else:
                        doc_path = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                    doc_text = read_text(os.path.join(root, doc_path))
                    if doc_text is None:
                        problems.append(f'{where}: link to {doc_path}, which does not exist')
                    elif anchor and anchor not in {
                            slug(re.match(r'#+\s+(.*)', l).group(1).strip())
                            for l in doc_text.splitlines() if re.match(r'#+\s', l)}:
                        problems.append(f'{where}: {doc_path} has no heading #{anchor}')
            for m in SCENARIO.finditer(line):
                for name in [m.group(1)] + re.findall(r'`([a-z0-9_]+)`', m.group(2)):
                    if f'"{name}"' not in scenario_text:
                        problems.append(f'{where}: no testbins scenario "{name}"')
            if not rel.startswith('tests/') or not rel.endswith('.cc'):
                for m in GTEST_REF.finditer(line):
                    suite, name = m.groups()
                    if suite not in suites:
                        continue
                    names = [n for s_, n in gtests if s_ == suite]
                    if name.endswith('*'):
                        ok = any(n.startswith(name[:-1]) for n in names)
                    else:
                        ok = name in names
                    if not ok:
                        problems.append(f'{where}: no test {suite}.{name}')

    for p in problems:
        print(p)
    sys.stdout.flush()
    if problems:
        print(f'{len(problems)} citation problem(s)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Copy runtimes/*.sh into tej.py, verbatim, between their markers.

    python3 tests/embed.py          rewrite tej.py
    python3 tests/embed.py --check  exit 1 (and say which) if a block differs

A block is::

    # BEGIN runtimes/NAME.sh
    _RUNTIME_NAME = r'''<the file's content>'''
    # END runtimes/NAME.sh
"""

import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(# BEGIN (runtimes/[\w.]+)\n(\w+) = r''')(.*?)('''\n# END \2\n)",
                   re.DOTALL)


def embedded(text):
    """Return {path: content} of the blocks in tej.py's text."""
    return {m.group(2): m.group(4) for m in BLOCK.finditer(text)}


def render(text):
    """tej.py's text with each block replaced by its file's content."""
    def replace(match):
        with open(os.path.join(TOP, match.group(2))) as fp:
            content = fp.read()
        if "'''" in content or "\\'" in content or content.endswith('\\'):
            raise SystemExit("%s cannot be embedded in r'''...'''"
                             % match.group(2))
        return match.group(1) + content + match.group(5)
    return BLOCK.sub(replace, text)


def main(argv):
    path = os.path.join(TOP, 'tej.py')
    with open(path) as fp:
        text = fp.read()
    new = render(text)
    if '--check' in argv:
        stale = [name for name, content in embedded(text).items()
                 if embedded(new)[name] != content]
        for name in stale:
            print("tej.py: the block of %s differs from the file "
                  "(run: make embed)" % name)
        return 1 if stale else 0
    if new != text:
        with open(path, 'w') as fp:
            fp.write(new)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""Run the test suite: python3 -m tests [-q] [NAME ...]

NAME is a module (test_pure) or a test (test_pure.TestIds.test_valid).
Ends with a line "N passed, N failed, N skipped"; exits non-zero when a test
failed or errored.
"""

import os
import sys
import unittest

from . import support

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    verbosity = 1 if '-q' in argv else 2
    names = [a for a in argv if not a.startswith('-')]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(['tests.' + n for n in names])
    else:
        suite = loader.discover(HERE, top_level_dir=os.path.dirname(HERE))
    try:
        result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    finally:
        support.stop_all()
    # a test counts once, however many of its subtests failed
    failed = len({getattr(test, 'test_case', test).id() for test, _ in
                  result.failures + result.errors}) + \
        len(result.unexpectedSuccesses)
    skipped = len({getattr(test, 'test_case', test).id()
                   for test, _ in result.skipped})
    passed = result.testsRun - failed - skipped
    for test, reason in result.skipped:
        print("skipped: %s: %s" % (test.id(), reason))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""Check that the tests catch what they claim: apply each curated mutant
(a small, realistic bug, listed in tests/mutants.py) to a scratch copy of
the repository, run the tests named for it, and report whether they failed.

    python3 tests/mutate.py [--only NAME ...] [--jobs N] [--timeout SECONDS]
                            [--logs DIR] [--baseline] [--list]

For each mutant the copy is fresh: the files git knows (tracked, and
untracked ones that are not ignored, as they are in the working tree) are
copied to a temporary directory, the mutant's original text is replaced
(it must occur exactly once in its file), the runtimes are embedded again
(python3 tests/embed.py in the copy), and ``python3 -m tests NAMES`` runs
there with a timeout. The result is

    killed    the tests failed (or timed out): they catch the bug
    survived  the tests passed with the bug in: they miss it
    broken    the mutant could not be applied (its text is gone or is not
              unique, after a change of the code) or its tests could not be
              found: refresh it in tests/mutants.py

A table and a line "N of M mutants killed" end the output; the exit status
is 0 only when every mutant was killed. At most two run at a time.

Adding a mutant whenever a bug is fixed: write the test that fails with the
bug, then add to MUTANTS in tests/mutants.py a dict with ``name``, ``file``,
``original`` (the fixed text, exactly, long enough to be unique),
``replacement`` (the text with the bug back in), a short ``description``
and ``tests`` (the test names that catch it: a module, a class or a test
method, as ``python3 -m tests`` takes them; keep them few, for speed). Run
``python3 tests/mutate.py --only NAME``: it must say "killed".
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests'))

from mutants import MUTANTS  # noqa: E402

#: The most mutants run at a time (a two-core machine; sshd tests are heavy).
MAX_JOBS = 2


def repository_files():
    """The files to copy: tracked, and untracked but not ignored."""
    out = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others',
         '--exclude-standard'],
        cwd=TOP, stdout=subprocess.PIPE, check=True).stdout
    return sorted(set(name for name in out.decode('utf-8').split('\0')
                      if name and os.path.isfile(os.path.join(TOP, name))))


def copy_tree(files, scratch):
    for name in files:
        target = os.path.join(scratch, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(TOP, name), target)


def apply(mutant, scratch):
    """Apply the mutant in the scratch copy; return None, or why it cannot
    be applied.
    """
    path = os.path.join(scratch, mutant['file'])
    if not os.path.isfile(path):
        return "no file %s" % mutant['file']
    with open(path, encoding='utf-8') as fp:
        text = fp.read()
    count = text.count(mutant['original'])
    if count != 1:
        return "original text found %d times in %s" % (count, mutant['file'])
    with open(path, 'w', encoding='utf-8') as fp:
        fp.write(text.replace(mutant['original'], mutant['replacement']))
    if mutant['file'].startswith('runtimes/'):
        proc = subprocess.run([sys.executable, 'tests/embed.py'],
                              cwd=scratch, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            return "embed failed: %s" % proc.stdout.decode(
                'utf-8', 'replace').strip()
    return None


def run_one(mutant, files, timeout, keep_logs, baseline=False):
    """Return (status, detail, seconds). With ``baseline``, the tests run
    on the copy as it is: they must pass ("survived").
    """
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix='tej-mutant-')
    try:
        copy_tree(files, scratch)
        problem = None if baseline else apply(mutant, scratch)
        if problem:
            return 'broken', problem, time.monotonic() - started
        argv = [sys.executable, '-m', 'tests'] + list(mutant['tests'])
        try:
            proc = subprocess.run(argv, cwd=scratch, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            return 'killed', 'timed out after %d s' % timeout, \
                time.monotonic() - started
        output = proc.stdout.decode('utf-8', 'replace')
        if keep_logs:
            with open(os.path.join(keep_logs, mutant['name'] + '.log'),
                      'w') as fp:
                fp.write(output)
        summary = re.findall(r'^(-?\d+) passed, (\d+) failed, (\d+) skipped$',
                             output, re.M)
        if '_FailedTest' in output or not summary:
            # a test name that does not load, or no summary at all
            missing = re.findall(r"has no attribute '([^']+)'|"
                                 r"No module named '([^']+)'", output)
            names = sorted(set(a or b for a, b in missing))
            return 'broken', 'tests not found: %s' % (
                ', '.join(names) or output.strip()[-200:]), \
                time.monotonic() - started
        passed, failed, skipped = map(int, summary[-1])
        # (subtests make the suite's own count of passes negative)
        detail = '%d failed' % failed
        if passed > 0:
            detail += ', %d passed' % passed
        if skipped:
            detail += ', %d skipped' % skipped
        if proc.returncode != 0 and failed:
            return 'killed', detail, time.monotonic() - started
        if passed + failed == 0:
            return 'broken', 'no test ran', time.monotonic() - started
        return 'survived', detail, time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv):
    parser = argparse.ArgumentParser(
        prog='tests/mutate.py', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', action='append', metavar='NAME',
                        help="run this mutant only (repeatable)")
    parser.add_argument('--jobs', type=int, default=MAX_JOBS,
                        help="mutants at a time (1 or 2; default 2)")
    parser.add_argument('--timeout', type=int, default=600,
                        help="seconds for one mutant's tests (default 600)")
    parser.add_argument('--logs', metavar='DIR',
                        help="keep each mutant's test output in DIR")
    parser.add_argument('--baseline', action='store_true',
                        help="run each mutant's tests without the mutant: "
                             "they must all pass")
    parser.add_argument('--list', action='store_true',
                        help="list the mutants and exit")
    args = parser.parse_args(argv)
    names = [m['name'] for m in MUTANTS]
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        parser.error("mutant names used twice: %s" % ', '.join(duplicates))
    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error("no such mutant: %s" % ', '.join(unknown))
        mutants = [m for m in MUTANTS if m['name'] in args.only]
    if args.list:
        for m in mutants:
            print('%-28s %-20s %s' % (m['name'], m['file'], m['description']))
        return 0
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    files = repository_files()
    jobs = max(1, min(args.jobs, MAX_JOBS))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(run_one, m, files, args.timeout, args.logs,
                               args.baseline): m['name'] for m in mutants}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception as e:  # the runner's own failure: say it
                results[name] = ('broken', 'runner error: %r' % (e,), 0)
            if args.baseline:  # without the mutant: the tests pass
                status, detail, seconds = results[name]
                results[name] = ({'survived': 'passes', 'killed': 'FAILS'}
                                 .get(status, status), detail, seconds)
            status, detail, seconds = results[name]
            print('%-28s %-8s %4.0fs  %s' % (name, status, seconds, detail),
                  flush=True)
    print()
    print('%-28s %-20s %-8s %s' % ('MUTANT', 'FILE', 'RESULT', 'DETAIL'))
    for m in mutants:
        status, detail, seconds = results[m['name']]
        print('%-28s %-20s %-8s %s' % (m['name'], m['file'], status, detail))
    killed = sum(1 for s, _, _ in results.values() if s == 'killed')
    for label in ('survived', 'broken', 'FAILS'):
        which = [m['name'] for m in mutants if results[m['name']][0] == label]
        if which:
            print('%s: %s' % (label, ', '.join(which)))
    if args.baseline:
        passing = sum(1 for s, _, _ in results.values() if s == 'passes')
        print('baseline: the tests of %d of %d mutants pass without them'
              % (passing, len(mutants)))
        return 0 if passing == len(mutants) else 1
    print('%d of %d mutants killed' % (killed, len(mutants)))
    return 0 if killed == len(mutants) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

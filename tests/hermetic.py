"""Check that the suite never reaches a scheduler it did not start: run
``python3 -m tests`` with recording stand-ins of every scheduler command
(tests/support.py's SCHEDULER_COMMANDS) first on the PATH and a site's
scheduler variables set, then fail if any stand-in was called.

    python3 tests/hermetic.py [-j N] [NAME ...]

Without NAME: make test-quick's names, then every module but the
scheduler's (test_slurm, which starts a Slurm of its own and is the one
module that may call one). Prints the calls that were recorded (none, when
the suite is hermetic), and ends with "no scheduler was called" or
"N calls to a scheduler".
"""

import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from tests import support  # noqa: E402

#: The scheduler's module: it alone calls a scheduler (its own).
SCHEDULER_MODULES = {'test_slurm'}


def quick_names():
    """The names ``make test-quick`` runs (its line of the Makefile)."""
    with open(os.path.join(TOP, 'Makefile')) as fp:
        text = fp.read()
    line = re.search(r'^test-quick:\n\t(.*)$', text, re.M).group(1)
    return [w for w in line.split() if w.startswith('test_')]


def main(argv):
    jobs = []
    if argv[:1] == ['-j']:
        jobs, argv = argv[:2], argv[2:]
    tmp = tempfile.mkdtemp(prefix='tej-hermetic-')
    os.chmod(tmp, 0o755)
    stand_ins = support.recording_schedulers(os.path.join(tmp, 'bin'))
    record = os.path.join(tmp, 'record')
    open(record, 'w').close()
    env = dict(os.environ, TEJ_RECORD=record,
               PATH=stand_ins + os.pathsep + os.environ.get('PATH', ''),
               **support.SCHEDULER_SETTINGS)
    modules = sorted(f[:-3] for f in os.listdir(os.path.join(TOP, 'tests'))
                     if f.startswith('test_') and f.endswith('.py') and
                     f[:-3] not in SCHEDULER_MODULES)
    runs = [argv] if argv else [quick_names(), modules]
    failed = False
    for names in runs:
        print("== python3 -m tests -q %s" % ' '.join(jobs + names))
        sys.stdout.flush()
        proc = subprocess.run(
            [sys.executable, '-m', 'tests', '-q'] + (jobs or ['-j', str(
                os.cpu_count() or 1)]) + names, cwd=TOP, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = proc.stdout.decode('utf-8', 'replace').splitlines()
        print('\n'.join(l for l in lines if l.startswith(('failed:', 'skipped:')))
              or '(no test failed or skipped)')
        print(lines[-1] if lines else '(no output)')
        failed = failed or proc.returncode != 0
    with open(record) as fp:
        calls = fp.read().splitlines()
    subprocess.call(['rm', '-rf', tmp])
    for call in calls:
        print("called: %s" % call)
    print("%d calls to a scheduler" % len(calls) if calls else
          "no scheduler was called")
    return 1 if calls or failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""Run the test suite: python3 -m tests [-q] [-j N] [NAME ...]

NAME is a module (test_pure), a class (test_pure.TestIds) or a test
(test_pure.TestIds.test_valid). Without NAME, every module runs, in N
processes at a time (-j, default: the number of cores), one a module or a
class; then the serial lane, alone, one test class after the other: what
must not overlap (the scheduler, the network namespaces, the tests that
time tej), marked with ``@support.serial``. With NAME, the tests run in this
process, unless -j is given. Each test sees the hermetic environment of
tests/support.py: a temporary HOME, and no batch scheduler on the PATH.

Ends with a line "N passed, N failed, N skipped" (over every process),
after the skipped tests and why; exits non-zero when a test failed or
errored, or when no test ran.

Where a test goes: the module of what it tests, in the order of tej.py's
chapters (and the runtimes, its appendix). A test that needs no server
says so in its class (no support.ServerCase), and make test-quick names
it when it is not in test_pure or test_runtime.

    test_pure       Constants, Errors, Protocol (request lines, answer
                    parsers, framing), Helpers (destinations, passwords,
                    ids, durations, quoting), and Command line as far as
                    it goes without a server: parsing, help, messages
    test_transport  Transports: ssh's outcomes and retries, the shared
                    connection's options, a command never sent twice
                    (against a stub ssh); then through the test sshd: host
                    keys, authentication, passwords and askpass, ProxyJump,
                    the control path, round trips, file modes, the job
                    scenario over ssh, the oldest and newest Pythons
    test_api        Queue API (RemoteQueue, Job) as a workflow system calls
                    it, through the test sshd
    test_ci         Queue API and Command line for CI: wait and run's exit
                    codes, logs --follow (through keep-alive ticks), content
                    ids and the options in them, run's re-attaching, many
                    callers, a server restarting, JSON
    test_scale      Queue API at scale: list and gc of big queues, status of
                    many jobs, many callers and no shared connection
    test_transfer   Transfers: the tar writer, the download stream's reader
                    and safe extract of hostile archives (no server); then
                    through sshd: streamed uploads, resume, what goes up,
                    broken streams, compression, progress, a full disk
    test_monitor    Registry (JobMonitor's store and watcher) and its
                    commands: jobs, monitor, pause, unpause, forget
    test_faults     Faults across the chapters: bad input to the command
                    line and the API, parser fuzzing, calls that give up at
                    once, killed shared connections, clients and jobs, a
                    reboot, broken queues, load
    test_network    Network faults (serial lane, alone): a link cut for less
                    and for more than the keep-alive limit, sshd stopped
    test_readme     README.rst's examples, run as written
    test_runtime    Runtimes appendix: common.sh and default.sh run on this
                    machine (local:) under every POSIX shell: the job's
                    life, records, locks, pids reused, the submit window,
                    scans, waitany (serial lane: it times answers),
                    shellcheck
    test_shells     The runtimes through sshd under every login shell
                    (one process: it changes the login shell of a user of
                    its own)
    test_slurm      Runtimes appendix: slurm.sh and pbs.sh against the
                    Slurm the suite starts (serial lane, beside the others)
    test_hermetic   The suite's own promise: no scheduler in reach
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from . import support

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def usage(message):
    sys.stderr.write("usage: python3 -m tests [-q] [-j N] [NAME ...]\n"
                     "error: %s\n" % message)
    return 2


def parse(argv):
    """(verbosity, jobs or None, report file or None, names)."""
    verbosity, jobs, report, names = 2, None, None, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == '-q':
            verbosity = 1
        elif arg == '-j' or arg == '--jobs':
            if not args:
                raise ValueError("-j needs a number")
            jobs = args.pop(0)
        elif arg.startswith('-j'):
            jobs = arg[2:]
        elif arg == '--report':  # a worker's, see run_here
            report = args.pop(0)
        elif arg.startswith('-'):
            raise ValueError("unknown option %s" % arg)
        else:
            names.append(arg)
    if jobs is not None:
        if not jobs.isdigit() or int(jobs) < 1:
            raise ValueError("-j needs a number, not %r" % jobs)
        jobs = int(jobs)
    return verbosity, jobs, report, names


def test_ids(result, pairs):
    """The ids of the tests in ``pairs`` (a test counts once, however many
    of its subtests are there).
    """
    return sorted({getattr(test, 'test_case', test).id()
                   for test, _ in pairs})


def run_here(names, verbosity, report=None):
    """Run ``names`` in this process; return (passed, failed ids, skipped
    [(id, reason)]); the number run, the failed and the skipped are also
    written as JSON to ``report`` when given.
    """
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(['tests.' + n for n in names])
    else:
        suite = loader.discover(HERE, top_level_dir=TOP)
    try:
        result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    finally:
        support.stop_all()
    failed = test_ids(result, result.failures + result.errors) + [
        test.id() for test in result.unexpectedSuccesses]
    skipped, seen = [], set()
    for test, reason in result.skipped:
        if test.id() not in seen:
            seen.add(test.id())
            skipped.append((test.id(), reason))
    if report:
        with open(report, 'w') as fp:
            json.dump({'run': result.testsRun, 'failed': failed,
                       'skipped': skipped}, fp)
    return result.testsRun - len(failed) - len(skipped), failed, skipped


def classes(suite):
    """The test classes of a suite, in order."""
    found = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            found += [c for c in classes(test) if c not in found]
        elif type(test) not in found:
            found.append(type(test))
    return found


def plan(names):
    """The units of work: (parallel lane, serial lane), each a list of
    NAME lists; the classes of a module marked ``@support.serial`` go to
    the serial lane, one unit; the rest of a module is one unit, or one a
    class for the modules of `SPLIT` (those of one ``@support.one_process``
    key together).
    """
    loader = unittest.TestLoader()
    modules = sorted(f[:-3] for f in os.listdir(HERE)
                     if f.startswith('test_') and f.endswith('.py'))
    parallel, serial = [], []
    for module in names or modules:
        suite = loader.loadTestsFromName('tests.' + module)
        if '.' in module:
            lane = serial if any(getattr(c, 'serial_lane', None)
                                 for c in classes(suite)) else parallel
            lane.append([module])
            continue
        rest, alone = [], []
        for cls in classes(suite):
            name = '%s.%s' % (module, cls.__name__)
            if getattr(cls, 'serial_lane', None):
                alone.append(name)
            elif module in SPLIT:
                key = getattr(cls, 'process_key', None)
                unit = [u for u in parallel if key and u[0].startswith(
                    module + '.') and getattr(cls_of(u[0]), 'process_key',
                                              None) == key]
                if unit:  # what the process before it changes too
                    unit[0].append(name)
                else:
                    parallel.append([name])
            else:
                rest.append(name)
        if alone:
            # a module's serial classes share a process (and a Slurm)
            serial.append(alone)
        if rest:
            # the whole module, when nothing of it is elsewhere
            parallel.append([module] if len(rest) == len(classes(suite))
                            else rest)
    # the longest first, so that no long unit starts last
    parallel.sort(key=lambda unit: -max(SLOW.get(n, 0) for n in unit))
    return parallel, serial


def cls_of(name):
    """The class of a NAME module.Class."""
    module, cls = name.split('.')[:2]
    return getattr(sys.modules['tests.' + module], cls)


def lane_of(unit):
    """'beside' when every class of the serial ``unit`` may run beside the
    parallel lanes (``@support.serial(..., beside=True)``), else 'alone'.
    """
    loader = unittest.TestLoader()
    found = set()
    for name in unit:
        for cls in classes(loader.loadTestsFromName('tests.' + name)):
            found.add(getattr(cls, 'serial_lane_beside', False))
    return 'beside' if found == {True} else 'alone'


#: Modules whose classes run one a process (they are long, and their
#: classes do not share a server's state).
SPLIT = {'test_runtime', 'test_transfer', 'test_faults', 'test_ci',
         'test_scale', 'test_monitor', 'test_transport'}

#: Rough seconds of the longest units, alone on two cores (started first,
#: so that none starts last).
SLOW = {'test_transfer.TestProgress': 50, 'test_transfer.TestBigFile': 50,
        'test_scale.TestList': 40, 'test_faults.TestBadInput': 40,
        'test_readme': 30, 'test_runtime.Test_posh': 22,
        'test_runtime.Test_mksh': 20, 'test_scale.TestColdCallers': 18,
        'test_scale.TestGC': 17, 'test_faults.TestLoad': 17,
        'test_monitor.TestJobs': 15, 'test_transfer.TestUpload': 14}


class Worker(object):
    """One unit of names in a process of its own, its output kept for
    when it ends.
    """

    def __init__(self, names, verbosity, tmp):
        self.names = names
        fd, self.report = tempfile.mkstemp(prefix='report-', dir=tmp)
        os.close(fd)
        self.output = tempfile.TemporaryFile(dir=tmp)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests', '--report', self.report] +
            (['-q'] if verbosity < 2 else []) + names,
            cwd=TOP, stdin=subprocess.DEVNULL, stdout=self.output,
            stderr=subprocess.STDOUT)

    def done(self):
        return self.proc.poll() is not None

    def finish(self):
        """Print its output; return (run, failed, skipped)."""
        self.proc.wait()
        took = time.monotonic() - self.started
        self.output.seek(0)
        sys.stdout.write("==== %s (%.1f s)\n" % (' '.join(self.names), took))
        sys.stdout.flush()
        sys.stdout.buffer.write(self.output.read())
        sys.stdout.write('\n')
        sys.stdout.flush()
        self.output.close()
        try:
            with open(self.report) as fp:
                found = json.load(fp)
        except (OSError, ValueError):
            # it died before its report: a failure, and no test passed
            return 0, ['%s (its process ended with %s)' % (
                ' '.join(self.names), self.proc.returncode)], []
        skipped = [tuple(s) for s in found['skipped']]
        return (found['run'] - len(found['failed']) - len(skipped),
                found['failed'], skipped)

    def stop(self):
        if self.proc.poll() is None:
            # SIGINT may be ignored (a suite started by sh with "&")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_workers(lanes, verbosity, tmp):
    """Run the lanes side by side, each a list of units and how many of
    them run at a time; return (passed, failed, skipped).
    """
    passed, failed, skipped = 0, [], []
    lanes = [(list(units), jobs, []) for units, jobs in lanes]
    try:
        while any(todo or running for todo, _, running in lanes):
            for todo, jobs, running in lanes:
                while todo and len(running) < jobs:
                    running.append(Worker(todo.pop(0), verbosity, tmp))
            time.sleep(0.05)
            for _, _, running in lanes:
                for worker in [w for w in running if w.done()]:
                    running.remove(worker)
                    p, f, s = worker.finish()
                    passed += p
                    failed += f
                    skipped += s
    finally:
        for _, _, running in lanes:
            for worker in running:
                worker.stop()
    return passed, failed, skipped


def main(argv):
    try:
        verbosity, jobs, report, names = parse(argv)
    except ValueError as e:
        return usage(str(e))
    # SIGTERM, too, stops the tests and cleans up (the servers, the
    # workers)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if report is not None:  # a worker
        run_here(names, verbosity, report)
        return 0
    started = time.monotonic()
    if names and jobs is None:
        passed, failed, skipped = run_here(names, verbosity)
    else:
        jobs = jobs or os.cpu_count() or 1
        parallel, serial = plan(names)
        tmp = tempfile.mkdtemp(prefix='tej-runner-')
        os.chmod(tmp, 0o755)  # the test user reads the commands there
        # one hermetic PATH for every process
        os.environ['TEJ_TEST_BIN'] = support.hermetic_bin(
            os.path.join(tmp, 'bin'))
        try:
            # the serial lane's units that must not overlap each other only
            # go beside the parallel ones; the others, alone, after
            beside = [u for u in serial if lane_of(u) == 'beside']
            alone = [u for u in serial if u not in beside]
            passed, failed, skipped = run_workers(
                [(parallel, jobs), (beside, 1)], verbosity, tmp)
            p, f, s = run_workers([(alone, 1)], verbosity, tmp)
        finally:
            subprocess.call(['rm', '-rf', tmp])
        passed, failed, skipped = passed + p, failed + f, skipped + s
    for test_id, reason in skipped:
        print("skipped: %s: %s" % (test_id, reason))
    for test_id in failed:
        print("failed: %s" % test_id)
    if not names or jobs:
        print("%.0f s" % (time.monotonic() - started))
    print("%d passed, %d failed, %d skipped" % (
        passed, len(failed), len(skipped)))
    return 1 if failed or passed + len(failed) + len(skipped) == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

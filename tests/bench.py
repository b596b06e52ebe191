"""Benchmarks: tej's cost against baselines measured in the same run.

    python3 tests/bench.py [--runs N]

Through the test suite's real sshd (see tests/support.py), medians of N runs:
  python3 -c pass             the interpreter alone
  ssh HOST true               one exec over the shared connection
  tej status (warm)           the command line, runtime installed, master up
  tej status (API, warm)      RemoteQueue.status in a running process
and of the first contact (submit to a new queue). Printed as seconds and as
ratios to the baselines.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import support  # noqa: E402
from tests.support import tej  # noqa: E402


def median_time(action, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main(argv):
    runs = int(argv[argv.index('--runs') + 1]) if '--runs' in argv else 20
    support.Hermetic.start()
    os.environ['TEJ_CONTROL_PERSIST'] = '60'
    try:
        server = support.ssh_server()
        remote = tempfile.mkdtemp(dir=server.home)
        os.chown(remote, server.uid, server.gid)
        queue = server.queue(os.path.join(remote, 'q'))
        job = support.make_tree(tempfile.mkdtemp(), {'start.sh': 'true\n'})

        first = median_time(lambda: (queue.cleanup() if os.path.isdir(
            str(queue.queue)) else None, queue.submit('j', job)), 1)
        support.wait_state(queue, 'j')
        tej_py = os.path.join(support.TOP, 'tej.py')
        cli = [sys.executable, tej_py] + server.cli(
            'status', server.alias, '--id', 'j', '--queue', str(queue.queue))
        ssh = ['ssh'] + server.options + [
            '-o', 'ControlPath=%s' % queue._transport.control_path,
            server.alias, 'true']
        results = [
            ('python3 -c pass', median_time(
                lambda: run([sys.executable, '-c', 'pass']), runs)),
            ('ssh HOST true (shared connection)',
             median_time(lambda: run(ssh), runs)),
            ('tej status, command line (warm)',
             median_time(lambda: run(cli), runs)),
            ('tej status, API (warm)',
             median_time(lambda: queue.status('j'), runs)),
        ]
    finally:
        support.stop_all()
    base = dict(results)
    print("medians of %d runs" % runs)
    for name, seconds in results:
        print("  %-36s %7.1f ms" % (name, seconds * 1000))
    print("  %-36s %7.1f ms  (one run)" % ("first contact: submit to a new "
                                           "queue", first * 1000))
    cli_time = base['tej status, command line (warm)']
    print("ratios")
    print("  status (command line) / python3 -c pass   %.2f" % (
        cli_time / base['python3 -c pass']))
    print("  status (command line) - python3 -c pass   %.1f ms" % (
        (cli_time - base['python3 -c pass']) * 1000))
    print("  status (API) / ssh HOST true              %.2f" % (
        base['tej status, API (warm)'] /
        base['ssh HOST true (shared connection)']))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""Benchmarks: tej's cost against baselines measured in the same run.

    python3 tests/bench.py [--runs N] [--wait-job SECONDS] [--only record]

Through the test suite's real sshd (see tests/support.py), medians of N runs:
  python3 -c pass             the interpreter alone
  ssh HOST true               one exec over the shared connection
  tej status (warm)           the command line, runtime installed, master up
  tej status (API, warm)      RemoteQueue.status in a running process
and of the first contact (submit to a new queue), printed as seconds and as
ratios to the baselines. Then "tej wait" on a 30 s job (ssh execs made, and
how soon after the job's end it returns), and 50 "tej status" processes
started at once; the time from submit to the end of wait of a trivial job
through each runtime (slurm and pbs on the test suite's Slurm, as root).
And the cost of recording a submit in the job registry: submits (API,
warm) with and without recording, alternated, and the registry's own
write alone. ``--only record`` measures that only.
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
        remote = server.remote_dir()
        queue = server.queue(os.path.join(remote, 'q'))
        job = support.make_tree(tempfile.mkdtemp(), {'start.sh': 'true\n'})

        if '--only' in argv and argv[argv.index('--only') + 1] == 'record':
            print_record(bench_record(server, queue, job, runs))
            return 0
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
        waited = bench_wait(server, queue, job, argv)
        concurrency = bench_concurrency(server, queue, tej_py)
        recording = bench_record(server, queue, job, runs)
        latencies = bench_runtimes(server, remote)
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
    print("wait for a %d s job: %d ssh exec(s), returned %.2f s after the "
          "job's end" % waited)
    print("%d concurrent 'tej status' processes: %d succeeded, %.1f s "
          "wall time" % concurrency)
    for runtime, seconds in latencies:
        print("submit to finished, trivial job, %-8s %6.2f s (median of 3)"
              % (runtime + ':', seconds))
    print_record(recording)
    return 0


def bench_record(server, queue, job, runs):
    """Submits through sshd (API, warm; and the command line) recorded in
    a fresh registry and not recorded, alternated so that both see the
    same load; and the registry's write alone (JobMonitor.add). Medians,
    in seconds: {name: (recorded, not recorded)}, and the write alone.
    """
    registry = os.path.join(tempfile.mkdtemp(), 'jobs.sqlite3')
    os.environ['TEJ_REGISTRY'] = registry
    cli = [sys.executable, os.path.join(support.TOP, 'tej.py')] + \
        server.cli('submit', server.alias, job, '--queue', str(queue.queue))
    try:
        times = {'API': ([], []), 'command line': ([], [])}
        for i in range(runs):
            for record in (True, False):
                name = 'rec%d%s' % (i, 'y' if record else 'n')
                start = time.perf_counter()
                queue.submit(name, job, record=record)
                times['API'][not record].append(time.perf_counter() - start)
                start = time.perf_counter()
                run(cli + ['--id', name + 'c'] +
                    ([] if record else ['--no-record']))
                times['command line'][not record].append(
                    time.perf_counter() - start)
        monitor = tej.JobMonitor(registry)
        alone = median_time(lambda: monitor.add(queue, 'rec0y',
                                                directory=job), runs)
    finally:
        del os.environ['TEJ_REGISTRY']
    return {name: tuple(statistics.median(t) for t in pair)
            for name, pair in times.items()}, alone, runs


def print_record(result):
    medians, alone, runs = result
    print("recording a submit in the job registry (medians of %d, "
          "alternated)" % runs)
    for name, (recorded, unrecorded) in sorted(medians.items()):
        print("  submit, %-13s recorded %6.1f ms, not %6.1f ms: ratio "
              "%.3f, %+.1f ms" % (name + ':', recorded * 1000,
                                  unrecorded * 1000, recorded / unrecorded,
                                  (recorded - unrecorded) * 1000))
    print("  the registry's write alone (JobMonitor.add)  %.2f ms"
          % (alone * 1000))


def bench_runtimes(server, remote, runs=3):
    """Submit to the end of wait, for a job that does nothing, through
    each runtime (slurm and pbs when the Slurm test bed can start).
    """
    job = support.make_tree(tempfile.mkdtemp(), {'start.sh': 'true\n'})
    queues = [('default', server.alias)]
    try:
        slurm = support.slurm_cluster()
        queues += [('slurm', slurm.alias), ('pbs', slurm.alias)]
    except BaseException as e:  # unittest.SkipTest: no Slurm here
        print("(no Slurm: %s)" % e)
    results = []
    for runtime, alias in queues:
        q = tej.RemoteQueue(alias, os.path.join(remote, 'rt-' + runtime),
                            setup_runtime=runtime,
                            ssh_options=server.options)
        server.queues.append(q)
        q.setup()
        times = []
        for i in range(runs):
            start = time.perf_counter()
            q.submit('t%d' % i, job)
            q.wait('t%d' % i)
            times.append(time.perf_counter() - start)
        results.append((runtime, statistics.median(times)))
    return results


def bench_wait(server, queue, job, argv):
    """``tej wait`` on a job of 30 s (--wait-job N): ssh execs made, and
    the time from the job's end to wait's return.
    """
    seconds = int(argv[argv.index('--wait-job') + 1]) \
        if '--wait-job' in argv else 30
    log = os.path.join(tempfile.mkdtemp(), 'execs')
    wrapper = log + '.ssh'
    with open(wrapper, 'w') as fp:
        fp.write('#!/bin/sh\necho x >> %s\nexec ssh "$@"\n' % log)
    os.chmod(wrapper, 0o755)
    support.make_tree(job, {'start.sh': 'sleep %d; python3 -c "import time; '
                                        'print(time.time())" > end\n'
                                        % seconds})
    queue.submit('wait30', job)
    cmd = [sys.executable, os.path.join(support.TOP, 'tej.py')] + \
        server.cli('wait', server.alias, '--id', 'wait30', '--queue',
                   str(queue.queue))
    subprocess.run(cmd, check=True, env=dict(os.environ, TEJ_SSH=wrapper))
    returned = time.time()
    with open(os.path.join(str(queue.queue), 'jobs', 'wait30', 'stage',
                           'end')) as fp:
        ended = float(fp.read())
    with open(log) as fp:
        execs = len(fp.read().split())
    return seconds, execs, returned - ended


def bench_concurrency(server, queue, tej_py, count=50):
    """``count`` ``tej status`` processes started together."""
    queue.close()
    cmd = [sys.executable, tej_py] + server.cli(
        'status', server.alias, '--id', 'j', '--queue', str(queue.queue))
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
             for _ in range(count)]
    ok = sum(p.communicate()[0] == b'finished 0\n' and p.returncode == 0
             for p in procs)
    return count, ok, time.perf_counter() - start


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

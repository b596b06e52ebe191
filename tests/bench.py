"""Benchmarks: tej's cost against baselines measured in the same run.

    python3 tests/bench.py [--runs N] [--wait-job SECONDS] [--only record]

Through the test suite's real sshd (see tests/support.py), medians of N runs:
  python3 -c pass             the interpreter alone
  ssh HOST true               one exec over the shared connection
  tej status (warm)           the command line, runtime installed, master up:
                              the tej command as README.rst installs it
                              (from bytecode), and python3 tej.py
  tej status (API, warm)      RemoteQueue.status in a running process
run in turn, so that each sees the same load; where the command's time
goes (importing tej, its main(), and what python3 tej.py adds: compiling
tej.py); and the first contact (submit to a new queue), printed as
seconds and as ratios to the baselines. Then the goals of issue 12, each
with its baseline: 50 "tej status" processes started at once with no
shared connection (against one cold call; the command, then python3
tej.py), "tej list" and "list()" of 5,000 jobs, status of 10 jobs in
one command (against one job's). Then "tej wait" on a 30 s job (ssh execs
made, and how soon after the job's end it returns); the time from submit
to the end of wait of a trivial job through each runtime (slurm and pbs
on the test suite's Slurm, as root).
And the cost of recording a submit in the job registry: submits (API,
warm) with and without recording, alternated, and the registry's own
write alone. ``--only record`` measures that only.

    python3 tests/bench.py --cut-uploads [OLD_TEJ_PY]

Uploads cut on each boundary between two members of the archive (a client
killed, a connection gone: GNU and busybox tar both take such a stream for
a whole archive, and exit 0), under every shell installed and both tars:
how many made a job that runs on part of its directory; with OLD_TEJ_PY
(an older tej.py), its count too, in the same run.

    python3 tests/bench.py --transfers [--runs N]

The data path only (also printed by a full run): "tej submit" of 2,000
files of 4 KiB and of one 1 GiB file, and "tej download" of that file,
each against "tar c | ssh tar x" over the same shared connection in the
same run (medians of N runs, default 9), through the command line (a new
python3 each time) and the API (RemoteQueue in this process), with the
command line's peak RSS (its process, or the ssh it ran if larger).
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


#: Runs of each transfer: one of a GiB varies by a fifth from run to run
#: here (the shared cores' load, the disk's writeback)
TRANSFER_RUNS = 9


def median_time(action, runs):
    """The median time of ``action`` over ``runs`` runs, in seconds."""
    return interleaved([(None, action)], runs)[0][1]


def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def cut_uploads(module, shells):
    """Submit, through ``module``'s runtime, its archive of a job of 20
    files cut on each boundary between members, under each of ``shells``
    (name: argv) with GNU tar and busybox's; return (uploads, jobs made).
    """
    import io
    import shutil
    import tarfile
    from tests.test_runtime import busybox_bin
    tmp = tempfile.mkdtemp()
    try:
        job = support.make_tree(os.path.join(tmp, 'job'), dict(
            ('in%02d' % i, 'x\n') for i in range(20)))
        archive = io.BytesIO()
        module._write_tar(job, archive)
        data = archive.getvalue()
        cuts = [m.offset for m in tarfile.open(
            fileobj=io.BytesIO(data)).getmembers()][1:]
        tars = [('gnu', os.environ['PATH'])]
        if shutil.which('busybox'):
            tars.append(('busybox', busybox_bin()))
        uploads = made = 0
        for name, argv in shells.items():
            for tar, path in tars:
                queue = os.path.join(tmp, 'q-%s-%s' % (name, tar))
                os.mkdir(queue)
                script = os.path.join(queue, 'tej.sh')
                with open(script, 'w') as fp:
                    fp.write(module._runtime_script('default'))
                for cut in cuts:
                    uploads += 1
                    subprocess.run(
                        [shutil.which(argv[0])] + argv[1:] +
                        [script, queue, 'submit', 'c%d' % cut, 'command',
                         'ls | wc -l'], input=data[:cut],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        env=dict(os.environ, PATH=path, TEJ_SH='sh'))
                    if os.path.isdir(os.path.join(queue, 'jobs',
                                                  'c%d' % cut)):
                        made += 1
        return uploads, made
    finally:
        shutil.rmtree(tmp, True)


def print_cut_uploads(argv):
    import importlib.util
    import shutil
    from tests.test_runtime import SHELLS
    support.Hermetic.start()  # (busybox_bin's directory is in it)
    shells = dict((name, argv) for name, argv in SHELLS.items()
                  if shutil.which(argv[0]))
    modules = [('this tej', tej)]
    if argv and not os.path.isfile(argv[0]):
        raise SystemExit("bench.py: --cut-uploads: no file %s" % argv[0])
    if argv:
        spec = importlib.util.spec_from_file_location('old_tej', argv[0])
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        modules.append((argv[0], old))
    print("Uploads cut on a boundary between members (%s; GNU and busybox "
          "tar):" % ', '.join(shells))
    for name, module in modules:
        uploads, made = cut_uploads(module, shells)
        print("  %-24s %4d cut, %4d jobs made of part of their directory"
              % (name, uploads, made))


def main(argv):
    if '--cut-uploads' in argv:
        try:
            print_cut_uploads(argv[argv.index('--cut-uploads') + 1:])
        finally:
            support.stop_all()
        return 0
    if '--transfers' in argv:
        runs = int(argv[argv.index('--runs') + 1]) if '--runs' in argv \
            else TRANSFER_RUNS
        support.Hermetic.start()
        os.environ['TEJ_CONTROL_PERSIST'] = '120'
        try:
            print_transfers(bench_transfers(support.ssh_server(), runs), runs)
        finally:
            support.stop_all()
        return 0
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
        status = server.cli('status', server.alias, '--id', 'j',
                            '--queue', str(queue.queue))
        cli = [sys.executable, tej_py] + status
        launcher, lib = installed_command()
        command = [sys.executable, launcher] + status
        ssh = ['ssh'] + server.options + [
            '-o', 'ControlPath=%s' % queue._transport.master.path,
            server.alias, 'true']
        results = interleaved([
            ('python3 -c pass', lambda: run([sys.executable, '-c', 'pass'])),
            ('ssh HOST true (shared connection)', lambda: run(ssh)),
            ('tej status, command line (warm)', lambda: run(command)),
            ('tej status, python3 tej.py (warm)', lambda: run(cli)),
        ], runs)
        # the API's, in a pair of its own: after a new python3 (above),
        # this process runs slower for a while
        api = interleaved([
            ('ssh HOST true, against the API', lambda: run(ssh)),
            ('tej status, API (warm)', lambda: queue.status('j')),
        ], runs)
        profile = bench_profile(lib, status, runs)
        many = bench_status_of_many(server, queue, tej_py, runs)
        big = bench_big_queue(server, remote, tej_py)
        waited = bench_wait(server, queue, job, argv)
        cold = bench_cold(queue, command, 5)
        concurrency = [bench_concurrency(server, queue, argv)
                       for argv in (command, cli)]
        recording = bench_record(server, queue, job, runs)
        latencies = bench_runtimes(server, remote)
        transfers = bench_transfers(server, TRANSFER_RUNS)
    finally:
        support.stop_all()
    base = dict(results + api)
    print("medians of %d runs, in turn" % runs)
    for name, seconds in results + api:
        print("  %-36s %7.1f ms" % (name, seconds * 1000))
    print("  %-36s %7.1f ms  (one run)" % ("first contact: submit to a new "
                                           "queue", first * 1000))
    cli_time = base['tej status, command line (warm)']
    script_time = base['tej status, python3 tej.py (warm)']
    print("where the command line's time goes (medians of %d)" % runs)
    print("  python3 -c pass (the interpreter's own start)  %5.1f ms"
          % (base['python3 -c pass'] * 1000))
    print("  import tej, from its bytecode                  %5.1f ms"
          % (profile['import'] * 1000))
    print("  main(), of which the ssh exec is most          %5.1f ms"
          % (profile['main'] * 1000))
    print("  python3 tej.py only: compiling tej.py          %5.1f ms"
          % (profile['compile'] * 1000))
    print("ratios")
    print("  status (command line) / python3 -c pass   %.2f" % (
        cli_time / base['python3 -c pass']))
    print("  status (command line) - python3 -c pass   %.1f ms" % (
        (cli_time - base['python3 -c pass']) * 1000))
    ssh_true = base['ssh HOST true (shared connection)']
    print("goals (issue 12), each against a baseline of the same run")
    bound = base['python3 -c pass'] + ssh_true
    print("  1. status (command line) / (python3 -c pass + ssh HOST true) "
          "%.2f  (goal <= 1.5; %.1f ms / %.1f ms); python3 tej.py %.2f"
          % (cli_time / bound, cli_time * 1000, bound * 1000,
             script_time / bound))
    api_ssh = base['ssh HOST true, against the API']
    print("  2. status (API) / ssh HOST true %.2f  (goal <= 1.4; %.1f ms / "
          "%.1f ms)" % (base['tej status, API (warm)'] / api_ssh,
                        base['tej status, API (warm)'] * 1000,
                        api_ssh * 1000))
    count, ok, wall, masters, connections, floor = concurrency[0]
    print("  3. %d 'tej status' at once, no shared connection: %.2f s wall "
          "(goal <= 3 s), %.1f x one cold call (%.0f ms), %.1f x %d "
          "'python3 -c pass' at once (%.2f s); %d succeeded, %d master(s) "
          "left, %d connection(s) made"
          % (count, wall, wall / cold, cold * 1000, wall / floor, count,
             floor, ok, masters, connections))
    count, ok, wall, masters, connections, floor = concurrency[1]
    print("     the same with python3 tej.py: %.2f s wall; %d succeeded, %d "
          "master(s) left, %d connection(s) made"
          % (wall, ok, masters, connections))
    jobs, cli_list, api_list, gc_dry = big
    print("  4. list of %d jobs: command line %.2f s, API %.2f s (goal <= "
          "0.5 s); %.1f x a warm status (command line); gc --dry-run of "
          "them %.2f s" % (jobs, cli_list, api_list, cli_list / cli_time,
                           gc_dry))
    n, one, several = many
    print("  5. status of %d jobs in one command: %.1f ms, %.2f x one job's "
          "(%.1f ms)" % (n, several * 1000, several / one, one * 1000))
    print("wait for a %d s job: %d ssh exec(s), returned %.2f s after the "
          "job's end" % waited)
    for runtime, seconds in latencies:
        print("submit to finished, trivial job, %-8s %6.2f s (median of 3)"
              % (runtime + ':', seconds))
    print_record(recording)
    print_transfers(transfers, TRANSFER_RUNS)
    return 0


def interleaved(actions, runs):
    """Medians of ``actions`` ((name, callable)), run in turn ``runs``
    times, so that each sees the same load: a list of (name, seconds).
    """
    times = dict((name, []) for name, _ in actions)
    for _ in range(runs):
        for name, action in actions:
            start = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - start)
    return [(name, statistics.median(times[name])) for name, _ in actions]


def installed_command():
    """The ``tej`` command made as README.rst's Install says, in a new
    HOME: the paths of its launcher and of its library directory.
    """
    from tests.test_readme import FIRST_LINES, README, literal_blocks
    with open(README) as fp:
        block, = [text for _, text in literal_blocks(fp.read())
                  if text.startswith(FIRST_LINES[0])]
    home = tempfile.mkdtemp(prefix='bench-home-')
    bin_dir = os.path.join(home, '.local', 'bin')
    subprocess.run(['sh', '-ec', block], cwd=support.TOP, check=True,
                   stdout=subprocess.DEVNULL,
                   env=dict(os.environ, HOME=home, PATH='%s:%s' % (
                       bin_dir, os.environ['PATH'])))
    return (os.path.join(bin_dir, 'tej'),
            os.path.join(home, '.local', 'lib', 'tej'))


#: Run by bench_profile: where a command line's time goes, in a new
#: process as the command's: "import SECONDS main SECONDS compile SECONDS".
_PROFILE = r"""
import sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import tej
imported = time.perf_counter()
code = tej.main(sys.argv[2:])
done = time.perf_counter()
with open(tej.__file__) as fp:
    source = fp.read()
compiled = time.perf_counter()
compile(source, tej.__file__, 'exec')
print('import %f main %f compile %f' % (imported - start, done - imported,
                                        time.perf_counter() - compiled))
sys.exit(code)
"""


def bench_profile(lib, args, runs):
    """Where the time of the installed command (its tej.py in ``lib``) with
    ``args`` goes: {'import': s, 'main': s, 'compile': s} (medians of
    ``runs``), compile being what ``python3 tej.py`` adds: compiling tej.py.
    """
    times = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, '-c', _PROFILE, lib] + args,
                             check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.split()
        for name, value in zip(out[-6::2], out[-5::2]):
            times.setdefault(name.decode(), []).append(float(value))
    return dict((name, statistics.median(values))
                for name, values in times.items())


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


def measured(argv, **kwargs):
    """Run ``argv``; return its wall time and peak RSS in MiB (that of the
    process itself, or of the largest child it waited for).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = status >> 8 if os.WIFEXITED(status) else -1
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d)" % (argv, proc.returncode))
    return seconds, usage.ru_maxrss / 1024.0


def bench_transfers(server, runs):
    """The data path (see the module's docstring): a list of (name, tej
    seconds, baseline seconds, tej's peak RSS in MiB).
    """
    import shutil
    local = tempfile.mkdtemp(prefix='bench-')
    remote = server.remote_dir()
    queue_path = os.path.join(remote, 'q')
    small = os.path.join(local, 'small')
    for d in range(20):
        for f in range(100):
            support.make_tree(small, {'d%02d/f%03d' % (d, f):
                                      os.urandom(4096)})
    big = os.path.join(local, 'big')

    def make_big():
        os.mkdir(big)
        block = os.urandom(1 << 20)
        with open(os.path.join(big, 'data'), 'wb') as fp:
            for _ in range(1024):
                fp.write(block)
        q.submit('big', big, script='true')
        support.wait_state(q, 'big')

    q = server.queue(queue_path)
    q.setup()
    q.list()  # the shared connection is up
    control = q._transport.master.path
    tej_cli = [sys.executable, os.path.join(support.TOP, 'tej.py')]
    ssh = ['ssh'] + server.options + ['-o', 'ControlPath=%s' % control,
                                      '-o', 'ControlMaster=no', server.alias]
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return '%s%d' % (prefix, counter[0])

    def submit(directory):
        job_id = fresh('j')
        result = measured(tej_cli + server.cli(
            'submit', server.alias, directory, '--id', job_id,
            '--queue', queue_path, '--script', 'true'))
        support.wait_state(q, job_id)
        q.delete(job_id)
        return result

    def baseline_submit(directory):
        target = os.path.join(remote, fresh('b'))
        start = time.perf_counter()
        tar = subprocess.Popen(['tar', 'cf', '-', '-C', directory, '.'],
                               stdout=subprocess.PIPE)
        subprocess.run(ssh + ['mkdir %s && tar xf - -C %s' % (target,
                                                              target)],
                       stdin=tar.stdout, check=True)
        tar.stdout.close()
        tar.wait()
        seconds = time.perf_counter() - start
        shutil.rmtree(target)
        return seconds

    stage = os.path.join(queue_path, 'jobs', 'big', 'stage')

    def submit_api(directory):
        job_id = fresh('a')
        start = time.perf_counter()
        q.submit(job_id, directory, script='true')
        seconds = time.perf_counter() - start
        support.wait_state(q, job_id)
        q.delete(job_id)
        return seconds

    def download_api():
        into = os.path.join(local, fresh('d'))
        os.mkdir(into)
        start = time.perf_counter()
        q.download('big', 'data', directory=into)
        seconds = time.perf_counter() - start
        shutil.rmtree(into)
        return seconds

    def download():
        into = os.path.join(local, fresh('d'))
        os.mkdir(into)
        result = measured(tej_cli + server.cli(
            'download', server.alias, '--id', 'big', 'data', '--directory',
            into, '--queue', queue_path))
        shutil.rmtree(into)
        return result

    def baseline_download():
        into = os.path.join(local, fresh('d'))
        os.mkdir(into)
        start = time.perf_counter()
        ssh_proc = subprocess.Popen(ssh + ['tar cf - -C %s data' % stage],
                                    stdout=subprocess.PIPE)
        subprocess.run(['tar', 'xf', '-', '-C', into],
                       stdin=ssh_proc.stdout, check=True)
        ssh_proc.stdout.close()
        ssh_proc.wait()
        seconds = time.perf_counter() - start
        shutil.rmtree(into)
        return seconds

    results = []
    for name, action, api, baseline, before, sync in [
            ('submit 2,000 files of 4 KiB', lambda: submit(small),
             lambda: submit_api(small), lambda: baseline_submit(small),
             None, False),
            ('submit one 1 GiB file', lambda: submit(big),
             lambda: submit_api(big), lambda: baseline_submit(big),
             make_big, True),
            ('download one 1 GiB file', download, download_api,
             baseline_download, None, True)]:
        if before is not None:
            before()
        ours, in_process, theirs, rss = [], [], [], []
        for i in range(runs):
            # interleaved, in turn first: all see the same load; each of
            # the big ones starts with the disk written back (the GiB that
            # the one before wrote would be written back during it)
            order = [0, 1, 2] if i % 2 == 0 else [2, 1, 0]
            for which in order:
                if sync:
                    os.sync()
                if which == 0:
                    seconds, peak = action()
                    ours.append(seconds)
                    rss.append(peak)
                elif which == 1:
                    in_process.append(api())
                else:
                    theirs.append(baseline())
        results.append((name, statistics.median(ours),
                        statistics.median(in_process),
                        statistics.median(theirs), max(rss)))
    shutil.rmtree(local)
    return results


def print_transfers(results, runs):
    """The transfers' table: the command line's time and its ratio to the
    baseline, and the API's (in a running process: no interpreter start).
    """
    print("transfers, medians of %d runs; ratios to tar c | ssh tar x" % runs)
    print("  %-28s %8s %8s %10s %7s %7s %13s" % (
        '', 'tej', 'tej API', 'tar | ssh', 'ratio', 'API', 'tej peak RSS'))
    for name, ours, api, theirs, rss in results:
        print("  %-28s %7.2fs %7.2fs %9.2fs %7.2f %7.2f %9.1f MiB" % (
            name, ours, api, theirs, ours / theirs, api / theirs, rss))


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


def wait_closed(queue):
    """Wait until the queue's shared connection is gone."""
    support.wait_for(lambda: not os.path.exists(
        queue._transport.master.path), what='the connection to close')


def bench_cold(queue, cli, runs):
    """One ``tej status`` (``cli``) with no shared connection: median."""
    times = []
    for _ in range(runs):
        queue.close()
        wait_closed(queue)
        start = time.perf_counter()
        run(cli)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_concurrency(server, queue, cmd, count=50):
    """``count`` ``cmd`` (a ``tej status``) processes started together, with
    no shared connection: (count, succeeded, wall time, masters left,
    connections made, wall time of as many ``python3 -c pass``).
    """
    queue.close()
    wait_closed(queue)
    before = server.sshd_started()
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
             for _ in range(count)]
    ok = sum(p.communicate()[0] == b'finished 0\n' and p.returncode == 0
             for p in procs)
    wall = time.perf_counter() - start
    # the floor: as many interpreters doing nothing, at once
    start = time.perf_counter()
    for p in [subprocess.Popen([sys.executable, '-c', 'pass'])
              for _ in range(count)]:
        p.wait()
    floor = time.perf_counter() - start
    return (count, ok, wall, len(server.masters(queue)),
            server.sshd_started() - before, floor)


def bench_status_of_many(server, queue, tej_py, runs, count=10):
    """``tej status`` of ``count`` jobs against that of one (medians)."""
    job = support.make_tree(tempfile.mkdtemp(), {'start.sh': 'true\n'})
    ids = ['many%d' % i for i in range(count)]
    for job_id in ids:
        queue.submit(job_id, job)
    for job_id in ids:
        queue.wait(job_id)

    def cli(*job_ids):
        return [sys.executable, tej_py] + server.cli(
            'status', server.alias, *job_ids) + ['--queue', str(queue.queue)]
    one = median_time(lambda: run(cli(ids[0])), runs)
    several = median_time(lambda: run(cli(*ids)), runs)
    return count, one, several


def bench_big_queue(server, remote, tej_py, count=5000):
    """``tej list``, ``RemoteQueue.list()`` and ``gc --dry-run`` of a queue
    of ``count`` finished jobs (one run through tej, its record copied):
    (count, seconds of each; medians of 3).
    """
    path = os.path.join(remote, 'big')
    queue = server.queue(path)
    job = support.make_tree(tempfile.mkdtemp(), {'start.sh': 'true\n'})
    queue.submit('seed', job)
    queue.wait('seed')
    jobs = os.path.join(path, 'jobs')
    with open(os.path.join(jobs, 'seed', 'state')) as fp:
        state = fp.read()
    for i in range(count - 1):
        directory = os.path.join(jobs, 'copy%05d' % i)
        os.mkdir(directory, 0o700)
        with open(os.path.join(directory, 'state'), 'w') as fp:
            fp.write(state)
        os.chown(directory, server.uid, server.gid)
        os.chown(os.path.join(directory, 'state'), server.uid, server.gid)
    cli = [sys.executable, tej_py] + server.cli('list', server.alias,
                                                '--queue', path)
    gc = [sys.executable, tej_py] + server.cli(
        'gc', server.alias, '--queue', path, '--older-than', '0',
        '--dry-run')
    assert len(list(queue.list())) == count
    return (count, median_time(lambda: run(cli), 3),
            median_time(lambda: list(queue.list()), 3),
            median_time(lambda: run(gc), 3))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

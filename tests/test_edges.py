"""Edges that a plausible bug would cross without the rest of the suite
noticing (each was found by a mutation of the code that survived): a pid
reused by another process, the server's keep-alive line in a quiet job, no
second send of a command that may have run, the options in a content id,
and job records that are never seen half written.

tests/mutants.py lists, for each test here, the bug it catches.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import unittest

from . import support
from .support import tej, need, run_cli, wait_for, wait_state, which

#: The keys of a job record (QUEUE/jobs/ID/state), all written every time.
RECORD_KEYS = {'state', 'exit', 'submitted', 'started', 'finished', 'pid',
               'pgid', 'boot', 'killreq', 'runtime', 'runtime_id', 'mode'}

#: Shells the cheap runtime tests run under (sh itself, and the installed
#: ones of these).
SHELLS = ['dash', 'busybox', 'mksh', 'yash']


setUpModule = support.ssh_module


def replace_record(queue_dir, job_id, **changes):
    """Change fields of a job's record, atomically (as the runtime does:
    a temporary file, then a rename), so that no reader sees half of it.
    """
    path = support.record_path(queue_dir, job_id)
    with open(path) as fp:
        lines = fp.read().splitlines()
    fields = [line.split('=', 1) for line in lines]
    text = ''.join('%s=%s\n' % (k, changes.get(k, v)) for k, v in fields)
    with open(path + '.test', 'w') as fp:
        fp.write(text)
    os.replace(path + '.test', path)


def shell_sh(name):
    """A one-word TEJ_SH for a shell (busybox needs "sh" after it)."""
    if name != 'busybox':
        return which(name)
    path = os.path.join(support.Hermetic.start(), 'edges-busybox-sh')
    if not os.path.exists(path):
        with open(path, 'w') as fp:
            fp.write('#!/bin/sh\nexec %s sh "$@"\n' % which('busybox'))
        os.chmod(path, 0o755)
    return path


class LocalCase(unittest.TestCase):
    """A queue through local:, in a temporary directory."""

    def setUp(self):
        self.tmp = support.temporary(self)
        self.queue_dir = os.path.join(self.tmp, 'q')
        self.job = support.make_tree(os.path.join(self.tmp, 'job'),
                                     {'start.sh': 'echo hi\n'})

    def queue(self, shell=None):
        support.patch_env(self.addCleanup, TEJ_SH=shell)
        return tej.RemoteQueue('local:', self.queue_dir)


class TestReusedPid(LocalCase):
    def test_pid_of_another_process_is_not_the_job(self):
        """The wrapper is gone and its pid now names some other live
        process: the job is lost, not running for ever.
        """
        for name in ['sh'] + SHELLS:
            with self.subTest(shell=name):
                if name == 'sh':
                    shell = None
                else:
                    need('shells', which(name), "%s is not installed" % name)
                    shell = shell_sh(name)
                self.check_reused_pid(self.queue(shell), 'reused-' + name)

    def check_reused_pid(self, q, job_id):
        q.submit(job_id, self.job, script='sleep 1000')
        record = wait_for(lambda: (lambda r: r if r and r.get('pgid')
                                   else None)(
            support.read_record(self.queue_dir, job_id)),
            what='the wrapper to record its pid')
        self.assertEqual(q.info(job_id)['state'], 'running')
        # the wrapper and the job are gone without an exit record
        os.killpg(int(record['pgid']), signal.SIGKILL)
        wait_for(lambda: q.info(job_id)['state'] == 'lost',
                 what='the killed job to be lost')
        # ... and the pid is taken by a process that is not a wrapper
        other = subprocess.Popen(['sleep', '1000'])
        try:
            replace_record(self.queue_dir, job_id, pid=str(other.pid))
            self.assertEqual(support.read_record(self.queue_dir, job_id)['pid'],
                             str(other.pid))
            self.assertEqual(q.info(job_id)['state'], 'lost')
            self.assertEqual(q.status(job_id)[0], 'lost')
        finally:
            other.kill()
            other.wait()
        q.delete(job_id)


# A tool for the PATH that holds up one call: the first time a call of
# VERB runs it while WHEN holds, it waits for the file $GATE/go before it
# does anything (and says so with the directory $GATE/waiting).
GATED = r"""#!/bin/sh
if %(when)s && %(tr)s '\000' ' ' < "/proc/$PPID/cmdline" |
        grep -q ' %(verb)s ' && mkdir "$GATE/waiting" 2>/dev/null; then
    while [ ! -e "$GATE/go" ]; do %(sleep)s 0.05; done
fi
exec %(tool)s "$@"
"""


def write_gated(bindir, tool, verb, sleep, when='true'):
    """Put the GATED ``tool`` (found in the PATH now) in ``bindir``; the
    real ``sleep`` is the path given.
    """
    script = GATED % {'tool': shutil.which(tool), 'verb': verb,
                      'when': when, 'tr': shutil.which('tr'),
                      'sleep': sleep}
    path = os.path.join(bindir, tool)
    with open(path, 'w') as fp:
        fp.write(script)
    os.chmod(path, 0o755)


class TestStartingJob(LocalCase):
    """A job that is being submitted or started is never lost to a status
    that looks at it meanwhile.
    """

    def test_submission_ends_while_status_looks(self):
        # status looks at the lock (its submitter at work), then the
        # submission ends, then status reads the record: running, not a
        # "created" job whose submitter is gone
        gate = os.path.join(self.tmp, 'gate')
        bindir = os.path.join(self.tmp, 'bin')
        for path in (gate, bindir):
            os.mkdir(path)
        write_gated(bindir, 'tr', 'status', shutil.which('sleep'))
        q = self.queue()
        q.setup()
        support.patch_env(self.addCleanup, GATE=gate,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        archive = io.BytesIO()
        tej._write_tar(support.make_tree(self.job, {
            'start.sh': 'exec %s 1000\n' % shutil.which('sleep')}), archive)
        read, write = os.pipe()
        os.write(write, archive.getvalue()[:512])

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                q._calls.call('submit', ['s', 'file', 'start.sh'],
                              stdin=stdin, transfer=True)
        submitter = threading.Thread(target=submit)
        submitter.start()
        records = []
        status = threading.Thread(target=lambda: records.append(
            q.info('s')))
        try:
            owner = os.path.join(self.queue_dir, 'jobs', 's', 'lock',
                                 'owner')
            wait_for(lambda: os.path.exists(owner),
                     what='the submitter to lock the job')
            status.start()
            wait_for(lambda: os.path.exists(os.path.join(gate, 'waiting')),
                     what='the status to look at the lock')
        finally:
            with os.fdopen(write, 'wb') as fp:
                fp.write(archive.getvalue()[512:])
            submitter.join(60)
        open(os.path.join(gate, 'go'), 'w').close()
        status.join(60)
        self.assertEqual(records[0]['state'], 'running')
        q.kill('s')

    def test_wrapper_before_its_exec_is_the_job(self):
        """Between the fork of the wrapper (its pid recorded by the
        submission) and its exec, the pid is a copy of the submitting
        tej.sh: the job is running, not lost. Once the wrapper has recorded
        its start, a tej.sh that is not the wrapper is a reused pid.
        """
        q = self.queue()
        q.setup()
        read, write = os.pipe()
        os.write(write, tarfile.TarInfo('big').tobuf())  # and no data yet

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                try:
                    q._calls.call('submit', ['other', 'file', 'start.sh'],
                                  stdin=stdin, transfer=True)
                except tej.Error:
                    pass
        thread = threading.Thread(target=submit)
        thread.start()
        try:
            owner = os.path.join(self.queue_dir, 'jobs', 'other', 'lock',
                                 'owner')
            pid = wait_for(lambda: os.path.exists(owner) and
                           open(owner).read().strip().split(':')[-1],
                           what='a tej.sh to be at work')
            q.submit('s', self.job, script='sleep 1000')
            wait_for(lambda: (support.read_record(self.queue_dir, 's') or {})
                     .get('pgid'), what='the job to start')
            os.killpg(int(support.read_record(self.queue_dir, 's')['pgid']),
                      signal.SIGKILL)
            # as the submission left it: the pid of the wrapper to be
            replace_record(self.queue_dir, 's', pid=pid, pgid='',
                           started='', state='running')
            self.assertEqual(q.info('s')['state'], 'running')
            replace_record(self.queue_dir, 's', started=str(int(time.time())))
            self.assertEqual(q.info('s')['state'], 'lost')
        finally:
            os.close(write)
            thread.join(60)
        q.delete('s')


class TestAtomicRecords(LocalCase):
    def test_no_reader_sees_half_a_record(self):
        """Readers of the job records, in a tight loop while jobs are
        created, run and finish, only ever find whole records.
        """
        q = self.queue()
        jobs = os.path.join(self.queue_dir, 'jobs')
        done = threading.Event()
        seen = {'reads': 0, 'states': set(), 'partial': []}

        def reader():
            while not done.is_set():
                try:
                    names = os.listdir(jobs)
                except FileNotFoundError:
                    continue
                for name in names:
                    try:
                        with open(os.path.join(jobs, name, 'state')) as fp:
                            text = fp.read()
                    except FileNotFoundError:
                        continue
                    fields = dict(line.split('=', 1)
                                  for line in text.splitlines()
                                  if '=' in line)
                    seen['reads'] += 1
                    if set(fields) != RECORD_KEYS or \
                            not text.endswith('\n'):
                        seen['partial'].append(text)
                    else:
                        seen['states'].add(fields['state'])

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            ids = ['atomic%d' % n for n in range(12)]
            for job_id in ids:
                q.submit(job_id, self.job, script='sleep 0.2')
            records = q.wait_all(ids, timeout=60)
        finally:
            done.set()
            thread.join()
        self.assertEqual([r['state'] for r in records], ['finished'] * 12)
        # and every lock taken was given back
        wait_for(lambda: not [n for n in ids if os.path.exists(
            os.path.join(jobs, n, 'lock'))], what='the locks to go')
        self.assertEqual(seen['partial'][:3], [])
        # the reader was there while the records changed
        self.assertGreater(seen['reads'], 100)
        self.assertLessEqual({'running', 'finished'}, seen['states'])


# A sleep that does not wait, for the PATH: a lock's waiter goes round its
# loop as fast as it can, as if minutes had passed. Each call is counted,
# with its caller's command line, in $NAPS.
FAST_SLEEP = r"""#!/bin/sh
{ tr '\000' ' ' < "/proc/$PPID/cmdline"; echo; } >> "$NAPS" 2>/dev/null
exit 0
"""


class TestLocks(LocalCase):
    """A job's lock (JOBDIR/lock, with its holder's host:pid in "owner")
    is never broken while its holder may live, however long it holds it;
    it is broken once the holder is known to be gone. _unlock removes the
    process's own lock only.
    """

    #: More turns of a waiter's loop than the minute after which any lock
    #: was once broken (600 naps of a tenth of a second).
    TURNS = 700

    def setUp(self):
        super(TestLocks, self).setUp()
        self.sleep = shutil.which('sleep')
        bindir = os.path.join(self.tmp, 'bin')
        os.mkdir(bindir)
        with open(os.path.join(bindir, 'sleep'), 'w') as fp:
            fp.write(FAST_SLEEP)
        os.chmod(os.path.join(bindir, 'sleep'), 0o755)
        self.naps_file = os.path.join(self.tmp, 'naps')
        open(self.naps_file, 'w').close()
        support.patch_env(self.addCleanup, NAPS=self.naps_file,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        self.q = self.queue()
        self.host = socket.gethostname()

    def naps(self, verb):
        """How many naps the runtime's verb took."""
        with open(self.naps_file) as fp:
            return sum(1 for line in fp if ' %s ' % verb in line)

    def lock(self, job_id):
        return os.path.join(self.queue_dir, 'jobs', job_id, 'lock')

    def owner(self, job_id):
        try:
            with open(os.path.join(self.lock(job_id), 'owner')) as fp:
                return fp.read().strip()
        except FileNotFoundError:
            return None

    def plant(self, job_id, owner=None, beat=None):
        """A lock on the job as another process would have it."""
        os.mkdir(self.lock(job_id))
        if owner is not None:
            with open(os.path.join(self.lock(job_id), 'owner'), 'w') as fp:
                fp.write(owner + '\n')
        if beat is not None:
            self.beat(job_id, beat)

    def read_beat(self, job_id):
        with open(os.path.join(self.lock(job_id), 'beat')) as fp:
            return int(fp.read())

    def beat(self, job_id, when):
        path = os.path.join(self.lock(job_id), 'beat')
        with open(path + '.test', 'w') as fp:
            fp.write('%d\n' % when)
        os.replace(path + '.test', path)

    def in_thread(self, action):
        """Run ``action`` in a thread; return it, with its ``result``
        (('ok', value) or ('error', exception)) once it has ended.
        """
        def run():
            try:
                thread.result = ('ok', action())
            except Exception as e:
                thread.result = ('error', e)
        thread = threading.Thread(target=run)
        thread.result = None
        thread.start()
        self.addCleanup(thread.join, 60)
        return thread

    def wait_turns(self, verb, thread):
        """Wait until the verb's waiter has gone round its loop TURNS times,
        still waiting for the lock.
        """
        wait_for(lambda: self.naps(verb) >= self.TURNS or
                 not thread.is_alive(), timeout=60,
                 what='the %s to wait for the lock' % verb)
        self.assertTrue(thread.is_alive(), thread.result)

    def running(self, job_id):
        """A job that runs until killed (the real sleep); wait until its
        wrapper has started it.
        """
        self.q.submit(job_id, self.job, script='exec %s 1000' % self.sleep)
        # the wrapper has recorded the start and given the lock back
        wait_for(lambda: (support.read_record(self.queue_dir, job_id) or {})
                 .get('pgid') and not os.path.exists(self.lock(job_id)),
                 what='the job to start')

    def test_a_live_submitter_keeps_its_lock(self):
        self.q.setup()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode='w') as tar:
            for name, data in (('big', b'x' * (1 << 20)), (
                    'start.sh', b'exec %s 1000\n' % self.sleep.encode()),
                    (tej._WHOLE, tej._WHOLE_TEXT)):  # the upload's end
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(data))
        archive = archive.getvalue()
        read, write = os.pipe()
        os.write(write, archive[:4096])  # the upload is on its way

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                return self.q._calls.call(
                    'submit', ['slow', 'file', 'start.sh'], stdin=stdin,
                    transfer=True)
        submitter = self.in_thread(submit)
        owner = wait_for(lambda: self.owner('slow'),
                         what='the submitter to lock the job')
        killer = self.in_thread(lambda: self.q.kill('slow'))
        try:
            self.wait_turns('kill', killer)
            self.assertEqual(self.owner('slow'), owner)
            # and it says that it lives, for the waiters of other hosts
            self.beat('slow', time.time() - 3600)
            wait_for(lambda: self.read_beat('slow') > time.time() - 60,
                     what="the submitter's beat")
        finally:
            with os.fdopen(write, 'wb') as fp:
                fp.write(archive[4096:])
        submitter.join(60)
        killer.join(60)
        self.assertEqual(submitter.result[0], 'ok', submitter.result)
        self.assertEqual(killer.result[0], 'ok', killer.result)
        record = wait_state(self.q, 'slow')
        self.assertEqual(record['state'], 'killed')

    def test_a_live_call_without_input_keeps_its_lock(self):
        # a kill is read into the sh that read its call, with ".", not run
        # as "sh QUEUE/tej.sh": that sh, while it lives, keeps the lock.
        # The job's wrapper is a stand-in, which TERM ends: a real one
        # records the end under the lock, and naps take no time here, so
        # the KILL after the grace could come between its making the lock
        # and writing its owner (a lock that waits take TEJ_LOCK_STALE to
        # break)
        self.running('h')
        os.killpg(int(support.read_record(self.queue_dir, 'h')['pgid']),
                  signal.SIGKILL)
        wrapper = subprocess.Popen(['sh', '-c', '%s 1000; :' % self.sleep,
                                    'tej.sh', '_wrap', 'h'],
                                   start_new_session=True)
        self.addCleanup(wrapper.wait)
        self.addCleanup(lambda: wrapper.poll() is not None or wrapper.kill())
        replace_record(self.queue_dir, 'h', pid=str(wrapper.pid),
                       pgid=str(wrapper.pid))
        gate = os.path.join(self.tmp, 'gate')
        os.mkdir(gate)
        os.symlink(os.path.join(self.queue_dir, 'jobs', 'h', 'lock'),
                   os.path.join(gate, 'lock'))
        # the first date a kill runs with the job's lock taken
        write_gated(os.path.join(self.tmp, 'bin'), 'date', 'kill', self.sleep,
                    when='[ -d "$GATE/lock" ]')
        support.patch_env(self.addCleanup, GATE=gate)
        holder = self.in_thread(lambda: self.q.kill('h'))
        try:
            wait_for(lambda: os.path.isdir(os.path.join(gate, 'waiting')),
                     what='the kill to take the lock')
            owner = self.owner('h')
            self.assertIsNotNone(owner)
            waiter = self.in_thread(lambda: self.q.kill('h'))
            self.wait_turns('kill', waiter)
            self.assertEqual(self.owner('h'), owner)
        finally:
            open(os.path.join(gate, 'go'), 'w').close()
        holder.join(60)
        waiter.join(60)
        self.assertFalse(holder.is_alive() or waiter.is_alive(), (
            "the kills are still there: the lock's owner %s; %s" % (
                self.owner('h'), '; '.join(p.args for p in support.processes(
                    lambda p: self.tmp in p.args or
                    p.cwd.startswith(self.tmp))))))
        self.assertEqual(holder.result[0], 'ok', holder.result)
        self.assertEqual(waiter.result[0], 'ok', waiter.result)
        self.assertEqual(wait_state(self.q, 'h')['state'], 'killed')

    def test_a_lock_of_another_host(self):
        # its holder cannot be seen from here: the lock is broken only once
        # its beat is old
        self.running('r')
        self.plant('r', 'elsewhere.invalid:1', time.time())
        killer = self.in_thread(lambda: self.q.kill('r'))
        self.wait_turns('kill', killer)
        self.assertEqual(self.owner('r'), 'elsewhere.invalid:1')
        self.beat('r', time.time() - 3600)
        killer.join(60)
        self.assertEqual(killer.result[0], 'ok', killer.result)
        self.assertEqual(self.q.info('r')['state'], 'killed')

    def test_a_submission_of_another_host(self):
        # a job being created by another host: lost once its lock is stale
        self.q.setup()
        os.mkdir(os.path.join(self.queue_dir, 'jobs', 'c'))
        self.plant('c', 'elsewhere.invalid:1', time.time())
        self.assertEqual(self.q.info('c')['state'], 'created')
        self.beat('c', time.time() - 3600)
        self.assertEqual(self.q.info('c')['state'], 'lost')
        self.q.delete('c')

    def test_a_pid_of_another_program(self):
        # the owner's pid is a live process, not tej's: its holder is gone
        self.running('p')
        other = subprocess.Popen([self.sleep, '1000'])
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        self.plant('p', '%s:%d' % (self.host, other.pid), time.time())
        self.q.kill('p')
        self.assertLess(self.naps('kill'), 100)
        self.assertEqual(self.q.info('p')['state'], 'killed')

    def test_a_lock_without_owner(self):
        # its holder died before it wrote "owner": broken once a waiter has
        # seen it so for TEJ_LOCK_STALE seconds
        support.patch_env(self.addCleanup, TEJ_LOCK_STALE='2')
        self.running('o')
        self.plant('o')
        started = time.monotonic()
        self.q.kill('o')
        self.assertGreaterEqual(time.monotonic() - started, 2)
        self.assertEqual(self.q.info('o')['state'], 'killed')

    def test_unlock_removes_its_own_lock_only(self):
        a, b, c = [os.path.join(self.tmp, name) for name in 'abc']
        for job in (a, b, c):
            os.mkdir(job)
        common = tej._prelude() + tej._RUNTIME_PROBE + tej._RUNTIME_COMMON
        taken = 'printf "elsewhere.invalid:1\\n" > "$1/lock/owner"\n'

        def run(script, *args):
            proc = subprocess.run(['sh', '-c', common + script, 'tej.sh'] +
                                  list(args), stderr=subprocess.PIPE)
            self.assertEqual(proc.returncode, 1, proc.stderr)

        # broken meanwhile and taken by another process: left to it, by
        # _unlock and by the exit trap
        run('_lock "$1"\n' + taken + '_unlock\n' +
            '_lock "$2"\n' + taken.replace('$1', '$2') + '_die 1 end\n', a, b)
        for job in (a, b):
            with open(os.path.join(job, 'lock', 'owner')) as fp:
                self.assertEqual(fp.read(), 'elsewhere.invalid:1\n')
        # its own goes, by _unlock and by the exit trap
        run('_lock "$1"\n_unlock\n[ -d "$1/lock" ] && exit 5\n'
            '_lock "$1"\n_die 1 end\n', c)
        self.assertEqual(os.listdir(c), [])


# mkdir, for the PATH, slow after it made a directory right under a queue's
# jobs/ (a new job's): the moment between that and the job's lock lasts
# seconds.
SLOW_MKDIR = r"""#!/bin/sh
%(mkdir)s "$@" || exit
for last do :; done
case $last in
    */jobs/*/*) ;;
    */jobs/*) %(sleep)s 2 ;;
esac
"""


class TestSubmitWindow(LocalCase):
    """A job being created is never taken for lost, nor removed, by
    another call: not even between the mkdir of its directory and its lock.
    """

    def setUp(self):
        super(TestSubmitWindow, self).setUp()
        bindir = os.path.join(self.tmp, 'bin')
        os.mkdir(bindir)
        with open(os.path.join(bindir, 'mkdir'), 'w') as fp:
            fp.write(SLOW_MKDIR % {'mkdir': shutil.which('mkdir'),
                                   'sleep': shutil.which('sleep')})
        os.chmod(os.path.join(bindir, 'mkdir'), 0o755)
        support.patch_env(self.addCleanup,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        self.jobs = os.path.join(self.queue_dir, 'jobs')
        support.make_tree(self.job, {'start.sh': 'exit 3\n'})

    def in_window(self, start):
        """Call ``start`` (it begins a submission), and return once a
        directory appeared in jobs/: the submission is in its window.
        """
        before = set(os.listdir(self.jobs))
        started = start()
        wait_for(lambda: set(os.listdir(self.jobs)) - before,
                 what='the submission to make its directory')
        return started

    def test_status_and_delete_meanwhile(self):
        # the job waits for a file "go": whatever the delete finds, it is
        # not a job that has ended
        support.make_tree(self.job, {
            'start.sh': 'while [ ! -f go ]; do sleep 0.1; done; exit 3\n'})
        q = self.queue()
        q.setup()
        results = []

        def submit():
            thread = threading.Thread(target=lambda: results.append(
                q.submit('w', self.job)))
            thread.start()
            return thread
        thread = self.in_window(submit)
        states = set()
        while thread.is_alive():
            states.add(q.infos(['w'])[0]['state'])
            try:
                q.delete('w')
                states.add('deleted')
            except (tej.JobNotFound, tej.JobStillRunning):
                pass
        thread.join()
        self.assertEqual(results, ['w'])
        self.assertLessEqual(states, {'notfound', 'created', 'running'})
        open(os.path.join(q.info('w')['dir'], 'go'), 'w').close()
        self.assertEqual(q.wait('w'), 3)

    def test_two_runs_of_the_same_job(self):
        # the second finds the job (content ids) while the first makes it
        argv = [sys.executable, os.path.join(support.TOP, 'tej.py'), 'run',
                'local:', '--queue', self.queue_dir, '--keep', self.job]
        tej.RemoteQueue('local:', self.queue_dir).setup()
        first = self.in_window(lambda: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        second = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        for proc in (first, second):
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 3, err)

    def test_two_submissions_through_the_api(self):
        q = self.queue()
        q.setup()
        made = []

        def submit():
            job_id, created = q.submit_job(None, self.job, content_id=True)
            made.append(created)
            return q.wait(job_id)
        first = threading.Thread(target=lambda: made.append(submit()))
        self.in_window(first.start)
        self.assertEqual(submit(), 3)
        first.join(60)
        self.assertEqual(sorted(made, key=str), [3, False, True])
        # the second one's directory went, from where mv had put it
        job_id = tej.content_id(self.job)
        self.assertEqual(sorted(os.listdir(self.jobs)), [job_id])
        self.assertEqual(sorted(os.listdir(os.path.join(self.jobs, job_id))),
                         ['options', 'script', 'stage', 'state', 'umask'])


class TestContentIdOptions(LocalCase):
    def test_options_are_part_of_the_id(self):
        ids = [tej.content_id(self.job),
               tej.content_id(self.job, walltime=10),
               tej.content_id(self.job, walltime=100),
               tej.content_id(self.job, prologue='module load a'),
               tej.content_id(self.job, prologue='module load b'),
               tej.content_id(self.job, cpus=1),
               tej.content_id(self.job, cpus=2),
               tej.content_id(self.job, 'echo hi')]
        self.assertEqual(len(set(ids)), len(ids), ids)
        # and the same options, the same id
        self.assertEqual(tej.content_id(self.job, walltime=10), ids[1])
        self.assertEqual(tej.content_id(self.job, walltime='00:00:10'),
                         ids[1])

    def test_run_with_another_walltime_is_another_job(self):
        argv = ['run', 'local:', '--queue', self.queue_dir, '--keep',
                '--json', self.job]
        first = run_cli(*argv[:-1] + ['--walltime', '10', self.job])
        self.assertEqual(first[0], 0, first)
        second = run_cli(*argv[:-1] + ['--walltime', '100', self.job])
        self.assertEqual(second[0], 0, second)
        ids = [json.loads(out)['id'] for _, out, _ in (first, second)]
        self.assertNotEqual(ids[0], ids[1])
        code, out, err = run_cli('list', 'local:', '--queue', self.queue_dir)
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(out.split()), sorted(
            [ids[0], 'finished', ids[1], 'finished']))
        # the same walltime again is the first job
        again = run_cli(*argv[:-1] + ['--walltime', '10', self.job])
        self.assertEqual(again[0], 0, again)
        self.assertEqual(json.loads(again[1])['id'], ids[0])


class TestNoSecondSend(unittest.TestCase):
    """ssh exits 255 after the session broke ("read from master failed"):
    the command may have run on the server. It is not sent again.
    """

    def setUp(self):
        self.tmp = support.temporary(self)
        self.count = os.path.join(self.tmp, 'execs')
        stub = os.path.join(self.tmp, 'ssh')
        with open(stub, 'w') as fp:
            fp.write(
                '#!/bin/sh\n'
                '# a session that broke: its message in the -E file\n'
                'case " $* " in *" -O "*|*" -N "*) exit 255 ;; esac\n'
                'echo exec >> "%s"\n'
                'log= prev=\n'
                'for a do\n'
                '    [ "$prev" = -E ] && log=$a\n'
                '    prev=$a\n'
                'done\n'
                '[ -n "$log" ] && '
                'echo "read from master failed: Broken pipe" >> "$log"\n'
                'exit 255\n' % self.count)
        os.chmod(stub, 0o755)
        support.patch_env(self.addCleanup, TEJ_SSH=stub)
        self.job = support.make_tree(os.path.join(self.tmp, 'job'),
                                     {'start.sh': 'echo hi\n'})

    def execs(self, action):
        open(self.count, 'w').close()
        with self.assertRaises(tej.ConnectionLost):
            action()
        with open(self.count) as fp:
            return len(fp.read().split())

    def test_submit_and_delete_are_sent_once(self):
        q = tej.RemoteQueue('stubhost', '~/q')
        self.assertEqual(self.execs(lambda: q.submit('x', self.job)), 1)
        self.assertEqual(self.execs(lambda: q.delete('x')), 1)
        self.assertEqual(self.execs(lambda: q.kill('x')), 1)


class TestQuietJob(support.ServerCase):
    """Through sshd: a job silent for longer than the server's keep-alive
    interval (5 s) is followed to its end.
    """

    def test_follow_through_the_keep_alive(self):
        q = self.queue()
        job = self.job('job', {'start.sh': 'sleep 7; echo done\n'})
        q.submit('quiet', job)
        out = io.BytesIO()
        started = time.monotonic()
        end = q.logs('quiet', stdout=out, follow=True, timeout=60)
        # long enough for the server to have sent its keep-alive line
        self.assertGreater(time.monotonic() - started, 5.5)
        self.assertEqual(out.getvalue(), b'done\n')
        self.assertEqual(end, ('finished', 0))
        record = q.info('quiet')
        self.assertEqual((record['state'], record['exit']), ('finished', 0))


if __name__ == '__main__':
    unittest.main()

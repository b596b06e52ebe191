"""Scale, through the real sshd: big queues (list with the server's
filters, gc), several jobs in one status, many callers at once finding no
shared connection. Timings are in tests/bench.py, not here.
"""

import os
import subprocess
import sys
import time

from . import support
from .support import ServerCase, tej

setUpModule = support.ssh_module


def record(**fields):
    """The text of a job's state file (_save in common.sh)."""
    keys = ('state exit submitted started finished pid pgid boot killreq '
            'runtime runtime_id mode token').split()
    return ''.join('%s=%s\n' % (k, fields.get(k, '')) for k in keys)


class BigQueue(ServerCase):
    """A queue of thousands of jobs, made fast on the server: one job run
    through tej, then its directory's record copied under other ids, with
    the states and times each test wants.
    """

    def make_queue(self):
        self.counter = support.ExecCounter(self)  # before the queue reads TEJ_SSH
        q = self.queue()
        q.submit('seed', self.job('seed', {'start.sh': 'echo seed\n'}))
        self.assertEqual(q.wait('seed'), 0)
        return q

    def copy(self, job_id, text, lost=None):
        """A job ``job_id`` in the queue whose state file is ``text`` (the
        seed job's other files as they are), the server user's; with
        ``lost``, the time tej found it lost (common.sh's _seen_lost).
        """
        jobs = os.path.join(self.queue_path, 'jobs')
        path = os.path.join(jobs, job_id)
        os.mkdir(path, 0o700)
        os.mkdir(os.path.join(path, 'stage'), 0o700)
        with open(os.path.join(path, 'state'), 'w') as fp:
            fp.write(text)
        with open(os.path.join(jobs, 'seed', 'script')) as src, \
                open(os.path.join(path, 'script'), 'w') as dst:
            dst.write(src.read())
        for name in (path, os.path.join(path, 'stage'),
                     os.path.join(path, 'state'),
                     os.path.join(path, 'script')):
            os.chown(name, self.server.uid, self.server.gid)
        if lost is not None:
            with open(os.path.join(path, 'lost'), 'w') as fp:
                fp.write('%d\n' % lost)
            os.chown(os.path.join(path, 'lost'), self.server.uid,
                     self.server.gid)

    def jobs_on_disk(self):
        return sorted(n for n in os.listdir(os.path.join(self.queue_path,
                                                         'jobs'))
                      if not n.startswith('.'))


class TestList(BigQueue):
    def test_five_thousand_jobs_in_one_exec(self):
        q = self.make_queue()
        with open(os.path.join(self.queue_path, 'jobs', 'seed',
                               'state')) as fp:
            seed = fp.read()
        ids = ['job%04d' % i for i in range(5000)]
        for job_id in ids:
            self.copy(job_id, seed)
        counter = self.counter
        listed, execs = counter.count(lambda: list(q.list()))
        self.assertEqual(execs, 1)
        self.assertEqual([i for i, _ in listed], ids + ['seed'])
        for job_id, info in listed:
            self.assertEqual((info['state'], info['status'], info['exit']),
                             ('finished', 'finished', 0), job_id)
            self.assertEqual(info['dir'], os.path.join(
                self.queue_path, 'jobs', job_id, 'stage'))
        # the command line prints them all, in one exec too
        (code, out, err), execs = counter.count(lambda: self.cli('list',
                                                                 self.dest))
        self.assertEqual((code, execs), (0, 1), err)
        self.assertEqual(out.splitlines(), ['%s finished' % i
                                            for i in ids + ['seed']])

    def test_filters_on_the_server(self):
        q = self.make_queue()
        now = int(time.time())
        hour, day = 3600, 86400
        self.copy('old-finished', record(
            state='finished', exit='1', submitted=now - 10 * day,
            started=now - 10 * day, finished=now - 9 * day,
            runtime='default'))
        self.copy('new-killed', record(
            state='killed', exit='143', submitted=now - hour,
            started=now - hour, finished=now - 60, runtime='default'))
        self.copy('old-lost', record(state='lost', submitted=now - 5 * day,
                                     runtime='default'))
        # a job recorded running whose process is long gone: lost, as sh
        # finds (the records that awk answers for have ended)
        self.copy('gone', record(state='running', submitted=now - 2 * hour,
                                 started=now - 2 * hour, pid='999999999',
                                 runtime='default'))
        running = self.job('sleeper', {'start.sh': 'sleep 1000\n'})
        q.submit('running', running)
        self.addCleanup(q.kill, 'running')
        support.wait_for(lambda: q.info('running')['started'])
        # a directory that is not a job, and one that is not a job id
        os.mkdir(os.path.join(self.queue_path, 'jobs', 'not an id'))

        def listed(**filters):
            return {i: info['state'] for i, info in q.list(**filters)}
        everything = {'seed': 'finished', 'old-finished': 'finished',
                      'new-killed': 'killed', 'old-lost': 'lost',
                      'gone': 'lost', 'running': 'running'}
        self.assertEqual(listed(), everything)
        self.assertEqual(listed(states=['killed']), {'new-killed': 'killed'})
        self.assertEqual(listed(states=['lost', 'running']), {
            'old-lost': 'lost', 'gone': 'lost', 'running': 'running'})
        self.assertEqual(listed(states='finished'), {
            'seed': 'finished', 'old-finished': 'finished'})
        self.assertEqual(listed(since=3 * hour), {
            'seed': 'finished', 'new-killed': 'killed', 'gone': 'lost',
            'running': 'running'})
        self.assertEqual(listed(since=day, states=['lost']), {'gone': 'lost'})
        with self.assertRaises(ValueError):
            list(q.list(states=['done']))
        # and the command line
        code, out, err = self.cli('list', self.dest, '--state', 'lost',
                                  '--state', 'killed', '--since', '1d')
        self.assertEqual((code, out), (0, 'gone lost\nnew-killed finished\n'),
                         err)
        code, out, err = self.cli('list', self.dest, '--since', 'soon')
        self.assertEqual(code, 2)
        self.assertIn("Invalid duration 'soon'", err)
        self.assertNotIn('Traceback', err)


class TestGC(BigQueue):
    def populate(self, q):
        """Jobs of every kind, old and new; return {id: state} of those
        that ended more than a day ago.
        """
        now = int(time.time())
        day = 86400
        old = {}
        for i in range(300):
            state = ('finished', 'killed', 'lost')[i % 3]
            ended = now - (i % 4) * day - 60  # 0 to 3 days ago, and a bit
            # a lost one without a finish time ended when it was found lost
            unended = state == 'lost' and i % 2
            text = record(state=state, exit='' if state == 'lost' else i % 2,
                          submitted=ended - 100, started=ended - 50,
                          finished='' if unended else ended,
                          runtime='default')
            self.copy('j%03d' % i, text, lost=ended if unended else None)
            if (i % 4) >= 1:
                old['j%03d' % i] = state
        # old, but not ended: never removed
        self.copy('queued-old', record(state='queued', submitted=now - 9 * day,
                                       runtime='default'))
        running = self.job('sleeper', {'start.sh': 'sleep 1000\n'})
        q.submit('running-old', running)
        self.addCleanup(q.kill, 'running-old')
        info = support.wait_for(lambda: q.info('running-old'),
                                lambda i: i['started'])
        state = os.path.join(self.queue_path, 'jobs', 'running-old', 'state')
        with open(state) as fp:
            text = fp.read()
        for key in ('submitted', 'started'):
            text = text.replace('%s=%d' % (key, info[key]),
                                '%s=%d' % (key, now - 9 * day))
        with open(state, 'w') as fp:
            fp.write(text)
        # its process gone long ago, as sh finds, but found lost only now:
        # not old (never removed at once)
        self.copy('gone-old', record(state='running', submitted=now - 8 * day,
                                     started=now - 8 * day, pid='999999999',
                                     runtime='default'))
        # and one found lost two days ago
        self.copy('gone-found', record(state='running',
                                       submitted=now - 8 * day,
                                       started=now - 8 * day, pid='999999999',
                                       runtime='default'), lost=now - 2 * day)
        old['gone-found'] = 'lost'
        return old

    def test_removes_exactly_what_it_says(self):
        q = self.make_queue()
        old = self.populate(q)
        before = self.jobs_on_disk()
        counter = self.counter
        # a dry run says what would go, and removes nothing
        dry, execs = counter.count(lambda: q.gc(86400, dry_run=True))
        self.assertEqual(execs, 1)
        self.assertEqual({r['id']: r['state'] for r in dry}, old)
        self.assertEqual(self.jobs_on_disk(), before)
        # only the killed ones, by the command line
        killed = sorted(i for i, s in old.items() if s == 'killed')
        (code, out, err), execs = counter.count(lambda: self.cli(
            'gc', self.dest, '--older-than', '1d', '--state', 'killed'))
        self.assertEqual((code, execs), (0, 1), err)
        self.assertEqual(out.splitlines(), ['%s killed' % i for i in killed])
        self.assertIn('Removed %d jobs' % len(killed), err)
        self.assertEqual(self.jobs_on_disk(),
                         sorted(set(before) - set(killed)))
        # then the rest: what it says is what is gone, nothing else
        removed, execs = counter.count(lambda: q.gc(86400))
        self.assertEqual(execs, 1)
        said = [r['id'] for r in removed]
        self.assertEqual(said, sorted(set(old) - set(killed)))
        self.assertEqual(self.jobs_on_disk(), sorted(set(before) - set(old)))
        for job_id in ('running-old', 'queued-old', 'seed', 'gone-old'):
            self.assertIn(job_id, self.jobs_on_disk())
        self.assertEqual(q.info('running-old')['state'], 'running')
        self.assertEqual(q.gc(86400), [])

    def test_refuses_jobs_that_have_not_ended(self):
        q = self.make_queue()
        for state in ('running', 'queued', 'created', 'notfound'):
            with self.assertRaises(ValueError):
                q.gc(0, states=[state])
        code, out, err = self.cli('gc', self.dest, '--older-than', '0',
                                  '--state', 'running')
        self.assertEqual((code, out), (2, ''))
        self.assertIn("invalid choice: 'running'", err)
        code, out, err = self.cli('gc', self.dest)
        self.assertEqual(code, 2)
        self.assertIn('--older-than', err)
        self.assertEqual(self.jobs_on_disk(), ['seed'])
        # --older-than 0: every ended job, at once
        code, out, err = self.cli('gc', self.dest, '--older-than', '0')
        self.assertEqual((code, out), (0, 'seed finished\n'), err)
        self.assertEqual(self.jobs_on_disk(), [])


class TestStatusOfMany(BigQueue):
    def test_one_exec_for_all(self):
        self.make_queue()
        self.copy('k', record(state='killed', exit='143', runtime='default'))
        counter = self.counter
        (code, out, err), execs = counter.count(lambda: self.cli(
            'status', self.dest, 'seed', 'nope', 'k'))
        self.assertEqual((code, execs), (0, 1), err)
        self.assertEqual(out, 'seed finished 0\nnope not found\n'
                              'k finished 143\n')
        (code, out, err), execs = counter.count(lambda: self.cli(
            'status', self.dest, '--id', 'seed', '--id', 'k', '--check'))
        self.assertEqual((code, execs), (123, 1), err)
        self.assertEqual(out, 'seed finished 0\nk finished 143\n')
        # one job: the original's output
        code, out, err = self.cli('status', self.dest, '--id', 'seed')
        self.assertEqual((code, out), (0, 'finished 0\n'))
        code, out, err = self.cli('status', self.dest, 'seed', '--json')
        self.assertEqual(code, 0)
        self.assertIn('"id": "seed"', out)
        code, out, err = self.cli('status', self.dest)
        self.assertEqual((code, out), (2, ''))
        self.assertIn('tej status: error: status needs a job', err)


#: Holds the lock beside a control socket, as a tej process starting the
#: shared connection does (its argument: the socket's path), until killed.
LOCK_HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1] + '.lock', os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print('locked', flush=True)
time.sleep(1000)
"""


class TestColdCallers(BigQueue):
    """Many tej processes that find no shared connection: one of them
    starts it (a lock beside the socket says which), the others wait for
    it and use it.
    """

    def cold(self, q):
        """Close the shared connection; return the number of sshd started
        so far.
        """
        q.close()
        support.wait_for(lambda: not self.server.masters(q),
                         what='the shared connection to close')
        self.assertFalse(os.path.exists(q._transport.master.path))
        return self.server.sshd_started()

    def status_process(self):
        return subprocess.Popen(
            [sys.executable, os.path.join(support.TOP, 'tej.py')] +
            self.args('status', self.dest, '--id', 'seed'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_fifty_at_once(self):
        q = self.make_queue()
        before = self.cold(q)
        procs = [self.status_process() for _ in range(50)]
        results = [p.communicate(timeout=120) + (p.returncode,)
                   for p in procs]
        for out, err, code in results:
            self.assertEqual((code, out), (0, b'finished 0\n'), err)
        self.assertEqual(len(self.server.masters(q)), 1)
        # one connection for all of them: no session went around it
        self.assertEqual(self.server.sshd_started() - before, 1)

    def holder(self, q):
        """A process that holds the lock (killed after the test)."""
        proc = subprocess.Popen([sys.executable, '-c', LOCK_HOLDER,
                                 q._transport.master.path],
                                stdout=subprocess.PIPE)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.assertEqual(proc.stdout.readline(), b'locked\n')
        return proc

    def test_a_crashed_starter_blocks_no_one(self):
        q = self.make_queue()
        before = self.cold(q)
        holder = self.holder(q)
        waiters = [self.status_process() for _ in range(5)]
        # they wait while the holder lives (well within their bound)...
        time.sleep(2)
        self.assertEqual([p.poll() for p in waiters], [None] * 5)
        self.assertEqual(self.server.sshd_started(), before)
        # ...and go on once it is gone: one of them starts the connection
        holder.kill()
        for p in waiters:
            out, err = p.communicate(timeout=60)
            self.assertEqual((p.returncode, out), (0, b'finished 0\n'), err)
        self.assertEqual(len(self.server.masters(q)), 1)
        self.assertEqual(self.server.sshd_started() - before, 1)

    def test_a_starter_that_hangs_is_waited_for_within_a_bound(self):
        q = self.make_queue()
        self.cold(q)
        self.holder(q)
        saved = tej._MASTER_WAIT
        tej._MASTER_WAIT = 1
        self.addCleanup(setattr, tej, '_MASTER_WAIT', saved)
        started = time.monotonic()
        self.assertEqual(q.status('seed')[::2], ('finished', '0'))
        self.assertGreaterEqual(time.monotonic() - started, 1)

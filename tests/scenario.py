"""The whole life of jobs, run against any destination: test_runtime runs it
under every POSIX shell through local:, test_transport through a real sshd.

A subclass (also a unittest.TestCase) provides ``make_queue(path)`` and may
set ``remote_home``.
"""

import os
import shutil
import signal
import tarfile
import threading
import time

from . import support
from .support import tej, run_cli, wait_for, wait_state

# Names that must survive upload and download byte for byte.
NASTY_FILES = {
    'plain.txt': b'plain\n',
    'with space/and more.txt': b'spaces\n',
    "quote's \"double\".txt": b'quotes\n',
    '$HOME and `id`.txt': b'dollar\n',
    '-n': b'dash\n',
    'new\nline': b'newline\n',
    'back\\slash \\n \\\\ end\\': b'backslashes\n',
    'caf\u00e9/\u4e2d\u6587.txt': '\u00e9\u00e8'.encode('utf-8'),
    'deep/a/b/c/d.bin': bytes(range(256)) * 64,
}

# Waits for a file "go" in its directory: "running" is observed for sure.
WAIT_FOR_GO = (
    '#!/bin/sh\n'
    'while [ ! -f go ] && [ -d "$PWD" ]; do sleep 0.1; done\n'
    'echo "out: $(cat plain.txt)"\n'
    'echo "err" >&2\n'
    'mkdir -p results && cp -R deep results/ && echo done > results/r.txt\n'
)


def job_processes(state):
    """The live processes of a job: its process group, or (without setsid)
    its wrapper's process tree.
    """
    if state.get('pgid'):
        return [p.pid for p in support.processes(
            lambda p: p.pgid == int(state['pgid']))]
    return support.process_tree([int(state['pid'])])


def job_token(stage):
    """The job's token (what its processes have as TEJ_JOB_TOKEN)."""
    return read_state(stage)['token'].encode()


def token_processes(token):
    """The pids of the live processes whose environment has ``token`` as
    TEJ_JOB_TOKEN, wherever their process group is.
    """
    found = []
    for process in support.processes():
        try:
            with open('/proc/%d/environ' % process.pid, 'rb') as fp:
                if b'TEJ_JOB_TOKEN=' + token in fp.read().split(b'\0'):
                    found.append(process.pid)
        except OSError:
            pass
    return found


def wrapper_started(stage):
    """Wait until the job's wrapper has recorded its start; its state."""
    return wait_for(lambda: read_state(stage), lambda s: s.get('started'),
                    what='the wrapper to start')


def read_state(stage_dir):
    """A job's record on the server, as {key: value}."""
    with open(os.path.join(os.path.dirname(stage_dir), 'state')) as fp:
        return dict(line.rstrip('\n').split('=', 1)
                    for line in fp if '=' in line)


class Scenario(object):
    """Test methods shared by every destination."""

    def make_queue(self, path):
        raise NotImplementedError

    def own(self, path):
        """Make ``path``, made here, the queue's user's."""

    def setUp(self):
        super(Scenario, self).setUp()
        self.tmp = support.temporary(self)
        self.job_dir = os.path.join(self.tmp, 'my job')
        os.mkdir(self.job_dir)
        support.make_tree(self.job_dir, NASTY_FILES)
        support.make_tree(self.job_dir, {'start.sh': WAIT_FOR_GO})
        # a queue path with a space and a quote
        self.q = self.make_queue(self.remote_path("q 'x"))

    def remote_path(self, name):
        return os.path.join(self.base_dir(), name)

    def go(self, queue, job_id):
        stage = queue.info(job_id)['dir']
        with open(os.path.join(stage, 'go'), 'w'):
            pass

    def test_whole_life(self):
        q = self.q
        with self.assertRaises(tej.QueueDoesntExist):
            q.status('nothing')
        q.setup()
        with self.assertRaises(tej.JobNotFound):
            q.status('nothing')
        with self.assertRaises(tej.JobNotFound):
            q.kill('nothing')
        with self.assertRaises(tej.JobNotFound):
            q.delete('nothing')
        self.assertEqual(q.submit('job1', self.job_dir), 'job1')
        status, directory, arg = q.status('job1')
        self.assertEqual((status, arg), ('running', None))
        self.assertTrue(str(directory).endswith('/jobs/job1/stage'))
        with self.assertRaises(tej.JobAlreadyExists):
            q.submit('job1', self.job_dir)
        with self.assertRaises(tej.JobStillRunning):
            q.delete('job1')
        self.assertEqual([(i, d['status']) for i, d in q.list()],
                         [('job1', 'running')])
        self.go(q, 'job1')
        record = wait_state(q, 'job1')
        self.assertEqual((record['state'], record['exit']), ('finished', 0))
        self.assertLessEqual(record['submitted'], record['started'])
        self.assertLessEqual(record['started'], record['finished'])
        self.assertEqual(q.status('job1')[::2], ('finished', '0'))

        out = os.path.join(self.tmp, 'out')
        q.download('job1', ['_stdout', '_stderr', 'results'], directory=out)
        with open(os.path.join(out, '_stdout'), 'rb') as fp:
            self.assertEqual(fp.read(), b'out: plain\n')
        with open(os.path.join(out, '_stderr'), 'rb') as fp:
            self.assertEqual(fp.read(), b'err\n')
        with open(os.path.join(out, 'results', 'deep', 'a', 'b', 'c',
                               'd.bin'), 'rb') as fp:
            self.assertEqual(fp.read(), NASTY_FILES['deep/a/b/c/d.bin'])
        # every name, byte for byte, back from the server
        back = os.path.join(self.tmp, 'back')
        names = sorted({n.split('/')[0] for n in NASTY_FILES})
        q.download('job1', names, directory=back)
        for name, content in NASTY_FILES.items():
            with open(os.path.join(back, name), 'rb') as fp:
                self.assertEqual(fp.read(), content, name)
        q.download('job1', 'results/r.txt',
                   destination=os.path.join(self.tmp, 'r'))
        with open(os.path.join(self.tmp, 'r')) as fp:
            self.assertEqual(fp.read(), 'done\n')
        with self.assertRaises(tej.Error):
            q.download('job1', 'no such file', directory=out)
        with self.assertRaises(ValueError):
            q.download('job1', '../../etc/passwd', directory=out)

        q.kill('job1')  # finished: nothing happens
        self.assertEqual(q.status('job1')[::2], ('finished', '0'))
        q.delete('job1')
        with self.assertRaises(tej.JobNotFound):
            q.status('job1')
        self.assertEqual(list(q.list()), [])

    def start(self, job_id, script, processes):
        """Submit ``script``; wait until the job has that many processes
        (the wrapper's included). Return its record of the start.
        """
        support.make_tree(self.job_dir, {'start.sh': script})
        self.q.submit(job_id, self.job_dir)
        state = wrapper_started(self.q.info(job_id)['dir'])
        wait_for(lambda: job_processes(state),
                 lambda found: len(found) >= processes,
                 what='the job to start its processes')
        return state

    def test_kill_leaves_no_process(self):
        q = self.q
        # (one without the job's token in its environment: the group's
        # signal reaches it, where the token's cannot)
        state = self.start('long', 'env -i sleep 1000 & sleep 1001\n', 3)
        with self.assertRaises(tej.JobStillRunning):
            q.delete('long')
        q.kill('long')
        record = q.info('long')
        self.assertEqual((record['state'], record['exit']), ('killed', 143))
        self.assertEqual(q.status('long')[::2], ('finished', '143'))
        self.assertEqual(job_processes(state), [])
        q.delete('long')

    def test_kill_reaches_escaped_processes(self):
        # processes that left the job's group (a new session each, one of
        # them deaf to TERM): found by the job's token in their environment
        q = self.q
        support.patch_env(self.addCleanup, TEJ_GRACE='1')
        # (setsid by its path: the runtime's PATH may be without it)
        setsid = shutil.which('setsid', path='/usr/bin:/bin')
        state = self.start('escaped', '%s sleep 1000 &\n'
                           '%s sh -c \'trap "" TERM; sleep 1001; :\' &\n'
                           'sleep 1002\n' % (setsid, setsid), 2)
        token = job_token(q.info('escaped')['dir'])
        self.addCleanup(lambda: [os.kill(pid, signal.SIGKILL)
                                 for pid in token_processes(token)])
        group = [p.pgid for p in support.processes(
            lambda p: p.pid == int(state['pid']))]
        escaped = wait_for(lambda: [p.pid for p in support.processes(
            lambda p: p.pid in token_processes(token) and
            [p.pgid] != group)], lambda found: len(found) >= 3,
            what='the processes to leave the group')
        q.kill('escaped')
        self.assertEqual(q.info('escaped')['state'], 'killed')
        self.assertEqual(token_processes(token), [], escaped)
        q.delete('escaped')

    def test_kill_stubborn_job(self):
        q = self.q
        state = self.start('stubborn', 'trap "" TERM\nsleep 1000\n', 2)
        # the grace reaches the server through the environment (SendEnv)
        support.patch_env(self.addCleanup, TEJ_GRACE='1')
        start = time.monotonic()
        with self.assertLogs('tej.server', 'INFO') as said:
            q.kill('stubborn')
        took = time.monotonic() - start
        # the server says why the kill took the grace
        self.assertEqual(said.output, [
            'INFO:tej.server:tej: the job did not stop on TERM within 1 s '
            '(TEJ_GRACE): KILL'])
        record = q.info('stubborn')
        # TERM ignored for the grace (the default is 5 s), then KILL
        self.assertEqual((record['state'], record['exit']), ('killed', 137))
        self.assertGreaterEqual(took, 1)
        self.assertLess(took, 4)
        self.assertEqual(job_processes(state), [])
        q.delete('stubborn', kill=True)

    def test_lost_job(self):
        q = self.q
        state = self.start('lost', 'sleep 1000\n', 2)
        stage = q.info('lost')['dir']
        os.kill(int(state['pid']), signal.SIGKILL)
        record = wait_state(q, 'lost', states=('lost',))
        self.assertIsNone(record['exit'])
        self.assertEqual(q.status('lost')[0], 'lost')
        orphans = support.processes(lambda p: p.cwd.startswith(stage))
        self.assertTrue(orphans)  # the job goes on, without its wrapper
        for p in orphans:
            os.kill(p.pid, signal.SIGKILL)
        q.delete('lost')  # a lost job is not running

    def test_submitter_dies_while_unpacking(self):
        # a job without a record whose submitter is gone is lost, not
        # created forever; it can be deleted and its id used again
        q = self.q
        q.setup()
        read, write = os.pipe()
        header = tarfile.TarInfo('big')
        header.size = 1 << 20
        os.write(write, header.tobuf())  # and none of the data
        failures = []

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                try:
                    q._calls.call('submit', ['half', 'file', 'start.sh'],
                            stdin=stdin, transfer=True)
                except tej.Error as e:
                    failures.append(e)

        thread = threading.Thread(target=submit)
        thread.start()
        try:
            record = wait_for(lambda: q.infos(['half'])[0],
                              lambda r: r['state'] == 'created',
                              what='the submission to start')
            lock = os.path.join(os.path.dirname(record['dir']), 'lock')
            owner = wait_for(lambda: support.lock_claim(lock),
                             what='the submitter to own the job')[0]
            pid = owner.split(':')[-1]  # host:pid
            self.assertEqual(q.info('half')['state'], 'created')
            os.kill(int(pid), signal.SIGKILL)
        finally:
            os.close(write)
            thread.join(60)
        self.assertEqual(len(failures), 1)
        self.assertEqual(q.info('half')['state'], 'lost')
        q.delete('half')
        q.submit('half', self.job_dir)
        self.assertEqual(q.info('half')['state'], 'running')
        q.delete('half', kill=True)

    def test_command_script(self):
        q = self.q
        empty = os.path.join(self.tmp, 'empty')
        os.mkdir(empty)
        job_id = q.submit(None, empty, script='echo "hi"; exit 3')
        self.assertRegex(job_id, r'\Aempty_.+_[a-z0-9]{10}\Z')
        record = wait_state(q, job_id)
        self.assertEqual((record['state'], record['exit']), ('finished', 3))
        dest = os.path.join(self.tmp, 'o')
        q.download(job_id, '_stdout', destination=dest)
        with open(dest) as fp:
            self.assertEqual(fp.read(), 'hi\n')

    def test_script_without_shebang_and_in_subdirectory(self):
        q = self.q
        support.make_tree(self.job_dir, {'bin/run': 'echo "$0 ran"\n'})
        q.submit('sub', self.job_dir, script='bin/run')
        record = wait_state(q, 'sub')
        self.assertEqual((record['state'], record['exit']), ('finished', 0))
        dest = os.path.join(self.tmp, 'sub.out')
        q.download('sub', '_stdout', destination=dest)
        with open(dest) as fp:
            self.assertRegex(fp.read(), r'\A(.*/)?bin/run ran\n\Z')

    def test_links_and_cleanup(self):
        q = self.q
        link = self.remote_path('a link')
        q.setup(links=[link])
        with self.assertRaises(tej.QueueExists):
            q.setup()
        q.setup(force=True)  # replaces the runtime, keeps jobs
        via_link = self.make_queue(link)
        via_link.submit('j', self.job_dir, script='true')
        self.assertEqual(wait_state(q, 'j')['exit'], 0)
        self.assertEqual([i for i, _ in via_link.list()], ['j'])
        with self.assertRaises(tej.QueueExists):
            q.setup(links=[link + '/..'])  # a directory is there
        # a link to a link
        link2 = self.remote_path('link2')
        self.make_queue(link).setup(links=[link2], only_links=True)
        self.assertEqual([i for i, _ in self.make_queue(link2).list()], ['j'])
        # cleanup removes the queue and the links it went through
        via_link.cleanup()
        self.assertFalse(os.path.lexists(link))
        with self.assertRaises(tej.QueueDoesntExist):
            q.status('j')
        with self.assertRaises(tej.QueueLinkBroken):
            self.make_queue(link2).status('j')

    def test_cleanup_through_a_symbolic_link(self):
        # the queue path is a symbolic link (relative) to the queue: cleanup
        # removes the queue itself, then the link
        real = self.remote_path('real queue')
        self.make_queue(real).setup()
        link = self.remote_path('sym')
        os.symlink('real queue', link)
        via_link = self.make_queue(link)
        via_link.submit('j', self.job_dir, script='true')
        self.assertEqual(wait_state(via_link, 'j')['exit'], 0)
        self.assertTrue(os.path.isdir(os.path.join(real, 'jobs', 'j')))
        self.assertTrue(via_link.cleanup())
        self.assertFalse(os.path.lexists(link))
        self.assertFalse(os.path.lexists(real))

    def test_broken_link(self):
        link = self.remote_path('broken')
        with open(link, 'w') as fp:
            fp.write('tejdir: %s\n' % self.remote_path('nowhere'))
        os.chmod(link, 0o644)
        self.own(link)  # (one of another user's is refused unread)
        with self.assertRaises(tej.QueueLinkBroken):
            self.make_queue(link).status('x')

    def test_outdated_runtime_is_replaced_and_jobs_kept(self):
        q = self.q
        q.submit('old', self.job_dir, script='true')
        self.assertEqual(wait_state(q, 'old')['exit'], 0)
        version = os.path.join(self.remote_path("q 'x"), 'version')
        with open(version, 'w') as fp:
            fp.write('1/default/0000000000000000\n')
        self.assertEqual(q.status('old')[::2], ('finished', '0'))
        with open(version) as fp:
            self.assertEqual(fp.read().strip(),
                             tej._runtime_version('default'))

    def test_cleanup_refuses_running_jobs(self):
        q = self.q
        support.make_tree(self.job_dir, {'start.sh': 'sleep 1000\n'})
        q.submit('r', self.job_dir)
        with self.assertRaises(tej.JobStillRunning):
            q.cleanup()
        self.assertTrue(q.cleanup(kill=True))
        with self.assertRaises(tej.QueueDoesntExist):
            list(q.list())

    def tearDown(self):
        try:  # no job of a failed test goes on
            self.q.cleanup(kill=True)
        except tej.Error:
            pass
        super(Scenario, self).tearDown()


class CommandLineScenario(object):
    """The original tej's command line, with its exact output. A subclass
    sets ``dest``, ``cli_extra`` (options reaching the server) and
    ``tmp``, and provides ``remote_dir()`` and ``processes(pattern)``.
    """

    def tej(self, *argv, expect=0):
        code, out, err = run_cli(*(list(argv) + self.cli_extra))
        self.assertEqual(code, expect, (argv, out, err))
        self.assertNotIn('Traceback', err)
        return out

    def test_scenario(self):
        queue = self.remote_dir() + '/with space/queue'
        link = self.remote_dir() + '/the link'
        d = self.dest
        q = ['--queue', queue]
        self.assertEqual(self.tej('setup', d, '--make-link', link, *q), '')
        self.assertTrue(os.path.isfile(link))
        self.assertEqual(self.tej('status', d, '--id', 'nope', *q),
                         'not found\n')
        job = support.make_tree(os.path.join(self.tmp, 'job'), {
            'start.sh': WAIT_FOR_GO, 'plain.txt': 'p', 'deep/a/b.txt': 'b'})
        out = self.tej('submit', d, '--id', 'job1', job, '--queue', link)
        self.assertEqual(out, 'job1\n')
        code, out, err = run_cli('status', d, '--id', 'job1',
                                 *(q + self.cli_extra))
        self.assertEqual((code, out), (0, 'running\n'))
        self.assertRegex(err, r'Job is still running \(\d+:\d\d:\d\d\)')
        self.tej('delete', d, '--id', 'job1', *q, expect=1)
        with open(os.path.join(queue, 'jobs', 'job1', 'stage', 'go'), 'w'):
            pass
        wait_for(lambda: self.tej('status', d, '--id', 'job1', *q),
                 lambda out: out == 'finished 0\n', what='job1 to finish')
        here = os.getcwd()
        os.chdir(self.tmp)
        try:
            self.assertEqual(self.tej('download', d, '--id', 'job1',
                                      '_stdout', 'deep', *q), '')
        finally:
            os.chdir(here)
        with open(os.path.join(self.tmp, '_stdout')) as fp:
            self.assertEqual(fp.read(), 'out: p\n')
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, 'deep/a/b.txt')))
        self.tej('download', d, '--id', 'job1', 'results/r.txt',
                 '--destination', os.path.join(self.tmp, 'r.txt'), *q)
        self.tej('download', d, '--id', 'job1', 'results',
                 '--directory', os.path.join(self.tmp, 'into'), *q)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp,
                                                    'into/results/r.txt')))
        self.assertEqual(self.tej('list', d, *q), 'job1 finished\n')
        self.assertEqual(self.tej('kill', d, '--id', 'job1', *q), '')
        self.assertEqual(self.tej('delete', d, '--id', 'job1', *q), '')
        self.assertEqual(self.tej('status', d, '--id', 'job1', *q),
                         'not found\n')

        # a long job, killed: no process of it is left on the server
        long_job = support.make_tree(os.path.join(self.tmp, 'long'), {
            'start.sh': 'sleep 1000 &\nsleep 1001\n'})
        self.tej('submit', d, '--id', 'long', long_job, *q)
        wait_for(lambda: self.processes('sleep 1001'),
                 what='the long job to start')
        self.tej('delete', d, '--id', 'long', *q, expect=1)
        self.assertTrue(self.processes(queue + '/jobs/long/'))
        self.tej('kill', d, '--id', 'long', *q)
        self.assertEqual(self.tej('status', d, '--id', 'long', *q),
                         'finished 143\n')
        self.assertEqual(self.processes(queue + '/jobs/long/'), [])
        self.tej('delete', d, '--id', 'long', *q)

        # a command as the script, on an empty directory
        empty = os.path.join(self.tmp, 'empty')
        os.mkdir(empty)
        job_id = self.tej('submit', d, '--script', 'echo "hi"', empty,
                          *q).strip()
        self.assertRegex(job_id, r'\Aempty_.+_[a-z0-9]{10}\Z')
        wait_for(lambda: self.tej('status', d, '--id', job_id, *q),
                 lambda out: out == 'finished 0\n', what='the echo job')
        self.tej('download', d, '--id', job_id, '_stdout', '--destination',
                 os.path.join(self.tmp, 'hi'), *q)
        with open(os.path.join(self.tmp, 'hi')) as fp:
            self.assertEqual(fp.read(), 'hi\n')


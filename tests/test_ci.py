"""CI-grade use through the real sshd: wait and run exit with the job's
code, logs --follow, content ids under concurrency, re-attaching after an
interruption, many callers at once, a server restarting under wait, JSON.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from . import support
from .scenario import wrapper_started
from .support import tej, run_cli, wait_for

TEJ = os.path.join(support.TOP, 'tej.py')


def setUpModule():
    support.Hermetic.start()
    os.environ['TEJ_CONTROL_PERSIST'] = '60'


class CICase(unittest.TestCase):
    def setUp(self):
        self.server = support.ssh_server()
        self.tmp = tempfile.mkdtemp()
        self.remote = self.server.remote_dir()
        self.queue_path = os.path.join(self.remote, 'q')
        self.q = self.server.queue(self.queue_path)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.remote, ignore_errors=True)

    def args(self, *argv):
        return list(argv) + ['--queue', self.queue_path,
                             '-F', self.server.config]

    def cli(self, *argv):
        return run_cli(*self.args(*argv))

    def process(self, *argv, **kwargs):
        """``python3 tej.py ARGV`` as a subprocess."""
        return subprocess.Popen([sys.executable, TEJ] + self.args(*argv),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.tmp,
                                **kwargs)

    def job(self, name, files):
        return support.make_tree(os.path.join(self.tmp, name), files)

    def stage(self, job_id):
        return os.path.join(self.queue_path, 'jobs', job_id, 'stage')


class TestExitCodes(CICase):
    def test_wait_and_run_exit_with_the_jobs_code(self):
        job = self.job('three', {'start.sh': 'echo out; exit 3\n'})
        self.q.submit('three', job)
        code, out, err = self.cli('wait', self.server.alias, '--id', 'three')
        self.assertEqual((code, out), (3, ''))
        code, out, err = self.cli('wait', self.server.alias, '--id', 'three',
                                  '--json')
        self.assertEqual(code, 3)
        self.assertEqual(json.loads(out)['exit_code'], 3)
        code, out, err = self.cli('run', self.server.alias, job)
        self.assertEqual((code, out), (3, 'out\n'), err)
        code, out, err = self.cli('status', self.server.alias, '--id',
                                  'three', '--check')
        self.assertEqual((code, out), (3, 'finished 3\n'))

    def test_killed_lost_not_found_and_several(self):
        job = self.job('j', {'start.sh': 'sleep 1000\n'})
        ok = self.job('ok', {'start.sh': 'true\n'})
        self.q.submit('killed', job)
        self.q.submit('lost', job)
        self.q.submit('ok', ok)
        self.q.kill('killed')
        state = wrapper_started(self.stage('lost'))
        os.kill(int(state['pid']), signal.SIGKILL)
        os.killpg(int(state['pgid']), signal.SIGKILL)
        d = self.server.alias
        self.assertEqual(self.cli('wait', d, '--id', 'killed')[0], 123)
        self.assertEqual(self.cli('wait', d, '--id', 'lost')[0], 122)
        self.assertEqual(self.cli('wait', d, '--id', 'nope')[0], 121)
        self.assertEqual(self.cli('wait', d, '--id', 'ok')[0], 0)
        # several: the first that failed, in the order given
        self.assertEqual(self.cli('wait', d, '--id', 'ok', '--id', 'lost',
                                  '--id', 'killed')[0], 122)
        self.assertEqual(self.cli('status', d, '--id', 'killed',
                                  '--check')[0], 123)
        self.assertEqual(self.cli('status', d, '--id', 'nope',
                                  '--check')[:2], (121, 'not found\n'))
        # errors are 125 where the exit status is the job's
        self.assertEqual(run_cli('wait', d, '--id', 'x', '--queue',
                                 '/nonexistent', '-F',
                                 self.server.config)[0], 125)

    def test_timeout(self):
        job = self.job('j', {'start.sh': 'sleep 1000\n'})
        self.q.submit('slow', job)
        start = time.monotonic()
        code, out, err = self.cli('wait', self.server.alias, '--id', 'slow',
                                  '--timeout', '1.5')
        self.assertEqual(code, 124)
        self.assertLess(time.monotonic() - start, 10)
        self.assertIn('still running', err)
        self.assertEqual(self.q.info('slow')['state'], 'running')
        code, out, err = self.cli('run', self.server.alias, job,
                                  '--timeout', '1')
        self.assertEqual(code, 124, err)
        self.assertIn('re-attach', err)
        self.assertEqual(self.cli('status', self.server.alias, '--id',
                                  'slow', '--check')[0], 120)
        self.q.cleanup(kill=True)


class TestLogs(CICase):
    def test_follow_every_line_once_in_order(self):
        job = self.job('lines', {'start.sh':
                                 'i=0; while [ $i -lt 20 ]; do '
                                 'echo "line $i"; echo "err $i" >&2; '
                                 'i=$((i + 1)); sleep 0.1; done\n'})
        self.q.submit('lines', job)
        proc = self.process('logs', self.server.alias, '--id', 'lines',
                            '--follow')
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out.decode(), ''.join('line %d\n' % i
                                               for i in range(20)))
        self.assertEqual(self.q.info('lines')['state'], 'finished')
        code, out, err = self.cli('logs', self.server.alias, '--id', 'lines',
                                  '--stderr')
        self.assertEqual(out, ''.join('err %d\n' % i for i in range(20)))

    def test_api_resumes_without_loss(self):
        job = self.job('bin', {'start.sh': 'head -c 300000 /dev/zero | '
                                           'tr "\\0" x; echo\n'})
        self.q.submit('bin', job)
        self.q.wait('bin')
        import io
        out, err = io.BytesIO(), io.BytesIO()
        self.assertEqual(self.q.logs('bin', stdout=out, stderr=err),
                         ('finished', 0))
        self.assertEqual(out.getvalue(), b'x' * 300000 + b'\n')
        self.assertEqual(err.getvalue(), b'')


class TestContentIds(CICase):
    def test_same_content_same_job(self):
        job = self.job('c', {'start.sh': 'echo $$ >> ../../../runs\n',
                             'data': 'x'})
        first = self.cli('submit', self.server.alias, job, '--content-id')
        second = self.cli('submit', self.server.alias, job, '--content-id')
        self.assertEqual(first[:2], second[:2])
        job_id = first[1].strip()
        self.assertEqual(job_id, tej.content_id(job))
        self.assertRegex(job_id, r'\Ac_[0-9a-f]{12}\Z')
        self.assertEqual([i for i, _ in self.q.list()], [job_id])
        self.q.wait(job_id)
        with open(os.path.join(self.queue_path, 'runs')) as fp:
            self.assertEqual(len(fp.read().split()), 1)
        self.assertEqual(self.cli('submit', self.server.alias, job,
                                  '--content-id', '--if-exists', 'fail')[0],
                         1)
        # mtimes do not count; contents, names, the script do
        os.utime(os.path.join(job, 'data'), (0, 0))
        self.assertEqual(tej.content_id(job), job_id)
        self.assertNotEqual(tej.content_id(job, 'echo other'), job_id)
        with open(os.path.join(job, 'data'), 'w') as fp:
            fp.write('y')
        changed = tej.content_id(job)
        self.assertNotEqual(changed, job_id)
        os.chmod(os.path.join(job, 'data'), 0o755)
        self.assertNotEqual(tej.content_id(job), changed)

    def test_ten_clients_at_once(self):
        job = self.job('c10', {'start.sh': 'echo $$ >> ../../../runs\n'})
        self.q.setup()
        procs = [self.process('submit', self.server.alias, job,
                              '--content-id') for _ in range(10)]
        outs = [p.communicate(timeout=120) for p in procs]
        for proc, (out, err) in zip(procs, outs):
            self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(len({out for out, err in outs}), 1)
        job_id = outs[0][0].decode().strip()
        self.assertEqual([i for i, _ in self.q.list()], [job_id])
        self.q.wait(job_id)
        with open(os.path.join(self.queue_path, 'runs')) as fp:
            self.assertEqual(len(fp.read().split()), 1)


class TestRun(CICase):
    def test_interrupted_then_reattached(self):
        job = self.job('r', {
            'start.sh': 'echo started\n'
                        'while [ ! -f go ]; do sleep 0.1; done\n'
                        'mkdir -p out && echo result > out/r.txt\n'
                        'echo finished; exit 4\n'})
        into = os.path.join(self.tmp, 'results')
        proc = self.process('run', self.server.alias, job, '--download',
                            'out', '--into', into)
        job_id = tej.content_id(job)
        wait_for(lambda: os.path.isdir(self.stage(job_id)) and
                 self.q.info(job_id)['state'] == 'running',
                 what='the job to run')
        wait_for(lambda: os.path.exists(os.path.join(self.stage(job_id),
                                                     '_stdout')) and
                 os.path.getsize(os.path.join(self.stage(job_id), '_stdout')),
                 what='the job to print')
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn(b'Run the same command again to re-attach', err)
        self.assertEqual(self.q.info(job_id)['state'], 'running')

        proc = self.process('run', self.server.alias, job, '--download',
                            'out', '--into', into)
        wait_for(lambda: self.server.processes(' logs '),
                 what='run to follow the job')
        with open(os.path.join(self.stage(job_id), 'go'), 'w'):
            pass
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 4, err)
        self.assertIn(b'Re-attaching', err)
        self.assertEqual(out, b'started\nfinished\n')
        with open(os.path.join(into, 'out', 'r.txt')) as fp:
            self.assertEqual(fp.read(), 'result\n')
        self.assertEqual(list(self.q.list()), [])  # deleted: not --keep

    def test_sigterm_and_keep_and_json(self):
        job = self.job('t', {'start.sh': 'sleep 1000\n'})
        proc = self.process('run', self.server.alias, job)
        job_id = tej.content_id(job)
        # this job's: a follower of another test's job may still be there
        wait_for(lambda: self.server.processes(' logs %s ' % job_id),
                 what='run to follow the job')
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 143, err)
        self.assertEqual(self.q.info(job_id)['state'], 'running')
        self.q.delete(job_id, kill=True)

        job = self.job('k', {'start.sh': 'echo hello; echo data > f\n'})
        code, out, err = self.cli('run', self.server.alias, job, '--keep',
                                  '--json', '--download', 'f', '--into',
                                  os.path.join(self.tmp, 'into'))
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        self.assertIn('hello', err)  # the job's output goes to stderr
        self.assertEqual(result['state'], 'finished')
        self.assertEqual(result['downloaded'],
                         [os.path.join(self.tmp, 'into', 'f')])
        self.assertEqual([i for i, _ in self.q.list()], [result['id']])


class TestManyCallers(CICase):
    def test_fifty_status_at_once(self):
        job = self.job('j', {'start.sh': 'true\n'})
        self.q.submit('j', job)
        self.q.wait('j')
        self.q.close()  # they race to create the shared connection too
        procs = [self.process('status', self.server.alias, '--id', 'j')
                 for _ in range(50)]
        results = [(p.communicate(timeout=300), p.returncode) for p in procs]
        failures = [(code, err) for (out, err), code in results
                    if code != 0 or out != b'finished 0\n']
        self.assertEqual(failures, [])


class TestServerRestart(CICase):
    def test_wait_survives_a_restart(self):
        job = self.job('w', {'start.sh': 'while [ ! -f go ]; do sleep 0.1; '
                                         'done; exit 5\n'})
        self.q.submit('w', job)
        env = dict(os.environ, TEJ_RETRY_FOR='120')
        proc = self.process('wait', self.server.alias, '--id', 'w', env=env)
        wait_for(lambda: self.server.processes(' wait '),
                 what='wait to be waiting on the server')
        down = self.server.path('down')
        open(down, 'w').close()
        try:
            self.server.kill_sshd()
            with open(os.path.join(self.stage('w'), 'go'), 'w'):
                pass
            wait_for(lambda: b'trying again' in _peek_stderr(proc),
                     timeout=60, what='wait to notice the failure')
        finally:
            os.unlink(down)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 5, err)


def _peek_stderr(proc):
    """What a process wrote on stderr so far (non-blocking)."""
    import fcntl
    fd = proc.stderr.fileno()
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        data = proc.stderr.read() or b''
    except (IOError, OSError):
        data = b''
    proc._peeked = getattr(proc, '_peeked', b'') + data
    return proc._peeked



class TestJSON(CICase):
    KEYS = {'tej', 'id', 'state', 'exit_code', 'submitted', 'started',
            'finished', 'submitted_epoch', 'started_epoch', 'finished_epoch',
            'directory', 'runtime', 'runtime_id'}

    def test_schema(self):
        job = self.job('j', {'start.sh': 'true\n'})
        d = self.server.alias
        code, out, err = self.cli('submit', d, job, '--id', 'j', '--json')
        self.assertEqual(json.loads(out), {'tej': 1, 'id': 'j',
                                           'created': True})
        self.q.wait('j')
        code, out, err = self.cli('status', d, '--id', 'j', '--json')
        record = json.loads(out)
        self.assertEqual(set(record), self.KEYS)
        self.assertEqual((record['tej'], record['state'],
                          record['exit_code'], record['runtime']),
                         (1, 'finished', 0, 'default'))
        self.assertRegex(record['finished'],
                         r'\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z')
        self.assertIsInstance(record['finished_epoch'], int)
        self.assertTrue(record['directory'].endswith('/jobs/j/stage'))
        code, out, err = self.cli('list', d, '--json')
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([set(l) for l in lines], [self.KEYS])
        code, out, err = self.cli('status', d, '--id', 'none', '--json')
        self.assertEqual(json.loads(out)['state'], 'notfound')

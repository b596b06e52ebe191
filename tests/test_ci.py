"""CI-grade use, through the real sshd: wait and run exit with the job's
code, logs --follow (also through the server's keep-alive lines), content
ids (the options that make them, and clients at the same moment),
re-attaching after an interruption, many callers at once, a server
restarting under wait, JSON.
"""

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

from . import support
from .scenario import wrapper_started
from .support import LocalCase, make_tree, tej, run_cli, wait_for

TEJ = os.path.join(support.TOP, 'tej.py')

setUpModule = support.ssh_module


class CICase(support.ServerCase):
    def setUp(self):
        super(CICase, self).setUp()
        self.q = self.queue()

    def process(self, *argv, **kwargs):
        """``python3 tej.py ARGV`` as a subprocess."""
        return subprocess.Popen([sys.executable, TEJ] + self.args(*argv),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.tmp,
                                **kwargs)


class TestExitCodes(CICase):
    """wait, run and status --check exit with the job's own code (0 to
    255), or with tej's own: 120 to 125.
    """

    def test_the_jobs_own_code(self):
        d = self.dest
        for code in (0, 1, 3, 119, 126, 255):
            with self.subTest(code=code):
                job_id = 'exit%d' % code
                job = self.job(job_id, {'start.sh': 'echo out; exit %d\n'
                                        % code})
                self.q.submit(job_id, job)
                self.assertEqual(self.cli('wait', d, '--id', job_id)[:2],
                                 (code, ''))
                got, out, err = self.cli('wait', d, '--id', job_id, '--json')
                self.assertEqual((got, json.loads(out)['exit_code']),
                                 (code, code))
                self.assertEqual(self.cli('status', d, '--id', job_id,
                                          '--check')[:2],
                                 (code, 'finished %d\n' % code))
                got, out, err = self.cli('run', d, job)
                self.assertEqual((got, out), (code, 'out\n'), err)

    def test_tejs_own_codes(self):
        d = self.dest
        slow = self.job('slow', {'start.sh': 'sleep 1000\n'})
        self.addCleanup(self.q.cleanup, kill=True)  # slow goes on
        for job_id in ('killed', 'lost', 'slow'):
            self.q.submit(job_id, slow)
        self.q.submit('ok', self.job('ok', {'start.sh': 'true\n'}))
        self.q.kill('killed')
        state = wrapper_started(self.stage('lost'))
        os.kill(int(state['pid']), signal.SIGKILL)
        os.killpg(int(state['pgid']), signal.SIGKILL)
        # a queue nobody can make
        bad = ('--queue', '/dev/null/q')
        calls = [
            (120, ('status', d, '--id', 'slow', '--check')),
            (121, ('wait', d, '--id', 'nope')),
            (121, ('status', d, '--id', 'nope', '--check')),
            (122, ('wait', d, '--id', 'lost')),
            (122, ('status', d, '--id', 'lost', '--check')),
            # several: the first that failed, in the order given
            (122, ('wait', d, '--id', 'ok', '--id', 'lost', '--id',
                   'killed')),
            (123, ('wait', d, '--id', 'killed')),
            (123, ('status', d, '--id', 'killed', '--check')),
            (124, ('wait', d, '--id', 'slow', '--timeout', '1.5')),
            (124, ('run', d, slow, '--timeout', '1')),
            # errors are 125 where the exit status is the job's
            (125, ('wait', d, '--id', 'x') + bad),
            (125, ('status', d, '--id', 'x', '--check') + bad),
            (125, ('run', d, slow) + bad),
        ]
        self.assertEqual({code for code, _ in calls}, set(range(120, 126)))
        for expected, argv in calls:
            with self.subTest(argv=argv):
                start = time.monotonic()
                code, out, err = self.cli(*argv)
                self.assertEqual(code, expected, (out, err))
                self.assertNotIn('Traceback', err)
                if expected == 124:
                    self.assertLess(time.monotonic() - start, 10)
                    self.assertIn('still running', err)
                    self.assertEqual(self.q.info('slow')['state'], 'running')
                if expected == 124 and argv[0] == 'run':
                    self.assertIn('re-attach', err)
                if expected == 125:
                    self.assertRegex(err, r'tej: error: ')
        self.assertEqual(self.cli('status', d, '--id', 'nope', '--check')[:2],
                         (121, 'not found\n'))

    def test_run_of_a_job_killed_meanwhile(self):
        job = self.job('k', {'start.sh': 'sleep 1000\n'})
        proc = self.process('run', self.dest, job)
        job_id = tej.content_id(job)
        wait_for(lambda: self.server.processes(' logs %s ' % job_id),
                 what='run to follow the job')
        self.q.kill(job_id)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 123, err)
        self.assertIn(b'was killed', err)


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
        self.assertEqual((code, out), (0, ''.join('err %d\n' % i
                                                  for i in range(20))))

    def test_api_resumes_without_loss(self):
        # numbered lines: a byte lost or repeated shows; the connection
        # breaks between the two halves
        job = self.job('bin', {'start.sh':
                               'seq 1 1000; seq 1 100 >&2\n'
                               'while [ ! -f go ] && [ -d "$PWD" ]; '
                               'do sleep 0.1; done\n'
                               'seq 1001 100000; seq 101 200 >&2\n'})
        self.q.submit('bin', job)
        out, err = io.BytesIO(), io.BytesIO()
        result = []
        follow = threading.Thread(target=lambda: result.append(self.q.logs(
            'bin', stdout=out, stderr=err, follow=True)))
        with self.assertLogs('tej', 'WARNING') as logs:
            follow.start()
            try:
                wait_for(out.getvalue, lambda data: data.endswith(b'\n1000\n'),
                         what='the first half')
                self.assertTrue(follow.is_alive())
                self.assertGreater(self.server.kill_sshd(), 0)
                open(os.path.join(self.stage('bin'), 'go'), 'w').close()
            finally:
                follow.join(120)
        self.assertEqual(result, [('finished', 0)])
        self.assertEqual(out.getvalue(), ''.join(
            '%d\n' % i for i in range(1, 100001)).encode())
        self.assertEqual(err.getvalue(), ''.join(
            '%d\n' % i for i in range(1, 201)).encode())
        # it noticed the break, and connected again
        self.assertTrue(any('trying again' in line for line in logs.output),
                        logs.output)
        self.assertGreater(self.server.sshd_started(), 0)


class TestContentIds(CICase):
    def test_same_content_same_job(self):
        job = self.job('c', {'start.sh': 'echo $$ >> ../../../runs\n',
                             'data': 'x'})
        first = self.cli('submit', self.server.alias, job, '--content-id')
        second = self.cli('submit', self.server.alias, job, '--content-id')
        self.assertEqual(first[0], 0, first[2])
        self.assertEqual(first[:2], second[:2])
        job_id = first[1].strip()
        self.assertEqual(job_id, tej.content_id(job))
        self.assertRegex(job_id, r'\Ac_[0-9a-f]{24}\Z')
        self.check_ran_once(job_id)
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
        self.check_ran_once(outs[0][0].decode().strip())

    def test_a_retargeted_link_is_another_job(self):
        # a link's target is part of the job (it is sent as a link): one
        # retargeted inside the job, the files unchanged, is another job,
        # which run runs instead of re-attaching to the old one; so is one
        # leading out of it that --dereference sends as its file
        outside = make_tree(os.path.join(self.tmp, 'outside'),
                            {'x': 'outside x\n', 'y': 'outside y\n'})
        job = self.job('l', {'start.sh': 'cat data sub/in/f ext\n',
                             'a.txt': 'A\n', 'b.txt': 'B\n',
                             'sub/one/f': '1\n', 'sub/two/f': '2\n'})

        def link(name, target):
            path = os.path.join(job, name)
            if os.path.lexists(path):
                os.remove(path)
            os.symlink(target, path)

        link('data', 'a.txt')
        link('sub/in', 'one')
        link('ext', os.path.join(outside, 'x'))
        ids, runs = set(), [
            (None, None, 'A\n1\noutside x\n'),
            ('data', 'b.txt', 'B\n1\noutside x\n'),
            ('sub/in', 'two', 'B\n2\noutside x\n'),
            ('ext', os.path.join(outside, 'y'), 'B\n2\noutside y\n')]
        for name, target, output in runs:
            if name is not None:
                link(name, target)
            job_id = tej.content_id(job, dereference=True)
            self.assertNotIn(job_id, ids)
            ids.add(job_id)
            code, out, err = self.cli('run', self.dest, job, '--keep',
                                      '--dereference')
            self.assertEqual((code, out), (0, output), err)
            self.assertNotIn('Re-attaching', err)
            self.assertIn('Submitted job %s' % job_id, err)
        self.assertEqual({i for i, _ in self.q.list()}, ids)
        # and the same links again: the same job
        code, out, err = self.cli('run', self.dest, job, '--keep',
                                  '--dereference')
        self.assertEqual(code, 0, err)
        self.assertIn('Re-attaching to job %s' % job_id, err)

    def check_ran_once(self, job_id):
        """The queue has that one job, and it ran once (its pid is once
        in ``runs``).
        """
        self.assertEqual([i for i, _ in self.q.list()], [job_id])
        self.assertEqual(self.q.wait(job_id), 0)
        with open(os.path.join(self.queue_path, 'runs')) as fp:
            self.assertEqual(len(fp.read().split()), 1)


class TestRun(CICase):
    def test_the_stop_hint_works_pasted(self):
        job = self.job('h', {'start.sh': 'echo started; sleep 1000\n'})
        proc = self.process('run', self.server.alias, job)
        job_id = tej.content_id(job)
        wait_for(lambda: self.server.processes(' logs %s ' % job_id),
                 what='run to follow its job')
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        hint = re.search(r'stop it with: (.*)\n', err.decode()).group(1)
        self.assertIn('--queue', hint)
        self.assertIn(self.server.config, hint)
        kill = subprocess.run(shlex.split(hint), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=self.tmp,
                              timeout=60)
        self.assertEqual(kill.returncode, 0, kill.stderr)
        self.assertEqual(self.q.info(job_id)['state'], 'killed')

    def test_interrupted_then_reattached(self):
        job = self.job('r', {
            'start.sh': 'echo started\n'
                        'while [ ! -f go ] && [ -d "$PWD" ]; '
                        'do sleep 0.1; done\n'
                        'mkdir -p out && echo result > out/r.txt\n'
                        'echo finished; exit 4\n'})
        into = os.path.join(self.tmp, 'results')
        proc = self.process('run', self.server.alias, job, '--download',
                            'out', '--into', into)
        job_id = tej.content_id(job)
        stage = self.stage(job_id)
        wait_for(lambda: os.path.isdir(stage) and self.q.info(job_id)['state'],
                 lambda state: state == 'running', what='the job to run')
        stdout = os.path.join(stage, '_stdout')
        wait_for(lambda: os.path.exists(stdout) and os.path.getsize(stdout),
                 what='the job to print')
        # and run follows it (the job starts before its submit has answered)
        wait_for(lambda: self.server.processes(' logs %s ' % job_id),
                 what='run to follow the job')
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


    def test_the_results_of_a_failed_job(self):
        # whatever the exit code, every result that is there comes down;
        # a missing one is a warning
        job = self.job('f', {'start.sh': 'mkdir results\n'
                                         'echo r > results/r.txt\nexit 3\n'})
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        code, out, err = self.cli('run', self.server.alias, job, '--download',
                                  'results', '--download', 'missing.txt',
                                  '--into', into)
        self.assertEqual(code, 3, err)
        self.assertRegex(err, r"tej: no file 'missing.txt' in job f_[0-9a-f]{24}\n")
        self.assertIn('failed with exit code 3', err)
        with open(os.path.join(into, 'results', 'r.txt')) as fp:
            self.assertEqual(fp.read(), 'r\n')
        self.assertEqual(list(self.q.list()), [])

    def test_a_missing_result_of_a_job_that_succeeded(self):
        # exit 125, and the job is kept, with a command that deletes it
        job = self.job('m', {'start.sh': 'echo a > a\n'})
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        code, out, err = self.cli('run', self.server.alias, job, '--download',
                                  'missing.txt', '--download', 'a', '--into',
                                  into)
        self.assertEqual(code, 125, err)
        self.assertIn("no file 'missing.txt'", err)
        self.assertTrue(os.path.exists(os.path.join(into, 'a')))
        job_id = tej.content_id(job)
        self.assertEqual(self.q.info(job_id)['state'], 'finished')
        hint = re.search(r'Delete it with: (.*)\n', err).group(1)
        delete = subprocess.run(shlex.split(hint), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.tmp,
                                timeout=60)
        self.assertEqual(delete.returncode, 0, delete.stderr)
        self.assertEqual(list(self.q.list()), [])

    def test_a_broken_download_does_not_hide_the_jobs_code(self):
        # the job's own failure wins over its results' failing to come
        # down, whatever broke (on the server: a result it cannot read;
        # here: a file where a result's directory goes) and in whichever
        # order the paths come; a job that succeeded exits 125. Either way
        # the job is kept, for its results, and every result that could
        # come came
        for code, expected in ((3, 3), (0, 125)):
            for paths in (('unreadable', 'in-the-way', 'fine'),
                          ('fine', 'in-the-way', 'unreadable')):
                with self.subTest(code=code, paths=paths):
                    name = 'b%d%s' % (code, paths[0][0])
                    job = self.job(name, {'start.sh': (
                        'echo r > unreadable; chmod 000 unreadable\n'
                        'mkdir in-the-way; echo r > in-the-way/r\n'
                        'echo r > fine; exit %d\n' % code)})
                    into = make_tree(os.path.join(self.tmp, 'into-' + name),
                                     {'in-the-way': 'a file\n'})
                    argv = ['run', self.dest, job, '--into', into]
                    for path in paths:
                        argv += ['--download', path]
                    got, out, err = self.cli(*argv)
                    self.assertEqual(got, expected, err)
                    self.assertNotIn('Traceback', err)
                    self.assertNotIn('tej: error:', err)
                    for path in ('unreadable', 'in-the-way'):
                        self.assertIn('Could not download %s: ' % path, err)
                    with open(os.path.join(into, 'fine')) as fp:
                        self.assertEqual(fp.read(), 'r\n')
                    job_id = tej.content_id(job)
                    self.assertIn('Delete it with: ', err)
                    self.assertEqual(self.q.info(job_id)['state'],
                                     'finished')
                    if code:
                        self.assertIn('failed with exit code %d' % code, err)

    def test_json_is_the_whole_record(self):
        job = self.job('j', {'start.sh': 'exit 2\n'})
        code, out, err = self.cli('run', self.server.alias, job, '--json')
        self.assertEqual(code, 2, err)
        result = json.loads(out)
        self.assertEqual((result['state'], result['exit_code']),
                         ('finished', 2))
        for key in ('directory', 'submitted', 'started', 'finished',
                    'runtime'):
            self.assertIsNotNone(result[key], key)
        self.assertEqual(result['runtime'], 'default')
        self.assertEqual(result['downloaded'], [])

    def test_a_killed_job_is_run_again(self):
        # (the queue is a test's own: ../../.. of the job's directory)
        job = self.job('k', {'start.sh': 'if [ -e ../../../once ]; then '
                                         'echo again; exit 0; fi\n'
                                         'touch ../../../once; sleep 1000\n'})
        job_id = self.q.submit(None, job, content_id=True)
        support.wait_state(self.q, job_id, 'running')
        # killed once its script has run so far (running is said before)
        support.wait_for(lambda: os.path.exists(os.path.join(
            str(self.q.queue), 'once')), what='the job to make "once"')
        self.q.kill(job_id)
        code, out, err = self.cli('run', self.server.alias, job)
        self.assertEqual((code, out), (0, 'again\n'), err)
        self.assertIn('Job %s was killed: running it again' % job_id, err)
        self.assertEqual(list(self.q.list()), [])

    def test_a_failed_job_is_reused_unless_rerun_failed(self):
        job = self.job('r', {'start.sh': 'if [ -e ../../../failed ]; then '
                                         'echo fine; exit 0; fi\n'
                                         'touch ../../../failed; exit 3\n'})
        self.assertEqual(self.cli('run', self.server.alias, job,
                                  '--keep')[0], 3)
        code, out, err = self.cli('run', self.server.alias, job, '--keep')
        self.assertEqual(code, 3, err)
        # one line says it
        self.assertEqual(re.findall(r'tej: (Re-attaching.*|.*exists.*)', err),
                         ['Re-attaching to job %s, submitted before'
                          % tej.content_id(job)])
        code, out, err = self.cli('run', self.server.alias, job,
                                  '--rerun-failed')
        self.assertEqual((code, out), (0, 'fine\n'), err)
        self.assertIn('failed with exit code 3: running it again', err)


class TestManyCallers(CICase):
    def test_fifty_status_at_once(self):
        job = self.job('j', {'start.sh': 'true\n'})
        self.q.submit('j', job)
        self.assertEqual(self.q.wait('j'), 0)
        self.q.close()  # they race to create the shared connection too
        procs = [self.process('status', self.server.alias, '--id', 'j')
                 for _ in range(50)]
        results = [(p.communicate(timeout=300), p.returncode) for p in procs]
        failures = [(code, err) for (out, err), code in results
                    if code != 0 or out != b'finished 0\n']
        self.assertEqual(failures, [])


class TestServerRestart(CICase):
    def test_wait_survives_a_restart(self):
        job = self.job('w', {'start.sh': 'while [ ! -f go ] && '
                                         '[ -d "$PWD" ]; do sleep 0.1; '
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
            wait_for(lambda: _peek_stderr(proc),
                     lambda err: b'trying again' in err,
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
            'directory', 'runtime', 'runtime_id', 'scheduler_error'}

    def test_schema(self):
        job = self.job('j', {'start.sh': 'true\n'})
        d = self.server.alias
        code, out, err = self.cli('submit', d, job, '--id', 'j', '--json')
        self.assertEqual((code, json.loads(out)),
                         (0, {'tej': 1, 'id': 'j', 'created': True}))
        self.assertEqual(self.q.wait('j'), 0)
        code, out, err = self.cli('status', d, '--id', 'j', '--json')
        self.assertEqual(code, 0, err)
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
        self.assertEqual(code, 0, err)
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([set(l) for l in lines], [self.KEYS])
        code, out, err = self.cli('status', d, '--id', 'none', '--json')
        self.assertEqual((code, json.loads(out)['state']), (0, 'notfound'))


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


class TestQuietJob(support.ServerCase):
    """Through sshd: a job silent for longer than the server's keep-alive
    interval (TEJ_TICK, support.SSHServer.tick seconds) is followed to its
    end.
    """

    def test_follow_through_the_keep_alive(self):
        tick = self.server.tick
        q = self.queue()
        job = self.job('job', {'start.sh': 'sleep %d; echo done\n' %
                                           (2 * tick)})
        q.submit('quiet', job)
        out = io.BytesIO()
        started = time.monotonic()
        end = q.logs('quiet', stdout=out, follow=True, timeout=60)
        # long enough for the server to have sent its keep-alive line
        self.assertGreater(time.monotonic() - started, 1.5 * tick)
        self.assertEqual(out.getvalue(), b'done\n')
        self.assertEqual(end, ('finished', 0))
        record = q.info('quiet')
        self.assertEqual((record['state'], record['exit']), ('finished', 0))
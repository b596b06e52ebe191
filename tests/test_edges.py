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
import signal
import subprocess
import threading
import time
import unittest

from . import support
from .support import tej, need, run_cli, wait_for, which

#: The keys of a job record (QUEUE/jobs/ID/state), all written every time.
RECORD_KEYS = {'state', 'exit', 'submitted', 'started', 'finished', 'pid',
               'pgid', 'boot', 'killreq', 'runtime', 'runtime_id', 'mode'}

#: Shells the cheap runtime tests run under (sh itself, and the installed
#: ones of these).
SHELLS = ['dash', 'busybox', 'mksh', 'yash']


setUpModule = support.ssh_module


def record_path(queue_dir, job_id):
    return os.path.join(queue_dir, 'jobs', job_id, 'state')


def read_record(queue_dir, job_id):
    """A job's record as {key: value}, or None when there is none yet."""
    try:
        with open(record_path(queue_dir, job_id)) as fp:
            text = fp.read()
    except FileNotFoundError:
        return None
    return dict(line.split('=', 1) for line in text.splitlines()
                if '=' in line)


def replace_record(queue_dir, job_id, **changes):
    """Change fields of a job's record, atomically (as the runtime does:
    a temporary file, then a rename), so that no reader sees half of it.
    """
    path = record_path(queue_dir, job_id)
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
            read_record(self.queue_dir, job_id)),
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
            self.assertEqual(read_record(self.queue_dir, job_id)['pid'],
                             str(other.pid))
            self.assertEqual(q.info(job_id)['state'], 'lost')
            self.assertEqual(q.status(job_id)[0], 'lost')
        finally:
            other.kill()
            other.wait()
        q.delete(job_id)


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
        self.assertEqual(seen['partial'][:3], [])
        # the reader was there while the records changed
        self.assertGreater(seen['reads'], 100)
        self.assertLessEqual({'running', 'finished'}, seen['states'])


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
                'case " $* " in *" -O "*) exit 255 ;; esac\n'
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

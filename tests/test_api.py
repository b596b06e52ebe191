"""The Python API as a workflow system uses it (the original tej's
RemoteQueue, plus the Job handle), through the real sshd.
"""

import hashlib
import logging
import os
import signal
import threading

from . import support
from .scenario import WAIT_FOR_GO
from .support import tej, wait_for

setUpModule = support.ssh_module


class CollectingQueue(tej.RemoteQueue):
    """Routes the server's messages to a list, as a GUI would."""

    def __init__(self, *args, **kwargs):
        super(CollectingQueue, self).__init__(*args, **kwargs)
        self.messages = []

    def server_logger(self):
        queue = self

        class Logger(tej.ServerLogger):
            def message(self, data):
                queue.messages.append(data)
        return Logger()


class TestWorkflow(support.ServerCase):
    def setUp(self):
        super(TestWorkflow, self).setUp()
        self.job_dir = self.job('pipeline', {
            'start.sh': WAIT_FOR_GO, 'plain.txt': 'input',
            'deep/a/b/c/d.bin': b'\x00\x01'})

    def test_in_the_order_a_workflow_system_calls(self):
        q = self.queue(cls=CollectingQueue)
        self.assertEqual(q.destination, {'hostname': self.server.alias})
        self.assertEqual(q.destination_string, 'ssh://%s' % self.server.alias)
        self.assertEqual(str(q.queue), os.path.join(self.remote, 'q'))
        self.assertEqual((q.setup_runtime, q.need_runtime), (None, None))
        self.assertEqual((q.JOB_DONE, q.JOB_RUNNING, q.JOB_INCOMPLETE,
                          q.JOB_CREATED), ('finished', 'running',
                                           'incomplete', 'created'))
        # the pipeline's signature is the job id
        job_id = 'pipeline_' + hashlib.sha1(b'signature').hexdigest()[:12]
        with self.assertRaises(tej.QueueDoesntExist):
            q.status(job_id)
        self.assertEqual(q.submit(job_id, self.job_dir), job_id)
        status, directory, arg = q.status(job_id)
        self.assertEqual((status, arg), ('running', None))
        self.assertEqual(str(directory), os.path.join(
            self.remote, 'q', 'jobs', job_id, 'stage'))
        with self.assertRaises(tej.JobStillRunning):
            q.delete(job_id)
        # running the pipeline again finds the job instead of starting one
        with self.assertRaises(tej.JobAlreadyExists):
            q.submit(job_id, self.job_dir)
        self.assertEqual([(i, info['status']) for i, info in q.list()],
                         [(job_id, 'running')])
        job = q.job(job_id)
        self.assertFalse(job.finished())
        with open(os.path.join(str(directory), 'go'), 'w'):
            pass
        wait_for(job.finished, what='finished()')
        self.assertEqual(q.status(job_id)[::2], ('finished', '0'))
        self.assertEqual(job.exit_code(), 0)
        self.assertEqual(job.wait(), 0)

        out = os.path.join(self.tmp, 'out')
        self.assertEqual(q.download(job_id, ['_stdout', '_stderr'],
                                    directory=out),
                         [os.path.join(out, '_stdout'),
                          os.path.join(out, '_stderr')])
        with open(os.path.join(out, '_stdout')) as fp:
            self.assertEqual(fp.read(), 'out: input\n')
        with open(os.path.join(out, '_stderr')) as fp:
            self.assertEqual(fp.read(), 'err\n')
        q.download(job_id, 'results/r.txt',
                   destination=os.path.join(self.tmp, 'one.txt'))
        with open(os.path.join(self.tmp, 'one.txt')) as fp:
            self.assertEqual(fp.read(), 'done\n')
        job.download('results/deep', directory=os.path.join(self.tmp, 'sub'))
        with open(os.path.join(self.tmp, 'sub/deep/a/b/c/d.bin'), 'rb') as fp:
            self.assertEqual(fp.read(), b'\x00\x01')

        # kill of a finished job: nothing happens, the server says so
        q.messages[:] = []
        q.kill(job_id)
        self.assertEqual(q.messages, ['tej: job %s is not running' % job_id])
        q.delete(job_id)
        with self.assertRaises(tej.JobNotFound):
            q.kill(job_id)
        with self.assertRaises(tej.JobNotFound):
            q.delete(job_id)
        with self.assertRaises(tej.JobNotFound):
            job.finished()
        for bad in ['../x', 'a b', '', '-x']:
            with self.assertRaises(ValueError):
                q.status(bad)
            with self.assertRaises(ValueError):
                q.submit(bad, self.job_dir)

    def test_wait(self):
        q = self.queue()
        q.submit('fails', self.job_dir, script='exit 3')
        self.assertEqual(q.wait('fails', timeout=30), 3)
        q.submit('slow', self.job_dir, script='sleep 1000')
        with self.assertRaises(tej.JobStillRunning):
            q.wait('slow', timeout=0.5)
        q.kill('slow')
        self.assertEqual(q.wait('slow'), 143)
        self.assertEqual(q.info('slow')['state'], 'killed')

    def test_logs_as_bytes(self):
        q = self.queue()
        q.submit('out', self.job_dir, script='echo out; echo err >&2')
        self.assertEqual(q.wait('out', timeout=30), 0)
        self.assertEqual(q.logs('out'), (b'out\n', b'err\n'))
        self.assertEqual(q.job('out').logs(), (b'out\n', b'err\n'))
        self.assertEqual(q.logs('out', follow=True), (b'out\n', b'err\n'))

    def test_links_and_cleanup_with_tilde(self):
        q = self.queue('real')
        home_link = '~/tej-link-%s' % os.path.basename(self.remote)
        local_link = os.path.join(self.server.home, home_link[2:])
        q.setup(links=[home_link])
        self.assertTrue(os.path.isfile(local_link))
        via = self.server.queue(home_link)
        via.submit('j', self.job_dir, script='true')
        self.assertEqual(via.wait('j'), 0)
        self.assertTrue(via.cleanup())
        self.assertFalse(os.path.lexists(local_link))
        self.assertFalse(os.path.exists(str(q.queue)))

    def test_dead_master_is_not_an_error(self):
        q = self.queue()
        q.setup()
        for _ in range(2):
            masters = self.server.masters(q)
            self.assertEqual(len(masters), 1)
            os.kill(masters[0], signal.SIGKILL)
            # gone (a call in the instant it dies may find it half there,
            # and make the next call start the new one)
            wait_for(lambda: not support.alive(masters[0]),
                     what='the master to be gone')
            self.assertEqual(list(q.list()), [])

    def test_threads_share_one_queue(self):
        q = self.queue()
        q.submit('j', self.job_dir, script='true')
        self.assertEqual(q.wait('j'), 0)
        q.close()  # all threads race to create the shared connection
        errors, results = [], []

        def work():
            try:
                for _ in range(3):
                    results.append(q.status('j')[::2])
            except Exception as e:  # collected, asserted below
                errors.append(e)
        threads = [threading.Thread(target=work) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, [('finished', '0')] * 36)

    def test_setup_runtime_and_need_runtime(self):
        q = self.queue(setup_runtime='default', need_runtime=['default'])
        q.setup()
        self.assertEqual(q.need_runtime, {'default'})
        self.assertEqual(list(q.list()), [])

    def test_logging_goes_to_the_tej_logger(self):
        q = self.queue()
        with self.assertLogs('tej', logging.INFO) as logs:
            q.submit('j', self.job_dir, script='true')
        self.assertTrue(any('Installing the default runtime' in line
                            for line in logs.output), logs.output)

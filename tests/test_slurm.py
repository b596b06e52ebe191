"""The slurm runtime against a real single-node Slurm (support.SlurmCluster),
through the real sshd, as the unprivileged user.
"""

import json
import os
import signal
import stat
import time

from . import support
from .scenario import NASTY_FILES, WAIT_FOR_GO, wrapper_started
from .support import tej, wait_for, wait_state

setUpModule = support.ssh_module


def tearDownModule():
    # the other tests' servers have no Slurm: its configuration goes too
    support.stop_slurm()



def assert_memory_sizes(test):
    """``mem`` as the scheduler got it, for a bare number and units."""
    job = test.job('job', {'start.sh': 'sleep 1000\n'})
    for mem, expected in (('4000', '4000M'), ('500M', '500M'), ('2G', '2G'),
                          ('2gb', '2G'), ('512mb', '512M')):
        with test.subTest(mem=mem):
            job_id = 'mem' + mem
            test.q.submit(job_id, job, mem=mem)
            test.assertEqual(test.slurm.job_field(
                test.q.info(job_id)['runtime_id'], 'MinMemoryNode'),
                expected)
            test.q.kill(job_id)



#: The test sshd's TEJ_LOST_GRACE (support.SSHServer): seconds before a job
#: the scheduler no longer lists, and that has no record, is lost.
LOST_GRACE = 3


def check_an_outage(test, scheduler, command, held):
    """The scheduler's controller stopped for longer than TEJ_LOST_GRACE
    with one job running and one queued (``held``: the submit options
    that keep it queued): neither becomes lost or killed, status says the
    scheduler could not be asked (``command`` failed), kill fails naming
    ``scheduler``, and wait waits. Once the controller is back, both end
    as they should.
    """
    q = test.q
    q.submit('on', test.job('on', {'start.sh': 'while [ ! -f go ]; do '
                                               'sleep 0.1; done\n'}))
    test.running(q, 'on')
    q.submit('held', test.job('held', {'start.sh': 'echo held\n'}), **held)
    held_id = q.info('held')['runtime_id']
    test.assertEqual(q.info('held')['state'], 'queued')
    test.slurm.stop_controller()
    try:
        # asked until past the grace that makes lost a job the scheduler
        # no longer lists (were its failure an answer), from the end of
        # the first asking and a second more (the server counts whole
        # seconds): however long its commands take to fail
        first = None
        while True:
            asked = time.monotonic()
            records = {r['id']: r for r in q.infos(['on', 'held'])}
            test.assertEqual((records['on']['state'],
                              records['held']['state']),
                             ('running', 'queued'))
            for record in records.values():
                test.assertIn(command + ': ', record['scheduler_error'])
            if first is None:
                first = time.monotonic()
            elif asked - first >= LOST_GRACE + 1:
                break
        code, out, err = test.cli('status', test.slurm.alias, '--id', 'on',
                                  '--json')
        test.assertEqual(code, 0, err)
        result = json.loads(out)
        test.assertEqual(result['state'], 'running')
        test.assertIn(command, result['scheduler_error'])
        test.assertIn('%s could not be asked' % scheduler, err)
        with test.assertRaises(tej.RemoteCommandFailure) as ctx:
            q.kill('held')
        test.assertIn(scheduler, str(ctx.exception))
        code, out, err = test.cli('kill', test.slurm.alias, '--id', 'held')
        test.assertEqual(code, 1, err)
        test.assertIn('%s could not be asked to' % scheduler, err)
        with test.assertRaises(tej.JobStillRunning):
            q.wait_all(['on', 'held'], timeout=2)
        test.assertEqual([r['state'] for r in q.infos(['on', 'held'])],
                         ['running', 'queued'])
    finally:
        test.slurm.start_controller()
    test.assertNotIn('scheduler_error', q.info('on'))
    open(os.path.join(test.stage('on'), 'go'), 'w').close()
    test.assertEqual(q.wait('on'), 0)
    test.slurm.run(['scontrol', 'release', held_id], check=True)
    test.assertEqual(q.wait('held', timeout=120), 0)
    test.assertEqual(q.logs('held'), (b'held\n', b''))


@support.serial("one Slurm, the suite's: one unit at a time", beside=True)
class SlurmCase(support.ServerCase):
    dest = support.SlurmCluster.alias

    def setUp(self):
        self.slurm = support.slurm_cluster()
        super(SlurmCase, self).setUp()
        self.q = self.queue()

    def tearDown(self):
        self.slurm.run(['scancel', '-u', self.server.user], check=True)

    def running(self, q, job_id):
        """Wait until Slurm runs the job; its record."""
        return wait_for(lambda: q.info(job_id),
                        lambda r: r['state'] == 'running',
                        what='job %s to run' % job_id)

    def check_whole_life(self, runtime):
        """Submit, queued or running, finished 0, download, list, kill (a
        no-op), delete.
        """
        q = self.q
        job = self.job('job', dict(NASTY_FILES, **{'start.sh': WAIT_FOR_GO}))
        self.assertEqual(q.submit('j1', job), 'j1')
        record = q.info('j1')
        self.assertEqual(record['runtime'], runtime)
        self.assertRegex(record['runtime_id'], r'\A\d+')
        self.assertIn(record['state'], ('queued', 'running'))
        self.running(q, 'j1')
        self.assertEqual(self.slurm.job_field(record['runtime_id'],
                                              'JobState'), 'RUNNING')
        with self.assertRaises(tej.JobStillRunning):
            q.delete('j1')
        self.assertEqual([(i, d['state']) for i, d in q.list()],
                         [('j1', 'running')])
        open(os.path.join(self.stage('j1'), 'go'), 'w').close()
        self.assertEqual(q.wait('j1'), 0)
        self.assertEqual(q.status('j1')[::2], ('finished', '0'))
        out = os.path.join(self.tmp, 'out')
        q.download('j1', ['_stdout', '_stderr', 'results'], directory=out)
        with open(os.path.join(out, '_stdout')) as fp:
            self.assertEqual(fp.read(), 'out: plain\n')
        with open(os.path.join(out, 'results/deep/a/b/c/d.bin'), 'rb') as fp:
            self.assertEqual(fp.read(), NASTY_FILES['deep/a/b/c/d.bin'])
        q.kill('j1')  # finished: nothing happens
        q.delete('j1')
        with self.assertRaises(tej.JobNotFound):
            q.status('j1')


class TestSlurm(SlurmCase):
    def test_whole_life(self):
        self.q.setup()  # auto-detected: the controller answers
        self.check_whole_life('slurm')

    def test_failing_job_and_command_line(self):
        job = self.job('job', {
            'start.sh': 'echo "$SLURM_JOB_ID" ok; exit 3\n'})
        code, out, err = self.cli('run', self.slurm.alias, job)
        self.assertEqual(code, 3, err)
        self.assertRegex(out, r'\A\d+ ok\n\Z')
        code, out, err = self.cli('submit', self.slurm.alias, job, '--id', 'f')
        self.assertEqual((code, out), (0, 'f\n'), err)
        self.assertEqual(self.cli('wait', self.slurm.alias, '--id', 'f')[0], 3)
        self.assertEqual(self.cli('status', self.slurm.alias, '--id', 'f')[:2],
                         (0, 'finished 3\n'))

    def test_scancel_outside_tej_is_killed(self):
        job = self.job('job', {'start.sh': 'sleep 1000\n'})
        self.q.submit('c', job)
        self.running(self.q, 'c')
        self.slurm.run(['scancel', self.q.info('c')['runtime_id']],
                       check=True)
        record = wait_state(self.q, 'c')
        self.assertEqual(record['state'], 'killed')
        self.assertEqual(self.q.status('c')[0], 'finished')

    def test_kill_queued_and_running(self):
        job = self.job('job', {'start.sh': 'sleep 1000\n'})
        # more CPUs than the node has: it stays pending
        self.q.submit('pending', job, cpus=64)
        self.assertEqual(self.q.info('pending')['state'], 'queued')
        self.assertEqual(self.cli('status', self.slurm.alias, '--id',
                                  'pending')[:2], (0, 'queued\n'))
        with self.assertRaises(tej.JobStillRunning):
            self.q.delete('pending')
        self.q.kill('pending')
        self.assertEqual(self.q.info('pending')['state'], 'killed')
        self.q.delete('pending')
        self.q.submit('running', job)
        self.running(self.q, 'running')
        self.q.delete('running', kill=True)
        self.assertEqual(list(self.q.list()), [])

    def test_directives_and_resources_reach_slurm(self):
        job = self.job('job', {'start.sh': '#!/bin/sh\n'
                                           '#SBATCH --job-name=mine\n'
                                           '#SBATCH --comment=hello\n'
                                           'sleep 1000\n'})
        self.q.submit('res', job, walltime='0:10:00', cpus=2,
                      scheduler_args=['--nice=5'])
        slurm_id = self.q.info('res')['runtime_id']
        self.assertEqual(self.slurm.job_field(slurm_id, 'JobName'), 'mine')
        self.assertEqual(self.slurm.job_field(slurm_id, 'Comment'), 'hello')
        self.assertEqual(self.slurm.job_field(slurm_id, 'TimeLimit'),
                         '00:10:00')
        self.assertEqual(self.slurm.job_field(slurm_id, 'NumCPUs'), '2')
        self.assertEqual(self.slurm.job_field(slurm_id, 'Nice'), '5')
        self.q.kill('res')

    def test_memory_sizes(self):
        # a bare number is MB, as sbatch takes it; a unit, with or without
        # "b" (PBS's way), is that unit
        assert_memory_sizes(self)

    def test_prologue(self):
        job = self.job('job', {'start.sh': 'echo "$GREETING"\n'})
        self.q.submit('p', job, prologue='GREETING=hello; export GREETING')
        self.assertEqual(self.q.wait('p'), 0)
        dest = os.path.join(self.tmp, 'p.out')
        self.q.download('p', '_stdout', destination=dest)
        with open(dest) as fp:
            self.assertEqual(fp.read(), 'hello\n')

    def test_lost_when_the_wrapper_dies(self):
        job = self.job('job', {'start.sh': 'sleep 1000\n'})
        self.q.submit('l', job)
        # squeue says RUNNING before the batch script has recorded its pid
        os.kill(int(wrapper_started(self.stage('l'))['pid']), signal.SIGKILL)
        record = wait_state(self.q, 'l', timeout=60)
        self.assertEqual((record['state'], record['exit']), ('lost', None))

    def test_lost_when_slurm_forgets_the_job(self):
        job = self.job('job', {'start.sh': 'sleep 1000\n'})
        self.q.submit('f', job)
        # once the batch script has written its record, which would undo
        # an earlier edit
        slurm_id = wrapper_started(self.stage('f'))['runtime_id']
        # as after a purge: Slurm knows no job of that id
        path = os.path.join(os.path.dirname(self.stage('f')), 'state')
        with open(path) as fp:
            text = fp.read()
        with open(path + '.edit', 'w') as fp:
            fp.write(text.replace('runtime_id=%s\n' % slurm_id,
                                  'runtime_id=999999\n'))
        os.rename(path + '.edit', path)
        self.assertEqual(self.q.info('f')['state'], 'running')  # the grace
        record = wait_state(self.q, 'f', states=('lost',), timeout=30)
        self.assertIsNone(record['exit'])
        self.slurm.run(['scancel', slurm_id], check=True)

    def test_a_controller_down_is_not_an_answer(self):
        check_an_outage(self, 'Slurm', 'squeue', {
            'scheduler_args': ['--hold']})

    def test_walltime_exceeded_is_killed(self):
        job = self.job('job', {'start.sh': 'sleep 1000\n'})
        # Slurm counts limits in minutes and checks them every 30 s or so
        self.q.submit('w', job, walltime=60)
        self.running(self.q, 'w')
        record = wait_state(self.q, 'w', timeout=180)
        self.assertEqual(record['state'], 'killed')
        # the wrapper records the end before Slurm is done COMPLETING
        slurm_state = wait_for(
            lambda: self.slurm.job_field(record['runtime_id'], 'JobState'),
            lambda state: state != 'COMPLETING', timeout=60, interval=0.5,
            what='Slurm to end the job')
        self.assertEqual(slurm_state, 'TIMEOUT')


class TestDetection(SlurmCase):
    def test_slurm_then_default_when_the_controller_is_down(self):
        q = self.queue('detected')
        q.setup()
        job = self.job('job', {'start.sh': 'true\n'})
        q.submit('a', job)
        self.assertEqual(q.info('a')['runtime'], 'slurm')
        # first contact by submit detects too
        q2 = self.queue('first-contact')
        q2.submit('b', job)
        self.assertEqual(q2.info('b')['runtime'], 'slurm')
        self.slurm.stop_controller()
        try:
            q3 = self.queue('without')
            q3.setup()
            q3.submit('c', job)
            self.assertEqual(q3.info('c')['runtime'], 'default')
            # asked for, but unusable: a clear error
            q4 = self.queue('forced',
                            setup_runtime='slurm')
            with self.assertRaises(tej.Error) as ctx:
                q4.setup()
            self.assertIn('controller', str(ctx.exception))
            # a queue that is there keeps its runtime: not default now
            with self.assertRaises(tej.Error) as ctx:
                q.setup(force=True)
            self.assertIn('controller', str(ctx.exception))
        finally:
            self.slurm.start_controller()


class TestPBS(SlurmCase):
    """The pbs runtime, through the Torque commands of slurm-wlm-torque
    (qsub, qstat, qdel on this Slurm): bare numeric ids, no exit status in
    qstat, "C" for every ended job, exit 153 for an unknown id.
    """

    def setUp(self):
        super(TestPBS, self).setUp()
        self.q = self.queue(setup_runtime='pbs')

    def test_whole_life(self):
        self.check_whole_life('pbs')

    def test_exit_code_kill_and_qdel(self):
        q = self.q
        q.submit('three', self.job('three', {'start.sh': 'exit 3\n'}))
        self.assertEqual(q.wait('three'), 3)
        long_job = self.job('long', {'start.sh': 'sleep 1000\n'})
        q.submit('k', long_job)
        self.running(q, 'k')
        q.kill('k')
        self.assertEqual(q.info('k')['state'], 'killed')
        q.submit('d', long_job)
        self.running(q, 'd')
        self.slurm.run(['scancel', q.info('d')['runtime_id']], check=True)
        self.assertEqual(wait_state(q, 'd')['state'], 'killed')

    def test_a_server_down_is_not_an_answer(self):
        check_an_outage(self, 'PBS', 'qstat', {'scheduler_args': ['-h']})

    def test_umask_without_the_environment(self):
        # qsub without -V (here: -v, which the Torque wrapper turns into
        # --export=NONE) passes no environment on: the job still gets the
        # session's umask (022 here), which its files follow
        job = self.job('job', {'start.sh': 'umask; echo "$X" >&2\n',
                               'data.txt': 'data'})
        os.chmod(os.path.join(job, 'data.txt'), 0o644)
        old = os.umask(0o022)
        try:
            # a connection of its own: an sshd started with this umask
            q = self.queue(setup_runtime='pbs', multiplex=False)
            q.submit('u', job, scheduler_args=['-v', 'X=given'])
        finally:
            os.umask(old)
        self.assertEqual(q.wait('u'), 0)
        stage = self.stage('u')
        with open(os.path.join(stage, '_stdout')) as fp:
            self.assertEqual(fp.read(), '0022\n')
        with open(os.path.join(stage, '_stderr')) as fp:
            self.assertEqual(fp.read(), 'given\n')
        for name in ('_stdout', 'data.txt'):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(
                stage, name)).st_mode), 0o644, name)

    def test_memory_sizes(self):
        # a bare number is MB for every runtime: mem=4000mb for qsub, not
        # 4000b (bytes, which the Torque wrapper drops altogether)
        assert_memory_sizes(self)

    def test_directives_and_resources(self):
        job = self.job('job', {
            'start.sh': '#!/bin/sh\n#PBS -N mine\nsleep 1000\n'})
        self.q.submit('res', job, walltime='0:10:00', cpus=2)
        pbs_id = self.q.info('res')['runtime_id']
        self.assertEqual(self.slurm.job_field(pbs_id, 'JobName'), 'mine')
        self.assertEqual(self.slurm.job_field(pbs_id, 'TimeLimit'),
                         '00:10:00')
        self.assertEqual(self.slurm.job_field(pbs_id, 'NumCPUs'), '2')
        self.q.kill('res')

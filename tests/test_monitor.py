"""The job registry and monitor: tej jobs, tej monitor, pause, unpause,
forget, and tej.JobMonitor, with jobs on the test sshd (two queues), on
local: and on a destination that cannot be reached.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

from . import support
from .support import tej, need, run_cli, wait_for, wait_state

TEJ_PY = os.path.join(support.TOP, 'tej.py')
#: An ssh alias of the test server, reached with the ssh config
#: FLAKY_CONFIG, that the file FLAKY + "-down" makes unreachable (its
#: address is then a port where nothing listens: connection refused) and
#: FLAKY + "-hang" silent (its connection hangs).
FLAKY = 'tejmon-flaky'
FLAKY_CONFIG = None


def setUpModule():
    global FLAKY_CONFIG
    support.ssh_module()
    server = support.ssh_server()
    server._add_host(FLAKY, {
        "test -f {d}/down && exit 1;".format(d=server.dir):
            "test -f {d}/{f}-hang && exec sleep 20;".format(
                d=server.dir, f=FLAKY)})
    FLAKY_CONFIG = server.path('%s_config' % FLAKY)
    with open(FLAKY_CONFIG, 'w') as fp:
        fp.write('Match host {f} exec "test -f {d}/{f}-down"\n'
                 '  HostName 127.0.0.1\n  Port 1\n  ProxyCommand none\n'
                 'Match all\nInclude {c}\n'.format(
                     f=FLAKY, d=server.dir, c=server.config))


class MonitorCase(support.ServerCase):
    def setUp(self):
        super(MonitorCase, self).setUp()
        self.registry = os.path.join(self.tmp, 'registry', 'jobs.sqlite3')
        support.patch_env(self.addCleanup, TEJ_REGISTRY=self.registry,
                          TEJ_CHECK_TIMEOUT=None)
        self.execs = support.ExecCounter(self)
        self.q2_path = os.path.join(self.remote, 'q2')
        self.local_path = os.path.join(self.tmp, 'localq')
        for flag in ('down', 'hang'):
            self.addCleanup(self.flaky, flag, False)

    def flaky(self, what, on=True):
        path = self.server.path('%s-%s' % (FLAKY, what))
        if on:
            open(path, 'w').close()
        elif os.path.exists(path):
            os.unlink(path)

    def submit(self, dest, queue, job_id, script, *extra):
        """tej submit on the command line (queue None: local:'s)."""
        job = self.job('job-' + job_id, {'start.sh': '%s\n' % script})
        if dest == 'local:':
            argv = ['submit', 'local:', job, '--id', job_id, '--queue',
                    queue or self.local_path]
        elif dest == FLAKY:
            argv = ['submit', dest, job, '--id', job_id, '--queue',
                    queue or self.queue_path, '-F', FLAKY_CONFIG]
        else:
            argv = self.server.cli('submit', dest, job, '--id', job_id,
                                   '--queue', queue or self.queue_path)
        code, out, err = run_cli(*(argv + list(extra)))
        self.assertEqual((code, out), (0, job_id + '\n'), err)
        return job

    def tej(self, *argv):
        return run_cli(*argv)

    def table(self, out):
        """tej jobs' table as {id: (state, exit, seen or None, label)}."""
        lines = out.splitlines()
        head = lines[0].split()
        rows = {}
        for line in lines[1:]:
            words = line.split()
            seen = None
            if 'SEEN' in head:
                # unreachable and paused jobs: "STATE AGE" as last seen
                start = 5
                if words[2] in ('unreachable', 'paused'):
                    seen = ' '.join(words[5:7])
                    start = 7
                else:
                    start = 6
            else:
                start = 5
            label = words[start] if len(words) > start + 1 else ''
            rows[words[1]] = (words[2], words[3], seen, label)
        return rows

    def remote_file(self, job_id, name, queue=None):
        return os.path.join(queue or self.queue_path, 'jobs', job_id,
                            'stage', name)

    def touch_remote(self, job_id, name, queue=None):
        path = self.remote_file(job_id, name, queue)
        open(path, 'w').close()
        os.chown(path, self.server.uid, self.server.gid)

    def registry_rows(self):
        db = sqlite3.connect(self.registry)
        try:
            return db.execute('SELECT destination, queue, job_id, state, '
                              'exit_code, paused, deleted, reported, label '
                              'FROM jobs ORDER BY rowid').fetchall()
        finally:
            db.close()


#: A job that runs until the file "go" is made in its directory, or its
#: directory is gone (a test that failed, and removed its queue)
WAIT_FOR_GO = 'while [ ! -f go ] && [ -d "$PWD" ]; do sleep 0.2; done'
#: A job that runs until its directory is gone (its queue removed): no
#: process is left behind.
WHILE_THERE = 'while [ -d "$PWD" ]; do sleep 0.2; done'


def waiting(queue_path):
    """Is a monitor's call waiting on the queue ``queue_path`` (a waitany
    running there, on the test sshd or here)?
    """
    return support.processes(
        lambda p: 'waitany' in p.args and queue_path in p.args)


def remove_queue(path):
    """Remove the queue at ``path`` under its jobs, as ``rm -rf`` would:
    moved away at once, then removed.
    """
    gone = path + '.gone'
    os.rename(path, gone)
    wait_for(lambda: not support.processes(lambda p: gone in p.cwd),
             what="the jobs of %s to end" % path)
    shutil.rmtree(gone)


class TestJobs(MonitorCase):
    def test_every_destination_one_exec_per_queue(self):
        d = self.server.alias
        self.submit(d, None, 'a', 'true', '--label', 'exp1')
        self.submit(d, None, 'b', WAIT_FOR_GO, '--label', 'exp1')
        self.submit(d, self.q2_path, 'c', 'exit 3', '--label', 'exp2')
        self.submit(d, self.q2_path, 'c2', WAIT_FOR_GO)
        self.submit('local:', None, 'd', 'sleep 60')
        self.addCleanup(tej.RemoteQueue('local:', self.local_path).kill, 'd')
        self.submit(FLAKY, None, 'e', WAIT_FOR_GO, '--no-multiplex')
        wait_state(self.queue('q'), 'a')
        wait_state(self.queue('q2'), 'c')
        self.execs.by_destination()
        # the first look: every queue is asked, once
        code, out, err = self.tej('jobs')
        self.assertEqual(code, 0, err)
        self.assertEqual(self.execs.by_destination(), {d: 2, FLAKY: 1})
        self.assertEqual({k: v[:2] for k, v in self.table(out).items()}, {
            'a': ('finished', '0'), 'b': ('running', '-'),
            'c': ('finished', '3'), 'c2': ('running', '-'),
            'd': ('running', '-'), 'e': ('running', '-')})
        self.flaky('down')
        code, out, err = self.tej('jobs')
        self.assertEqual(code, 0, err)
        # one exec per queue with jobs that may still change (the ended
        # ones do not): two queues on the test sshd, one attempt on the
        # unreachable one; local: is no ssh
        self.assertEqual(self.execs.by_destination(), {d: 2, FLAKY: 1})
        rows = self.table(out)
        self.assertEqual({k: v[:2] for k, v in rows.items()}, {
            'a': ('finished', '0'), 'b': ('running', '-'),
            'c': ('finished', '3'), 'c2': ('running', '-'),
            'd': ('running', '-'), 'e': ('unreachable', '-')})
        self.assertTrue(rows['e'][2].startswith('running '), rows['e'])
        self.assertEqual(rows['a'][3], 'exp1')
        self.assertIn('%s is unreachable' % FLAKY, err)
        for line in out.splitlines():
            self.assertLessEqual(len(line), 80, line)
        self.assertEqual(out.splitlines()[0].split(), [
            'DESTINATION', 'ID', 'STATE', 'EXIT', 'AGE', 'SEEN', 'LABEL',
            'DIRECTORY'])
        # the selections
        code, out, err = self.tej('jobs', '--state', 'running', '--state',
                                  'unreachable')
        self.assertEqual(sorted(self.table(out)), ['b', 'c2', 'd', 'e'])
        code, out, err = self.tej('jobs', '--label', 'exp1')
        self.assertEqual(sorted(self.table(out)), ['a', 'b'])
        code, out, err = self.tej('jobs', '--dest', 'local:')
        self.assertEqual(sorted(self.table(out)), ['d'])
        # JSON, one object a job
        code, out, err = self.tej('jobs', '--json', '--dest', FLAKY)
        objects = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(objects), 1)
        self.assertEqual((objects[0]['state'], objects[0]['last_state'],
                          objects[0]['destination']),
                         ('unreachable', 'running', FLAKY))
        self.assertIn('Cannot connect', objects[0]['error'])
        # --cached connects nowhere
        self.execs.by_destination()
        code, out, err = self.tej('jobs', '--cached')
        self.assertEqual(self.execs.by_destination(), {})
        self.assertEqual(self.table(out)['b'][0], 'running')
        self.assertEqual(self.table(out)['e'][0], 'running')
        self.flaky('down', False)
        for job_id in ('b', 'e'):
            self.touch_remote(job_id, 'go')
        self.touch_remote('c2', 'go', self.q2_path)

    def test_unreachable_does_not_hold_up_the_others(self):
        self.submit(self.server.alias, None, 'a', 'true')
        self.submit(FLAKY, None, 'silent', WAIT_FOR_GO, '--no-multiplex')
        wait_state(self.queue('q'), 'a')
        self.flaky('hang')
        support.patch_env(self.addCleanup, TEJ_CHECK_TIMEOUT='2')
        start = time.monotonic()
        code, out, err = self.tej('jobs')
        took = time.monotonic() - start
        self.assertEqual(code, 0, err)
        self.assertLess(took, 10)
        rows = self.table(out)
        self.assertEqual(rows['a'][:2], ('finished', '0'))
        self.assertEqual(rows['silent'][0], 'unreachable')
        self.flaky('hang', False)
        self.touch_remote('silent', 'go')

    def test_delete_marks_the_job_deleted(self):
        self.submit(self.server.alias, None, 'a', 'true')
        wait_state(self.queue('q'), 'a')
        code, out, err = self.tej(*self.args('delete', self.server.alias,
                                             '--id', 'a'))
        self.assertEqual(code, 0, err)
        self.assertIsNotNone(self.registry_rows()[0][6])
        code, out, err = self.tej('jobs')
        self.assertEqual((code, out), (0, ''))
        code, out, err = self.tej('jobs', '--state', 'deleted')
        self.assertEqual(self.table(out)['a'][0], 'deleted')
        # run records its job too, which it deletes at the end (unless
        # --keep: then the monitor reports its end)
        job = self.job('ran', {'start.sh': 'echo ran\n'})
        for keep in ([], ['--keep']):
            code, out, err = self.tej('run', 'local:', job, '--queue',
                                      self.local_path, '--label', 'r', *keep)
            self.assertEqual((code, out), (0, 'ran\n'), err)
        rows = [r for r in self.registry_rows() if r[8] == 'r']
        self.assertEqual(len(rows), 1)  # the same content: the same job
        self.assertIsNone(rows[0][6])
        code, out, err = self.tej('monitor', '--until-done')
        self.assertEqual((code, out.split()[-2:]), (0, ['finished', '0']))

    def test_off_and_no_record(self):
        self.submit('local:', None, 'kept', 'true', '--label', 'x')
        self.submit('local:', None, 'not', 'true', '--no-record')
        self.assertEqual([r[2] for r in self.registry_rows()], ['kept'])
        os.unlink(self.registry)
        support.patch_env(self.addCleanup, TEJ_REGISTRY='off')
        self.submit('local:', None, 'off', 'true')
        self.assertFalse(os.path.exists(self.registry))
        code, out, err = self.tej('jobs')
        self.assertEqual(code, 1)
        self.assertEqual(err, 'tej: error: The job registry is off '
                              '(TEJ_REGISTRY=off)\n')

    def test_password_never_reaches_the_database(self):
        secret = 'Pw-%s' % tej.make_unique_name()
        user = self.server.user
        # the key logs in; the password is there all the same
        self.submit('%s:%s@%s' % (user, secret, self.server.alias), None,
                    'inline', 'true')
        support.patch_env(self.addCleanup, TEJ_PASSWORD=secret)
        self.submit(self.server.alias, None, 'flag', 'true', '--password')
        q = tej.RemoteQueue({'hostname': self.server.alias, 'username': user,
                             'password': secret}, self.queue_path,
                            ssh_options=self.server.options)
        self.addCleanup(q.close)
        q.submit('api', self.job('api', {'start.sh': 'true\n'}))
        for job_id in ('inline', 'flag', 'api'):  # the same queue
            wait_state(q, job_id)
        rows = self.registry_rows()
        self.assertEqual([(r[0], r[2]) for r in rows], [
            ('%s@%s' % (user, self.server.alias), 'inline'),
            (self.server.alias, 'flag'),
            ('%s@%s' % (user, self.server.alias), 'api')])
        directory = os.path.dirname(self.registry)
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), 'rb') as fp:
                self.assertNotIn(secret.encode(), fp.read(), name)
        # what was recorded reaches the jobs again (with the key)
        code, out, err = self.tej('jobs')
        self.assertEqual(code, 0, err)
        self.assertEqual({k: v[0] for k, v in self.table(out).items()},
                         {'inline': 'finished', 'flag': 'finished',
                          'api': 'finished'})


class TestMonitor(MonitorCase):
    ON_END = ('printf "%s|%s|%s|%s|%s|%s\\n" "$TEJ_DEST" "$TEJ_QUEUE" '
              '"$TEJ_JOB_ID" "$TEJ_STATE" "$TEJ_EXIT_CODE" "$TEJ_LABEL" '
              '>> {log}')

    def on_end(self):
        self.ends = os.path.join(self.tmp, 'ends')
        return self.ON_END.format(log=self.ends)

    def start_monitor(self, interval, command, *extra):
        """``tej monitor --interval INTERVAL --on-end COMMAND [EXTRA...]``
        in the background, killed after the test if it still runs.
        """
        monitor = subprocess.Popen(
            [sys.executable, TEJ_PY, 'monitor', '--interval', interval,
             '--on-end', command] + list(extra), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        def stop():
            if monitor.poll() is None:
                monitor.kill()
            monitor.communicate()
        self.addCleanup(stop)
        return monitor

    def ended(self):
        if not os.path.exists(self.ends):
            return []
        with open(self.ends) as fp:
            return sorted(fp.read().splitlines())

    def test_until_done_runs_on_end_once_per_job(self):
        d = self.server.alias
        self.submit(d, None, 'a', 'sleep 3', '--label', 'L')
        self.submit(d, self.q2_path, 'b', 'sleep 1; exit 3')
        self.submit('local:', None, 'c', 'true')
        command = self.on_end()
        self.execs.by_destination()
        code, out, err = self.tej('monitor', '--until-done', '--on-end',
                                  command)
        self.assertEqual(code, 3, err)  # b's exit code
        self.assertEqual(self.ended(), sorted([
            '%s|%s|a|finished|0|L' % (d, self.queue_path),
            '%s|%s|b|finished|3|' % (d, self.q2_path),
            'local:|%s|c|finished|0|' % self.local_path]))
        self.assertEqual(sorted(out.splitlines()), sorted([
            '%s a finished 0' % d, '%s b finished 3' % d,
            'local: c finished 0']))
        # the servers waited: a few execs per queue, not polling
        self.assertLessEqual(self.execs.by_destination()[d], 4)
        # reported once: again, nothing
        code, out, err = self.tej('monitor', '--until-done', '--on-end',
                                  command)
        self.assertEqual((code, out), (0, ''), err)
        self.assertEqual(len(self.ended()), 3)

    def test_a_restarted_monitor_reports_each_end_once(self):
        d = self.server.alias
        self.submit(d, None, 'a', 'true')
        self.submit(d, None, 'b', WAIT_FOR_GO)
        self.submit(d, None, 'c', WAIT_FOR_GO)
        command = self.on_end()
        monitor = self.start_monitor('2', command)
        wait_for(self.ended, lambda ends: len(ends) == 1, timeout=30,
                 what='a reported')
        self.touch_remote('b', 'go')
        wait_for(self.ended, lambda ends: len(ends) == 2, timeout=30,
                 what='b reported')
        # the client "crashes"; c ends meanwhile, and tej jobs sees it
        monitor.kill()
        monitor.communicate()
        self.touch_remote('c', 'go')
        wait_state(self.queue('q'), 'c')
        code, out, err = self.tej('jobs')
        self.assertEqual(self.table(out)['c'][0], 'finished')
        self.assertEqual(len(self.ended()), 2)
        code, out, err = self.tej('monitor', '--until-done', '--on-end',
                                  command)
        self.assertEqual((code, out), (0, '%s c finished 0\n' % d), err)
        self.assertEqual(sorted(e.split('|')[2] for e in self.ended()),
                         ['a', 'b', 'c'])

    def test_an_unreachable_destination_does_not_hold_up_the_others(self):
        d = self.server.alias
        self.submit(d, None, 'r', WAIT_FOR_GO)
        self.submit(FLAKY, self.q2_path, 'u', WAIT_FOR_GO, '--no-multiplex')
        self.flaky('down')
        command = self.on_end()
        monitor = self.start_monitor('1', command)
        self.touch_remote('r', 'go')
        wait_for(self.ended, lambda ends: len(ends) == 1, timeout=30,
                 what='r reported')
        # back: tried again, and its end is reported
        self.flaky('down', False)
        self.touch_remote('u', 'go', self.q2_path)
        wait_for(self.ended, lambda ends: len(ends) == 2, timeout=30,
                 what='u reported')
        monitor.kill()
        out, err = monitor.communicate()
        self.assertEqual(sorted(e.split('|')[2] for e in self.ended()),
                         ['r', 'u'])
        self.assertEqual(err.decode().count('%s is unreachable' % FLAKY), 1,
                         err)

    def test_a_queue_removed_under_its_jobs(self):
        # Someone removes a queue (rm -rf on the server, a cleanup from
        # another machine) under jobs that the registry knows running: tej
        # jobs shows them not found, the other queues' jobs as they are,
        # and a monitor waiting on the queue when it goes reports their
        # ends and returns, not waiting for ever on jobs that cannot end.
        # Through the test sshd and through local:.
        d = self.server.alias
        q3_path = os.path.join(self.remote, 'q3')
        local3 = os.path.join(self.tmp, 'localq3')
        self.submit(d, None, 'a', WHILE_THERE)
        self.submit(d, self.q2_path, 'c', WAIT_FOR_GO)
        self.submit('local:', None, 'l', WHILE_THERE)
        code, out, err = self.tej('jobs')
        self.assertEqual({k: v[0] for k, v in self.table(out).items()},
                         {'a': 'running', 'c': 'running', 'l': 'running'})
        remove_queue(self.queue_path)
        remove_queue(self.local_path)
        code, out, err = self.tej('jobs')
        self.assertEqual(code, 0, err)
        self.assertEqual({k: v[:2] for k, v in self.table(out).items()}, {
            'a': ('notfound', '-'), 'c': ('running', '-'),
            'l': ('notfound', '-')})
        self.assertNotIn('unreachable', err)
        self.touch_remote('c', 'go', self.q2_path)
        wait_state(self.queue('q2'), 'c')
        # a monitor waits on two more queues, which are removed under it
        self.submit(d, q3_path, 'w', WHILE_THERE)
        self.submit('local:', local3, 'v', WHILE_THERE)
        command = self.on_end()
        monitor = self.start_monitor('60', command, '--until-done')
        wait_for(lambda: waiting(q3_path) and waiting(local3), timeout=30,
                 what='the monitor waiting on both queues')
        remove_queue(q3_path)
        remove_queue(local3)
        try:
            out, err = monitor.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("the monitor waits on removed queues")
        self.assertEqual(monitor.returncode, 121, err)  # not found
        self.assertEqual(sorted(out.decode().splitlines()), sorted([
            '%s a notfound' % d, '%s c finished 0' % d,
            'local: l notfound', '%s w notfound' % d, 'local: v notfound']))
        self.assertEqual(sorted(e.split('|')[2:4] for e in self.ended()),
                         [['a', 'notfound'], ['c', 'finished'],
                          ['l', 'notfound'], ['v', 'notfound'],
                          ['w', 'notfound']])
        self.assertNotIn(b'Traceback', err)

    def touch_local(self, job_id, name, queue=None):
        open(self.remote_file(job_id, name, queue or self.local_path),
             'w').close()

    def test_forget_while_a_monitor_waits(self):
        # A job forgotten while a monitor waits on its queue: the monitor
        # goes on with the others, and when the forgotten job ends, says
        # nothing of it; tej jobs, meanwhile and after, shows the others.
        # A job submitted after the forget (its row may take the forgotten
        # one's place) is not taken for the forgotten job: its end is its
        # own.
        d = self.server.alias
        self.submit(d, None, 'keep', WAIT_FOR_GO)
        self.submit(d, None, 'gone', WAIT_FOR_GO)
        command = self.on_end()
        monitor = self.start_monitor('60', command, '--until-done')
        wait_for(lambda: waiting(self.queue_path), timeout=30,
                 what='the monitor waiting')
        asked = {p.pid for p in waiting(self.queue_path)}
        code, out, err = self.tej('forget', d, '--id', 'gone')
        self.assertEqual(code, 0, err)
        code, out, err = self.tej('jobs')
        self.assertEqual((code, {k: v[0] for k, v in
                                 self.table(out).items()}),
                         (0, {'keep': 'running'}), err)
        self.submit('local:', None, 'new', WAIT_FOR_GO)
        self.touch_remote('gone', 'go')
        # the monitor has its answer, and waits again (on new's queue too)
        wait_for(lambda: monitor.poll() is not None or self.ended() or (
            waiting(self.local_path) and
            {p.pid for p in waiting(self.queue_path)} - asked),
            timeout=30, what='the monitor waiting again')
        if monitor.poll() is not None:
            self.fail("the monitor stopped: %s"
                      % monitor.communicate()[1].decode())
        self.assertEqual(self.ended(), [])
        code, out, err = self.tej('jobs')
        self.assertEqual((code, {k: v[0] for k, v in
                                 self.table(out).items()}),
                         (0, {'keep': 'running', 'new': 'running'}), err)
        self.touch_remote('keep', 'go')
        self.touch_local('new', 'go')
        out, err = monitor.communicate(timeout=60)
        self.assertEqual((monitor.returncode, sorted(
            out.decode().splitlines())), (0, sorted([
                '%s keep finished 0' % d, 'local: new finished 0'])), err)
        self.assertNotIn(b'Traceback', err)
        self.assertEqual(sorted(e.split('|')[2] for e in self.ended()),
                         ['keep', 'new'])
        self.assertEqual(self.queue('q').status('gone')[0], 'finished')

    def test_an_id_deleted_and_submitted_again(self):
        # A job deleted and submitted again under its id is a new job: the
        # monitor reports the new one's end, not the old row's (reported
        # before, or only seen by tej jobs); nor an answer about the old
        # one that came while the monitor was busy (an --on-end command
        # still running) when the new one took its place.
        d = self.server.alias
        self.submit(d, None, 'r', 'exit 3')
        code, out, err = self.tej('monitor', '--until-done')
        self.assertEqual((code, out), (3, '%s r finished 3\n' % d), err)
        self.submit(d, None, 'u', 'exit 4')
        wait_state(self.queue('q'), 'u')
        code, out, err = self.tej('jobs')
        self.assertEqual(self.table(out)['u'][:2], ('finished', '4'))
        for job_id in ('r', 'u'):
            code, out, err = self.cli('delete', d, '--id', job_id)
            self.assertEqual(code, 0, err)
            self.submit(d, None, job_id, WAIT_FOR_GO)
        # while the monitor runs the --on-end of "first", "j" is killed and
        # deleted (the server answers at once, the monitor reads it later)
        # and submitted again
        self.submit(d, self.q2_path, 'first', WAIT_FOR_GO)
        self.submit(d, None, 'j', WAIT_FOR_GO)
        blocked = os.path.join(self.tmp, 'blocked')
        release = os.path.join(self.tmp, 'release')
        command = ('if [ "$TEJ_JOB_ID" = first ]; then : > %s; '
                   'while [ ! -f %s ]; do sleep 0.1; done; fi; %s' % (
                       blocked, release, self.on_end()))
        monitor = self.start_monitor('60', command, '--until-done')
        wait_for(lambda: waiting(self.queue_path) and waiting(self.q2_path),
                 timeout=30, what='the monitor waiting on both queues')
        self.assertEqual(self.ended(), [])
        self.touch_remote('first', 'go', self.q2_path)
        wait_for(lambda: os.path.exists(blocked), timeout=30,
                 what="first's --on-end")
        code, out, err = self.cli('delete', d, '--id', 'j', '--kill')
        self.assertEqual(code, 0, err)
        wait_for(lambda: not waiting(self.queue_path), timeout=30,
                 what='the answer about the old j')
        self.submit(d, None, 'j', WAIT_FOR_GO)
        open(release, 'w').close()
        wait_for(lambda: monitor.poll() is not None or
                 waiting(self.queue_path), timeout=30,
                 what='the monitor waiting on the new jobs')
        self.assertEqual([e.split('|')[2:5] for e in self.ended()],
                         [['first', 'finished', '0']])
        for job_id in ('r', 'u', 'j'):
            self.touch_remote(job_id, 'go')
        out, err = monitor.communicate(timeout=60)
        self.assertEqual((monitor.returncode, sorted(
            line for line in out.decode().splitlines()
            if not line.endswith(' running'))), (0, sorted(
                '%s %s finished 0' % (d, job_id)
                for job_id in ('first', 'r', 'u', 'j'))), err)
        self.assertEqual(sorted(e.split('|')[2] for e in self.ended()),
                         ['first', 'j', 'r', 'u'])

    def test_notify(self):
        # notify-send where there is one (here, one that writes down what
        # it is given), else the terminal bell
        bin_dir = os.path.join(self.tmp, 'bin')
        notes = os.path.join(self.tmp, 'notes')
        support.make_tree(bin_dir, {'notify-send': '#!/bin/sh\nprintf "%%s|" '
                                    '"$@" >> %s\n' % notes})
        os.chmod(os.path.join(bin_dir, 'notify-send'), 0o755)
        self.submit('local:', None, 'n1', 'true')
        support.patch_env(self.addCleanup, PATH='%s:%s' % (
            bin_dir, os.environ['PATH']))
        code, out, err = self.tej('monitor', '--until-done', '--notify')
        self.assertEqual((code, out), (0, 'local: n1 finished 0\n'), err)
        with open(notes) as fp:
            self.assertEqual(fp.read(), 'tej|local: n1 finished 0|')
        self.assertNotIn('\a', err)
        os.unlink(os.path.join(bin_dir, 'notify-send'))
        self.submit('local:', None, 'n2', 'exit 2')
        code, out, err = self.tej('monitor', '--until-done', '--notify')
        self.assertEqual((code, out), (2, 'local: n2 finished 2\n'), err)
        self.assertIn('\a', err)

    def test_paused_job_is_not_checked(self):
        d = self.server.alias
        self.submit(d, None, 'p', WAIT_FOR_GO, '--label', 'held')
        self.submit(d, self.q2_path, 'w', WAIT_FOR_GO)
        code, out, err = self.tej('jobs')
        self.assertEqual(self.table(out)['p'][0], 'running')
        code, out, err = self.tej('pause', '--label', 'held')
        self.assertEqual(code, 0, err)
        self.touch_remote('p', 'go')
        wait_state(self.queue('q'), 'p')
        self.touch_remote('w', 'go', self.q2_path)
        wait_state(self.queue('q2'), 'w')
        self.execs.by_destination()
        code, out, err = self.tej('jobs')
        # only w's queue was asked; p shows as last seen
        self.assertEqual(self.execs.by_destination(), {d: 1})
        rows = self.table(out)
        self.assertEqual(rows['p'][0], 'paused')
        self.assertTrue(rows['p'][2].startswith('running '), rows)
        self.assertEqual(rows['w'][:2], ('finished', '0'))
        command = self.on_end()
        code, out, err = self.tej('monitor', '--until-done', '--on-end',
                                  command)
        self.assertEqual((code, out), (0, '%s w finished 0\n' % d), err)
        self.assertEqual(self.execs.by_destination(), {})
        # unpaused, it is watched again: its end is reported
        code, out, err = self.tej('unpause', d, '--id', 'p')
        self.assertEqual(code, 0, err)
        code, out, err = self.tej('monitor', '--until-done', '--on-end',
                                  command)
        self.assertEqual((code, out), (0, '%s p finished 0\n' % d), err)
        self.assertEqual(sorted(e.split('|')[2] for e in self.ended()),
                         ['p', 'w'])
        # forget drops the row and leaves the job alone
        code, out, err = self.tej('forget', d, '--id', 'p')
        self.assertEqual(code, 0, err)
        self.assertEqual([r[2] for r in self.registry_rows()], ['w'])
        self.assertEqual(self.queue('q').status('p')[0], 'finished')
        code, out, err = self.tej('forget', d, '--id', 'p')
        self.assertEqual((code, err), (1, 'tej: error: No such job in the '
                                          'registry\n'))
        code, out, err = self.tej('pause', '--id', 'p')
        self.assertEqual(code, 1)
        self.assertIn('--id needs a DESTINATION', err)


class TestRegistry(MonitorCase):
    def test_survives_a_restart(self):
        job = self.job('job', {'start.sh': 'true\n'})
        subprocess.run([sys.executable, TEJ_PY, 'submit', 'local:', job,
                        '--id', 'r1', '--label', 'kept', '--queue',
                        self.local_path], check=True,
                       stderr=subprocess.DEVNULL)
        wait_state(tej.RemoteQueue('local:', self.local_path), 'r1')
        # another process, another day: the job is found, and checked
        out = subprocess.run([sys.executable, TEJ_PY, 'jobs', '--json'],
                             check=True, stdout=subprocess.PIPE).stdout
        found = json.loads(out.decode())
        self.assertEqual((found['id'], found['label'], found['directory'],
                          found['queue'], found['state']),
                         ('r1', 'kept', job, self.local_path, 'finished'))
        monitor = tej.JobMonitor(self.registry)
        self.assertEqual([j.id for j in monitor.jobs(label='kept')], ['r1'])

    def test_concurrent_writers_lose_no_rows(self):
        job = self.job('job', {'start.sh': 'true\n'})
        tej.RemoteQueue('local:', self.local_path).setup()
        procs = [subprocess.Popen(
            [sys.executable, TEJ_PY, 'submit', 'local:', job, '--id',
             'c%02d' % i, '--queue', self.local_path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for i in range(50)]
        results = [p.communicate() + (p.returncode,) for p in procs]
        for out, err, code in results:
            self.assertEqual(code, 0, err)
            self.assertNotIn(b'registry', err)
        self.assertEqual(sorted(r[2] for r in self.registry_rows()),
                         ['c%02d' % i for i in range(50)])

    V1 = """CREATE TABLE jobs (
        destination TEXT NOT NULL, ssh_options TEXT NOT NULL DEFAULT '[]',
        multiplex INTEGER NOT NULL DEFAULT 1, queue TEXT NOT NULL,
        job_id TEXT NOT NULL, directory TEXT, submitted REAL NOT NULL,
        label TEXT, state TEXT, exit_code INTEGER, checked REAL,
        paused INTEGER NOT NULL DEFAULT 0, deleted REAL,
        UNIQUE (destination, queue, job_id))"""

    def test_older_schema_is_migrated(self):
        os.makedirs(os.path.dirname(self.registry))
        db = sqlite3.connect(self.registry)
        db.execute(self.V1)
        db.execute("INSERT INTO jobs (destination, queue, job_id, submitted, "
                   "state, exit_code, checked, label) VALUES ('local:', ?, "
                   "'old', 1000, 'finished', 0, 1001, 'before')",
                   (self.local_path,))
        db.execute('PRAGMA user_version=1')
        db.commit()
        db.close()
        monitor = tej.JobMonitor(self.registry)
        job, = monitor.jobs()
        self.assertEqual((job.id, job.label, job.state, job.reported),
                         ('old', 'before', 'finished', None))
        db = sqlite3.connect(self.registry)
        self.assertEqual(db.execute('PRAGMA user_version').fetchone()[0],
                         len(tej._REGISTRY_SCHEMA))
        db.execute('PRAGMA user_version=99')
        db.commit()
        db.close()
        code, out, err = self.tej('jobs', '--cached')
        self.assertEqual(code, 1)
        self.assertIn('was made by a newer tej (schema 99', err)


class TestAPI(MonitorCase):
    def test_job_monitor(self):
        q = tej.RemoteQueue('local:', self.local_path)
        job = self.job('job', {'start.sh': 'true\n'})
        q.submit('one', job, label='gui')
        q.submit('two', job, script='sleep 60', record=False)
        self.addCleanup(q.kill, 'two')
        monitor = tej.JobMonitor(self.registry)
        added = monitor.add(q, 'two', label='gui', directory=job)
        self.assertIsInstance(added, tej.KnownJob)
        self.assertEqual((added.destination, added.queue, added.id,
                          added.directory, added.state),
                         ('local:', self.local_path, 'two', job, None))
        wait_state(q, 'one')
        changes = []
        jobs = monitor.check(lambda before, after: changes.append(
            (after.id, before.state, after.state)))
        self.assertEqual(sorted(changes), [('one', None, 'finished'),
                                           ('two', None, 'running')])
        self.assertEqual([(j.id, j.state, j.error) for j in jobs],
                         [('one', 'finished', None),
                          ('two', 'running', None)])
        self.assertEqual(monitor.pause(destination='local:', job_id='two'),
                         1)
        self.assertEqual(monitor.jobs(job_id='two')[0].paused, True)
        # watch: one's end is reported, two is paused; stop_event stops
        stop, ended = threading.Event(), []
        watcher = threading.Thread(target=monitor.watch, kwargs=dict(
            interval=1, on_end=ended.append, stop_event=stop))
        watcher.start()
        wait_for(lambda: ended, what='one reported')
        self.assertEqual(monitor.unpause(label='gui'), 2)
        q.kill('two')
        wait_for(lambda: len(ended) == 2, timeout=30, what='two reported')
        stop.set()
        watcher.join(30)
        self.assertFalse(watcher.is_alive())
        self.assertEqual([(j.id, j.state) for j in ended],
                         [('one', 'finished'), ('two', 'killed')])
        self.assertEqual(monitor.watch(interval=1, until_done=True), [])
        self.assertEqual(monitor.forget(label='gui'), 2)
        self.assertEqual(monitor.jobs(), [])
        with self.assertRaises(ValueError):
            monitor.forget()


class TestClaim(MonitorCase):
    def test_an_end_is_claimed_once(self):
        # two monitors at once, both seeing the end: one reports it
        q = tej.RemoteQueue('local:', self.local_path)
        q.submit('e', self.job('e', {'start.sh': 'true\n'}))
        wait_state(q, 'e')
        first, second = (tej.JobMonitor(self.registry) for _ in range(2))
        first.check()
        job, = first.jobs()
        with first._db() as one, second._db() as other:
            self.assertEqual([first._claim(one, job),
                              second._claim(other, job)], [True, False])
        self.assertEqual(second.watch(interval=1, until_done=True), [])


class TestRecorded(unittest.TestCase):
    def test_ssh_files_made_absolute(self):
        # recorded from one directory, the job is reached from any other
        tmp = support.temporary(self)
        support.make_tree(tmp, {'cfg': '', 'key': ''})
        old = os.getcwd()
        os.chdir(tmp)
        try:
            options = tej._lasting_options(['-F', 'cfg', '-i', 'key', '-o',
                                            'cfg', '-J', 'key', '-i', 'none'])
        finally:
            os.chdir(old)
        self.assertEqual(options, ['-F', os.path.join(tmp, 'cfg'), '-i',
                                   os.path.join(tmp, 'key'), '-o', 'cfg',
                                   '-J', 'key', '-i', 'none'])

    def test_registry_in_the_home_of_no_user(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'true\n'})
        support.patch_env(self.addCleanup, TEJ_REGISTRY='~nosuchuser/x')
        old = os.getcwd()
        os.chdir(tmp)
        self.addCleanup(os.chdir, old)
        for argv in (['jobs'], ['forget', '--label', 'x']):
            code, out, err = run_cli(*argv)
            self.assertEqual((code, out, err), (1, '',
                "tej: error: TEJ_REGISTRY=~nosuchuser/x: ~nosuchuser is no "
                "one's home directory on this machine\n"))
        with self.assertRaises(tej.Error):
            tej.JobMonitor()
        # submit makes its job all the same, and says it was not recorded
        code, out, err = run_cli('submit', 'local:', job, '--id', 'j',
                                 '--queue', os.path.join(tmp, 'q'))
        self.assertEqual((code, out), (0, 'j\n'), err)
        self.assertIn('The job registry was not updated: TEJ_REGISTRY', err)
        # and nothing was made in a directory named "~nosuchuser" here
        self.assertEqual(sorted(os.listdir(tmp)), ['job', 'q'])

    def test_a_registry_others_can_write_is_refused(self):
        # its directory, its file, its -wal: refused with how to mend it;
        # a submit makes its job all the same, and says so once
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'true\n'})
        registry = os.path.join(tmp, 'reg', 'jobs.sqlite3')
        support.patch_env(self.addCleanup, TEJ_REGISTRY=registry)
        tej.JobMonitor().jobs()  # made, private
        for path in (os.path.dirname(registry), registry, registry + '-wal'):
            with self.subTest(path=path):
                if not os.path.exists(path):
                    open(path, 'w').close()
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o022)
                try:
                    code, out, err = run_cli('jobs')
                    self.assertEqual((code, out), (1, ''), err)
                    self.assertIn('chmod go-w %s' % path, err)
                    code, out, err = run_cli(
                        'submit', 'local:', job, '--queue',
                        os.path.join(tmp, 'q'))
                    self.assertEqual(code, 0, err)
                    self.assertRegex(out, r'^\S+\n$')
                    self.assertEqual(err.count('registry was not updated'),
                                     1, err)
                finally:
                    os.chmod(path, mode)
        self.assertEqual(run_cli('jobs')[0], 0)

    def test_a_corrupt_registry_is_one_warning(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'true\n'})
        registry = os.path.join(tmp, 'jobs.sqlite3')
        with open(registry, 'wb') as fp:
            fp.write(b'not a database, ' * 512)
        os.chmod(registry, 0o600)
        support.patch_env(self.addCleanup, TEJ_REGISTRY=registry)
        code, out, err = run_cli('submit', 'local:', job, '--queue',
                                 os.path.join(tmp, 'q'))
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r'^\S+\n$')
        self.assertEqual(err.count('registry was not updated'), 1, err)
        code, out, err = run_cli('jobs')
        self.assertEqual(code, 1)
        self.assertNotIn('Traceback', err)

    def test_a_read_only_registry(self):
        """On a read-only file system (a tmpfs remounted read-only), jobs
        --cached reads the registry, and jobs shows what the servers say
        with one warning that it is not kept; a submit prints its id.
        """
        need('root', os.getuid() == 0 and shutil.which('mount'),
             "a read-only mount needs root")
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'exit 3\n'})
        where = os.path.join(tmp, 'faults-ro')
        os.mkdir(where)
        subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=8m',
                               'faults-ro', where])
        self.addCleanup(subprocess.call, ['umount', '-l', where])
        os.chmod(where, 0o700)
        support.patch_env(self.addCleanup, TEJ_REGISTRY=os.path.join(
            where, 'jobs.sqlite3'))
        queue = ['--queue', os.path.join(tmp, 'q')]
        code, out, err = run_cli('submit', 'local:', job, '--id', 'a',
                                 *queue)
        self.assertEqual((code, out), (0, 'a\n'), err)
        run_cli('wait', 'local:', '--id', 'a', *queue)
        subprocess.check_call(['mount', '-o', 'remount,ro', where])
        code, out, err = run_cli('jobs', '--cached')
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r'\nlocal: +a +- ')
        code, out, err = run_cli('jobs')
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r'\nlocal: +a +finished +3 ')
        self.assertEqual(err.count('cannot be written'), 1, err)
        code, out, err = run_cli('submit', 'local:', job, '--id', 'b',
                                 *queue)
        self.assertEqual((code, out), (0, 'b\n'), err)
        self.assertEqual(err.count('registry was not updated'), 1, err)
        self.assertNotIn('Traceback', err)

    def test_stored_ssh_options_run_no_command(self):
        # a registry that someone changed: options that would run commands
        # (or read a config others can write) are left out, with a warning
        tmp = support.temporary(self)
        ran = os.path.join(tmp, 'ran')
        mine = os.path.join(tmp, 'config')
        open(mine, 'w').close()
        os.chmod(mine, 0o600)
        theirs = os.path.join(tmp, 'theirs')
        open(theirs, 'w').close()
        os.chmod(theirs, 0o666)
        stored = ['-o', 'ProxyCommand=touch %s' % ran, '-o',
                  'localcommand touch %s' % ran, '-F', theirs, '-F', mine,
                  '-o', 'ServerAliveInterval=5', '-J', 'jump', '-v',
                  '-o', 'KnownHostsCommand=/bin/true']
        with self.assertLogs('tej', 'WARNING') as said:
            kept = tej._stored_ssh_options(json.dumps(stored))
        self.assertEqual(kept, ['-F', mine, '-o', 'ServerAliveInterval=5',
                                '-J', 'jump'])
        self.assertIn('ProxyCommand', said.output[0])
        for text in ('{"a": 1}', 'not json', '[1, 2]'):
            with self.assertLogs('tej', 'WARNING'):
                self.assertEqual(tej._stored_ssh_options(text), [])
        self.assertFalse(os.path.exists(ran))
        # and "tej jobs", which calls the job's server with them
        registry = os.path.join(tmp, 'jobs.sqlite3')
        support.patch_env(self.addCleanup, TEJ_REGISTRY=registry)
        queue = tej.RemoteQueue('nohost.invalid', '~/.tej',
                                ssh_options=['-o', 'ProxyCommand=sh -c '
                                             '"touch %s; exit 1"' % ran])
        tej.JobMonitor().add(queue, 'j')
        code, out, err = run_cli('jobs')
        self.assertIn('left out', err)
        self.assertIn('unreachable', out + err)
        self.assertFalse(os.path.exists(ran))

    def test_destinations_without_password(self):
        for given, kept in [('me:pw@host', 'me@host'),
                            ('ssh://me:p:w@x@host:2222', 'me@host:2222'),
                            ('alias', 'alias'), ('local:', 'local:'),
                            ('[::1]:2222', '[::1]:2222'),
                            ({'hostname': 'h', 'username': 'u',
                              'password': 'pw', 'port': 22}, 'u@h')]:
            self.assertEqual(tej._short_destination(given), kept)
            self.assertEqual(tej._short_destination(kept), kept)


class TestManyQueues(unittest.TestCase):
    def test_hundreds_of_queues_within_the_descriptors(self):
        # 150 queues, each a call with its pipes, in a tej that may open 256
        # files: asked _ASK_AT_ONCE at a time, none runs out of them
        tmp = support.temporary(self)
        registry = os.path.join(tmp, 'jobs.sqlite3')
        support.patch_env(self.addCleanup, TEJ_REGISTRY=registry)
        monitor = tej.JobMonitor()
        for n in range(150):
            monitor.add(tej.RemoteQueue('local:', os.path.join(tmp, 'q%d' % n)),
                        'j')
        limit = ('import resource, runpy, sys; '
                 'resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); '
                 'sys.argv = [sys.argv[1]] + sys.argv[2:]; '
                 'runpy.run_path(sys.argv[0], run_name="__main__")')
        proc = subprocess.run(
            [sys.executable, '-c', limit, os.path.join(support.TOP, 'tej.py'),
             'jobs', '--json'], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        states = [json.loads(line)['state']
                  for line in proc.stdout.decode().splitlines()]
        self.assertEqual(states, ['notfound'] * 150, proc.stderr[-2000:])


class TestTable(unittest.TestCase):
    def test_fits_80_columns(self):
        now = time.time()
        jobs = [tej.KnownJob(
            'someone@a-rather-long-host-name.example.org', '~/.tej',
            'simulation_someone_%s' % tej.make_unique_name(),
            '/home/someone/projects/very/deep/directory/of/jobs/run%d' % i,
            now - 3600 * i, 'label-%d' % i, 'running', None, now, False,
            None, None, [], True, i, None) for i in range(3)]
        lines = tej._jobs_table(jobs, now)
        for line in lines:
            self.assertLessEqual(len(line), 80, line)
        self.assertTrue(lines[1].split()[2], 'running')
        self.assertTrue(lines[3].split()[-1].endswith('/run2'), lines[3])

    def test_one_line_a_job_and_nothing_for_the_terminal(self):
        # a directory may hold a newline or an escape; a label recorded by
        # an older tej too
        now = time.time()
        jobs = [tej.KnownJob(
            'local:', '/q', 'j%d' % i, '/tmp/a\nb\x1b]52;c;eA==\x07/%d' % i,
            now, 'x\ny\r\x1b[2J\x9b', 'running', None, now, False, None,
            None, [], True, i, None) for i in range(2)]
        lines = tej._jobs_table(jobs, now, width=200)
        self.assertEqual(len(lines), 3)
        text = '\n'.join(lines)
        self.assertIsNone(re.search('[\x00-\x09\x0b-\x1f\x7f-\x9f]', text),
                          text)
        self.assertIn('x\\x0ay\\x0d\\x1b[2J\\x9b', lines[1])

    def test_label_refused_before_anything_is_done(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'true\n'})
        support.patch_env(self.addCleanup,
                          TEJ_REGISTRY=os.path.join(tmp, 'registry'))
        q = tej.RemoteQueue('local:', os.path.join(tmp, 'q'))
        for label in ('a\nb', 'tab\there', '\x1b]0;title\x07', '\x9b2J'):
            with self.assertRaises(ValueError, msg=label):
                q.submit('j', job, label=label)
            code, out, err = run_cli('submit', 'local:', job, '--queue',
                                     os.path.join(tmp, 'q'), '--label',
                                     label)
            self.assertEqual((code, out), (2, ''), err)
            self.assertIn('--label: Invalid label', err)
            with self.assertRaises(ValueError, msg=label):
                tej.JobMonitor(os.path.join(tmp, 'registry')).add(
                    q, 'j', label=label)
        self.assertFalse(os.path.exists(os.path.join(tmp, 'q')))
        self.assertEqual(tej.JobMonitor(os.path.join(tmp, 'registry'))
                         .jobs(), [])
        # a label with spaces and non-ASCII letters is fine
        self.assertEqual(q.submit('j', job, label='\u00e9t\u00e9 2024'), 'j')


if __name__ == '__main__':
    unittest.main()

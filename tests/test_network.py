"""Network faults, in the serial lane (they use fixed names and addresses,
and time how soon tej notices): a second sshd, a daemon in a network
namespace of its own reached over a veth pair, whose link is cut (ip link
set down) for less and for more than the keep-alive limit, and which is
stopped and started again under a call.

Objects made in the system (network namespaces, veths) are named faults*,
made by the test and removed by it.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

from . import support
from .support import tej, need, run_cli, wait_for, which


setUpModule = support.ssh_module


class NetServer(object):
    """A second sshd, a daemon listening in a network namespace of its
    own, reached over a veth pair (faults0 here, faults1 there): `cut`
    sets the link down, `mend` up again; `stop` and `start` the daemon.
    The login is the test server's (its user, keys and home).
    """

    alias = 'faultsnet'
    here, there = '169.254.213.1', '169.254.213.2'

    def __init__(self, test):
        missing = [n for n in ('unshare', 'nsenter', 'ip') if not which(n)]
        need('sshd', os.getuid() == 0 and not missing,
             "a network namespace needs root and %s"
             % (', '.join(missing) or 'root'))
        self.server = support.ssh_server()
        self.dir = support.temporary(test)
        os.chmod(self.dir, 0o755)
        self.daemon = None
        holder = subprocess.Popen(['unshare', '--net', 'sleep', '100000'])
        test.addCleanup(self.close, holder)
        wait_for(lambda: os.readlink('/proc/%d/ns/net' % holder.pid),
                 lambda ns: ns != os.readlink('/proc/self/ns/net'),
                 what='the namespace')
        self.ns = ['nsenter', '--net=/proc/%d/ns/net' % holder.pid]
        subprocess.check_call(['ip', 'link', 'add', 'faults0', 'type', 'veth',
                               'peer', 'name', 'faults1'])
        subprocess.check_call(['ip', 'link', 'set', 'faults1', 'netns',
                               str(holder.pid)])
        for argv in (['ip', 'addr', 'add', self.here + '/30', 'dev',
                      'faults0'], ['ip', 'link', 'set', 'faults0', 'up']):
            subprocess.check_call(argv)
        for argv in (['ip', 'link', 'set', 'lo', 'up'],
                     ['ip', 'addr', 'add', self.there + '/30', 'dev',
                      'faults1'], ['ip', 'link', 'set', 'faults1', 'up']):
            subprocess.check_call(self.ns + argv)
        with open(self.server.path('sshd_config')) as fp:
            config = fp.read()
        self.sshd_config = os.path.join(self.dir, 'sshd_config')
        with open(self.sshd_config, 'w') as fp:
            fp.write('ListenAddress %s\nPort 22\n' % self.there + config)
        self.config = os.path.join(self.dir, 'ssh_config')
        with open(self.config, 'w') as fp:
            fp.write(
                "Host {a}\n  HostName {t}\n  User {u}\n  HostKeyAlias {k}\n"
                "  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n"
                "  UserKnownHostsFile {d}/known_hosts\n"
                "  GlobalKnownHostsFile /dev/null\n"
                "  StrictHostKeyChecking yes\n  LogLevel ERROR\n".format(
                    a=self.alias, t=self.there, u=self.server.user,
                    k=self.server.alias, d=self.server.dir))
        self.start()

    def start(self):
        self.daemon = subprocess.Popen(
            self.ns + [self.server.sshd, '-D', '-e', '-f', self.sshd_config],
            stderr=subprocess.DEVNULL)
        wait_for(self.listening, what='sshd to listen')

    def listening(self):
        return ('%s:22 ' % self.there).encode() in subprocess.run(
            self.ns + ['ss', '-ltn'], stdout=subprocess.PIPE).stdout

    def stop(self):
        """Kill the daemon and every session it forked."""
        pids = support.process_tree([self.daemon.pid])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.daemon.wait()
        self.daemon = None

    def cut(self):
        subprocess.check_call(['ip', 'link', 'set', 'faults0', 'down'])

    def mend(self):
        subprocess.check_call(['ip', 'link', 'set', 'faults0', 'up'])

    def close(self, holder):
        if self.daemon is not None:
            self.stop()
        subprocess.call(['ip', 'link', 'del', 'faults0'],
                        stderr=subprocess.DEVNULL)
        holder.kill()
        holder.wait()


@support.serial("a veth of fixed names", beside=True)
class NetCase(unittest.TestCase):
    #: TEJ_KEEPALIVE of the test's calls, and of the shared connection
    #: they start (whose keepalives are the ones that count)
    keepalive = '60'

    def setUp(self):
        support.patch_env(self.addCleanup, TEJ_KEEPALIVE=self.keepalive)
        self.net = NetServer(self)
        self.tmp = support.temporary(self)
        self.remote = self.net.server.remote_dir()
        self.addCleanup(shutil.rmtree, self.remote, True)
        self.queue_path = os.path.join(self.remote, 'q')
        self.q = tej.RemoteQueue(self.net.alias, self.queue_path,
                                 ssh_options=['-F', self.net.config])
        self.addCleanup(self.q.close)

    def submit_waiting(self, job_id, code):
        """A job that ends with ``code`` once the test says go; return the
        path of its go file."""
        job = support.make_tree(os.path.join(self.tmp, job_id), {
            'start.sh': 'while [ ! -f go ] && [ -d "$PWD" ]; do sleep 0.1; '
                        'done; exit %d\n' % code})
        self.q.submit(job_id, job)
        return os.path.join(self.queue_path, 'jobs', job_id, 'stage', 'go')

    def wait_process(self, job_id, **env):
        """``tej wait`` in a process of its own; started once the server
        waits."""
        proc = subprocess.Popen(
            [sys.executable, os.path.join(support.TOP, 'tej.py'), 'wait',
             self.net.alias, '--id', job_id, '--queue', self.queue_path,
             '-F', self.net.config], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, **env))
        self.addCleanup(lambda: proc.poll() is not None or proc.kill())
        wait_for(lambda: self.net.server.processes(' wait '),
                 what='wait to be waiting on the server')
        return proc

    def stderr_has(self, proc, text, timeout):
        """Wait until ``proc`` wrote ``text`` on stderr; return when (a
        time.monotonic)."""
        import fcntl
        fd = proc.stderr.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL,
                    fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        seen = []

        def read():
            try:
                seen.append(proc.stderr.read() or b'')
            except OSError:
                pass
            return b''.join(seen)
        wait_for(read, lambda err: text in err, timeout=timeout,
                 what='%r on stderr' % text)
        fcntl.fcntl(fd, fcntl.F_SETFL,
                    fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self.seen = b''.join(seen)
        return time.monotonic()

    def finish(self, proc):
        out, err = proc.communicate(timeout=180)
        return proc.returncode, getattr(self, 'seen', b'') + err


class TestShortCut(NetCase):
    """The link to the server cut (ip link set down) during wait, for a few
    seconds: the call simply goes on."""

    keepalive = '20'

    def test_short_cut_goes_unnoticed(self):
        go = self.submit_waiting('short', 6)
        proc = self.wait_process('short')
        self.net.cut()
        time.sleep(3)  # the fault's length, not a wait for something
        open(go, 'w').close()
        self.net.mend()
        code, err = self.finish(proc)
        self.assertEqual(code, 6, err)
        self.assertNotIn(b'trying again', err)


class TestLongCut(NetCase):
    """The link cut for longer than the keepalive limit: noticed within
    it, tried again with backoff, and the job's exit code once it is back.
    """

    keepalive = '4'

    def test_long_cut_is_noticed_and_outlived(self):
        keepalive = int(self.keepalive)
        go = self.submit_waiting('long', 9)
        proc = self.wait_process('long', TEJ_RETRY_FOR='120')
        self.net.cut()
        cut = time.monotonic()
        try:
            noticed = self.stderr_has(proc, b'trying again',
                                      timeout=keepalive + 20)
            # within the keepalive limit, and a second of scheduling
            self.assertLess(noticed - cut, keepalive + 3)
            open(go, 'w').close()
            time.sleep(keepalive)  # cut for longer still
        finally:
            self.net.mend()
        code, err = self.finish(proc)
        self.assertEqual(code, 9, err)
        self.assertEqual(self.q.info('long')['exit'], 9)


class TestServerStopped(NetCase):
    """sshd stopped during a call: retried for TEJ_RETRY_FOR seconds; it
    comes back in time, or the call gives up in one line, exit 125.
    """

    def test_started_again_in_time(self):
        go = self.submit_waiting('back', 3)
        proc = self.wait_process('back', TEJ_RETRY_FOR='60')
        self.net.stop()
        self.stderr_has(proc, b'trying again', timeout=30)
        open(go, 'w').close()
        self.net.start()
        code, err = self.finish(proc)
        self.assertEqual(code, 3, err)

    def test_gives_up_after_retry_for(self):
        self.submit_waiting('gone', 3)
        retry_for = 6
        proc = self.wait_process('gone', TEJ_RETRY_FOR=str(retry_for))
        self.net.stop()
        stopped = time.monotonic()
        code, err = self.finish(proc)
        took = time.monotonic() - stopped
        self.assertEqual(code, 125, err)
        lines = err.decode().splitlines()
        self.assertTrue(lines[-1].startswith('tej: error: Cannot connect'),
                        err)
        self.assertEqual(sum(l.startswith('tej: error:') for l in lines), 1)
        self.assertGreaterEqual(took, retry_for - 1)
        self.assertLess(took, retry_for + tej._CONNECT_TIMEOUT + 5)
        # status also gives up, at once: one attempt
        code, out, err = run_cli('status', self.net.alias, '--id', 'gone',
                                 '--queue', self.queue_path, '-F',
                                 self.net.config)
        self.assertEqual((code, out), (1, ''))
        self.assertRegex(err, r'\Atej: error: [^\n]*\n\Z')
        # back: the job is there, waiting
        self.net.start()
        self.assertEqual(self.q.info('gone')['state'], 'running')

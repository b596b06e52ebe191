"""End to end through a real OpenSSH server (see support.SSHServer): the job
scenario, the command line with its exact output, round trips, ssh
failures, the shared connection, and the oldest and newest Pythons.
"""

import glob
import os
import pty
import pwd
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

from . import support
from .scenario import CommandLineScenario, Scenario
from .support import ServerCase as SSHCase, tej, run_cli, wait_for, need

setUpModule = support.ssh_module


class TestScenarioOverSSH(Scenario, SSHCase):
    def base_dir(self):
        return self.remote

    def make_queue(self, path):
        return self.server.queue(path)


class TestCommandLine(CommandLineScenario, SSHCase):
    """The original tej's command line, with its exact output."""

    def setUp(self):
        super(TestCommandLine, self).setUp()
        self.cli_extra = ['-F', self.server.config]

    def processes(self, pattern):
        return self.server.processes(pattern)

    def test_default_queue_and_default_link(self):
        d = self.server.alias
        real = self.remote_dir() + '/real'
        home_queue = os.path.join(self.server.home, '.tej')
        shutil.rmtree(home_queue, ignore_errors=True)
        try:
            self.tej('setup', d, '--queue', real, '--make-default-link')
            with open(home_queue) as fp:
                self.assertEqual(fp.read(), 'tejdir: %s\n' % real)
            job = self.job('j', {'start.sh': 'true\n'})
            self.assertEqual(self.tej('submit', d, '--id', 'x', job), 'x\n')
            self.assertTrue(os.path.isdir(os.path.join(real, 'jobs', 'x')))
        finally:
            if os.path.lexists(home_queue):
                os.unlink(home_queue)

    def test_errors_are_one_line(self):
        d = self.dest
        for argv in [('status', d, '--id', 'x'), ('list', d),
                     ('kill', d, '--id', 'x')]:
            code, out, err = self.cli(*argv)
            self.assertEqual((code, out), (1, ''))
            self.assertRegex(err, r'\Atej: error: There is no queue at .*\n\Z')


class TestUserHome(SSHCase):
    """--queue ~NAME/...: in user NAME's home directory (the password
    database's, as sh expands it), not in $HOME/~NAME.
    """

    def test_queue_and_link_in_a_users_home(self):
        if os.getuid() != 0:
            self.skipTest("as root only: the test user's home is then one "
                          "that the tests made")
        user = self.server.user
        passwd_home = pwd.getpwnam(user).pw_dir
        self.assertNotEqual(passwd_home, self.server.home)  # sshd's SetEnv
        name = 'tej-test-%d' % os.getpid()
        real = os.path.join(passwd_home, name)
        self.addCleanup(shutil.rmtree, real, True)
        self.addCleanup(shutil.rmtree, os.path.join(self.server.home,
                                                    '~' + user), True)
        code, out, err = self.cli('submit', self.dest, '--id', 'j',
                                  '--queue', '~%s/%s/q' % (user, name),
                                  self.job('job', {'start.sh': 'exit 3\n'}))
        self.assertEqual((code, out), (0, 'j\n'), err)
        self.assertTrue(os.path.isdir(os.path.join(real, 'q', 'jobs', 'j')))
        self.assertFalse(os.path.exists(os.path.join(self.server.home,
                                                     '~' + user)))
        q = self.server.queue('~%s/%s/q' % (user, name))
        self.assertEqual(q.wait('j'), 3)
        # a link there too
        q.setup(links=['~%s/%s/link' % (user, name)], only_links=True)
        with open(os.path.join(real, 'link')) as fp:
            self.assertEqual(fp.read(), 'tejdir: %s\n' % os.path.join(
                real, 'q'))
        self.assertEqual(self.server.queue('~%s/%s/link' % (user, name))
                         .wait('j'), 3)


class TestFileModes(SSHCase):
    """The job's files as uploaded, and its _stdout and _stderr, follow the
    umask of the ssh session (README: "Every runtime runs the job with the
    ... umask of the ssh session"); the queue's own files stay private.
    """

    def test_modes_follow_the_session_umask(self):
        job = self.job('job', {'start.sh': 'echo out; echo err >&2\n',
                               'data.txt': 'data', 'sub/x.txt': 'x'})
        for name, mode in (('data.txt', 0o644), ('sub/x.txt', 0o644),
                           ('sub', 0o755), ('start.sh', 0o755)):
            os.chmod(os.path.join(job, name), mode)
        for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755),
                                           (0o077, 0o600, 0o700)):
            job_id = 'umask%03o' % umask
            old = os.umask(umask)
            try:
                # a connection of its own: an sshd started with this umask
                q = self.queue(multiplex=False)
                q.submit(job_id, job)
            finally:
                os.umask(old)
            self.assertEqual(q.wait(job_id), 0)
            stage = self.stage(job_id)

            def mode(*names):
                return stat.S_IMODE(os.stat(os.path.join(stage,
                                                         *names)).st_mode)
            with self.subTest(umask='%03o' % umask):
                self.assertEqual(
                    {n: '%o' % mode(n) for n in ('data.txt', 'sub/x.txt',
                                                 '_stdout', '_stderr')},
                    dict.fromkeys(('data.txt', 'sub/x.txt', '_stdout',
                                   '_stderr'), '%o' % file_mode))
                self.assertEqual('%o' % mode('sub'), '%o' % dir_mode)
                self.assertEqual('%o' % mode('start.sh'),
                                 '%o' % (0o777 & ~umask))
                # the queue's own: private
                for path, private in (('', 0o700), ('jobs', 0o700),
                                      ('jobs/' + job_id, 0o700),
                                      ('jobs/%s/state' % job_id, 0o600),
                                      ('jobs/%s/script' % job_id, 0o600),
                                      ('tej.sh', 0o600), ('version', 0o600)):
                    self.assertEqual(
                        '%o' % stat.S_IMODE(os.stat(os.path.join(
                            self.queue_path, path)).st_mode),
                        '%o' % private, path)


class TestRoundTrips(SSHCase):
    """Each operation is one ssh exec once the runtime is in place; first
    contact is two.
    """

    def setUp(self):
        super(TestRoundTrips, self).setUp()
        self.counter = support.ExecCounter(self)

    def count(self, action):
        return self.counter.count(action)[1]

    def test_counts(self):
        q = self.queue(setup_runtime='default')
        job = self.job('job', {'start.sh': 'echo hi\n'})
        counts = {
            'first submit': self.count(lambda: q.submit('a', job)),
            'submit': self.count(lambda: q.submit('b', job)),
            'status': self.count(lambda: q.status('a')),
            'list': self.count(lambda: list(q.list())),
        }
        self.assertEqual(support.wait_state(q, 'a')['exit'], 0)
        counts.update({
            'download': self.count(lambda: q.download(
                'a', '_stdout', directory=self.tmp)),
            'kill': self.count(lambda: q.kill('a')),
            'delete': self.count(lambda: q.delete('a')),
            'setup': self.count(lambda: q.setup(force=True)),
            # which scheduler the server has: one call more
            'setup, detecting': self.count(
                lambda: self.queue().setup(force=True)),
        })
        self.assertEqual(counts, {
            'first submit': 2, 'submit': 1, 'status': 1, 'list': 1,
            'download': 1, 'kill': 1, 'delete': 1, 'setup': 1,
            'setup, detecting': 2})
        # an outdated runtime costs one more exec, not more
        with open(os.path.join(q.queue, 'version'), 'w') as fp:
            fp.write('1/default/0\n')
        self.assertEqual(self.count(lambda: q.status('b')), 2)
        # and the connection is shared: one sshd for all of this
        self.assertEqual(self.count(lambda: q.status('b')), 1)


class TestSSHFailures(SSHCase):
    def test_unknown_host_key(self):
        known = os.path.join(self.tmp, 'known_hosts')
        open(known, 'w').close()
        q = tej.RemoteQueue(self.server.alias, ssh_options=[
            '-o', 'UserKnownHostsFile=%s' % known] + self.server.options,
            multiplex=False)
        with self.assertRaises(tej.Error) as ctx:
            q.status('x')
        self.assertIn('host key', str(ctx.exception))
        self.assertIn('tej login', str(ctx.exception))

    def test_authentication_failure(self):
        key = os.path.join(self.tmp, 'other_key')
        subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                               '-f', key])
        config = os.path.join(self.tmp, 'ssh_config')
        with open(self.server.config) as fp:
            text = fp.read()
        with open(config, 'w') as fp:
            fp.write(text.replace(self.server.path('client_key'), key))
        q = tej.RemoteQueue(self.server.alias, ssh_options=['-F', config])
        with self.assertRaises(tej.Error) as ctx:
            q.status('x')
        self.assertIn('Authentication', str(ctx.exception))
        code, out, err = run_cli('status', self.server.alias, '--id', 'x',
                                 '-F', config)
        self.assertEqual((code, out), (1, ''))
        self.assertRegex(err, r'\Atej: error: Authentication to \S+ failed'
                              r'[^\n]*\n\Z')

    def test_unreachable(self):
        q = tej.RemoteQueue('nowhere.invalid', ssh_options=[
            '-F', '/dev/null', '-o', 'ProxyCommand=false'])
        with self.assertRaises(tej.Error) as ctx:
            q.status('x')
        self.assertIn('Cannot connect', str(ctx.exception))

    def test_dead_master_is_replaced(self):
        q = self.queue()
        q.setup()
        self.assertTrue(q._transport.check_master())
        masters = self.server.masters(q)
        self.assertEqual(len(masters), 1)
        os.kill(masters[0], signal.SIGKILL)
        wait_for(q._transport.check_master, lambda up: not up,
                 what='the master to die')
        with self.assertRaises(tej.JobNotFound):
            q.status('x')
        self.assertTrue(q._transport.check_master())

    def test_stale_socket(self):
        q = self.queue(multiplex=True)
        q.close()
        # a socket file that nothing listens on
        import socket
        path = q._transport.control_path
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.close()
        q.setup()
        self.assertTrue(q._transport.check_master())

    def test_no_multiplex(self):
        q = tej.RemoteQueue(self.dest, self.queue_path,
                            ssh_options=self.server.options +
                            ['-o', 'ServerAliveCountMax=5'], multiplex=False)
        q.setup()
        self.assertEqual(list(q.list()), [])
        self.assertFalse(os.path.exists(q._transport.control_path))


class TestControlPath(SSHCase):
    def test_blanks_and_percent_signs(self):
        # the control directory under a HOME, or an XDG_RUNTIME_DIR, with
        # a space and a "%": the shared connection still works
        for variable in ('HOME', 'XDG_RUNTIME_DIR'):
            odd = os.path.join(self.tmp, 'a b%h')
            os.makedirs(odd, 0o700, exist_ok=True)
            support.patch_env(self.addCleanup, **{variable: odd})
            q = self.queue(variable)
            q.setup()
            self.assertTrue(q._transport.control_path.startswith(odd + '/'))
            self.assertTrue(os.path.exists(q._transport.control_path))
            self.assertTrue(q._transport.check_master(), variable)
            self.assertEqual(len(self.server.masters(q)), 1)
            self.assertEqual(list(q.list()), [])
            q.close()
            wait_for(lambda: not os.path.exists(q._transport.control_path),
                     what='the master to exit')


class TestHostileJob(SSHCase):
    def test_link_chain_made_by_a_job(self):
        # each link looks inside as text; y, w and v climb out of out/
        q = self.queue()
        job = self.job('job', {'start.sh':
                               'mkdir out && cd out && echo data > file && '
                               'ln -s . x && ln -s x/.. y && ln -s y/.. w && '
                               'ln -s w/.. v && echo done\n'})
        q.submit('chain', job)
        self.assertEqual(q.wait('chain'), 0)
        results = os.path.join(self.tmp, 'results')
        with self.assertLogs('tej', 'WARNING') as logs:
            paths = q.download('chain', 'out', directory=results)
        out = os.path.join(results, 'out')
        self.assertEqual(paths, [out])
        self.assertEqual(len(logs.output), 3, logs.output)
        self.assertEqual(os.readlink(os.path.join(out, 'x')), '.')
        for name in 'ywv':
            self.assertFalse(os.path.lexists(os.path.join(out, name)))
        with open(os.path.join(out, 'file')) as fp:
            self.assertEqual(fp.read(), 'data\n')
        support.assert_links_within(self, out)
        # one file asked for twice is written once, and kept
        code, out, err = self.cli('download', self.dest, '--id', 'chain',
                                  '_stdout', './_stdout', '--directory',
                                  results)
        self.assertEqual((code, out), (0, ''), err)
        with open(os.path.join(results, '_stdout')) as fp:
            self.assertEqual(fp.read(), 'done\n')


class TestPassword(SSHCase):
    """A destination with a password (the original's ``user:pw@host``), and
    ``tej login``: the password reaches ssh through SSH_ASKPASS, never a
    terminal or ssh's command line.
    """

    def setUp(self):
        super(TestPassword, self).setUp()
        need('sshd', os.getuid() == 0,
             "password logins need root, to give the test user a password")
        # one the askpass script and the shell must not mangle
        self.password = "p@w:'$x\\% " + os.urandom(4).hex()
        user = self.server.user
        subprocess.run(['chpasswd'], check=True, input=(
            '%s:%s\n' % (user, self.password)).encode())
        self.addCleanup(subprocess.check_call, ['usermod', '-p', '*', user])
        self.alias = self.server.password_alias()

    def password_queue(self, password):
        return self.server.queue(self.queue_path, alias={
            'hostname': self.alias, 'username': self.server.user,
            'password': password})

    def test_destination_with_password(self):
        q = self.password_queue(self.password)
        self.assertNotIn(self.password,
                         ' '.join(q._transport._argv('log', tej._SHARED)))
        job = self.job('job', {'start.sh': 'exit 4\n'})
        q.submit('j', job)
        self.assertEqual(q.wait('j'), 4)
        q.close()  # the next call logs in again
        self.assertEqual(q.status('j')[::2], ('finished', '4'))

    def test_password_on_the_command_line(self):
        # in the destination (with a warning), in TEJ_PASSWORD, and never
        # in a message
        user = self.server.user
        args = ['--queue', self.queue_path, '-F', self.server.config]
        in_destination = '%s:%s@%s' % (user, self.password, self.alias)
        code, out, err = run_cli('setup', in_destination, *args)
        self.assertEqual((code, out), (0, ''), err)
        self.assertIn('shows in the process list', err)
        self.assertIn('%s:***@%s' % (user, self.alias), err)
        self.assertNotIn(self.password, err)
        self.password_queue(self.password).close()
        support.patch_env(self.addCleanup, TEJ_PASSWORD=self.password)
        self.assertEqual(run_cli('status', '%s@%s' % (user, self.alias),
                                 '--id', 'x', '--password', *args),
                         (0, 'not found\n', ''))
        # not without --password: TEJ_PASSWORD is for the calls that ask
        self.password_queue(self.password).close()
        code, out, err = run_cli('status', '%s@%s' % (user, self.alias),
                                 '--id', 'x', *args)
        self.assertEqual((code, out), (1, ''))
        self.assertIn('Authentication', err)
        self.password_queue(self.password).close()
        support.patch_env(self.addCleanup, TEJ_PASSWORD=None)
        code, out, err = run_cli('status', '%s@%s' % (user, self.alias),
                                 '--id', 'x', '--password', *args)
        self.assertEqual((code, out), (1, ''))
        self.assertRegex(err, r'\Atej: error: --password: set TEJ_PASSWORD'
                              r'[^\n]*\n\Z')
        code, out, err = run_cli('status', in_destination + ' x', '--id',
                                 'x', *args)
        self.assertEqual(code, 2)  # a bad command line
        self.assertNotIn(self.password, err)
        self.assertIn(':***@', err)

    def test_wrong_password(self):
        q = self.password_queue(self.password + 'x')
        q.close()  # a shared connection would not ask
        with self.assertRaises(tej.Error) as ctx:
            q.status('j')
        self.assertIn('Authentication', str(ctx.exception))

    def test_login_then_batch_calls(self):
        askpass = os.path.join(self.tmp, 'askpass')
        with open(askpass, 'w') as fp:
            fp.write('#!/bin/sh\nprintf \'%s\\n\' "$PW"\n')
        os.chmod(askpass, 0o700)
        env = dict(os.environ, SSH_ASKPASS=askpass, PW=self.password,
                   SSH_ASKPASS_REQUIRE='force', DISPLAY=':0')
        args = [self.alias, '-F', self.server.config]
        login = subprocess.run(
            [sys.executable, os.path.join(support.TOP, 'tej.py'), 'login'] +
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, timeout=60)
        self.assertEqual(login.returncode, 0, login.stderr)
        queue = ['--queue', self.queue_path]
        try:
            # BatchMode calls, no password: through the shared connection
            self.assertEqual(run_cli('setup', *(args + queue))[0], 0)
            self.assertEqual(run_cli('status', '--id', 'x', *(args + queue)),
                             (0, 'not found\n', ''))
        finally:
            self.assertEqual(run_cli('logout', *args)[0], 0)
        code, out, err = run_cli('status', '--id', 'x', *(args + queue))
        self.assertEqual((code, out), (1, ''))
        self.assertIn('Authentication', err)


    def login_at_a_terminal(self, *options):
        """``tej login`` at a pseudo-terminal, from a shell that stays (as a
        user's does: when a terminal's shell leaves, the processes of the
        terminal get SIGHUP), with an ssh_config that says ``BatchMode yes``
        for every host. Answer ssh's password prompt there; return tej's
        exit status and what the terminal showed.
        """
        self.batch_config = config = os.path.join(self.tmp, 'batch_config')
        with open(self.server.config) as fp:
            text = fp.read()
        with open(config, 'w') as fp:
            fp.write('Host *\n  BatchMode yes\n\n' + text)
        env = {k: v for k, v in os.environ.items()
               if k not in ('SSH_ASKPASS', 'DISPLAY', 'SSH_AUTH_SOCK')}
        argv = ['sh', '-c', '"$@"; echo "tej exited $?"; exec sleep 600',
                'sh', sys.executable, os.path.join(support.TOP, 'tej.py'),
                'login', self.alias, '-F', config] + list(options)
        pid, fd = pty.fork()
        if pid == 0:  # the child: its terminal is the pty
            try:
                os.execvpe('sh', argv, env)
            finally:
                os._exit(127)
        self.addCleanup(os.close, fd)
        self.addCleanup(os.waitpid, pid, 0)
        self.addCleanup(os.kill, pid, signal.SIGKILL)
        self.addCleanup(run_cli, 'logout', self.alias, '-F', config)
        shown, answered = b'', False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ended = re.search(br'tej exited (\d+)\r\n', shown)
            if ended:
                return int(ended.group(1)), shown.decode('utf-8', 'replace')
            if select.select([fd], [], [], 0.1)[0]:
                shown += os.read(fd, 4096)
            if not answered and shown.endswith(b'password: '):
                os.write(fd, self.password.encode() + b'\n')
                answered = True
        self.fail("tej login did not end: %r" % shown)

    def test_login_prompts_at_a_terminal_despite_batch_mode(self):
        code, shown = self.login_at_a_terminal()
        self.assertEqual(code, 0, shown)
        self.assertIn("password:", shown)
        self.assertIn("Logged in to ssh://%s" % self.alias, shown)
        self.assertNotIn(self.password, shown)  # the terminal does not echo
        # the calls use the connection; a second login says it is there
        args = [self.alias, '-F', self.batch_config]
        self.assertEqual(run_cli('setup', '--queue', self.queue_path,
                                 *args)[0], 0)
        self.assertEqual(run_cli('status', '--id', 'x', '--queue',
                                 self.queue_path, *args),
                         (0, 'not found\n', ''))
        code, out, err = run_cli('login', *args)
        self.assertEqual((code, out), (0, ''))
        self.assertRegex(err, r'\Atej: Already logged in to ssh://%s; to close '
                              r'the connection: \S+ \S+/tej.py logout %s '
                              r'-F \S+\n\Z' % (self.alias, self.alias))
        self.assertEqual(run_cli('logout', *args), (0, '', ''))
        code, out, err = run_cli('status', '--id', 'x', '--queue',
                                 self.queue_path, *args)
        self.assertEqual(code, 1)
        self.assertIn('Authentication', err)

    def test_batch_mode_given_to_tej_wins(self):
        code, shown = self.login_at_a_terminal('-o', 'BatchMode=yes')
        self.assertEqual(code, 1, shown)
        self.assertNotIn("password:", shown)
        self.assertIn("Authentication to ssh://%s failed" % self.alias, shown)


class TestProxyJump(SSHCase):
    """A password is for the target alone: through a ProxyJump host (ssh
    runs a second ssh for the jump, which inherits SSH_ASKPASS and the
    password), the jump's own password prompt gets nothing. ``ssh -J``
    needs a TCP port: an sshd of this test's listens on 127.0.0.1, and its
    log says who logged in how.
    """

    jump_user = 'tejjump'

    def setUp(self):
        super(TestProxyJump, self).setUp()
        need('sshd', os.getuid() == 0,
             "password logins need root, to give the test users passwords")
        self.password = "p@w:'$x\\% " + os.urandom(4).hex()
        self.set_password(self.server.user, self.password)
        try:
            pwd.getpwnam(self.jump_user)
        except KeyError:
            subprocess.check_call(['useradd', '-M', '-s', '/bin/sh',
                                   self.jump_user])
        self.port, self.log = self.listening_sshd()

    def set_password(self, user, password):
        """Give ``user`` a password; put back what it had after the test."""
        entry = subprocess.run(['getent', 'shadow', user], check=True,
                               stdout=subprocess.PIPE).stdout.decode()
        self.addCleanup(subprocess.check_call,
                        ['usermod', '-p', entry.split(':')[1], user])
        subprocess.run(['chpasswd'], check=True,
                       input=('%s:%s\n' % (user, password)).encode())

    def listening_sshd(self):
        """Start the test server's sshd listening on 127.0.0.1 on a free
        port, taking passwords and keys, for the test user and the jump
        user; stopped after the test. Return the port and its log.
        """
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        with open(self.server.path('sshd_config')) as fp:
            text = fp.read()
        for option in ('PasswordAuthentication no',
                       'AllowUsers %s\n' % self.server.user):
            self.assertIn(option, text)
        config = os.path.join(self.tmp, 'sshd_config')
        with open(config, 'w') as fp:
            fp.write(text.replace('PasswordAuthentication no',
                                  'PasswordAuthentication yes')
                     .replace('AllowUsers %s' % self.server.user,
                              'AllowUsers %s %s' % (self.server.user,
                                                    self.jump_user)))
        log = os.path.join(self.tmp, 'sshd.log')
        sshd = subprocess.Popen(
            [self.server.sshd, '-D', '-f', config, '-E', log,
             '-o', 'ListenAddress=127.0.0.1', '-o', 'Port=%d' % port,
             '-o', 'LogLevel=VERBOSE'], stdin=subprocess.DEVNULL)
        self.addCleanup(self.stop_sshd, sshd)
        wait_for(lambda: self.read(log) if sshd.poll() is None else 'died',
                 lambda text: 'Server listening' in text or text == 'died',
                 what='the sshd to listen')
        self.assertIsNone(sshd.poll(), self.read(log))
        return port, log

    def stop_sshd(self, sshd):
        # with the sessions it forked
        for pid in support.process_tree([sshd.pid]):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        sshd.wait(10)

    @staticmethod
    def read(path):
        try:
            with open(path) as fp:
                return fp.read()
        except FileNotFoundError:
            return ''

    def jump_config(self, jump_user, jump_auth):
        """An ssh config with two names for the listening sshd, each with
        its own host key alias: the jump host (as ``jump_user``, with
        ``jump_auth``), and the target (the test user, no key: a
        password). Return its path.
        """
        with open(self.server.path('host_key.pub')) as fp:
            key = ' '.join(fp.read().split()[:2])
        known = os.path.join(self.tmp, 'known_hosts')
        with open(known, 'w') as fp:
            fp.write('tej-jump %s\ntej-target %s\n' % (key, key))
        config = os.path.join(self.tmp, 'ssh_config')
        block = ("Host {a}\n  HostName 127.0.0.1\n  Port {p}\n  User {u}\n"
                 "  HostKeyAlias {a}\n  {auth}\n  IdentitiesOnly yes\n"
                 "  UserKnownHostsFile {k}\n  GlobalKnownHostsFile /dev/null\n"
                 "  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
        with open(config, 'w') as fp:
            fp.write(block.format(a='tej-jump', p=self.port, u=jump_user,
                                  auth=jump_auth, k=known))
            fp.write(block.format(a='tej-target', p=self.port,
                                  u=self.server.user, k=known,
                                  auth='PubkeyAuthentication no'))
        return config

    def jump_queue(self, config):
        return tej.RemoteQueue(
            {'hostname': 'tej-target', 'username': self.server.user,
             'password': self.password}, self.queue_path,
            ssh_options=['-F', config, '-J', 'tej-jump'], multiplex=False)

    def logins(self):
        """The sshd's log lines of password and key logins (tried or
        not), without what follows the user name.
        """
        return re.findall(r'(?:Accepted|Failed) (?:password|publickey) '
                          r'for (?:invalid user )?\S+', self.read(self.log))

    def test_jump_by_key_target_by_password(self):
        config = self.jump_config(
            self.server.user,
            'IdentityFile %s' % self.server.path('client_key'))
        q = self.jump_queue(config)
        q.setup()
        self.assertEqual(list(q.list()), [])
        self.assertTrue(os.path.isdir(self.queue_path))
        # each call: the jump with the key, then the target with the
        # password (the jump's ssh has no key for it)
        logins = self.logins()
        user = self.server.user
        calls = logins.count('Accepted password for %s' % user)
        self.assertGreaterEqual(calls, 2, logins)
        self.assertEqual(sorted(logins), sorted(
            ['Accepted password for %s' % user,
             'Accepted publickey for %s' % user] * calls))

    def test_jump_password_prompt_gets_nothing(self):
        # the jump user has the target's password: had the jump's ssh got
        # it, the jump would let it in and the call succeed. (With another
        # password a leak would not show: ssh sends an empty password when
        # its askpass answers nothing, and sshd logs both as failed.)
        self.set_password(self.jump_user, self.password)
        config = self.jump_config(self.jump_user, 'PubkeyAuthentication no')
        q = self.jump_queue(config)
        with self.assertRaises(tej.Error) as ctx:
            try:
                q.setup()
            finally:
                logins = self.logins()
                # the jump was asked, and nothing it was told let it in:
                # the target was never reached
                self.assertTrue(logins)
                self.assertEqual(
                    [line for line in logins
                     if line != 'Failed password for %s' % self.jump_user],
                    [], self.read(self.log))
        self.assertIn('Authentication', str(ctx.exception))
        self.assertNotIn(self.password, str(ctx.exception))


def _pythons():
    """The oldest and newest Python 3 of pyenv's, if there are several."""
    found = {}
    roots = [os.environ.get('PYENV_ROOT'), os.path.expanduser('~/.pyenv'),
             '/root/.pyenv']
    if shutil.which('pyenv'):
        roots.insert(0, subprocess.run(['pyenv', 'root'],
                                       stdout=subprocess.PIPE)
                     .stdout.decode().strip())
    root = next((r for r in roots if r and os.path.isdir(r)), '')
    for exe in glob.glob(root + '/versions/3.*/bin/python3'):
        out = subprocess.run([exe, '-c', 'import sys; print(sys.version_info'
                              '[:2])'], stdout=subprocess.PIPE)
        if out.returncode == 0:
            found[eval(out.stdout)] = exe
    for name in ['python3.6', 'python3.13']:
        exe = shutil.which(name)
        if exe:
            found.setdefault((3, int(name[8:])), exe)
    if not found:
        return []
    versions = sorted(found)
    return [(versions[0], found[versions[0]]),
            (versions[-1], found[versions[-1]])]


class TestClientPythons(SSHCase):
    """The command line as a subprocess, with the oldest and newest
    Python: 3.6 and 3.13.
    """

    def test_oldest_and_newest(self):
        pythons = _pythons()
        need('python-versions', pythons and pythons[0][0] <= (3, 6) and
             pythons[-1][0] >= (3, 13), "Python 3.6 and 3.13 are not both "
             "installed (found: %s)" % [v for v, _ in pythons])
        job = self.job('job', {'start.sh': 'echo "$0" ok\n'})
        tej_py = os.path.join(support.TOP, 'tej.py')
        d = self.dest
        for version, exe in pythons:
            def cli(*args):
                proc = subprocess.run(
                    [exe, tej_py] + self.args(*args), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=self.tmp)
                self.assertEqual(proc.returncode, 0, (version, args, proc))
                return proc.stdout.decode()
            job_id = 'py%d%d' % version
            self.assertEqual(cli('submit', d, '--id', job_id, job),
                             job_id + '\n')
            wait_for(lambda: cli('status', d, '--id', job_id),
                     lambda out: out == 'finished 0\n',
                     what='the job of %s' % (version,))
            self.assertEqual(cli('download', d, '--id', job_id, '_stdout',
                                 '--destination', job_id), '')
            with open(os.path.join(self.tmp, job_id)) as fp:
                self.assertEqual(fp.read(), './start.sh ok\n')
            self.assertIn('%s finished' % job_id, cli('list', d))
            self.assertEqual(cli('delete', d, '--id', job_id), '')

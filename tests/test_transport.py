"""The transports: ssh's outcomes and the retries they get, against a stub
ssh (what a real sshd cannot do on demand); then end to end through a real
OpenSSH server (see support.SSHServer): the job scenario, the command line
with its exact output, round trips, ssh failures, the shared connection,
passwords and ProxyJump, and the oldest and newest Pythons.
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
import threading
import time
import unittest
from unittest import mock

from . import support
from .scenario import CommandLineScenario, Scenario
from .support import ServerCase as SSHCase, tej, run_cli, wait_for, need

setUpModule = support.ssh_module


class TestScenarioOverSSH(Scenario, SSHCase):
    def base_dir(self):
        return self.remote

    def make_queue(self, path):
        return self.server.queue(path)

    def own(self, path):
        os.chown(path, self.server.uid, self.server.gid)


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


class TestLoginNoise(SSHCase):
    """What a login shell's files print ahead of every command, with no
    newline after it (a "Loading modules..." of .bashrc, a terminal title
    escape of .profile): each command works, and a submit makes its job
    once and says so.
    """

    noises = {
        'banner': "printf 'Loading modules...'\n",
        'title': "printf '\\033]0;title\\007'\n",
        'both': "printf 'motd\\n\\033]0;title\\007Loading...'\n"
                "printf 'to stderr' >&2\n",
    }

    def test_commands_through_noise(self):
        job = self.job('job', {'start.sh': 'echo ran >> ../../../ran\n'
                                           'echo hi > out.txt\n'})
        for name, rc in sorted(self.noises.items()):
            with self.subTest(noise=name):
                alias = 'tejtest-noise-' + name
                if not os.path.exists(self.server.path('rc_' + alias)):
                    self.server.login_alias(alias, rc)
                queue = os.path.join(self.remote, name)
                args = ['--queue', queue]
                code, out, err = self.cli('setup', alias, *args)
                self.assertEqual((code, out), (0, ''), err)
                code, out, err = self.cli('submit', alias, job, '--id', 'j',
                                          *args)
                self.assertEqual((code, out), (0, 'j\n'), err)
                code, out, err = self.cli('wait', alias, '--id', 'j', *args)
                self.assertEqual(code, 0, err)
                code, out, err = self.cli('status', alias, '--id', 'j',
                                          *args)
                self.assertEqual((code, out), (0, 'finished 0\n'), err)
                code, out, err = self.cli('list', alias, *args)
                self.assertEqual((code, out.split()[:1]), (0, ['j']), err)
                code, out, err = self.cli('logs', alias, '--id', 'j', *args)
                self.assertEqual(code, 0, err)
                into = os.path.join(self.tmp, name)
                os.mkdir(into)
                code, out, err = self.cli('download', alias, '--id', 'j',
                                          'out.txt', '--directory', into,
                                          *args)
                self.assertEqual(code, 0, err)
                with open(os.path.join(into, 'out.txt')) as fp:
                    self.assertEqual(fp.read(), 'hi\n')
                # content ids, and run's re-attaching
                for _ in range(2):
                    code, out, err = self.cli('run', alias, job, '--keep',
                                              *args)
                    self.assertEqual(code, 0, err)
                self.assertEqual(len(os.listdir(os.path.join(queue, 'jobs'))),
                                 2)
                with open(os.path.join(queue, 'ran')) as fp:
                    self.assertEqual(fp.read(), 'ran\nran\n')


    def test_server_stderr_shows_no_escapes(self):
        # what the server says goes to the terminal as text: no clipboard
        # write (OSC 52), no screen cleared; the job's own output as it is
        alias = 'tejtest-noise-escapes'
        if not os.path.exists(self.server.path('rc_' + alias)):
            self.server.login_alias(
                alias, "printf '\\033]52;c;ZXZpbA==\\007\\033[2J"
                       "\\302\\233H\\r\\nok\\tthen\\n' >&2\n")
        job = self.job('job', {'start.sh': "printf '\\033[1mbold\\n'\n"
                                           "printf '\\033[2J' >&2\n"})
        for argv in (('submit', alias, job, '--id', 'j'),
                     ('wait', alias, '--id', 'j'),
                     ('status', alias, '--id', 'nosuch'),
                     ('logs', alias, '--id', 'j'),
                     ('download', alias, '--id', 'j', 'missing')):
            code, out, err = self.cli(*argv)
            self.assertIn(code, (0, 1, 125), err)
            self.assertNotIn('\x1b', err, argv)
            self.assertNotIn('\x9b', err, argv)
            if argv[0] in ('submit', 'wait', 'logs'):  # they succeed
                self.assertIn(
                    '\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\x9bH\nok\tthen',
                    err, argv)
            if argv[0] == 'logs':
                self.assertEqual(out, '\x1b[1mbold\n')


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

    def test_bad_options_fail_at_once(self):
        # an ssh option or configuration file that ssh refuses is a
        # mistake to mend, said at once (exit 125 where the status is the
        # job's): not a lost connection, which wait, logs and run try
        # again for TEJ_RETRY_FOR seconds
        q = self.queue()
        job = self.job('job', {'start.sh': 'true\n'})
        q.submit('j', job)
        q.wait('j')
        with open(self.server.config) as fp:
            config = fp.read()
        files = {}
        for name, line in (('unknown', 'NoSuchOption 1'),
                           ('time', 'ConnectTimeout soon')):
            files[name] = os.path.join(self.tmp, name)
            with open(files[name], 'w') as fp:
                fp.write(config + '  %s\n' % line)
        missing = os.path.join(self.tmp, 'missing')
        cases = [
            (['-o', 'NoSuchOption=1'], 'Bad configuration option: '
                                       'nosuchoption'),
            (['-o', 'ConnectTimeout=soon'], 'line 0: invalid time value'),
            (['-o', 'Compression'], 'no argument after keyword'),
            (['-F', missing], "Can't open user config file %s" % missing),
            (['-F', files['unknown']], '%s: line %d: Bad configuration '
             'option: nosuchoption' % (files['unknown'],
                                       config.count('\n') + 1)),
            (['-F', files['time']], '%s line %d: invalid time value'
             % (files['time'], config.count('\n') + 1)),
        ]
        commands = [(125, ['wait', self.dest, '--id', 'j']),
                    (1, ['logs', self.dest, '--id', 'j', '--follow']),
                    (125, ['run', self.dest, job])]
        env = dict(os.environ, TEJ_RETRY_FOR='300')
        calls = []
        for options, says in cases:
            for code, argv in commands:
                # (ssh takes the first -F: the test's own is left out)
                argv = argv + options + ['--queue', self.queue_path] + (
                    [] if options[0] == '-F' else ['-F', self.server.config])
                # all at once: each starts a Python
                calls.append((argv, code, says, subprocess.Popen(
                    [sys.executable, os.path.join(support.TOP, 'tej.py')]
                    + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=env)))
                self.addCleanup(calls[-1][-1].kill)
        deadline = time.monotonic() + 60
        for argv, code, says, proc in calls:
            try:
                out, err = proc.communicate(
                    timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.fail("%s: still trying after 60 s" % argv)
            err = err.decode()
            self.assertEqual((proc.returncode, out), (code, b''),
                             (argv, err))
            self.assertRegex(err, r'\Atej: error: ssh cannot use its '
                             r'options or configuration: [^\n]*\n\Z')
            self.assertIn(says, err)
        self.assertEqual(q.info('j')['state'], 'finished')

    def test_dead_master_is_replaced(self):
        q = self.queue()
        q.setup()
        self.assertTrue(q._transport.master.check())
        masters = self.server.masters(q)
        self.assertEqual(len(masters), 1)
        os.kill(masters[0], signal.SIGKILL)
        wait_for(q._transport.master.check, lambda up: not up,
                 what='the master to die')
        with self.assertRaises(tej.JobNotFound):
            q.status('x')
        self.assertTrue(q._transport.master.check())

    def test_stale_socket(self):
        q = self.queue(multiplex=True)
        q.close()
        # a socket file that nothing listens on
        import socket
        path = q._transport.master.path
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.close()
        q.setup()
        self.assertTrue(q._transport.master.check())

    def test_no_multiplex(self):
        q = tej.RemoteQueue(self.dest, self.queue_path,
                            ssh_options=self.server.options +
                            ['-o', 'ServerAliveCountMax=5'], multiplex=False)
        q.setup()
        self.assertEqual(list(q.list()), [])
        self.assertFalse(os.path.exists(q._transport.master.path))


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
            self.assertTrue(q._transport.master.path.startswith(odd + '/'))
            self.assertTrue(os.path.exists(q._transport.master.path))
            self.assertTrue(q._transport.master.check(), variable)
            self.assertEqual(len(self.server.masters(q)), 1)
            self.assertEqual(list(q.list()), [])
            q.close()
            wait_for(lambda: not os.path.exists(q._transport.master.path),
                     what='the master to exit')


class TestSSHLogs(SSHCase):
    def test_logs_of_a_killed_client_are_removed(self):
        # ssh's log (-E) is the client's to remove once it has read it; a
        # client killed before that leaves it, and the next one removes it
        q = self.queue()
        q.submit('j', self.job('j', {'start.sh': 'sleep 1000\n'}))
        self.addCleanup(q.kill, 'j')
        tej_py = os.path.join(support.TOP, 'tej.py')
        follow = subprocess.Popen(
            [sys.executable, tej_py] + self.args('logs', self.dest, '--id',
                                                 'j', '--follow'),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        directory = tej._control_dir()

        def logs_of(pid):
            return glob.glob(os.path.join(directory, 'ssh-%s-%d-*.log' % (
                tej._log_host(), pid)))
        left = wait_for(lambda: logs_of(follow.pid),
                        what='the client to start ssh')
        follow.kill()
        follow.wait()
        self.assertTrue(all(os.path.exists(log) for log in left))
        # a live process's stays, and another host's (a home that hosts
        # share)
        live = subprocess.Popen(['sleep', '1000'])
        self.addCleanup(live.wait)
        self.addCleanup(live.kill)
        kept = [os.path.join(directory, name % (tej._log_host(), pid))
                for name, pid in (('ssh-%s-%d-x.log', live.pid),
                                  ('ssh-%s.elsewhere-%d-x.log', 999999999))]
        for log in kept:
            open(log, 'w').close()
            self.addCleanup(os.unlink, log)
        subprocess.run([sys.executable, tej_py] +
                       self.args('status', self.dest, '--id', 'j'),
                       stdout=subprocess.DEVNULL, check=True)
        self.assertEqual([log for log in left if os.path.exists(log)], [])
        self.assertTrue(all(os.path.exists(log) for log in kept))


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


@support.one_process("password", "the test user's password, "
                     "which each sets for its time")
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


@support.one_process("password", "the test user's password, "
                     "which each sets for its time")
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


#: What ssh writes in its log (-E) for each kind of failure, as OpenSSH 9
#: words it, and the outcome _classify_ssh must give it.
SSH_LOGS = [
    (tej._SSH_REFUSED, 'mux_client_request_session: session request '
                       'failed: Session open refused by peer\n'),
    (tej._SSH_MUX, 'Control socket connect(/run/tej/0123456789abcdef): '
                   'Connection refused\n'),
    (tej._SSH_MUX, 'mux_client_hello_exchange: write packet: Broken pipe\n'),
    (tej._SSH_EARLY, 'kex_exchange_identification: read: Connection reset '
                     'by peer\nConnection reset by 127.0.0.1 port 22\n'),
    (tej._SSH_EARLY, 'kex_exchange_identification: Connection closed by '
                     'remote host\n'),
    (tej._SSH_HOST_KEY, 'No ED25519 host key is known for host and you have '
                        'requested strict checking.\nHost key verification '
                        'failed.\n'),
    (tej._SSH_HOST_KEY, '@    WARNING: REMOTE HOST IDENTIFICATION HAS '
                        'CHANGED!     @\n'),
    (tej._SSH_AUTH, 'user@host: Permission denied (publickey,password).\n'),
    (tej._SSH_AUTH, 'Received disconnect from 10.1.2.3 port 22:2: Too many '
                    'authentication failures\n'),
    (tej._SSH_LOST, 'ssh: connect to host host port 22: Connection timed '
                    'out\n'),
    (tej._SSH_LOST, 'Connection to host closed by remote host.\n'),
    (tej._SSH_LOST, 'client_loop: send disconnect: Broken pipe\n'),
    # the shared connection broke during the session: the command may have
    # run, so it is not tried again
    (tej._SSH_LOST, 'mux_client_request_session: read from master failed: '
                    'Broken pipe\n'),
    (tej._SSH_LOST, ''),
    # ssh refuses its options (-o: on stderr) or its configuration (-F: in
    # its log), whatever the option
    (tej._SSH_CONFIG, 'command-line: line 0: Bad configuration option: '
                      'nosuchoption\n'),
    (tej._SSH_CONFIG, 'command-line line 0: invalid time value.\n'),
    (tej._SSH_CONFIG, 'command-line line 0: no argument after keyword '
                      '"compression"\n'),
    (tej._SSH_CONFIG, 'command-line line 0: Invalid ProxyJump "a:b:c"\n'),
    (tej._SSH_CONFIG, 'Invalid -J argument\n'),
    (tej._SSH_CONFIG, "Can't open user config file /nonexistent/cfg: No "
                      "such file or directory\n"),
    (tej._SSH_CONFIG, '/home/u/cfg line 2: invalid time value.\n'
                      '/home/u/cfg: terminating, 1 bad configuration '
                      'options\n'),
    # a login script's complaint before the connection broke is no
    # configuration of ssh's
    (tej._SSH_LOST, '/home/u/.bashrc: line 3: module: command not found\n'
                    'Connection to host closed by remote host.\n'),
]


class TestClassifySSH(unittest.TestCase):
    def test_outcomes(self):
        for outcome, log in SSH_LOGS:
            self.assertEqual(tej._classify_ssh(255, log), outcome, log)

    def test_other_codes_ran(self):
        for code in (0, 1, 2, 90, 254):
            self.assertEqual(tej._classify_ssh(code, SSH_LOGS[0][1]),
                             tej._SSH_RAN)

    def test_retried_outcomes(self):
        self.assertEqual(set(tej._SSH_RETRIED),
                         {tej._SSH_REFUSED, tej._SSH_MUX, tej._SSH_EARLY})


#: A stand-in for ssh: the Nth call (-O requests apart) writes the Nth
#: line of $STUB_PLAN to its -E log and exits 255; once the plan is used
#: up, it runs the remote command here (a login without one succeeds).
#: Each call appends its ControlMaster option (no, auto, yes) to
#: $STUB_CALLS, and its arguments, one line, to $STUB_ARGS; -O requests
#: fail (there is no master), and so does the start of the shared
#: connection ("-o BatchMode=yes ... -N -f", counted in $STUB_CALLS.master);
#: with $STUB_MASTER set, that makes the control socket (a plain file)
#: instead.
STUB_SSH = r"""case " $* " in
    *" -o BatchMode=yes "*" -N -f "*)
        echo start >> "$STUB_CALLS.master"
        [ -n "${STUB_MASTER:-}" ] || exit 1
        for a do
            case $a in ControlPath=*) a=${a#*\"}; : > "${a%\"}" ;; esac
        done
        exit 0 ;;
esac
printf '%s\n' "$*" >> "$STUB_ARGS"
master=
while [ "$#" -gt 0 ]; do
    case $1 in
        -E) shift ;;
        -o) case $2 in ControlMaster=*) master=${2#*=} ;; esac; shift ;;
        -O) exit 1 ;;
        --) shift; break ;;
    esac
    shift
done
echo "$master" >> "$STUB_CALLS"
n=$(wc -l < "$STUB_CALLS")
failure=$(sed -n "${n}p" "$STUB_PLAN")
if [ -n "$failure" ]; then
    printf '%s\n' "$failure" >> "$TEJ_SSH_LOG"
    exit 255
fi
[ "$#" -ge 2 ] || exit 0
exec sh -c "$2"
"""


class TestRetryLoop(unittest.TestCase):
    """The transport's retries, against a stub ssh: which failures are
    tried again, and over which connection.
    """

    def setUp(self):
        self.tmp = support.temporary(self)
        support.stub_ssh(self, STUB_SSH)
        self.plan = os.path.join(self.tmp, 'plan')
        self.calls = os.path.join(self.tmp, 'calls')
        self.argv = os.path.join(self.tmp, 'argv')
        support.patch_env(self.addCleanup, STUB_PLAN=self.plan,
                          STUB_CALLS=self.calls, STUB_ARGS=self.argv)
        # the backoff between attempts, a thousandth of its own: the
        # attempts and their order are the same, without 9 s of waiting
        backoff = mock.patch.object(tej, '_SSH_BACKOFF',
                                    tej._SSH_BACKOFF / 1000)
        backoff.start()
        self.addCleanup(backoff.stop)

    def attempts(self, *failures):
        """Run one call after ``failures`` (log lines); return the
        ControlMaster option of each attempt.
        """
        with open(self.plan, 'w') as fp:
            fp.write(''.join(line + '\n' for line in failures))
        open(self.calls, 'w').close()
        queue = tej.RemoteQueue('stub', os.path.join(self.tmp, 'q'))
        try:
            self.assertEqual(list(queue.list()), [])
        except tej.QueueDoesntExist:
            pass  # the command ran
        with open(self.calls) as fp:
            return fp.read().split()

    def log(self, outcome):
        """The first line of a sample log of ``outcome`` (one a call)."""
        return next(log for o, log in SSH_LOGS if o == outcome).splitlines()[0]

    def test_refused_waits_then_takes_its_own_connection(self):
        refused = self.log(tej._SSH_REFUSED)
        self.assertEqual(self.attempts(refused), ['auto', 'auto'])
        shared = ['auto'] * tej._SHARED_REFUSALS
        self.assertEqual(self.attempts(*[refused] * tej._SHARED_REFUSALS),
                         shared + ['no'])

    def test_mux_failure_goes_around_the_shared_connection(self):
        # no live master (the stub's -O check fails): the socket is stale,
        # made again once; then a connection of its own
        mux = self.log(tej._SSH_MUX)
        self.assertEqual(self.attempts(mux), ['auto', 'auto'])
        self.assertEqual(self.attempts(mux, mux), ['auto', 'auto', 'no'])

    def test_early_drop_is_tried_again(self):
        early = self.log(tej._SSH_EARLY)
        self.assertEqual(self.attempts(early, early), ['auto'] * 3)

    def test_not_tried_again(self):
        for outcome, error in [(tej._SSH_AUTH, 'Authentication'),
                               (tej._SSH_HOST_KEY, 'host key'),
                               (tej._SSH_LOST, 'Cannot connect')]:
            with self.assertRaises(tej.Error) as ctx:
                self.attempts(self.log(outcome))
            self.assertIn(error, str(ctx.exception))
            with open(self.calls) as fp:
                self.assertEqual(len(fp.read().split()), 1, outcome)

    def test_login_and_control_requests_share_the_options(self):
        # tej login, -O check and -O exit are built as every call is: the
        # user's options, the log, the time-outs and the keep-alives
        open(self.plan, 'w').close()
        open(self.calls, 'w').close()
        queue = tej.RemoteQueue('stub', os.path.join(self.tmp, 'q'),
                                setup_runtime='default',
                                ssh_options=['-o', 'Compression=yes'])
        queue.setup()
        queue.login()
        open(queue._transport.master.path, 'w').close()
        self.assertFalse(queue._transport.master.check())  # stale
        self.assertFalse(os.path.exists(queue._transport.master.path))
        open(queue._transport.master.path, 'w').close()
        queue.logout()
        with open(self.argv) as fp:
            call, login, check, exit = fp.read().splitlines()
        common = ['-o Compression=yes -E ', ' -o ConnectTimeout=20 ',
                  ' -o ServerAliveInterval=15 -o ServerAliveCountMax=4 ',
                  ' -o ControlPath="%s" ' % queue._transport.master.path,
                  ' -- stub']
        for argv in (call, login, check, exit):
            for part in common:
                self.assertIn(part, argv)
        self.assertIn(' -o ControlMaster=yes ', login)
        self.assertRegex(login, r' -N -f -- stub\Z')
        # it asks, in the terminal, whatever ssh_config says; the user's
        # own -o options come first, and ssh keeps the first value
        self.assertIn(' -o BatchMode=no ', login)
        self.assertLess(login.index('Compression=yes'),
                        login.index('BatchMode=no'))
        self.assertIn(' -o BatchMode=yes ', call)
        # the shared connection that a call starts never asks
        started = queue._transport._argv('log', tej._MASTER, ['-N', '-f'])
        self.assertIn('BatchMode=yes', started)
        self.assertNotIn('BatchMode=no', started)
        self.assertIn(' -O check -- stub', check)
        self.assertIn(' -O exit -- stub', exit)

    def master_starts(self):
        try:
            with open(self.calls + '.master') as fp:
                return len(fp.read().split())
        finally:
            open(self.calls + '.master', 'w').close()

    def test_the_shared_connection_is_started_once_a_call(self):
        # it cannot start: the call goes on as ssh would (auto), once
        early = self.log(tej._SSH_EARLY)
        self.assertEqual(self.attempts(early, early), ['auto'] * 3)
        self.assertEqual(self.master_starts(), 1)
        # a starter that failed while this call waited: not tried again
        queue = tej.RemoteQueue('stub', os.path.join(self.tmp, 'q'))
        with open(queue._transport.master.path + '.lock', 'w') as fp:
            fp.write('failed %f\n' % (time.time() + 60))
        self.assertEqual(self.attempts(), ['auto'])
        self.assertEqual(self.master_starts(), 0)
        os.unlink(queue._transport.master.path + '.lock')

    def test_sessions_on_the_shared_connection_never_connect(self):
        # once the shared connection is there, a session it refuses is a
        # failure to try again, not a connection of ssh's own
        support.patch_env(self.addCleanup, STUB_MASTER='1')
        socket = tej.RemoteQueue('stub')._transport.master.path
        self.addCleanup(os.unlink, socket)
        refused = self.log(tej._SSH_REFUSED)
        open(self.argv, 'w').close()
        self.assertEqual(self.attempts(refused), ['no', 'no'])
        self.assertEqual(self.master_starts(), 1)
        with open(self.argv) as fp:
            for argv in fp.read().splitlines():
                self.assertIn(' -o ProxyCommand=false ', argv)
                self.assertNotIn('ControlPath=none', argv)
        # the socket is there: no start, no lock needed
        self.assertEqual(self.attempts(), ['no'])
        self.assertEqual(self.master_starts(), 0)
        # a proxy of the user's is left alone (it comes first, and -J
        # would clash with ProxyCommand)
        for options in (['-J', 'jump'], ['-o', 'ProxyJump=jump'],
                        ['-o', 'proxycommand nc %h %p']):
            open(self.argv, 'w').close()
            queue = tej.RemoteQueue('stub', os.path.join(self.tmp, 'q'),
                                    ssh_options=options)
            with self.assertRaises(tej.QueueDoesntExist):
                list(queue.list())
            with open(self.argv) as fp:
                argv = fp.read()
            self.assertNotIn('ProxyCommand=false', argv)
            self.assertIn('ControlMaster=auto', argv)

    def test_control_path_is_one_word_without_tokens(self):
        W = tej._ssh_config_word
        self.assertEqual(W('/tmp/a b/%h'), '"/tmp/a b/%%h"')
        self.assertEqual(W('/x\\"y'), '"/x\\\\\\"y"')

    def test_login_failure_says_why(self):
        with open(self.plan, 'w') as fp:
            fp.write(self.log(tej._SSH_AUTH) + '\n')
        open(self.calls, 'w').close()
        queue = tej.RemoteQueue('stub', os.path.join(self.tmp, 'q'))
        with self.assertRaises(tej.Error) as ctx:
            queue.login()
        self.assertIn('Authentication to ssh://stub failed', str(ctx.exception))
        open(self.calls, 'w').close()  # the plan again
        code, out, err = run_cli('login', 'stub')
        self.assertEqual((code, out), (1, ''))
        self.assertRegex(err, r'\Atej: error: Authentication to ssh://stub '
                              r'failed[^\n]*\n\Z')

    def test_gives_up_after_the_attempts(self):
        early = self.log(tej._SSH_EARLY)
        with self.assertRaises(tej.ConnectionLost) as ctx:
            self.attempts(*[early] * tej._SSH_ATTEMPTS)
        self.assertEqual(str(ctx.exception),
                         'Cannot connect to ssh://stub: ' + early)
        with open(self.calls) as fp:
            self.assertEqual(len(fp.read().split()), tej._SSH_ATTEMPTS)


class TestNoSecondSend(unittest.TestCase):
    """ssh exits 255 after the session broke ("read from master failed"):
    the command may have run on the server. It is not sent again.
    """

    def setUp(self):
        self.tmp = support.temporary(self)
        self.count = os.path.join(self.tmp, 'execs')
        # a session that broke: its message in the -E file
        support.stub_ssh(
            self,
            'case " $* " in *" -O "*|*" -N "*) exit 255 ;; esac\n'
            'echo exec >> "%s"\n'
            'echo "read from master failed: Broken pipe" >> "$TEJ_SSH_LOG"\n'
            'exit 255\n' % self.count)
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


class TestFeeder(unittest.TestCase):
    def test_a_stuck_producer_holds_nothing_up(self):
        # a call's input whose producer is stuck in a read (a file on a hung
        # network file system): the call ends with its process, the feeder
        # left behind after _FEEDER_WAIT
        release = threading.Event()
        self.addCleanup(release.set)

        def producer(pipe):
            release.wait(120)
        with mock.patch.object(tej, '_FEEDER_WAIT', 1):
            started = time.monotonic()
            proc = tej._start_call(
                subprocess.Popen, ['sh', '-c', 'exit 3'],
                ['q', '1', 'submit'], producer, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            code, _, _ = tej._communicate(proc, 'submit', 60)
        self.assertEqual(code, 3)
        self.assertLess(time.monotonic() - started, 30)
        self.assertTrue(proc.feeder.is_alive())

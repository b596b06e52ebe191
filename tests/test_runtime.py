"""The runtime scripts, run directly on this machine (the local:
destination) under every POSIX shell: dash, bash --posix, busybox sh (also
with a PATH of busybox applets only, which has no nohup), mksh, yash, posh.
And shellcheck -s sh on them.
"""

import collections
import io
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import unittest
from unittest import mock

from . import support
from .scenario import (CommandLineScenario, Scenario, read_state,
                       token_processes)
from .support import LocalCase, tej, need, wait_for, wait_state, which

# name -> command line of the shell
SHELLS = {
    'dash': ['dash'],
    'bash': ['bash', '--posix'],
    'busybox': ['busybox', 'sh'],
    'mksh': ['mksh'],
    'yash': ['yash'],
    'posh': ['posh'],
}


def shell_wrapper(name):
    """A one-word command for a shell with arguments (TEJ_SH is one word)."""
    argv = SHELLS[name]
    if len(argv) == 1:
        return which(argv[0])
    path = os.path.join(support.Hermetic.start(), 'sh-%s' % name)
    if not os.path.exists(path):
        with open(path, 'w') as fp:
            fp.write('#!/bin/sh\nexec %s "$@"\n' % ' '.join(
                [which(argv[0])] + argv[1:]))
        os.chmod(path, 0o755)
    return path


class LocalScenario(Scenario):
    """The scenario through local:, with TEJ_SH set to the shell."""

    shell = None

    def setUp(self):
        need('shells', which(SHELLS[self.shell][0]),
             "%s is not installed" % self.shell)
        support.patch_env(self.addCleanup, TEJ_SH=shell_wrapper(self.shell))
        super(LocalScenario, self).setUp()

    def base_dir(self):
        path = os.path.join(self.tmp, 'server')
        os.makedirs(path, exist_ok=True)
        return path

    def make_queue(self, path):
        return tej.RemoteQueue('local:', path)


def _shell_case(name):
    return type('Test_%s' % name, (LocalScenario, unittest.TestCase),
                {'shell': name})


for _name in SHELLS:
    globals()['Test_%s' % _name] = _shell_case(_name)
del _name


def busybox_bin():
    """A directory of busybox's applets only (made once a run), for PATH."""
    busybox = which('busybox')
    need('shells', busybox, "busybox is not installed")
    bindir = os.path.join(support.Hermetic.start(), 'busybox-bin')
    if not os.path.isdir(bindir):
        os.mkdir(bindir)
        applets = subprocess.run([busybox, '--list'],
                                 stdout=subprocess.PIPE).stdout.split()
        for applet in applets:
            os.symlink(busybox, os.path.join(bindir, applet.decode()))
    return bindir


class Test_busybox_only(LocalScenario, unittest.TestCase):
    """busybox sh with nothing but busybox applets on PATH: no nohup, the
    busybox flavours of tar, ps, date, kill.
    """

    shell = 'busybox'

    def setUp(self):
        bindir = busybox_bin()
        self.assertFalse(os.path.exists(os.path.join(bindir, 'nohup')))
        super(Test_busybox_only, self).setUp()
        support.patch_env(self.addCleanup, TEJ_SH='sh', PATH=bindir)


class TestCommandLineLocal(CommandLineScenario, unittest.TestCase):
    """The command line scenario through local:."""

    dest = 'local:'
    cli_extra = []

    def setUp(self):
        self.tmp = support.temporary(self)

    def remote_dir(self):
        return tempfile.mkdtemp(dir=self.tmp)

    def processes(self, pattern):
        """This test's processes (working in its directory) whose command
        line or working directory has ``pattern``.
        """
        return [p.pid for p in support.processes(
            lambda p: (pattern in p.args or pattern in p.cwd) and
            p.cwd.startswith(self.tmp + '/'))]


def local_queue(test, script):
    """A temporary directory (removed after ``test``), a job in it whose
    start.sh is ``script``, and a queue in it through local:.
    """
    base = support.temporary(test)
    job = support.make_tree(os.path.join(base, 'job'), {'start.sh': script})
    return base, job, tej.RemoteQueue('local:', os.path.join(base, 'q'))


class TestReboot(unittest.TestCase):
    def test_job_of_another_boot_is_lost(self):
        _, job, q = local_queue(self, 'sleep 1000\n')
        q.submit('j', job)
        stage = q.info('j')['dir']
        state = support.wait_for(lambda: read_state(stage),
                                 lambda s: s.get('pgid'),
                                 what='the job to record its group')
        self.assertEqual(q.info('j')['state'], 'running')
        path = os.path.join(os.path.dirname(stage), 'state')
        with open(path) as fp:
            text = fp.read()
        with open(path, 'w') as fp:
            fp.write(text.replace('boot=' + state['boot'],
                                  'boot=another-boot'))
        self.assertEqual(q.info('j')['state'], 'lost')
        q.delete('j')
        os.killpg(int(state['pgid']), 9)


class Test_no_setsid(LocalScenario, unittest.TestCase):
    """dash with every command of /usr/bin and /bin but setsid (as on BSD
    and macOS): the job shares its caller's process group, and kill must
    reach the job's processes only.
    """

    shell = 'dash'

    def setUp(self):
        bindir = support.bin_without('setsid')
        super(Test_no_setsid, self).setUp()
        support.patch_env(self.addCleanup, PATH=bindir)


class TestWalltime(unittest.TestCase):
    """The default runtime enforces walltime itself, runs the prologue, and
    refuses the options it cannot honour.
    """

    def test_walltime_prologue_and_refusals(self):
        base, job, q = local_queue(
            self, 'trap "echo after >&2; exit 143" TERM\n'
                  'echo "$X"; echo before >&2; sleep 1000 & wait\n')
        q.submit('w', job, walltime=1, prologue='X=from-prologue; export X')
        record = support.wait_state(q, 'w', timeout=30)
        self.assertEqual((record['state'], record['exit']), ('killed', 143))
        dest = os.path.join(base, 'out')
        q.download('w', '_stdout', destination=dest)
        with open(dest) as fp:
            self.assertEqual(fp.read(), 'from-prologue\n')
        # _stderr says why, and what the job wrote after it stays
        q.download('w', '_stderr', destination=dest)
        with open(dest) as fp:
            self.assertEqual(fp.read(), 'before\ntej: the time limit (walltime '
                                        '1 s) is reached: the job is '
                                        'stopped\nafter\n')
        for option in [{'cpus': 2}, {'mem': '1G'}, {'partition': 'p'},
                       {'account': 'a'}, {'gpus': 1},
                       {'scheduler_args': ['--x']}]:
            with self.assertRaises(tej.Error) as ctx:
                q.submit(None, job, **option)
            self.assertIn('cannot honour', str(ctx.exception))
        for bad in [{'walltime': 'soon'}, {'cpus': 0}, {'mem': 'lots'},
                    {'partition': 'a b'}, {'scheduler_args': ['a\nb']}]:
            with self.assertRaises(ValueError):
                q.submit(None, job, **bad)
        self.assertEqual([i for i, _ in q.list()], ['w'])

    def test_walltime_reaches_escaped_processes(self):
        # the time limit stops what left the job's group (setsid) too
        setsid = shutil.which('setsid', path='/usr/bin:/bin')
        base, job, q = local_queue(self, '%s sleep 1000 &\nsleep 1001\n'
                                   % setsid)
        q.submit('e', job, walltime=1)
        token = support.wait_for(
            lambda: (support.read_record(os.path.join(base, 'q'), 'e') or
                     {}).get('token'),
            what='the job to start').encode()
        self.addCleanup(lambda: [os.kill(pid, signal.SIGKILL)
                                 for pid in token_processes(token)])
        self.assertEqual(support.wait_state(q, 'e', timeout=30)['state'],
                         'killed')
        wait_for(lambda: not token_processes(token),
                 what='every process of the job to end')

    def test_walltime_formats(self):
        self.assertEqual(tej._walltime('1-02:03:04'), 93784)
        self.assertEqual(tej._walltime('02:03:04'), 7384)
        self.assertEqual(tej._walltime('3:04'), 184)
        self.assertEqual(tej._walltime('90'), 90)
        self.assertEqual(tej._walltime(5), 5)


class TestCallerEnvironment(unittest.TestCase):
    def test_job_gets_the_callers_locale_and_umask(self):
        base, job, q = local_queue(
            self, 'echo "${LC_ALL-unset}"; umask; touch f\n')
        support.patch_env(self.addCleanup, LC_ALL=None)
        old = os.umask(0o022)
        try:
            q.submit('e', job)
        finally:
            os.umask(old)
        self.assertEqual(q.wait('e'), 0)
        dest = os.path.join(base, 'out')
        q.download('e', '_stdout', destination=dest)
        with open(dest) as fp:
            self.assertEqual(fp.read().split(), ['unset', '0022'])
        # its output files too (test_transport.TestFileModes: the uploaded ones)
        stage = q.info('e')['dir']
        for name in ('_stdout', '_stderr', 'f'):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(
                stage, name)).st_mode), 0o644, name)


class TestShellcheck(unittest.TestCase):
    def test_runtimes_are_clean(self):
        need('shells', which('shellcheck'), "shellcheck is not installed")
        runtimes = os.path.join(support.TOP, 'runtimes')
        files = sorted(os.path.join(runtimes, f) for f in os.listdir(runtimes)
                       if f.endswith('.sh'))
        proc = subprocess.run(['shellcheck', '-s', 'sh'] + files,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode())

    def test_bootstrap_is_clean(self):
        need('shells', which('shellcheck'), "shellcheck is not installed")
        proc = subprocess.run(['shellcheck', '-s', 'sh', '-'],
                              # a literal "~" is what it compares with;
                              # the prelude names every exit code, the
                              # bootstrap uses a few
                              input=b'# shellcheck disable=SC2088,SC2034\n' +
                              tej._BOOTSTRAP.encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(proc.returncode, 0, proc.stdout.decode())


# The shell of the local: transport; before a bootstrap that installs
# ("sh -c BOOTSTRAP tej QUEUE VERSIONS _install ..."), it makes $TAKEN.PID
# (PID: the bootstrap's own, which exec keeps) as another user could have,
# with a tej.sh of its own in it.
TAKEN_SHELL = r"""#!/bin/sh
# a call's line comes first on stdin (tej._READ_AND_RUN): read it here,
# take the name an install would use, and run the line as sh would
[ "$1" = -c ] || exec sh "$@"
IFS= read -r line
case $line in
    *" _install "[0-9]*)  # the verb, then the size it reads
        if mkdir "$TAKEN.$$" 2>/dev/null; then
            printf 'echo "not tej" >&2; exit 0\n' > "$TAKEN.$$/tej.sh"
        fi ;;
esac
exec sh -c "$line"
"""


class TestInstallDirectory(unittest.TestCase):
    """The runtime pushed by the client goes into a new directory no one
    else could have made first: mktemp -d's, or without mktemp, one beside
    the queue that mkdir makes (and that must not be there already).
    """

    def setUp(self):
        self.base = support.temporary(self)
        self.job = support.make_tree(os.path.join(self.base, 'job'),
                                     {'start.sh': 'exit 3\n'})
        self.queue_dir = os.path.join(self.base, 'q')

    def take(self, prefix):
        """Have the names PREFIX.PID taken before the bootstrap runs."""
        path = os.path.join(self.base, 'taken-sh')
        with open(path, 'w') as fp:
            fp.write(TAKEN_SHELL)
        os.chmod(path, 0o755)
        support.patch_env(self.addCleanup, TEJ_SH=path, TAKEN=prefix)

    @staticmethod
    def taken(where):
        """The names of the files in ``where`` that hold "tej-install."."""
        return sorted(n for n in os.listdir(where) if 'tej-install.' in n)

    def assert_untouched(self, where, names):
        """``names`` are the one directory made first, as it was."""
        self.assertEqual(len(names), 1, names)
        with open(os.path.join(where, names[0], 'tej.sh')) as fp:
            self.assertIn('not tej', fp.read())

    def test_a_taken_name_is_not_in_the_way(self):
        tmp = os.environ['TMPDIR']
        before = self.taken(tmp)
        self.take(os.path.join(tmp, 'tej-install'))
        q = tej.RemoteQueue('local:', self.queue_dir)
        q.setup()
        q.submit('j', self.job)
        self.assertEqual(q.wait('j'), 3)
        with open(os.path.join(self.queue_dir, 'version')) as fp:
            self.assertEqual(fp.read().strip(),
                             tej._runtime_version('default'))
        # no directory of the installs is left, the one made first is
        self.assert_untouched(tmp, [n for n in self.taken(tmp)
                                    if n not in before])

    def test_without_mktemp(self):
        support.patch_env(self.addCleanup, PATH=support.bin_without('mktemp'))
        q = tej.RemoteQueue('local:', self.queue_dir)
        q.submit('j', self.job)
        self.assertEqual(q.wait('j'), 3)
        self.assertEqual(sorted(os.listdir(self.base)), ['job', 'q'])
        # the name beside the queue is taken: mkdir refuses to use it
        self.take(os.path.join(self.base, '.tej-install'))
        other = os.path.join(self.base, 'other')
        with self.assertRaises(tej.Error) as ctx:
            tej.RemoteQueue('local:', other).setup()
        self.assertIn('directory', str(ctx.exception))
        self.assertFalse(os.path.exists(os.path.join(other, 'version')))
        self.assert_untouched(self.base, self.taken(self.base))


class TestStrictModes(LocalCase):
    """A queue, its tej.sh, a link file to it, that is not the user's or
    that others (its group, anyone) can write, is refused, as sshd's
    StrictModes refuses such a home: through the fast start (a call
    without input) and the whole bootstrap (with input, and through a
    link), with a message that says how to fix it. The user's own symlink
    to a queue is no reason. (Another's only as root, who can give it.)
    """

    def test_refused_until_fixed(self):
        q = self.queue()
        link = os.path.join(self.tmp, 'link')
        q.setup(links=[link])
        script = os.path.join(self.queue_dir, 'tej.sh')
        nobody = pwd.getpwnam('nobody').pw_uid
        for path, change, mode in [
                (self.queue_dir, 'g+w', 0o770), (self.queue_dir, 'o+w', 0o707),
                (self.queue_dir, 'owner', None), (script, 'g+w', 0o620),
                (script, 'owner', None), (link, 'o+w', 0o606),
                (link, 'owner', None)]:
            if mode is None and os.getuid() != 0:
                continue
            with self.subTest(path=os.path.basename(path), change=change):
                before = os.stat(path)
                if mode is None:
                    os.chown(path, nobody, -1)
                else:
                    os.chmod(path, mode)
                try:
                    for queue in [q, tej.RemoteQueue('local:', link)]:
                        if path == link and queue is q:
                            continue
                        for call in (lambda: queue.status('x'),
                                     lambda: queue.submit('x', self.job)):
                            with self.assertRaises(tej.Error) as ctx:
                                call()
                            self.assertIn('refusing %s' % path,
                                          str(ctx.exception))
                            self.assertIn('chmod go-w', str(ctx.exception))
                    self.assertEqual(os.listdir(os.path.join(
                        self.queue_dir, 'jobs')), [])
                finally:
                    os.chown(path, before.st_uid, -1)
                    os.chmod(path, before.st_mode & 0o7777)
                with self.assertRaises(tej.JobNotFound):
                    tej.RemoteQueue('local:', link).status('x')
        # the user's own symlink to the queue
        symlink = os.path.join(self.tmp, 'symlink')
        os.symlink(self.queue_dir, symlink)
        tej.RemoteQueue('local:', symlink).submit('s', self.job)
        self.assertEqual([i for i, _ in q.list()], ['s'])


class TestUserHome(unittest.TestCase):
    """A queue path "~NAME/..." is in user NAME's home, as in sh; a name
    that is not a plain user name never reaches the shell's expansion.
    """

    def test_unknown_and_invalid_users(self):
        home = os.path.expanduser('~')
        before = sorted(os.listdir(home))
        for queue, message in [
                ('~nosuchuser-tej/q', "no user nosuchuser-tej"),
                ('~nosuchuser-tej', "no user nosuchuser-tej"),
                ('~-/q', "invalid user name"),
                ('~a;touch pwned/q', "invalid user name"),
                ('~$(touch pwned)/q', "invalid user name"),
                ('~`touch pwned`', "invalid user name"),
                ('~a b/q', "invalid user name")]:
            for argv in (['status', 'local:', '--id', 'x'],
                         ['setup', 'local:']):
                with self.subTest(queue=queue, command=argv[0]):
                    code, out, err = support.run_cli(
                        *argv + ['--queue', queue])
                    self.assertEqual((code, out), (1, ''), err)
                    self.assertIn("tej: error: %s" % message, err)
        # nothing was made, in the home directory or elsewhere
        self.assertEqual(sorted(os.listdir(home)), before)
        self.assertFalse(os.path.exists('pwned'))

    def test_checked_on_the_server(self):
        # names the client refuses (a newline) are refused there too
        base = support.temporary(self)
        for queue in ['~root\n/q', '~root\n', '~a\nb/q']:
            proc = subprocess.run(
                ['sh', '-c', tej._BOOTSTRAP, 'tej', queue, 'none', 'status',
                 'x'], cwd=base, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            self.assertEqual(proc.returncode, 8, queue)
            self.assertIn(b'invalid user name', proc.stderr)
        self.assertEqual(os.listdir(base), [])

    def test_link_of_an_unknown_user(self):
        base = support.temporary(self)
        q = tej.RemoteQueue('local:', os.path.join(base, 'q'))
        with self.assertRaises(ValueError) as ctx:
            q.setup(links=['~nosuchuser-tej/link'])
        self.assertIn('no user nosuchuser-tej', str(ctx.exception))


@support.serial("times how soon the server answers")
class TestWaitAny(unittest.TestCase):
    """waitany, what the monitor asks: it returns as soon as one of the
    jobs has ended (or is not there), or after its seconds; under every
    shell.
    """

    def test_waitany(self):
        missing = [name for name, argv in SHELLS.items() if not which(argv[0])]
        # every shell at once, each in a thread: their waits overlap
        failures, threads = {}, []
        for name in SHELLS:
            if name in missing:
                continue
            base = support.temporary(self)
            # the shell of the queue's calls, and of the runtime's own
            # (TEJ_SH, which this process's environment cannot give each)
            shell = os.path.join(base, 'sh')
            with open(shell, 'w') as fp:
                fp.write('#!/bin/sh\nTEJ_SH=%s; export TEJ_SH\n'
                         'exec %s "$@"\n' % (shell, ' '.join(
                             [which(SHELLS[name][0])] + SHELLS[name][1:])))
            os.chmod(shell, 0o755)
            with mock.patch.dict(os.environ, TEJ_SH=shell):
                q = tej.RemoteQueue('local:', os.path.join(base, 'q'))
            threads.append((name, threading.Thread(
                target=self.check_in_thread, args=(q, base, name, failures))))
        for _, thread in threads:
            thread.start()
        for name, thread in threads:
            thread.join(120)
            with self.subTest(shell=name):
                self.assertFalse(thread.is_alive(), "still waiting")
                if failures[name]:
                    self.fail(failures[name])
        need('shells', not missing, "not installed: %s" % ', '.join(missing))

    def check_in_thread(self, q, base, name, failures):
        """`check`; what failed (a traceback) in ``failures[name]``."""
        try:
            self.check(q, base)
            failures[name] = None
        except Exception:
            failures[name] = traceback.format_exc()

    def check(self, q, base):
        job = support.make_tree(os.path.join(base, 'job'),
                                {'start.sh': 'true\n'})
        q.submit('slow', job, script='sleep 60')
        self.addCleanup(q.kill, 'slow')
        q.submit('fast', job, script='sleep 1')

        def waitany(seconds, *ids):
            start = time.monotonic()
            records = tej._parse_records(q._calls.call(
                'waitany', [str(seconds)] + list(ids), ok=(0, 3)))
            return ({r['id']: r['state'] for r in records},
                    time.monotonic() - start)
        # the fast one's end, whatever the order
        states, took = waitany(30, 'slow', 'fast')
        self.assertEqual(states, {'slow': 'running', 'fast': 'finished'})
        self.assertLess(took, 10)
        states, took = waitany(30, 'fast', 'slow')
        self.assertLess(took, 2)
        # none ends: after the seconds
        states, took = waitany(2, 'slow')
        self.assertEqual(states, {'slow': 'running'})
        self.assertGreaterEqual(took, 1)
        # one not there has ended too
        states, took = waitany(30, 'slow', 'gone')
        self.assertEqual(states, {'slow': 'running', 'gone': 'notfound'})
        self.assertLess(took, 2)
        # and wait still waits for all
        start = time.monotonic()
        records = tej._parse_records(q._calls.call(
            'wait', ['2', 'slow', 'fast'], ok=(0, 3)))
        self.assertEqual([r['state'] for r in records],
                         ['running', 'finished'])
        self.assertGreaterEqual(time.monotonic() - start, 1)


class TestRuntimeDirectly(unittest.TestCase):
    """Checks the runtime makes itself, whatever the client says."""

    def setUp(self):
        self.queue = support.temporary(self)
        self.script = os.path.join(self.queue, 'tej.sh')
        with open(self.script, 'w') as fp:
            fp.write(tej._runtime_script('default'))

    def run_sh(self, *args):
        proc = subprocess.run(['sh', self.script, self.queue] + list(args),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return proc.returncode, proc.stdout, proc.stderr

    def test_ids_checked_on_the_server(self):
        for bad in ['..', '../x', '-rf', '.x', 'a/b', 'a b', '$(id)', 'a\nb',
                    '', 'x' * 129]:
            code, out, err = self.run_sh('status', bad)
            self.assertEqual(code, 8, bad)
            code, out, err = self.run_sh('submit', bad, 'command', 'true')
            self.assertEqual(code, 8, bad)
        self.assertFalse(os.path.exists(os.path.join(self.queue, 'jobs', '..',
                                                     'x')))

    def test_memory_sizes_checked_on_the_server(self):
        # MB, or with a unit; the default runtime then refuses mem at all
        for bad in ['', 'lots', '4000b', '4 G', 'G', '-1', '4GG', '4\nG']:
            code, out, err = self.run_sh('submit', 'm', 'command', 'true',
                                         'mem=' + bad)
            self.assertEqual(code, 8, (bad, err))
        for good in ['4000', '500M', '4G', '4gb', '1t']:
            code, out, err = self.run_sh('submit', 'm', 'command', 'true',
                                         'mem=' + good)
            self.assertEqual(code, 9, (good, err))
        # and the client sends a bare number as it is
        self.assertEqual(tej._job_options(mem='4000'), ['mem=4000'])
        self.assertEqual(tej._job_options(mem=4000), ['mem=4000'])

    def test_paths_checked_on_the_server(self):
        os.makedirs(os.path.join(self.queue, 'jobs', 'j', 'stage'))
        # (as the client sends them, "./PATH", and as they are: what does
        # not start with "./" is refused for that alone)
        for bad in ['/etc/passwd', '../state', 'a/../../x', '', 'a/..',
                    './/x']:
            for path in (bad, './' + bad):
                for argv in (['download', 'j', '-', '0', path],
                             ['download', 'j', '-', '1', '10', '0', path,
                              './_x'],
                             ['_files', 'j', path]):
                    code, out, err = self.run_sh(*argv)
                    self.assertEqual(code, 8, (argv, err))
        for bad in (['x', '0'], ['10', '11'], ['', '0'], ['-1', '0']):
            code, out, err = self.run_sh('download', 'j', '-', '1', *(
                bad + ['f']))
            self.assertEqual(code, 8, (bad, err))

    def test_exit_codes_avoid_the_shells(self):
        code, out, err = self.run_sh('nonsense')
        self.assertEqual(code, 8)
        code, out, err = self.run_sh('status', 'none')
        self.assertEqual((code, out), (3, b'TEJ 1\nid=none\tstate=notfound\n'))

    def test_files_are_private(self):
        code, out, err = self.run_sh('list')
        self.assertEqual(code, 0)
        tmp = support.temporary(self)
        with open(os.path.join(tmp, 'start.sh'), 'w') as fp:
            fp.write('true\n')
        archive = os.path.join(tmp, 'a.tar')
        with open(archive, 'wb') as fp:
            tej._write_tar(tmp, fp)
        with open(archive, 'rb') as fp:
            proc = subprocess.run(['sh', self.script, self.queue, 'submit',
                                   'p', 'file', 'start.sh'], stdin=fp,
                                  stdout=subprocess.PIPE)
        self.assertEqual(proc.returncode, 0)
        mode = os.stat(os.path.join(self.queue, 'jobs', 'p')).st_mode
        self.assertEqual(stat.S_IMODE(mode) & 0o077, 0)


class TestCutUpload(unittest.TestCase):
    """An upload cut on a member's boundary is a good archive to GNU tar
    and to busybox's (both exit 0): the runtime makes no job of it, under
    every shell; one cut after its last member (tej.py's _WHOLE), before
    the end blocks, is whole.
    """

    def test_cut_on_a_boundary_makes_no_job(self):
        tmp = support.temporary(self)
        job = os.path.join(tmp, 'job')
        os.mkdir(job)
        for name in ('a', 'b', 'start.sh'):
            with open(os.path.join(job, name), 'w') as fp:
                fp.write('echo %s\n' % name)
        buf = io.BytesIO()
        tej._write_tar(job, buf)
        data = buf.getvalue()
        members = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
        self.assertEqual([m.name for m in members],
                         ['a', 'b', 'start.sh', tej._WHOLE])
        end = members[-1].offset_data + 512
        cuts = [m.offset for m in members] + [end]
        tars = [('gnu', os.environ['PATH'])]
        if which('busybox'):
            tars.append(('busybox', busybox_bin()))
        for shell in SHELLS:
            need('shells', which(SHELLS[shell][0]),
                 "%s is not installed" % shell)
            for tar, path in tars:
                queue = os.path.join(tmp, 'q-%s-%s' % (shell, tar))
                os.mkdir(queue)
                script = os.path.join(queue, 'tej.sh')
                with open(script, 'w') as fp:
                    fp.write(tej._runtime_script('default'))
                for cut in cuts:
                    whole = cut == end
                    with self.subTest(shell=shell, tar=tar, cut=cut):
                        job_id = 'c%d' % cut
                        proc = subprocess.run(
                            [which(SHELLS[shell][0])] + SHELLS[shell][1:] +
                            [script, queue, 'submit', job_id, 'command',
                             'true'], input=data[:cut],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PATH=path, TEJ_SH='sh'))
                        jobs = os.path.join(queue, 'jobs')
                        if whole:
                            self.assertEqual(proc.returncode, 0, proc.stderr)
                            # the mark is gone (the job may have run)
                            self.assertEqual(set(os.listdir(os.path.join(
                                jobs, job_id, 'stage'))) - {
                                    '_stdout', '_stderr'},
                                {'a', 'b', 'start.sh'})
                            continue
                        self.assertEqual(proc.returncode, 1, proc.stderr)
                        self.assertIn(b'the upload was cut short' if cut
                                      else b'could not unpack', proc.stderr)
                        self.assertEqual(os.listdir(jobs), [])
        # the mark's name is tej's own: a job directory may not have it
        with open(os.path.join(job, tej._WHOLE), 'w') as fp:
            fp.write('whole\n')
        with self.assertRaises(tej.Error) as ctx:
            tej._write_tar(job, io.BytesIO())
        self.assertIn("is tej's own", str(ctx.exception))


class TestCallOutput(unittest.TestCase):
    """A call's output closes when its shell exits, under every shell: no
    process that it leaves behind for an instant (a submission's beat loop,
    stopped as it ends) holds a copy of it, which an ssh session would wait
    for (a second at every submit, under mksh and posh, until the loop's
    nap was over).
    """

    def holders(self, pipe):
        """The pids of the other processes that have the pipe open."""
        link = 'pipe:[%d]' % os.fstat(pipe.fileno()).st_ino
        found = set()
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                fds = os.listdir('/proc/%s/fd' % pid)
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink('/proc/%s/fd/%s' % (pid, fd)) == link:
                        found.add(int(pid))
                except OSError:
                    pass
        return found - {os.getpid()}

    def test_nothing_keeps_it_open(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'true\n'})
        buf = io.BytesIO()
        tej._write_tar(job, buf)
        whole = buf.getvalue()
        for shell in SHELLS:
            need('shells', which(SHELLS[shell][0]),
                 "%s is not installed" % shell)
            queue = os.path.join(tmp, 'q-' + shell)
            os.mkdir(queue)
            script = os.path.join(queue, 'tej.sh')
            with open(script, 'w') as fp:
                fp.write(tej._runtime_script('default'))
            for upload, code in ((whole, 0), (whole[:512], 1)):
                with self.subTest(shell=shell, code=code):
                    proc = subprocess.Popen(
                        [which(SHELLS[shell][0])] + SHELLS[shell][1:] +
                        [script, queue, 'submit', 'j%d' % code, 'command',
                         'true'], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        env=dict(os.environ, TEJ_SH='sh'))
                    proc.stdin.write(upload)
                    proc.stdin.close()
                    self.assertEqual(proc.wait(timeout=30), code)
                    self.assertEqual(
                        (self.holders(proc.stdout),
                         self.holders(proc.stderr)), (set(), set()))
                    proc.stdout.close()
                    proc.stderr.close()


class TestScan(unittest.TestCase):
    """list and gc (common.sh's _scan: one awk for the ended jobs, sh for
    the others) under every shell, and with busybox's applets only.
    """

    def setUp(self):
        self.queue = support.temporary(self)
        self.script = os.path.join(self.queue, 'tej.sh')
        with open(self.script, 'w') as fp:
            fp.write(tej._runtime_script('default'))

    def job(self, job_id, **fields):
        path = os.path.join(self.queue, 'jobs', job_id)
        os.makedirs(os.path.join(path, 'stage'))
        if fields:
            keys = ('state exit submitted started finished pid pgid boot '
                    'killreq runtime runtime_id mode token').split()
            with open(os.path.join(path, 'state'), 'w') as fp:
                fp.write(''.join('%s=%s\n' % (k, fields.get(k, ''))
                                 for k in keys))
        return path

    def populate(self):
        now = int(time.time())
        day = 86400
        self.job('f-old', state='finished', exit=0, submitted=now - 3 * day,
                 started=now - 3 * day, finished=now - 2 * day)
        self.job('f-new', state='finished', exit=1, submitted=now - 100,
                 started=now - 90, finished=now - 80)
        self.job('k-old', state='killed', exit=143, submitted=now - 5 * day)
        self.job('l-old', state='lost', submitted=now - 5 * day,
                 started=now - 4 * day)
        # sh's: recorded running, its process gone (lost); no record and
        # no lock (a submission that died: lost, of old); a lock of a live
        # submitter (created); queued, whose runtime says nothing (stays)
        self.job('r-gone', state='running', submitted=now - 9 * day,
                 started=now - 9 * day, pid=999999999)
        self.job('c-dead')
        creating = self.job('c-live')
        # a live tej.sh, as _pid_gone wants (and its sleep, killed with it)
        holder = subprocess.Popen(['sh', '-c', 'sleep 1000; :', self.script],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.addCleanup(holder.wait)
        self.addCleanup(os.killpg, holder.pid, 9)
        support.plant_lock(os.path.join(creating, 'lock'),
                           '%s:%d' % (os.uname()[1], holder.pid), now)
        self.job('q-old', state='queued', submitted=now - 9 * day)
        # not jobs
        os.makedirs(os.path.join(self.queue, 'jobs', '.new.host.1'))
        os.makedirs(os.path.join(self.queue, 'jobs', 'a b'))
        os.makedirs(os.path.join(self.queue, 'jobs', 'a\\cb'))

    def run_sh(self, shell, *args, env=None):
        argv = [which(SHELLS[shell][0])] + SHELLS[shell][1:]
        proc = subprocess.run(argv + [self.script, self.queue] +
                              list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env)
        return proc.returncode, proc.stdout, proc.stderr

    def states(self, shell, *args, env=None):
        code, out, err = self.run_sh(shell, *args, env=env)
        self.assertEqual(code, 0, (shell, args, err))
        records = tej._parse_records(tej._split_answer(out))
        return {r['id']: r['state'] for r in records}

    def check_shell(self, shell, env=None):
        self.populate()
        everything = {'f-old': 'finished', 'f-new': 'finished',
                      'k-old': 'killed', 'l-old': 'lost', 'r-gone': 'lost',
                      'c-dead': 'lost', 'c-live': 'created',
                      'q-old': 'queued'}
        states = lambda *a: self.states(shell, *a, env=env)  # noqa: E731
        self.assertEqual(states('list'), everything)
        self.assertEqual(states('list', 'state=lost', 'state=created'), {
            'l-old': 'lost', 'r-gone': 'lost', 'c-dead': 'lost',
            'c-live': 'created'})
        self.assertEqual(states('list', 'since=3600'), {
            'f-new': 'finished', 'c-live': 'created'})
        for bad in (['gc'], ['gc', 'x'], ['gc', '1', 'state=running'],
                    ['gc', '1', 'state=created'], ['gc', '1', 'soon'],
                    ['list', 'since=x'], ['list', 'state=done'],
                    ['list', 'dry']):
            code, out, err = self.run_sh(shell, *bad, env=env)
            self.assertEqual(code, 8, (shell, bad, err))
        # the lost ones ended when they were found lost: just now, by the
        # first list (see test_a_lost_job_ages_from_when_it_was_found_lost)
        ended_old = {'f-old': 'finished', 'k-old': 'killed'}
        lost = {'l-old': 'lost', 'r-gone': 'lost', 'c-dead': 'lost'}
        self.assertEqual(states('gc', '86400', 'dry'), ended_old)
        self.assertEqual(states('gc', '0', 'state=lost', 'dry'), lost)
        self.assertEqual(sorted(os.listdir(os.path.join(self.queue,
                                                        'jobs'))),
                         sorted(list(everything) + ['.new.host.1', 'a b',
                                                    'a\\cb']))
        self.assertEqual(states('gc', '86400', 'state=killed'),
                         {'k-old': 'killed'})
        self.assertEqual(states('gc', '86400'), {'f-old': 'finished'})
        self.assertEqual(sorted(os.listdir(os.path.join(self.queue,
                                                        'jobs'))),
                         sorted(['.new.host.1', 'a b', 'a\\cb', 'c-live',
                                 'f-new', 'q-old'] + list(lost)))
        self.assertEqual(states('gc', '0'), dict(lost, **{'f-new':
                                                          'finished'}))
        self.assertEqual(states('list'), {'c-live': 'created',
                                          'q-old': 'queued'})
        # no temporary file left
        self.assertEqual(sorted(os.listdir(self.queue)), ['jobs', 'tej.sh'])

    def test_every_shell(self):
        for shell in SHELLS:
            with self.subTest(shell=shell):
                need('shells', which(SHELLS[shell][0]),
                     "%s is not installed" % shell)
                shutil.rmtree(os.path.join(self.queue, 'jobs'), True)
                self.check_shell(shell)

    def test_busybox_applets_only(self):
        self.check_shell('busybox', env=dict(os.environ, PATH=busybox_bin()))

    def test_a_lost_job_ages_from_when_it_was_found_lost(self):
        # gc's age of a lost job without a recorded end starts when tej
        # first found it lost (by any call), not at its submission or
        # start: a job whose process vanished a month into its run is not
        # removed by gc --older-than 1d the moment it is seen lost, and
        # later reads do not start its time again. The server's clock is
        # moved with a date of the test's
        real_date = shutil.which('date')
        need('shells', real_date, "no date command")
        clock = support.temporary(self)
        with open(os.path.join(clock, 'date'), 'w') as fp:
            fp.write('#!/bin/sh\necho $(($(%s +%%s) + ${TEJ_TEST_AHEAD:-0}))'
                     '\n' % real_date)
        os.chmod(os.path.join(clock, 'date'), 0o755)
        boot = os.path.join(clock, 'boot_id')
        with open(boot, 'w') as fp:
            fp.write('this boot\n')
        hour, month = 3600, 30 * 86400
        for shell in SHELLS:
            with self.subTest(shell=shell):
                need('shells', which(SHELLS[shell][0]),
                     "%s is not installed" % shell)
                shutil.rmtree(os.path.join(self.queue, 'jobs'), True)
                now = int(time.time())
                lost = {'gone': 'lost', 'rebooted': 'lost', 'died': 'lost',
                        'recorded': 'lost'}
                # its wrapper vanished; the machine rebooted under it; its
                # submission died (no record, no lock); an older runtime's
                # record, lost without a time
                self.job('gone', state='running', submitted=now - month,
                         started=now - month, pid=999999999)
                self.job('rebooted', state='running', submitted=now - month,
                         started=now - month, pid=os.getpid(),
                         boot='an earlier boot')
                self.job('died')
                self.job('recorded', state='lost', submitted=now - month,
                         started=now - month)
                self.job('old', state='finished', exit=0,
                         submitted=now - month, started=now - month,
                         finished=now - 2 * 86400)

                def gc(ahead, *args):
                    env = dict(os.environ, TEJ_BOOT_ID_FILE=boot,
                               TEJ_TEST_AHEAD=str(ahead),
                               PATH=clock + os.pathsep + os.environ['PATH'])
                    return self.states(shell, *args, env=env)
                self.assertEqual(gc(0, 'gc', '86400'), {'old': 'finished'})
                self.assertEqual(gc(12 * hour, 'list'), lost)
                self.assertEqual(gc(12 * hour, 'gc', '86400'), {})
                self.assertEqual(gc(30 * hour, 'gc', '86400', 'dry'), lost)
                self.assertEqual(gc(30 * hour, 'gc', '86400'), lost)
                self.assertEqual(gc(30 * hour, 'list'), {})
                # --older-than 0: all, those it finds lost itself too
                self.job('found', state='running', submitted=now - month,
                         started=now - month, pid=999999999)
                self.assertEqual(gc(30 * hour, 'gc', '0'), {'found': 'lost'})

    def test_empty_and_missing(self):
        self.assertEqual(self.states('dash', 'list'), {})
        self.assertEqual(self.states('dash', 'gc', '0'), {})
        os.makedirs(os.path.join(self.queue, 'jobs'))
        self.assertEqual(self.states('dash', 'list', 'state=running'), {})


class TestStatusFastPath(unittest.TestCase):
    """status of jobs that have ended is answered at the top of tej.sh,
    before the rest is read, without another process; the same records as
    the whole runtime's.
    """

    def setUp(self):
        self.base, job, self.q = local_queue(self, 'exit 3\n')
        self.q.submit('f', job)
        self.assertEqual(self.q.wait('f'), 3)
        self.q.submit('k', job, script='sleep 1000')
        self.q.kill('k')
        self.q.submit('r', job, script='sleep 1000')
        self.addCleanup(self.q.kill, 'r')
        support.wait_for(lambda: self.q.info('r')['started'])
        self.queue = os.path.join(self.base, 'q')
        self.script = os.path.join(self.queue, 'tej.sh')

    def run_sh(self, shell, *args, **env):
        argv = [which(SHELLS[shell][0])] + SHELLS[shell][1:]
        proc = subprocess.run(argv + [self.script, self.queue] + list(args),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(os.environ, **env))
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    @staticmethod
    def lines(out, without_now=True):
        """The answer's records by id (without the time of the answer)."""
        records = {}
        for line in tej._split_answer(out.encode()):
            fields = [f for f in line.split('\t')
                      if not (without_now and f.startswith('now='))]
            records[fields[0]] = fields
        return records

    def test_same_answer_as_the_whole_runtime(self):
        for shell in SHELLS:
            with self.subTest(shell=shell):
                need('shells', which(SHELLS[shell][0]),
                     "%s is not installed" % shell)
                # with "r", running, the whole runtime answers for all
                code, whole, err = self.run_sh(shell, 'status', 'f', 'k',
                                               'nope', 'r')
                self.assertEqual(code, 3, err)
                code, fast, err = self.run_sh(shell, 'status', 'f', 'k',
                                              'nope')
                self.assertEqual(code, 3, err)
                whole, fast = self.lines(whole), self.lines(fast)
                self.assertEqual(sorted(fast), ['id=f', 'id=k', 'id=nope'])
                for job_id in fast:
                    self.assertEqual(fast[job_id], whole[job_id])
                self.assertEqual(fast['id=f'][1:3], ['state=finished',
                                                     'exit=3'])
                # -n: no "now", on both paths; and with it, a time
                for args in (['f'], ['f', 'r']):
                    code, out, err = self.run_sh(shell, 'status', '-n',
                                                 *args)
                    self.assertEqual(code, 0, err)
                    for fields in self.lines(out, False).values():
                        self.assertIn('now=', fields)
                code, out, err = self.run_sh(shell, 'status', 'f')
                self.assertRegex(out, r'\tnow=[0-9]+\t')
                # what the fast path does not know goes to the whole runtime
                for bad in ('-x', '.f', 'a b', 'x' * 129):
                    code, out, err = self.run_sh(shell, 'status', 'f', bad)
                    self.assertEqual(code, 8, (bad, err))

    def test_reads_nothing_else(self):
        # the rest of tej.sh is not even read: broken, it does not matter
        # to status of ended jobs; nor does a PATH without any command (in
        # the shells whose printf is a builtin)
        with open(self.script) as fp:
            text = fp.read()
        self.addCleanup(support.make_tree, self.queue, {'tej.sh': text})
        with open(self.script, 'a') as fp:
            fp.write('\nif then fi ((\n')
        for shell in ('dash', 'bash', 'busybox', 'yash'):
            with self.subTest(shell=shell):
                need('shells', which(SHELLS[shell][0]),
                     "%s is not installed" % shell)
                code, out, err = self.run_sh(shell, 'status', '-n', 'f', 'k',
                                             PATH='/nonexistent')
                self.assertEqual((code, err), (0, ''))
                self.assertEqual(sorted(self.lines(out)), ['id=f', 'id=k'])
                code, out, err = self.run_sh(shell, 'status', '-n', 'r')
                self.assertNotEqual(code, 0)


setUpModule = support.hermetic_module


#: Shells the costlier runtime tests run under (sh itself, and the
#: installed ones of these).
CHEAP_SHELLS = ['dash', 'busybox', 'mksh', 'yash']

#: The keys of a job record (QUEUE/jobs/ID/state), all written every time.
RECORD_KEYS = {'state', 'exit', 'submitted', 'started', 'finished', 'pid',
               'pgid', 'boot', 'killreq', 'runtime', 'runtime_id', 'mode',
               'token'}


def replace_record(queue_dir, job_id, **changes):
    """Change fields of a job's record, atomically (as the runtime does:
    a temporary file, then a rename), so that no reader sees half of it.
    """
    path = support.record_path(queue_dir, job_id)
    with open(path) as fp:
        lines = fp.read().splitlines()
    fields = [line.split('=', 1) for line in lines]
    text = ''.join('%s=%s\n' % (k, changes.get(k, v)) for k, v in fields)
    with open(path + '.test', 'w') as fp:
        fp.write(text)
    os.replace(path + '.test', path)


class TestReusedPid(LocalCase):
    def test_pid_of_another_process_is_not_the_job(self):
        """The wrapper is gone and its pid now names some other live
        process: the job is lost, not running for ever.
        """
        for name in ['sh'] + CHEAP_SHELLS:
            with self.subTest(shell=name):
                if name == 'sh':
                    shell = None
                else:
                    need('shells', which(name), "%s is not installed" % name)
                    shell = shell_wrapper(name)
                self.check_reused_pid(self.queue(shell), 'reused-' + name)

    def check_reused_pid(self, q, job_id):
        q.submit(job_id, self.job, script='sleep 1000')
        record = wait_for(lambda: (lambda r: r if r and r.get('pgid')
                                   else None)(
            support.read_record(self.queue_dir, job_id)),
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
            self.assertEqual(support.read_record(self.queue_dir, job_id)['pid'],
                             str(other.pid))
            self.assertEqual(q.info(job_id)['state'], 'lost')
            self.assertEqual(q.status(job_id)[0], 'lost')
        finally:
            other.kill()
            other.wait()
        q.delete(job_id)


# A tool for the PATH that holds up one call: the first time a call of
# VERB runs it while WHEN holds, it waits for the file $GATE/go before it
# does anything (and says so with the directory $GATE/waiting).
GATED = r"""#!/bin/sh
if %(when)s && %(tr)s '\000' ' ' < "/proc/$PPID/cmdline" |
        grep -q ' %(verb)s ' && mkdir "$GATE/waiting" 2>/dev/null; then
    while [ ! -e "$GATE/go" ]; do %(sleep)s 0.05; done
fi
exec %(tool)s "$@"
"""


def write_gated(bindir, tool, verb, sleep, when='true'):
    """Put the GATED ``tool`` (found in the PATH now) in ``bindir``; the
    real ``sleep`` is the path given.
    """
    script = GATED % {'tool': shutil.which(tool), 'verb': verb,
                      'when': when, 'tr': shutil.which('tr'),
                      'sleep': sleep}
    path = os.path.join(bindir, tool)
    with open(path, 'w') as fp:
        fp.write(script)
    os.chmod(path, 0o755)


class TestStartingJob(LocalCase):
    """A job that is being submitted or started is never lost to a status
    that looks at it meanwhile.
    """

    def look_while_submitting(self, verb, look, head, rest):
        """Submit job "s" with ``head`` of its upload sent; once the
        submitter holds the job's lock, ``look(q)`` (a call of ``verb``)
        looks at it and is held up there (its first tr, write_gated); then
        the upload gets ``rest`` (None: it is cut there), the submission
        ends, and ``look`` goes on. Return (what ``look`` returned, the
        submission's error or None).
        """
        gate = support.temporary(self)
        bindir = support.temporary(self)
        write_gated(bindir, 'tr', verb, shutil.which('sleep'))
        q = self.queue()
        q.setup()
        read, write = os.pipe()
        os.write(write, head)
        failures, answers = [None], []

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                try:
                    q._calls.call('submit', ['s', 'file', 'start.sh'],
                                  stdin=stdin, transfer=True)
                except tej.Error as e:
                    failures[0] = e
        with mock.patch.dict(os.environ, GATE=gate, PATH=bindir +
                             os.pathsep + os.environ['PATH']):
            submitter = threading.Thread(target=submit)
            submitter.start()
            status = threading.Thread(target=lambda: answers.append(
                look(q)))
            try:
                lock = os.path.join(self.queue_dir, 'jobs', 's', 'lock')
                wait_for(lambda: support.lock_claim(lock),
                         what='the submitter to lock the job')
                status.start()
                wait_for(lambda: os.path.exists(os.path.join(gate,
                                                             'waiting')),
                         what='the %s to look at the lock' % verb)
            finally:
                with os.fdopen(write, 'wb') as fp:
                    if rest is not None:
                        fp.write(rest)
                submitter.join(60)
            open(os.path.join(gate, 'go'), 'w').close()
            status.join(60)
        return answers[0], failures[0]

    def test_submission_ends_while_status_looks(self):
        # status looks at the lock (its submitter at work), then the
        # submission ends, then status reads the record: running, not a
        # "created" job whose submitter is gone
        archive = io.BytesIO()
        tej._write_tar(support.make_tree(self.job, {
            'start.sh': 'exec %s 1000\n' % shutil.which('sleep')}), archive)
        record, failure = self.look_while_submitting(
            'status', lambda q: q.info('s'), archive.getvalue()[:512],
            archive.getvalue()[512:])
        self.assertIsNone(failure)
        self.assertEqual(record['state'], 'running')
        self.queue().kill('s')

    def test_wrapper_before_its_exec_is_the_job(self):
        """Between the fork of the wrapper (its pid recorded by the
        submission) and its exec, the pid is a copy of the submitting
        tej.sh: the job is running, not lost. Once the wrapper has recorded
        its start, a tej.sh that is not the wrapper is a reused pid.
        """
        q = self.queue()
        q.setup()
        read, write = os.pipe()
        os.write(write, tarfile.TarInfo('big').tobuf())  # and no data yet

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                try:
                    q._calls.call('submit', ['other', 'file', 'start.sh'],
                                  stdin=stdin, transfer=True)
                except tej.Error:
                    pass
        thread = threading.Thread(target=submit)
        thread.start()
        try:
            lock = os.path.join(self.queue_dir, 'jobs', 'other', 'lock')
            owner = wait_for(lambda: support.lock_claim(lock),
                             what='a tej.sh to be at work')[0]
            pid = owner.split(':')[-1]
            q.submit('s', self.job, script='sleep 1000')
            wait_for(lambda: (support.read_record(self.queue_dir, 's') or {})
                     .get('pgid'), what='the job to start')
            os.killpg(int(support.read_record(self.queue_dir, 's')['pgid']),
                      signal.SIGKILL)
            # as the submission left it: the pid of the wrapper to be
            replace_record(self.queue_dir, 's', pid=pid, pgid='',
                           started='', state='running')
            self.assertEqual(q.info('s')['state'], 'running')
            replace_record(self.queue_dir, 's', started=str(int(time.time())))
            self.assertEqual(q.info('s')['state'], 'lost')
        finally:
            os.close(write)
            thread.join(60)
        q.delete('s')

    def test_submission_removed_while_status_looks(self):
        """status (or list) looks at the lock (its submitter at work), then
        the upload is cut and the submission removes the job: there is no
        such job, not a "lost" one (which tej wait and tej run take for the
        job's end).
        """
        def look(q):
            try:
                return [q.info('s')['state']]
            except tej.JobNotFound:
                return []
        for verb, answer in [('status', look),
                             ('list', lambda q: [r['state']
                                                 for _, r in q.list()])]:
            with self.subTest(verb=verb):
                self.queue_dir = support.temporary(self)
                found, failure = self.look_while_submitting(
                    verb, answer, tarfile.TarInfo('big').tobuf(), None)
                self.assertIsInstance(failure, tej.Error)
                self.assertFalse(os.path.exists(os.path.join(
                    self.queue_dir, 'jobs', 's')))
                self.assertEqual(found, [])

    def test_job_ends_while_status_looks(self):
        """status has read the record (running), then the job ends (its
        wrapper records it, and exits), then status looks for the wrapper:
        gone, so it reads the record again: finished, not lost.
        """
        gate = support.temporary(self)
        bindir = support.temporary(self)
        write_gated(bindir, 'tr', 'status', shutil.which('sleep'))
        q = self.queue()
        go = os.path.join(self.tmp, 'go')
        # (and it ends when its directory is gone: the test's cleanup)
        q.submit('e', self.job, script='while [ ! -e %s ] && [ -d "$PWD" ]; '
                 'do %s 0.1; done' % (go, shutil.which('sleep')))
        record = wait_for(lambda: (lambda r: r if r and r.get('pgid')
                                   else None)(
            support.read_record(self.queue_dir, 'e')),
            what='the wrapper to record its start')
        support.patch_env(self.addCleanup, GATE=gate,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        answers = []
        status = threading.Thread(target=lambda: answers.append(
            q.status('e')))
        status.start()
        self.addCleanup(status.join, 60)
        wait_for(lambda: os.path.exists(os.path.join(gate, 'waiting')),
                 what='the status to look for the wrapper')
        open(go, 'w').close()
        wait_for(lambda: support.read_record(self.queue_dir, 'e')['state']
                 == 'finished' and not os.path.exists(
                     '/proc/%s' % record['pid']),
                 what='the job to end and its wrapper to exit')
        open(os.path.join(gate, 'go'), 'w').close()
        status.join(60)
        self.assertEqual(answers[0][::2], ('finished', '0'))

    def test_wrapper_in_the_middle_of_an_exec(self):
        """A live process reads an empty command line for an instant while
        it makes an exec (as the wrapper does, twice, as it starts: setsid,
        then sh): it is not taken for gone, as a wrapper (the job is not
        lost) or as a lock's holder (the submission is not lost). Here a
        process that makes execs without end, under the wrapper's name.
        """
        q = self.queue()
        q.setup()
        script = os.path.join(self.queue_dir, 'tej.sh')
        code = 'exec sh -c "$1" x "$1" %s _wrap a' % script
        proc = subprocess.Popen(['sh', '-c', code, 'x', code, script,
                                 '_wrap', 'a'])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        jobs = os.path.join(self.queue_dir, 'jobs')
        with open('/proc/sys/kernel/random/boot_id') as fp:
            boot = fp.read().strip()
        support.make_tree(jobs, {'a/state': ''.join(
            '%s=%s\n' % field for field in [
                ('state', 'running'), ('submitted', 1), ('started', 2),
                ('pid', proc.pid), ('boot', boot), ('mode', 'file'),
                ('runtime', 'default')])})
        os.mkdir(os.path.join(jobs, 'b'))
        support.plant_lock(os.path.join(jobs, 'b', 'lock'),
                           '%s:%d' % (os.uname().nodename, proc.pid))
        answers = collections.Counter()
        for _ in range(100):
            out = subprocess.run(['sh', script, self.queue_dir, 'status',
                                  'a', 'b'], stdout=subprocess.PIPE,
                                 check=True).stdout.decode()
            answers.update(re.findall(r'\tstate=(\w+)', out))
        self.assertEqual(dict(answers), {'running': 100, 'created': 100})


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
        # and every lock taken was given back
        wait_for(lambda: not [n for n in ids if os.path.exists(
            os.path.join(jobs, n, 'lock'))], what='the locks to go')
        self.assertEqual(seen['partial'][:3], [])
        # the reader was there while the records changed
        self.assertGreater(seen['reads'], 100)
        self.assertLessEqual({'running', 'finished'}, seen['states'])


# A sleep that does not wait, for the PATH: a lock's waiter goes round its
# loop as fast as it can, as if minutes had passed. Each call is counted,
# with its caller's command line, in $NAPS.
FAST_SLEEP = r"""#!/bin/sh
{ tr '\000' ' ' < "/proc/$PPID/cmdline"; echo; } >> "$NAPS" 2>/dev/null
exit 0
"""


class TestLocks(LocalCase):
    """A job's lock (JOBDIR/lock, with its holder's claim in it)
    is never broken while its holder may live, however long it holds it;
    it is broken once the holder is known to be gone. _unlock removes the
    process's own lock only.
    """

    #: More turns of a waiter's loop than the minute after which any lock
    #: was once broken (600 naps of a tenth of a second).
    TURNS = 700

    def setUp(self):
        super(TestLocks, self).setUp()
        self.sleep = shutil.which('sleep')
        bindir = os.path.join(self.tmp, 'bin')
        os.mkdir(bindir)
        with open(os.path.join(bindir, 'sleep'), 'w') as fp:
            fp.write(FAST_SLEEP)
        os.chmod(os.path.join(bindir, 'sleep'), 0o755)
        self.naps_file = os.path.join(self.tmp, 'naps')
        open(self.naps_file, 'w').close()
        support.patch_env(self.addCleanup, NAPS=self.naps_file,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        self.q = self.queue()
        self.host = socket.gethostname()

    def naps(self, verb):
        """How many naps the runtime's verb took."""
        with open(self.naps_file) as fp:
            return sum(1 for line in fp if ' %s ' % verb in line)

    def lock(self, job_id):
        return os.path.join(self.queue_dir, 'jobs', job_id, 'lock')

    def owner(self, job_id):
        claim = support.lock_claim(self.lock(job_id))
        return claim and claim[0]

    def plant(self, job_id, owner=None, beat=None):
        """A lock on the job as another process would have it."""
        support.plant_lock(self.lock(job_id), owner, beat)

    def read_beat(self, job_id):
        return support.lock_claim(self.lock(job_id))[1]

    def beat(self, job_id, when):
        support.set_claim(self.lock(job_id), self.owner(job_id), when)

    def in_thread(self, action):
        """Run ``action`` in a thread; return it, with its ``result``
        (('ok', value) or ('error', exception)) once it has ended.
        """
        def run():
            try:
                thread.result = ('ok', action())
            except Exception as e:
                thread.result = ('error', e)
        thread = threading.Thread(target=run)
        thread.result = None
        thread.start()
        self.addCleanup(thread.join, 60)
        return thread

    def wait_turns(self, verb, thread):
        """Wait until the verb's waiter has gone round its loop TURNS times,
        still waiting for the lock.
        """
        wait_for(lambda: self.naps(verb) >= self.TURNS or
                 not thread.is_alive(), timeout=60,
                 what='the %s to wait for the lock' % verb)
        self.assertTrue(thread.is_alive(), thread.result)

    def running(self, job_id):
        """A job that runs until killed (the real sleep); wait until its
        wrapper has started it.
        """
        self.q.submit(job_id, self.job, script='exec %s 1000' % self.sleep)
        # the wrapper has recorded the start and given the lock back
        wait_for(lambda: (support.read_record(self.queue_dir, job_id) or {})
                 .get('pgid') and not os.path.exists(self.lock(job_id)),
                 what='the job to start')

    def test_a_live_submitter_keeps_its_lock(self):
        self.q.setup()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode='w') as tar:
            for name, data in (('big', b'x' * (1 << 20)), (
                    'start.sh', b'exec %s 1000\n' % self.sleep.encode()),
                    (tej._WHOLE, tej._WHOLE_TEXT)):  # the upload's end
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(data))
        archive = archive.getvalue()
        read, write = os.pipe()
        os.write(write, archive[:4096])  # the upload is on its way

        def submit():
            with os.fdopen(read, 'rb') as stdin:
                return self.q._calls.call(
                    'submit', ['slow', 'file', 'start.sh'], stdin=stdin,
                    transfer=True)
        submitter = self.in_thread(submit)
        owner = wait_for(lambda: self.owner('slow'),
                         what='the submitter to lock the job')
        killer = self.in_thread(lambda: self.q.kill('slow'))
        try:
            self.wait_turns('kill', killer)
            self.assertEqual(self.owner('slow'), owner)
            # and it says that it lives, for the waiters of other hosts
            self.beat('slow', time.time() - 3600)
            wait_for(lambda: self.read_beat('slow') > time.time() - 60,
                     what="the submitter's beat")
        finally:
            with os.fdopen(write, 'wb') as fp:
                fp.write(archive[4096:])
        submitter.join(60)
        killer.join(60)
        self.assertEqual(submitter.result[0], 'ok', submitter.result)
        self.assertEqual(killer.result[0], 'ok', killer.result)
        record = wait_state(self.q, 'slow')
        self.assertEqual(record['state'], 'killed')

    def test_a_live_call_without_input_keeps_its_lock(self):
        # a kill is read into the sh that read its call, with ".", not run
        # as "sh QUEUE/tej.sh": that sh, while it lives, keeps the lock.
        # The job's wrapper is a stand-in, which TERM ends: a real one
        # records the end under the lock, and naps take no time here, so
        # the KILL after the grace could come while it takes the lock
        self.running('h')
        os.killpg(int(support.read_record(self.queue_dir, 'h')['pgid']),
                  signal.SIGKILL)
        wrapper = subprocess.Popen(['sh', '-c', '%s 1000; :' % self.sleep,
                                    'tej.sh', '_wrap', 'h'],
                                   start_new_session=True)
        self.addCleanup(wrapper.wait)
        self.addCleanup(lambda: wrapper.poll() is not None or
                        os.killpg(wrapper.pid, signal.SIGKILL))
        replace_record(self.queue_dir, 'h', pid=str(wrapper.pid),
                       pgid=str(wrapper.pid))
        gate = os.path.join(self.tmp, 'gate')
        os.mkdir(gate)
        os.symlink(os.path.join(self.queue_dir, 'jobs', 'h', 'lock'),
                   os.path.join(gate, 'lock'))
        # the first date a kill runs with the job's lock taken
        write_gated(os.path.join(self.tmp, 'bin'), 'date', 'kill', self.sleep,
                    when='[ -d "$GATE/lock" ]')
        support.patch_env(self.addCleanup, GATE=gate)
        holder = self.in_thread(lambda: self.q.kill('h'))
        try:
            wait_for(lambda: os.path.isdir(os.path.join(gate, 'waiting')),
                     what='the kill to take the lock')
            owner = self.owner('h')
            self.assertIsNotNone(owner)
            waiter = self.in_thread(lambda: self.q.kill('h'))
            self.wait_turns('kill', waiter)
            self.assertEqual(self.owner('h'), owner)
        finally:
            open(os.path.join(gate, 'go'), 'w').close()
        holder.join(60)
        waiter.join(60)
        self.assertFalse(holder.is_alive() or waiter.is_alive(), (
            "the kills are still there: the lock's owner %s; %s" % (
                self.owner('h'), '; '.join(p.args for p in support.processes(
                    lambda p: self.tmp in p.args or
                    p.cwd.startswith(self.tmp))))))
        self.assertEqual(holder.result[0], 'ok', holder.result)
        self.assertEqual(waiter.result[0], 'ok', waiter.result)
        self.assertEqual(wait_state(self.q, 'h')['state'], 'killed')

    def test_a_lock_of_another_host(self):
        # its holder cannot be seen from here: the lock is broken only once
        # its beat is old
        self.running('r')
        self.plant('r', 'elsewhere.invalid:1', time.time())
        killer = self.in_thread(lambda: self.q.kill('r'))
        self.wait_turns('kill', killer)
        self.assertEqual(self.owner('r'), 'elsewhere.invalid:1')
        self.beat('r', time.time() - 3600)
        killer.join(60)
        self.assertEqual(killer.result[0], 'ok', killer.result)
        self.assertEqual(self.q.info('r')['state'], 'killed')

    def test_a_submission_of_another_host(self):
        # a job being created by another host: lost once its lock is stale
        self.q.setup()
        os.mkdir(os.path.join(self.queue_dir, 'jobs', 'c'))
        self.plant('c', 'elsewhere.invalid:1', time.time())
        self.assertEqual(self.q.info('c')['state'], 'created')
        self.beat('c', time.time() - 3600)
        self.assertEqual(self.q.info('c')['state'], 'lost')
        self.q.delete('c')

    def test_a_pid_of_another_program(self):
        # the owner's pid is a live process, not tej's: its holder is gone
        self.running('p')
        other = subprocess.Popen([self.sleep, '1000'])
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        self.plant('p', '%s:%d' % (self.host, other.pid), time.time())
        self.q.kill('p')
        self.assertLess(self.naps('kill'), 100)
        self.assertEqual(self.q.info('p')['state'], 'killed')

    def test_a_lock_of_this_very_process(self):
        # the owner is this host and the waiter's own pid (a holder that
        # died, and a new call that got its pid): gone, at once, not a live
        # tej.sh to wait for
        self.running('o')
        call = subprocess.Popen(
            ['sh', '-c', 'read -r go && exec sh "$0/tej.sh" "$0" kill o',
             self.queue_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.addCleanup(lambda: call.poll() is not None or call.kill())
        self.plant('o', '%s:%d' % (self.host, call.pid), time.time())
        out, err = call.communicate(b'go\n', timeout=60)
        self.assertEqual(call.returncode, 0, err)
        self.assertLess(self.naps('kill'), 100)
        self.assertEqual(self.q.info('o')['state'], 'killed')

    def test_two_waiters_break_one_lock(self):
        # waiter A judges the holder gone, and stops before it removes the
        # lock (its rm of the claim held up); meanwhile another waiter
        # breaks it and takes it (its claim: a live tej.sh's). A then
        # removes no lock but an empty one: the new lock stays, and A waits
        # for it
        self.running('w')
        dead = subprocess.Popen(['true'])
        dead.wait()
        self.plant('w', '%s:%d' % (self.host, dead.pid), time.time())
        gate = support.temporary(self)
        bindir = support.temporary(self)
        write_gated(bindir, 'rm', 'kill', self.sleep,
                    when='case "$*" in *.lock.*) true ;; *) false ;; esac')
        support.patch_env(self.addCleanup, GATE=gate, PATH=bindir +
                          os.pathsep + os.environ['PATH'])
        waiter = self.in_thread(lambda: self.q.kill('w'))
        wait_for(lambda: os.path.exists(os.path.join(gate, 'waiting')),
                 what='the waiter to judge the holder gone')
        lock = self.lock('w')
        for name in os.listdir(lock):
            os.unlink(os.path.join(lock, name))
        os.rmdir(lock)
        other = subprocess.Popen(['sh', '-c', '%s 1000; :' % self.sleep,
                                  'tej.sh'], start_new_session=True)
        self.addCleanup(other.wait)
        self.addCleanup(lambda: other.poll() is not None or
                        os.killpg(other.pid, signal.SIGKILL))
        self.plant('w', '%s:%d' % (self.host, other.pid))
        open(os.path.join(gate, 'go'), 'w').close()
        self.wait_turns('kill', waiter)
        self.assertEqual(self.owner('w'), '%s:%d' % (self.host, other.pid))
        os.killpg(other.pid, signal.SIGKILL)
        waiter.join(60)
        self.assertEqual(waiter.result[0], 'ok', waiter.result)
        self.assertEqual(self.q.info('w')['state'], 'killed')

    def test_a_lock_without_claim(self):
        # its maker died between its mkdir and moving its claim in: broken
        # at once, not after TEJ_LOCK_STALE (300 s)
        self.running('o')
        self.plant('o')
        self.q.kill('o')
        self.assertLess(self.naps('kill'), 100)
        self.assertEqual(self.q.info('o')['state'], 'killed')

    def test_a_lock_being_made(self):
        # a lock without a claim, whose maker's claim is beside it: the
        # maker may still move it in (a live tej.sh); once it is gone, its
        # claim goes and the lock is broken
        self.running('m')
        maker = subprocess.Popen(['sh', '-c', '%s 1000; :' % self.sleep,
                                  'tej.sh'], start_new_session=True)
        self.addCleanup(maker.wait)
        self.addCleanup(lambda: maker.poll() is not None or
                        os.killpg(maker.pid, signal.SIGKILL))
        job = os.path.dirname(self.lock('m'))
        self.plant('m')
        claim = '.lock.%s:%d:%d' % (self.host, maker.pid, time.time())
        open(os.path.join(job, claim), 'w').close()
        killer = self.in_thread(lambda: self.q.kill('m'))
        self.wait_turns('kill', killer)
        self.assertTrue(os.path.isdir(self.lock('m')))
        os.killpg(maker.pid, signal.SIGKILL)
        killer.join(60)
        self.assertEqual(killer.result[0], 'ok', killer.result)
        self.assertEqual(self.q.info('m')['state'], 'killed')
        self.assertNotIn(claim, os.listdir(job))

    def test_an_older_runtimes_lock(self):
        # "owner" and "beat" in it: judged as before (a gone pid at once;
        # another host's without a beat once seen so for TEJ_LOCK_STALE)
        support.patch_env(self.addCleanup, TEJ_LOCK_STALE='2')
        for job_id, owner in (('g', '%s:999999999' % self.host),
                              ('e', 'elsewhere.invalid:1')):
            with self.subTest(owner=owner):
                self.running(job_id)
                os.mkdir(self.lock(job_id))
                with open(os.path.join(self.lock(job_id), 'owner'),
                          'w') as fp:
                    fp.write(owner + '\n')
                started = time.monotonic()
                self.q.kill(job_id)
                took = time.monotonic() - started
                if owner.startswith('elsewhere'):
                    self.assertGreaterEqual(took, 2)
                self.assertEqual(self.q.info(job_id)['state'], 'killed')

    def test_a_job_removed_while_its_end_is_recorded(self):
        # a kill's TERM ends the job, its wrapper records the end, and a
        # run that followed it deletes it: the kill, recording the end in
        # turn, finds no job, and has done what it was asked
        job = os.path.join(self.tmp, 'gone')
        script = (tej._prelude() + tej._RUNTIME_PROBE + tej._RUNTIME_COMMON +
                  '_finish "$1" killed 137\nprintf "%s\\n" "$st_state"\n')
        proc = subprocess.run(['sh', '-c', script, 'tej.sh', job],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual((proc.returncode, proc.stdout, proc.stderr),
                         (0, b'notfound\n', b''))

    def test_leftovers_of_killed_processes(self):
        # a submission killed before its job had its id (.new.HOST.PID), a
        # delete killed before it removed it all (.gone.HOST.PID): removed
        # by the next submit once their process is gone; a live one stays.
        # This host's name has dots (uname -n may say a full name)
        host = 'node1.example.org'
        uname = os.path.join(self.tmp, 'bin', 'uname')
        with open(uname, 'w') as fp:
            fp.write('#!/bin/sh\necho %s\n' % host)
        os.chmod(uname, 0o755)
        self.q.setup()
        live = subprocess.Popen(['sh', '-c', '%s 1000; :' % self.sleep,
                                 'tej.sh'], start_new_session=True)
        self.addCleanup(live.wait)
        self.addCleanup(os.killpg, live.pid, signal.SIGKILL)
        jobs = os.path.join(self.queue_dir, 'jobs')
        names = ['.new.%s.999999999' % host, '.gone.%s.999999999' % host,
                 '.new.%s.%d' % (host, live.pid)]
        for name in names:
            os.makedirs(os.path.join(jobs, name, 'stage'))
        self.q.submit('next', self.job)
        self.assertEqual(sorted(os.listdir(jobs)), sorted(['next', names[2]]))

    def test_unlock_removes_its_own_lock_only(self):
        a, b, c = [os.path.join(self.tmp, name) for name in 'abc']
        for job in (a, b, c):
            os.mkdir(job)
        common = tej._prelude() + tej._RUNTIME_PROBE + tej._RUNTIME_COMMON
        # the claim replaced by another process's
        taken = ('rm -f "$1"/lock/.lock.*\n'
                 ': > "$1/lock/.lock.elsewhere.invalid:1:1"\n')

        def run(script, *args):
            proc = subprocess.run(['sh', '-c', common + script, 'tej.sh'] +
                                  list(args), stderr=subprocess.PIPE)
            self.assertEqual(proc.returncode, 1, proc.stderr)

        # broken meanwhile and taken by another process: left to it, by
        # _unlock and by the exit trap
        run('_lock "$1"\n' + taken + '_unlock\n' +
            '_lock "$2"\n' + taken.replace('$1', '$2') + '_die 1 end\n', a, b)
        for job in (a, b):
            self.assertEqual(support.lock_claim(os.path.join(job, 'lock')),
                             ('elsewhere.invalid:1', 1))
        # its own goes, by _unlock and by the exit trap
        run('_lock "$1"\n_unlock\n[ -d "$1/lock" ] && exit 5\n'
            '_lock "$1"\n_die 1 end\n', c)
        self.assertEqual(os.listdir(c), [])


class TestKilledAtRandom(LocalCase):
    """The server's sh SIGKILLed at random moments of many calls at once:
    no lock is left that a later call waits out, and no job is left half
    made.
    """

    def test_thirty_calls_killed_at_random(self):
        q = self.queue()
        # what a failure leaves running goes
        self.addCleanup(lambda: [os.kill(p.pid, signal.SIGKILL) for p in
                                 support.processes(lambda p: self.queue_dir
                                                   in p.args + p.cwd)])
        for n in range(4):
            q.submit('r%d' % n, self.job, script='sleep 1000')
        wait_for(lambda: all(q.info('r%d' % n)['state'] == 'running'
                             for n in range(4)), what='the jobs to start')
        jobs = os.path.join(self.queue_dir, 'jobs')

        def call(n):
            queue = tej.RemoteQueue('local:', self.queue_dir)
            try:
                if n % 3 == 0:
                    queue.submit('n%d' % n, self.job, script='sleep 1000')
                elif n % 3 == 1:
                    queue.kill('r%d' % (n % 4))
                else:
                    queue.status('r%d' % (n % 4))
            except tej.Error:
                pass  # killed, or the job already killed
        killed = []

        def killer(calls, rng):
            while any(t.is_alive() for t in calls):
                for victim in support.processes(
                        lambda p: self.queue_dir in p.args and
                        ('tej.sh' in p.args or 'tej_call' in p.args) and
                        ' _wrap ' not in p.args):
                    if rng.random() < 0.3:
                        try:
                            os.kill(victim.pid, signal.SIGKILL)
                            killed.append(victim.args)
                        except ProcessLookupError:
                            pass
                time.sleep(rng.uniform(0, 0.01))
        rng = random.Random(25)
        # rounds of thirty calls, three at least, until more than ten were
        # killed (on a busy machine, the calls may end before the killer
        # has seen them)
        round = 0
        while round < 3 or len(killed) <= 10 and round < 20:
            round += 1
            calls = [threading.Thread(target=call, args=(30 * round + n,))
                     for n in range(30)]
            for t in calls:
                t.start()
            killing = threading.Thread(target=killer, args=(calls, rng))
            killing.start()
            for t in calls:
                t.join(120)
            killing.join(60)
        self.assertGreater(len(killed), 10, killed)

        # every call after it takes seconds at most: no lock waited out
        ids = sorted(name for name in os.listdir(jobs)
                     if not name.startswith('.'))
        for job_id in ids:
            with self.subTest(job=job_id):
                started = time.monotonic()
                record = q.info(job_id)
                # made whole and running, ended, or lost (its submission
                # died): never left "created" for ever
                self.assertIn(record['state'],
                              ('running', 'finished', 'killed', 'lost'))
                q.kill(job_id)
                q.delete(job_id)
                self.assertLess(time.monotonic() - started, 10)
        # what killed calls left goes with the next submit
        q.submit('last', self.job)
        wait_state(q, 'last')
        left = [name for name in os.listdir(jobs) if name != 'last']
        self.assertEqual(left, [])
        self.assertEqual([n for n in os.listdir(os.path.join(jobs, 'last'))
                          if n.startswith('.lock.')], [])


# mkdir, for the PATH, slow after it made a directory right under a queue's
# jobs/ (a new job's): the moment between that and the job's lock lasts
# seconds.
SLOW_MKDIR = r"""#!/bin/sh
%(mkdir)s "$@" || exit
for last do :; done
case $last in
    */jobs/*/*) ;;
    */jobs/*) %(sleep)s 2 ;;
esac
"""


class TestSubmitWindow(LocalCase):
    """A job being created is never taken for lost, nor removed, by
    another call: not even between the mkdir of its directory and its lock.
    """

    def setUp(self):
        super(TestSubmitWindow, self).setUp()
        bindir = os.path.join(self.tmp, 'bin')
        os.mkdir(bindir)
        with open(os.path.join(bindir, 'mkdir'), 'w') as fp:
            fp.write(SLOW_MKDIR % {'mkdir': shutil.which('mkdir'),
                                   'sleep': shutil.which('sleep')})
        os.chmod(os.path.join(bindir, 'mkdir'), 0o755)
        support.patch_env(self.addCleanup,
                          PATH=bindir + os.pathsep + os.environ['PATH'])
        self.jobs = os.path.join(self.queue_dir, 'jobs')
        support.make_tree(self.job, {'start.sh': 'exit 3\n'})

    def in_window(self, start):
        """Call ``start`` (it begins a submission), and return once a
        directory appeared in jobs/: the submission is in its window.
        """
        before = set(os.listdir(self.jobs))
        started = start()
        wait_for(lambda: set(os.listdir(self.jobs)) - before,
                 what='the submission to make its directory')
        return started

    def test_status_and_delete_meanwhile(self):
        # the job waits for a file "go": whatever the delete finds, it is
        # not a job that has ended
        support.make_tree(self.job, {
            'start.sh': 'while [ ! -f go ] && [ -d "$PWD" ]; do sleep 0.1; '
                        'done; exit 3\n'})
        q = self.queue()
        q.setup()
        results = []

        def submit():
            thread = threading.Thread(target=lambda: results.append(
                q.submit('w', self.job)))
            thread.start()
            return thread
        thread = self.in_window(submit)
        states = set()
        while thread.is_alive():
            states.add(q.infos(['w'])[0]['state'])
            try:
                q.delete('w')
                states.add('deleted')
            except (tej.JobNotFound, tej.JobStillRunning):
                pass
        thread.join()
        self.assertEqual(results, ['w'])
        self.assertLessEqual(states, {'notfound', 'created', 'running'})
        open(os.path.join(q.info('w')['dir'], 'go'), 'w').close()
        self.assertEqual(q.wait('w'), 3)

    def test_two_runs_of_the_same_job(self):
        # the second finds the job (content ids) while the first makes it
        argv = [sys.executable, os.path.join(support.TOP, 'tej.py'), 'run',
                'local:', '--queue', self.queue_dir, '--keep', self.job]
        tej.RemoteQueue('local:', self.queue_dir).setup()
        first = self.in_window(lambda: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        second = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        for proc in (first, second):
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 3, err)

    def test_two_submissions_through_the_api(self):
        q = self.queue()
        q.setup()
        made = []

        def submit():
            job_id, created = q.submit_job(None, self.job, content_id=True)
            made.append(created)
            return q.wait(job_id)
        first = threading.Thread(target=lambda: made.append(submit()))
        self.in_window(first.start)
        self.assertEqual(submit(), 3)
        first.join(60)
        self.assertEqual(sorted(made, key=str), [3, False, True])
        # the second one's directory went, from where mv had put it
        job_id = tej.content_id(self.job)
        self.assertEqual(sorted(os.listdir(self.jobs)), [job_id])
        self.assertEqual(sorted(os.listdir(os.path.join(self.jobs, job_id))),
                         ['options', 'script', 'stage', 'state', 'umask'])

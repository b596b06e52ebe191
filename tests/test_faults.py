"""Reliability: real faults, and bad input that must never end in a
traceback or a hang.

- TestBadInput: a table of bad inputs to the command line (each through a
  real ``python tej.py`` process with a deadline) and to the API (each in
  a thread with a deadline); a hostile server is a stand-in ssh (TEJ_SSH)
  that answers what the case says.
- TestParserFuzz: the parsers of the server's answers get random and
  mutated answers, seeded; only tej's errors may come out.
- TestNotTransient: wait gives up at once on what cannot heal.
- The fault classes: shared connections killed, clients killed
  mid-submit, wrappers and jobs killed, a reboot, a read-only and a
  deleted queue, and load. The network's faults (a link cut, sshd
  stopped) are in test_network, in the serial lane.

Objects made in the system (mounts) are named faults*, made by the test
and removed by it.
"""

import errno
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import unittest

from . import support
from .support import tej, need, run_cli, wait_for, wait_state, which


setUpModule = support.ssh_module

#: How long one bad input may take before it counts as a hang.
CASE_DEADLINE = 60

#: A stand-in ssh for the hostile server: prints $FAKE/out on stdout and
#: $FAKE/err on stderr, exits with $FAKE/code; -O requests fail (there is
#: no shared connection) and -G prints nothing.
FAKE_SSH = r"""case " $* " in *" -O "*) exit 255 ;; *" -G "*) exit 0 ;; esac
cat > /dev/null
[ -f "$FAKE/out" ] && cat "$FAKE/out"
[ -f "$FAKE/err" ] && cat "$FAKE/err" >&2
exit "$(cat "$FAKE/code" 2>/dev/null || echo 0)"
"""

RECORD = ('id=x\tstate=running\texit=\tsubmitted=1\tstarted=1\tfinished=\t'
          'now=2\truntime=default\truntime_id=\tdir=/q/jobs/x/stage')


def _tar_stream(files):
    """A download's tar stream of ``files`` ({name: bytes})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as t:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _log_stream(*frames):
    return b'TEJ 1\nstream=logs\n' + b''.join(frames)


DOWNLOAD = b'TEJ 1\nstream=download\n' + _tar_stream(
    {'out/a.txt': b'a' * 700, 'out/b.txt': os.urandom(900)})
#: Where the download's archive ends (then its end blocks and padding).
DOWNLOAD_END = len(b'TEJ 1\nstream=download\n') + 4 * 512 + 1024
LOGS = _log_stream(b'out 600\n', b'x' * 600, b'tick\n', b'out 400\n',
                   b'y' * 400, b'end finished 0\n')


def _cli_cases(job, fifo_job, socket_job, ignore_jobs):
    """(name, argv, fake server answer (out, err, code) or None, extra
    environment) for the command line. The argv go after ``tej.py``.
    ``ignore_jobs``: {what its .tejignore is: job directory}.
    """
    def local(*argv, **env):
        return list(argv) + ['--queue', 'q'], None, env

    def fake(argv, out=b'', err=b'', code=0, **env):
        return list(argv) + ['--queue', 'q'], (out, err, code), env

    st = ['status', 'fakehost', '--id', 'x']
    logs = ['logs', 'fakehost', '--id', 'x']
    download = ['download', 'fakehost', '--id', 'x', 'out']
    cases = {}
    # every option given garbage
    for value in ('nan', '-1', 'inf', '', '1e400', 'abc', '1:2:3:4:5',
                  '10' * 20, '-inf', 'NaN'):
        cases['wait --timeout %r' % value] = local(
            'wait', 'local:', '--id', 'x', '--timeout', value)
    for value in ('1:99:99', '1:00:60', '1-24:00:00', '5:60'):
        cases['wait --timeout %r' % value] = local(
            'wait', 'local:', '--id', 'x', '--timeout', value)
        cases['submit --walltime %r' % value] = local(
            'submit', 'local:', job, '--walltime', value)
    for value in ('nan', '1x'):
        cases['run --timeout %r' % value] = local(
            'run', 'local:', job, '--timeout', value)
    for value in (str(10 ** 20), '0', '-5', '1.5', '2x', '99:99:99:99:99',
                  'nan', '', '1e9', '1000000000', '0s'):
        cases['submit --walltime %r' % value] = local(
            'submit', 'local:', job, '--walltime', value)
    for option, values in (('--cpus', ('0', '-1', 'abc', '10000000', '')),
                           ('--gpus', ('x', '0')),
                           ('--mem', ('lots', '-1G', '4Q', '')),
                           ('--partition', ('a b', '')),
                           ('--account', ('x;y', '$(id)')),
                           ('--scheduler-arg', ('', 'a\nb'))):
        for value in values:
            cases['submit %s %r' % (option, value)] = local(
                'submit', 'local:', job, option, value)
    for value in ('my job', '-x', '.x', 'x' * 129, '', 'a/b', 'a\nb',
                  '$(id)', 'a\tb', '\u00e9t\u00e9'):
        cases['submit --id %r' % value] = local(
            'submit', 'local:', job, '--id', value)
    for command in ('status', 'kill', 'delete', 'logs', 'wait'):
        cases['%s --id ../x' % command] = local(command, 'local:', '--id',
                                                '../x')
    cases['run --download ../x'] = local('run', 'local:', job,
                                         '--download', '../x')
    cases['run --download /abs'] = local('run', 'local:', job,
                                         '--download', '/etc/passwd')
    cases['run --download, no value'] = local('run', 'local:', job,
                                              '--download')
    cases['download ../a'] = local('download', 'local:', '--id', 'x', '../a')
    cases['download /abs'] = local('download', 'local:', '--id', 'x', '/a')
    cases['download --destination, two files'] = local(
        'download', 'local:', '--id', 'x', 'a', 'b', '--destination', 'c')
    cases['download --destination and --directory'] = local(
        'download', 'local:', '--id', 'x', 'a', '--destination', 'c',
        '--directory', 'd')
    cases['--queue empty'] = (['status', 'local:', '--id', 'x', '--queue',
                               ''], None, {})
    cases['--queue newline'] = (['status', 'local:', '--id', 'x', '--queue',
                                 'a\nb'], None, {})
    cases['setup --runtime bogus'] = local('setup', 'local:', '--runtime',
                                           'bogus')
    cases['jobs --state bogus'] = (['jobs', '--state', 'bogus'], None, {})
    for value in ('a\nb', '\x1b]52;c;eA==\x07', 'a\tb'):
        cases['submit --label %r' % value] = local('submit', 'local:', job,
                                                    '--label', value)
    cases['submit --if-exists maybe'] = local('submit', 'local:', job,
                                              '--if-exists', 'maybe')
    cases['status without --id'] = local('status', 'local:')
    cases['unknown command'] = (['frobnicate', 'local:'], None, {})
    cases['unknown option'] = local('status', 'local:', '--id', 'x',
                                    '--bogus')
    cases['unknown option first'] = (['--bogus', 'status', 'local:', '--id',
                                      'x'], None, {})
    cases['no destination'] = (['status'], None, {})
    cases['extra positional'] = local('list', 'local:', 'extra')
    # destinations with odd ports and characters
    for dest in ('http://host', 'host:99999', 'host:0', 'host:-1',
                 'host:22:22', 'user@@host', '[::1', 'a b', '', 'ssh://',
                 'h\u00f6st', 'local:x', '@host', 'host:abc', 'host\n',
                 'user:pw@', '[zz::1]:22', 'host:', 'a;b', '$(id)'):
        cases['destination %r' % dest] = local('status', dest, '--id', 'x')
    # so far, bad command lines: usage errors, before anything is done
    usage = set(cases)
    # the environment's settings
    for name, value in (('TEJ_TIMEOUT', 'abc'), ('TEJ_TIMEOUT', 'nan'),
                        ('TEJ_TIMEOUT', '-1'), ('TEJ_TIMEOUT', '0'),
                        ('TEJ_TIMEOUT', 'inf'), ('TEJ_RETRY_FOR', 'nan'),
                        ('TEJ_KEEPALIVE', '0'), ('TEJ_KEEPALIVE', 'x')):
        cases['%s=%s' % (name, value)] = local(
            'wait', 'local:', '--id', 'x', **{name: value})
    for name, value in (('TEJ_CONTROL_PERSIST', 'inf'),
                        ('TEJ_CONTROL_PERSIST', 'abc'),
                        ('TEJ_CONTROL_PERSIST', '1e99'),
                        ('TEJ_KEEPALIVE', '-3')):
        cases['%s=%s over ssh' % (name, value)] = fake(st, **{name: value})
    cases['TEJ_SSH missing'] = local('status', 'fakehost', '--id', 'x',
                                     TEJ_SSH='/nonexistent/ssh')
    cases['TEJ_SH missing'] = local('status', 'local:', '--id', 'x',
                                    TEJ_SH='/nonexistent/sh')
    cases['-F missing file'] = local('wait', 'nohost.invalid', '--id', 'x',
                                     '-F', '/nonexistent/config',
                                     TEJ_SSH='ssh')
    cases['-o bad option'] = local('wait', 'nohost.invalid', '--id', 'x',
                                   '-o', 'Bogus=1', TEJ_SSH='ssh')
    cases['host that does not resolve'] = local(
        'wait', 'nohost.invalid', '--id', 'x', TEJ_SSH='ssh',
        TEJ_RETRY_FOR='300')
    # special and missing files
    for name, directory in (('FIFO', fifo_job), ('socket', socket_job)):
        cases['submit with a %s' % name] = local('submit', 'local:',
                                                 directory)
        cases['submit --content-id with a %s' % name] = local(
            'submit', 'local:', directory, '--content-id')
        cases['run with a %s' % name] = local('run', 'local:', directory)
    for name, directory in sorted(ignore_jobs.items()):
        cases['submit, .tejignore a %s' % name] = local('submit', 'local:',
                                                        directory)
        cases['run, .tejignore a %s' % name] = local('run', 'local:',
                                                     directory)
        cases['submit --content-id, .tejignore a %s' % name] = local(
            'submit', 'local:', directory, '--content-id')
    cases['submit a missing directory'] = local('submit', 'local:',
                                                '/nonexistent/dir')
    cases['submit a file'] = local('submit', 'local:',
                                   os.path.join(job, 'start.sh'))
    cases['--script missing file'] = local('submit', 'local:', job,
                                           '--script', 'run.sh')
    cases['--script empty'] = local('submit', 'local:', job, '--script', '')
    cases['--script blank'] = local('submit', 'local:', job, '--script',
                                    '   ')
    cases['--prologue a directory'] = local('submit', 'local:', job,
                                            '--prologue', job, '--walltime',
                                            'x')
    # hostile answers from a fake server
    cases['no sentinel'] = fake(st, b'garbage\n')
    cases['garbage before and after the sentinel'] = fake(
        st, b'motd\n\xff\xfe\nTEJ 1\n' + RECORD.encode() + b'\ngarbage\n')
    cases['sentinel, no record'] = fake(st, b'TEJ 1\n')
    cases['record without state'] = fake(st, b'TEJ 1\nid=x\n')
    cases['record with an unknown state'] = fake(
        st, b'TEJ 1\n' + RECORD.replace('running', 'bogus').encode() + b'\n')
    cases['record with a bad exit'] = fake(
        st, b'TEJ 1\n' + RECORD.replace('exit=', 'exit=abc').encode() +
        b'\n')
    cases['record of another job'] = fake(
        st, b'TEJ 1\n' + RECORD.replace('id=x', 'id=y').encode() + b'\n')
    cases['two records for one'] = fake(
        st, ('TEJ 1\n%s\n%s\n' % (RECORD, RECORD)).encode())
    cases['binary garbage'] = fake(st, b'TEJ 1\n' + bytes(range(256)))
    cases['exit 255, no log'] = fake(st, code=255)
    cases['exit 90, garbage'] = fake(st, b'TEJ 1\n\x00\x01', code=90)
    cases['exit 90, queue missing'] = fake(st, b'TEJ 1\nqueue=missing\n',
                                           code=90)
    cases['exit 90, unknown runtime'] = fake(
        st, b'TEJ 1\ninstalled=1/alien/0123\n', code=90)
    cases['unknown exit code'] = fake(st, code=77)
    cases['exit 8 with a message'] = fake(st, err=b'tej: bad thing\n',
                                          code=8)
    cases['exit 4 for status'] = fake(st, err=b'tej: exists\n', code=4)
    # huge numbers from a lying server: a record's, a listing's, a frame's
    huge = {'a huge': '9' * 30, '5000 digits of': '9' * 5000}
    for what, number in sorted(huge.items()):
        for key in ('exit', 'submitted', 'started', 'now'):
            record = re.sub(r'(?<=\b%s=)[0-9]*' % key, number, RECORD)
            record = record.replace('running', 'finished')
            answer = ('TEJ 1\n%s\n' % record).encode()
            cases['status, %s %s' % (what, key)] = fake(st, answer)
            cases['status --json, %s %s' % (what, key)] = fake(
                st + ['--json'], answer)
            cases['wait, %s %s' % (what, key)] = fake(
                ['wait', 'fakehost', '--id', 'x'], answer)
            cases['list -l, %s %s' % (what, key)] = fake(
                ['list', 'fakehost', '-l'], answer)
            cases['list --json, %s %s' % (what, key)] = fake(
                ['list', 'fakehost', '--json'], answer)
        cases['download: %s size' % what] = fake(
            download, ('TEJ 1\nstream=download\nsize=%s\n' % number)
            .encode())
        cases['download: %s part' % what] = fake(
            download, ('TEJ 1\nstream=download\nsize=1\npart %s 1 cksum\n'
                       % number).encode())
        cases['logs: %s frame' % what] = fake(
            logs, _log_stream(('out %s\nabc' % number).encode()))
        cases['logs: %s exit' % what] = fake(
            logs, _log_stream(('end finished %s\n' % number).encode()))
    cases['list of garbage'] = fake(['list', 'fakehost'],
                                    b'TEJ 1\nnot a record\n')
    cases['list, a record cut'] = fake(['list', 'fakehost'],
                                       b'TEJ 1\n' + RECORD[:30].encode())
    cases['wait: records of others'] = fake(
        ['wait', 'fakehost', '--id', 'x', '--id', 'z'],
        ('TEJ 1\n%s\n' % RECORD.replace('running', 'finished')).encode())
    cases['submit: job exists'] = fake(['submit', 'fakehost', job],
                                       err=b'tej: job exists\n', code=4)
    cases['setup: garbage'] = fake(['setup', 'fakehost'], b'\xff' * 100)
    cases['logs: an unknown frame'] = fake(logs, _log_stream(b'bogus 12\n'))
    cases['logs: a stream not asked for'] = fake(
        logs, _log_stream(b'err 5\nhello'))
    cases['logs: a negative size'] = fake(logs, _log_stream(b'out -1\n'))
    cases['logs: end without a state'] = fake(logs, _log_stream(b'end\n'))
    cases['logs: end with a bad exit'] = fake(
        logs, _log_stream(b'end finished abc\n'))
    cases['logs: no stream header'] = fake(logs, b'TEJ 1\nwhatever\n')
    cases['logs: a huge frame, cut'] = fake(
        logs, _log_stream(b'out 99999999999\nabc'))
    cases['download: not a tar'] = fake(
        download, b'TEJ 1\nstream=download\n' + b'not a tar' * 200)
    for cut in range(100, len(LOGS), 300):
        cases['logs: cut at %d bytes' % cut] = fake(logs, LOGS[:cut])
    for cut in range(100, DOWNLOAD_END, 300):
        cases['download: cut at %d bytes' % cut] = fake(download,
                                                        DOWNLOAD[:cut])
    return cases, usage


class TestBadInput(unittest.TestCase):
    """Every bad input ends within CASE_DEADLINE seconds with exit 2 (the
    subcommand's usage, then its error line) or 1 (125 for wait and run)
    and one line "tej: error: ..."; the API raises `tej.Error` or
    ValueError. Never a traceback, never a hang.
    """

    counts = None

    @classmethod
    def setUpClass(cls):
        cls.counts = {'tried': 0, 'clean': 0, 'tracebacks': 0, 'hangs': 0}

    @classmethod
    def tearDownClass(cls):
        sys.stderr.write(
            "\nbad input: %(tried)d tried, %(clean)d clean errors, "
            "%(tracebacks)d tracebacks, %(hangs)d hangs\n" % cls.counts)

    def setUp(self):
        self.tmp = support.temporary(self)
        os.chmod(self.tmp, 0o755)
        self.job = support.make_tree(os.path.join(self.tmp, 'job'),
                                     {'start.sh': 'echo hi\n'})
        self.fifo_job = support.make_tree(os.path.join(self.tmp, 'fifo'),
                                          {'start.sh': 'echo hi\n'})
        os.mkfifo(os.path.join(self.fifo_job, 'pipe'))
        self.socket_job = support.make_tree(os.path.join(self.tmp, 'sock'),
                                            {'start.sh': 'echo hi\n'})
        self.sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(self.sock.close)
        self.sock.bind(os.path.join(self.socket_job, 'socket'))
        self.fake_ssh = support.stub_ssh(self, FAKE_SSH, where=self.tmp)
        # .tejignore a fifo (reading it waits for a writer), a device
        self.ignore_jobs = {}
        for name, make in (('FIFO', os.mkfifo),
                           ('device', lambda p: os.symlink('/dev/zero', p))):
            self.ignore_jobs[name] = support.make_tree(
                os.path.join(self.tmp, 'ignore-' + name),
                {'start.sh': 'echo hi\n'})
            make(os.path.join(self.ignore_jobs[name], '.tejignore'))

    def environment(self, fake, extra, owner=None):
        home = os.path.join(self.tmp, 'home%d' % self.counts['tried'])
        os.mkdir(home)
        if owner is not None:
            os.chown(home, *owner)
        env = dict(os.environ, HOME=home, TEJ_RETRY_FOR='1',
                   TEJ_TIMEOUT='20', TEJ_SSH=self.fake_ssh)
        for key in ('XDG_RUNTIME_DIR', 'TEJ_SH', 'TEJ_PASSWORD'):
            env.pop(key, None)
        if fake is not None:
            where = os.path.join(home, 'fake')
            os.mkdir(where)
            for name, data in zip(('out', 'err', 'code'), fake):
                with open(os.path.join(where, name), 'wb') as fp:
                    fp.write(data if isinstance(data, bytes) else
                             str(data).encode())
            env['FAKE'] = where
        env.update(extra)
        return env

    def check_cli(self, name, argv, env, as_user=None, python=None,
                  usage=False):
        """Run one case; return (verdict, message): verdict 'clean',
        'traceback', 'hang' or 'wrong'.
        """
        self.counts['tried'] += 1
        kwargs = {}
        if as_user is not None:
            uid, gid = as_user

            def drop():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            kwargs['preexec_fn'] = drop
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [python or sys.executable, self.tej] + argv, env=env,
                cwd=env['HOME'] if os.path.isdir(env['HOME']) else self.tmp,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=CASE_DEADLINE, **kwargs)
        except subprocess.TimeoutExpired:
            self.counts['hangs'] += 1
            return 'hang', "%s: no end after %d s" % (name, CASE_DEADLINE)
        took = time.monotonic() - started
        err = proc.stderr.decode('utf-8', 'replace')
        out = proc.stdout.decode('utf-8', 'replace')
        if 'Traceback' in err:
            self.counts['tracebacks'] += 1
            return 'traceback', "%s: %s" % (name, err)
        verdict = self.verdict(argv, proc.returncode, out, err)
        if usage and proc.returncode != 2:
            verdict = 'a bad command line, not exit 2'
        elif usage and argv[0] in tej._parser().commands and \
                not err.startswith('usage: tej %s ' % argv[0]):
            verdict = "not the subcommand's usage line"
        if verdict:
            return 'wrong', "%s (%.1f s): %s; exit %d\nstdout: %r\n%s" % (
                name, took, verdict, proc.returncode, out, err)
        self.counts['clean'] += 1
        return 'clean', None

    @staticmethod
    def verdict(argv, code, out, err):
        """What is wrong with an answer to a bad input ('' for nothing)."""
        lines = err.splitlines()
        if code == 2:
            command = next((a for a in argv if not a.startswith('-')), '')
            if not err.startswith('usage: tej'):
                return 'no usage line'
            if not lines or not re.match(r'tej( [a-z]+)?: error: ',
                                         lines[-1]):
                return 'no error line last'
            if command in tej._parser().commands and \
                    not re.match(r'tej %s: error: ' % command, lines[-1]):
                return "not the subcommand's usage"
            return ''
        errors = [line for line in lines if line.startswith('tej: error: ')]
        wanted = 125 if argv[0] in ('wait', 'run') else 1
        if code != wanted:
            return 'exit %d, not %d or 2' % (code, wanted)
        if len(errors) != 1 or lines[-1] != errors[0]:
            return 'not one "tej: error:" line, last'
        return ''

    def run_table(self, cases, usage):
        failures = []
        for name, (argv, fake, extra) in sorted(cases.items()):
            verdict, message = self.check_cli(
                name, argv, self.environment(fake, extra),
                usage=name in usage)
            if message:
                failures.append(message)
        self.assertEqual(failures, [], '\n\n'.join(failures))

    @property
    def tej(self):
        return os.path.join(support.TOP, 'tej.py')

    def test_command_line(self):
        cases, usage = _cli_cases(self.job, self.fifo_job, self.socket_job,
                                  self.ignore_jobs)
        self.assertGreaterEqual(len(cases), 150)
        self.assertGreaterEqual(len(usage), 90)
        self.run_table(cases, usage)

    def test_server_text_shown_harmless(self):
        """What the server writes on stderr, relayed as a message or in an
        error, sets no terminal title, clipboard (OSC 52) or screen.
        """
        escapes = b'\x1b]52;c;ZXZpbA==\x07\x1b[2J\xc2\x9bH\r\n'
        for code, out, err in (
                (0, b'TEJ 1\n' + RECORD.encode() + b'\n', escapes),
                (1, b'', escapes + b'tej: it \x1b[2Jfailed\n'),
                (1, b'', escapes + b'broken\x1b[2J\n'),
                (77, b'', escapes)):
            argv = ['status', 'fakehost', '--id', 'x', '--queue', 'q']
            self.counts['tried'] += 1
            proc = subprocess.run(
                [sys.executable, self.tej] + argv,
                env=self.environment((out, err, code), {}),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=CASE_DEADLINE)
            text = proc.stderr.decode('utf-8', 'replace')
            self.assertIsNone(re.search('[\x00-\x09\x0b-\x1f\x7f-\x9f]',
                                        text), text)
            self.assertIn('\\x1b[2J', text)
            self.assertEqual(proc.returncode, 0 if code == 0 else 1, text)
            self.counts['clean'] += 1  # (an answer shown harmless)

    def test_files_and_home_as_a_user(self):
        """Unreadable files, a missing or unwritable HOME: as an
        unprivileged user (root reads everything).
        """
        python, user = sys.executable, None
        if os.getuid() == 0:
            import pwd
            support.ssh_server()  # makes the test user
            entry = pwd.getpwnam(support.TEST_USER)
            user = entry.pw_uid, entry.pw_gid
            python = '/usr/bin/python3'
            need('sshd', os.path.exists(python),
                 "as root, the test user runs /usr/bin/python3")
        locked = support.make_tree(os.path.join(self.tmp, 'locked'), {
            'start.sh': 'echo hi\n', 'data/secret': 'x'})
        os.chmod(os.path.join(locked, 'data', 'secret'), 0)
        closed = support.make_tree(os.path.join(self.tmp, 'closed'), {
            'start.sh': 'echo hi\n', 'inner/file': 'x'})
        os.chmod(os.path.join(closed, 'inner'), 0)
        script = support.make_tree(os.path.join(self.tmp, 'script'), {
            'start.sh': 'echo hi\n'})
        os.chmod(os.path.join(script, 'start.sh'), 0)
        prologue = os.path.join(self.tmp, 'prologue')
        with open(prologue, 'w') as fp:
            fp.write('module load x\n')
        os.chmod(prologue, 0)
        unwritable = os.path.join(self.tmp, 'unwritable')
        os.mkdir(unwritable, 0o555)
        missing = os.path.join(self.tmp, 'missing-home')
        self.addCleanup(os.chmod, os.path.join(closed, 'inner'), 0o755)
        cases = {}
        for name, directory in (('an unreadable file', locked),
                                ('an unreadable directory', closed),
                                ('an unreadable start.sh', script)):
            for extra in ([], ['--content-id']):
                cases['submit %s %s' % (name, extra)] = (
                    ['submit', 'local:', directory, '--queue', 'q'] + extra,
                    {})
        cases['an unreadable --prologue file'] = (
            ['submit', 'local:', self.job, '--prologue', prologue, '--queue',
             'q'], {})
        for home in (missing, unwritable):
            for argv in (['status', 'local:', '--id', 'x'],
                         ['submit', 'local:', self.job],
                         ['status', 'fakehost', '--id', 'x'],
                         ['wait', 'fakehost', '--id', 'x']):
                cases['%s, HOME %s' % (' '.join(argv[:2]),
                                       os.path.basename(home))] = (
                    argv, {'HOME': home})
        failures = []
        for name, (argv, extra) in sorted(cases.items()):
            env = self.environment((b'TEJ 1\n' + RECORD.encode(), b'', 0),
                                   extra, user)
            verdict, message = self.check_cli(name, argv, env, user,
                                              python)
            if message:
                failures.append(message)
        self.assertEqual(failures, [], '\n\n'.join(failures))
        self.assertFalse(os.path.exists(missing))

    def test_api(self):
        q = tej.RemoteQueue('local:', os.path.join(self.tmp, 'q'))
        support.patch_env(self.addCleanup, TEJ_SSH=self.fake_ssh,
                          TEJ_RETRY_FOR='1')
        fake = os.path.join(self.tmp, 'fake')
        os.mkdir(fake)
        support.patch_env(self.addCleanup, FAKE=fake)
        job, fifo_job = self.job, self.fifo_job

        def answer(out=b'', err=b'', code=0):
            for name, data in zip(('out', 'err', 'code'), (out, err, code)):
                with open(os.path.join(fake, name), 'wb') as fp:
                    fp.write(data if isinstance(data, bytes) else
                             str(data).encode())
            return tej.RemoteQueue('fakehost', '~/q')

        nan, inf = float('nan'), float('inf')
        cases = {
            'destination with a space': lambda: tej.RemoteQueue('a b'),
            'destination port 0': lambda: tej.RemoteQueue('h:0'),
            'destination dict without host': lambda: tej.RemoteQueue({}),
            'empty queue path': lambda: tej.RemoteQueue('local:', ''),
            'queue path with a newline':
                lambda: tej.RemoteQueue('local:', 'a\nb'),
            'unknown runtime':
                lambda: tej.RemoteQueue('local:', setup_runtime='x'),
            'parse_ssh_destination http':
                lambda: tej.parse_ssh_destination('http://x'),
            'parse_ssh_destination local':
                lambda: tej.parse_ssh_destination('local:'),
            'check_jobid None': lambda: tej.check_jobid(None),
            'check_jobid dash': lambda: tej.check_jobid('-x'),
            'submit bad id': lambda: q.submit('a b', job),
            'submit missing directory': lambda: q.submit(None, '/nonexist'),
            'submit a label with a newline':
                lambda: q.submit(None, job, label='a\nb'),
            'submit bad if_exists': lambda: q.submit(None, job,
                                                     if_exists='maybe'),
            'submit a FIFO': lambda: q.submit(None, fifo_job),
            'content_id of a FIFO': lambda: tej.content_id(fifo_job),
            'submit, .tejignore a FIFO':
                lambda: q.submit(None, self.ignore_jobs['FIFO']),
            'content_id, .tejignore a device':
                lambda: tej.content_id(self.ignore_jobs['device']),
            'submit --content-id of a FIFO':
                lambda: q.submit(None, fifo_job, content_id=True),
            'content_id missing script':
                lambda: tej.content_id(job, 'run.sh'),
            'status of an empty id': lambda: q.status(''),
            'kill a bad id': lambda: q.kill('../x'),
            'delete a bad id': lambda: q.delete('a b'),
            'download ..': lambda: q.download('x', '../a'),
            'download two to one destination':
                lambda: q.download('x', ['a', 'b'], destination='c'),
            'download one inside another':
                lambda: q.download('x', ['a', 'a/b']),
            'setup a link with a newline': lambda: q.setup(links=['a\nb']),
            'wait_all a bad id': lambda: q.wait_all(['ok', 'a b']),
            'Job with a bad id': lambda: q.job('a b'),
            'fake: no sentinel': lambda: answer(b'hello').status('x'),
            'fake: no record': lambda: answer(b'TEJ 1\n').info('x'),
            'fake: unknown state': lambda: answer(
                b'TEJ 1\n' + RECORD.replace('running', 'zz').encode()
            ).info('x'),
            'fake: wait gets no record':
                lambda: answer(b'TEJ 1\n').wait('x'),
            'fake: an unknown frame': lambda: answer(
                _log_stream(b'zz 1\n')).logs('x'),
            'fake: stderr frame for stdout': lambda: answer(
                _log_stream(b'err 2\nhi')).logs('x', stdout=io.BytesIO()),
            'fake: logs cut': lambda: answer(LOGS[:250]).logs('x'),
            'fake: download cut': lambda: answer(DOWNLOAD[:700]).download(
                'x', 'out', directory=self.tmp),
            'fake: list of garbage': lambda: list(answer(
                b'TEJ 1\n\xff\n').list()),
        }
        for value in (nan, inf, -1, '-1', 'nan', 10 ** 20, '1x', True):
            cases['wait timeout %r' % (value,)] = \
                lambda v=value: q.wait('x', timeout=v)
            cases['logs timeout %r' % (value,)] = \
                lambda v=value: q.logs('x', timeout=v)
            cases['wait retry_for %r' % (value,)] = \
                lambda v=value: q.wait('x', retry_for=v)
        for value in (nan, inf, 0, -1, 10 ** 20, '2x', 1.5, '1e20', True):
            cases['walltime %r' % (value,)] = \
                lambda v=value: q.submit(None, job, walltime=v)
        for key, value in (('cpus', 0), ('cpus', 'x'), ('gpus', -1),
                           ('mem', 'lots'), ('partition', 'a b'),
                           ('account', ''), ('scheduler_args', ['']),
                           ('scheduler_args', 'a\nb')):
            cases['%s %r' % (key, value)] = \
                lambda k=key, v=value: q.submit(None, job, **{k: v})
        failures = []
        for name, action in sorted(cases.items()):
            self.counts['tried'] += 1
            outcome = {}

            def attempt():
                try:
                    outcome['value'] = action()
                except BaseException as e:
                    outcome['error'] = e
            thread = threading.Thread(target=attempt, daemon=True)
            thread.start()
            thread.join(CASE_DEADLINE)
            error = outcome.get('error')
            if thread.is_alive():
                self.counts['hangs'] += 1
                failures.append('%s: no end after %d s' % (name,
                                                           CASE_DEADLINE))
            elif isinstance(error, (tej.Error, ValueError)):
                self.counts['clean'] += 1
            else:
                if error is not None:
                    self.counts['tracebacks'] += 1
                failures.append('%s: %r' % (name, error or outcome))
        self.assertGreaterEqual(len(cases), 70)
        self.assertEqual(failures, [], '\n'.join(failures))

    def test_huge_walltime_does_not_kill(self):
        """The longest walltime tej takes leaves a job that succeeds
        finished 0, under each shell (mksh's arithmetic is 32 bits).
        """
        queue = os.path.join(self.tmp, 'q')
        shells = ['sh'] + [s for s in ('dash', 'mksh', 'yash', 'posh',
                                       'bash') if which(s)]
        for shell in shells:
            support.patch_env(self.addCleanup, TEJ_SH=shell)
            q = tej.RemoteQueue('local:', queue)
            job_id = 'long-' + shell
            q.submit(job_id, self.job, walltime=tej._MAX_SECONDS)
            self.assertEqual(q.wait(job_id, timeout=30), 0, shell)
            self.assertEqual(q.info(job_id)['state'], 'finished', shell)


class TestGoodValues(unittest.TestCase):
    """What the checks must still take: --download with several paths,
    durations with units and in HH:MM:SS.
    """

    def test_run_download_several_and_durations(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'), {
            'start.sh': 'echo a > a; echo b > b; mkdir c; echo c > c/c\n'})
        into = os.path.join(tmp, 'into')
        os.mkdir(into)
        code, out, err = run_cli(
            'run', 'local:', job, '--download', 'a', 'b', '--download', 'c',
            '--into', into, '--timeout', '1h', '--walltime', '01:00:00',
            '--queue', os.path.join(tmp, 'q'))
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(os.listdir(into)), ['a', 'b', 'c'])
        with open(os.path.join(into, 'c', 'c')) as fp:
            self.assertEqual(fp.read(), 'c\n')
        for text, seconds in (('90', 90), ('1.5h', 5400), ('10m', 600),
                              ('2d', 172800), ('1:00', 60),
                              ('1-00:00:01', 86401), ('0', 0),
                              ('48:00:00', 172800), ('90:00', 5400),
                              ('1-23:59:59', 172799)):
            self.assertEqual(tej._duration(text, 'timeout'), seconds)
        self.assertEqual(tej._walltime('2h'), 7200)
        code, out, err = run_cli('wait', 'local:', '--id', 'x', '--timeout',
                                 '00:00:01', '--queue',
                                 os.path.join(tmp, 'q'))
        self.assertEqual(code, 121, err)

class TestParserFuzz(unittest.TestCase):
    """The parsers of the server's answers, fed random and mutated
    answers (seeded: TEJ_FUZZ_SEED, else a fixed one; the seed is in the
    failure message): only `tej.Error` and ValueError may come out.
    """

    ROUNDS = 3000

    SAMPLES = [
        b'TEJ 1\n' + RECORD.encode() + b'\n',
        b'motd\nTEJ 1\nqueue=missing\ndetected=slurm\n',
        b'TEJ 1\ninstalled=1/default/0123456789abcdef\n',
        LOGS, DOWNLOAD[:2048],
        b'out 5\n', b'err 12\n', b'end finished 3\n', b'end lost\n',
        b'tick\n', b'TEJ 1\n81a4 12 1700000000 ./out/a\n41ed 0 -1 ./out\n',
        b'size=123\npart 0 100 cksum\nsum 42\ntar\n',
    ]

    def mutate(self, rnd, data):
        data = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            choice = rnd.random()
            at = rnd.randint(0, len(data))
            if choice < 0.3 and data:
                data[min(at, len(data) - 1)] = rnd.randint(0, 255)
            elif choice < 0.5:
                data[at:at] = rnd.choice([b'\t', b'=', b'\n', b'\r', b' ',
                                          b'\xff', b'-1', b'9' * 30,
                                          b'9' * 5000, b'1e400',
                                          b'dir=', b'state=', b'TEJ 1\n'])
            elif choice < 0.7:
                del data[at:at + rnd.randint(1, 20)]
            elif choice < 0.85:
                data = data[:at]
            else:
                data += bytes(rnd.randint(0, 255)
                              for _ in range(rnd.randint(1, 30)))
        return bytes(data)

    def inputs(self, rnd):
        for _ in range(self.ROUNDS):
            if rnd.random() < 0.2:
                yield bytes(rnd.randint(0, 255)
                            for _ in range(rnd.randint(0, 200)))
            else:
                yield self.mutate(rnd, rnd.choice(self.SAMPLES))

    def test_fuzz(self):
        seed = int(os.environ.get('TEJ_FUZZ_SEED', '20261201'))
        rnd = random.Random(seed)
        tmp = support.temporary(self)
        parsers = {
            'split_answer': tej._split_answer,
            'records': lambda data: tej._parse_records(
                tej._split_answer(data)),
            'records of x': lambda data: tej._parse_records(
                tej._split_answer(data), ['x']),
            'need_runtime': lambda data: tej._parse_need_runtime(
                tej._split_answer(data)),
            'frame': lambda data: tej._parse_frame(data.split(b'\n')[0] +
                                                   b'\n'),
            'version': lambda data: tej._parse_version(
                data.decode('utf-8', 'replace')),
            'read_until_stream': lambda data: tej._read_until_stream(
                io.BufferedReader(io.BytesIO(data))),
            'listing': lambda data: tej._parse_listing(
                tej._split_answer(data)),
            'download frame': lambda data: tej._read_download_frame(
                io.BufferedReader(io.BytesIO(data))),
            'runtime_error': lambda data: tej._runtime_error(
                'status', data[0] if data else 1, data),
        }
        tried = 0
        for n, data in enumerate(self.inputs(rnd)):
            for name, parse in parsers.items():
                tried += 1
                try:
                    parse(data)
                except (tej.Error, ValueError):
                    pass
                except Exception as e:
                    self.fail("seed %d, input %d, %s(%r): %r" % (
                        seed, n, name, data, e))
            if n % 10 == 0:
                # the archive reader, on what a download stream brings
                target = os.path.join(tmp, 'x%d' % n)
                stream = io.BufferedReader(io.BytesIO(
                    data.split(b'stream=download\n', 1)[-1]))
                try:
                    tej._extract(stream, {'out': target}, True)
                except (tej.Error, ValueError):
                    pass
                except Exception as e:
                    self.fail("seed %d, input %d, _extract(%r): %r" % (
                        seed, n, data, e))
        self.assertGreaterEqual(tried, 20000)


class TestNotTransient(unittest.TestCase):
    """wait fails at once on what cannot heal (a name that does not
    resolve on the call's first connection, authentication refused, an
    unknown host key), and retries a name that stops resolving after the
    call had connected.
    """

    def timed(self, *argv, **env):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, os.path.join(support.TOP, 'tej.py')] +
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, TEJ_RETRY_FOR='300', **env), timeout=120)
        return (proc.returncode, proc.stderr.decode(),
                time.monotonic() - started)

    def assert_at_once(self, result, message):
        code, err, took = result
        self.assertEqual(code, 125, err)
        self.assertLess(took, 15, err)
        self.assertRegex(err, r'\Atej: error: [^\n]*%s[^\n]*\n\Z' % message)
        self.assertNotIn('trying again', err)

    def test_name_that_does_not_resolve(self):
        need('sshd', which('ssh'), "no ssh client")
        self.assert_at_once(self.timed('wait', 'no-such-host.invalid',
                                       '--id', 'x', '-F', '/dev/null'),
                            'Could not resolve hostname')

    def test_unknown_host_key_and_refused_authentication(self):
        server = support.ssh_server()
        tmp = support.temporary(self)
        known = os.path.join(tmp, 'known_hosts')
        open(known, 'w').close()
        self.assert_at_once(self.timed(
            'wait', server.alias, '--id', 'x', '-F', server.config,
            '-o', 'UserKnownHostsFile=%s' % known), 'host key')
        key = os.path.join(tmp, 'other_key')
        subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                               '-f', key])
        config = os.path.join(tmp, 'ssh_config')
        with open(server.config) as fp:
            text = fp.read()
        with open(config, 'w') as fp:
            fp.write(text.replace(server.path('client_key'), key))
        self.assert_at_once(self.timed('wait', server.alias, '--id', 'x',
                                       '-F', config), 'Authentication')

    def test_name_lost_after_a_connection_is_retried(self):
        """A stand-in ssh: the first call answers "running", the next
        ones fail to resolve the name, then it answers "finished 3".
        """
        count = os.path.join(support.temporary(self), 'count')
        support.stub_ssh(self, r"""
case " $* " in *" -O "*|*" -N "*) exit 255 ;; esac  # no master here
cat > /dev/null
echo x >> "%(count)s"
n=$(wc -l < "%(count)s")
record='%(record)s'
if [ "$n" -eq 1 ]; then
    printf 'TEJ 1\n%%s\n' "$record"
elif [ "$n" -le 3 ]; then
    echo "ssh: Could not resolve hostname flaky: Temporary failure in name resolution" >> "$TEJ_SSH_LOG"
    exit 255
else
    printf 'TEJ 1\n%%s\n' "$record" | sed 's/state=running/state=finished/; s/exit=/exit=3/'
fi
""" % {'count': count, 'record': RECORD})
        support.patch_env(self.addCleanup, TEJ_RETRY_FOR='60')
        q = tej.RemoteQueue('flaky', '~/q')
        with self.assertLogs('tej', 'WARNING') as logs:
            self.assertEqual(q.wait('x'), 3)
        self.assertTrue(any('trying again' in line for line in logs.output))
        # and the first connection of a call that fails that way: at once
        open(count, 'w').write('x\n')
        with self.assertRaises(tej.ConnectionLost):
            q.wait('x')
        with open(count) as fp:
            self.assertEqual(len(fp.read().split()), 2)


class TestMasterKilled(support.ServerCase):
    """The shared connection's master SIGKILLed during wait, during logs
    --follow, and between two calls: the call completes with the right
    result.
    """

    def kill_masters(self, q):
        masters = wait_for(lambda: self.server.masters(q), what='a master')
        for pid in masters:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not set(masters) & set(
            p.pid for p in support.processes()), what='the master to die')

    def test_during_wait(self):
        q = self.queue()
        job = self.job('w', {'start.sh': 'while [ ! -f go ] && '
                                         '[ -d "$PWD" ]; do sleep 0.1; '
                                         'done; exit 7\n'})
        q.submit('w', job)
        result = []
        waiter = threading.Thread(target=lambda: result.append(q.wait('w')))
        with self.assertLogs('tej', 'DEBUG'):
            waiter.start()
            wait_for(lambda: self.server.processes(' wait '),
                     what='wait to be waiting on the server')
            self.kill_masters(q)
            open(os.path.join(self.stage('w'), 'go'), 'w').close()
            waiter.join(120)
        self.assertEqual(result, [7])
        # left behind: a new master, the job finished
        self.assertTrue(q._transport.master.check())
        self.assertEqual(q.info('w')['state'], 'finished')

    def test_during_logs_follow(self):
        q = self.queue()
        job = self.job('f', {'start.sh':
                             'seq 1 1000\n'
                             'while [ ! -f go ] && [ -d "$PWD" ]; '
                             'do sleep 0.1; done\n'
                             'seq 1001 20000\n'})
        q.submit('f', job)
        out = io.BytesIO()
        result = []
        follow = threading.Thread(target=lambda: result.append(q.logs(
            'f', stdout=out, follow=True)))
        with self.assertLogs('tej', 'DEBUG'):
            follow.start()
            wait_for(out.getvalue, lambda d: d.endswith(b'\n1000\n'),
                     what='the first half')
            self.kill_masters(q)
            open(os.path.join(self.stage('f'), 'go'), 'w').close()
            follow.join(120)
        self.assertEqual(result, [('finished', 0)])
        self.assertEqual(out.getvalue(), ''.join(
            '%d\n' % i for i in range(1, 20001)).encode())

    def test_between_calls(self):
        q = self.queue()
        q.submit('b', self.job('b', {'start.sh': 'exit 4\n'}))
        self.assertEqual(q.wait('b'), 4)
        self.kill_masters(q)
        self.assertEqual(q.status('b')[::2], ('finished', '4'))
        self.assertEqual([j for j, _ in q.list()], ['b'])


class TestInterruptedSubmit(support.ServerCase):
    """The client SIGKILLed, or SIGINTed as a terminal does (its process
    group), during the upload of a submit (tej run), over ssh and through
    local:. Afterwards the job is not found (or, if the upload was over,
    it ran), no half-made job is left, and tej run started again runs it.
    """

    def run_argv(self, dest, queue, job):
        argv = [sys.executable, os.path.join(support.TOP, 'tej.py'), 'run',
                dest, job, '--queue', queue]
        if dest != 'local:':
            argv += ['-F', self.server.config]
        return argv

    def interrupt(self, dest, how):
        queue = (os.path.join(self.tmp, 'q') if dest == 'local:' else
                 self.queue_path)
        job = self.job('big', {'start.sh': 'echo ran; exit 4\n'})
        with open(os.path.join(job, 'big'), 'wb') as fp:
            fp.truncate(200 << 20)  # zeros, to read and to send
        proc = subprocess.Popen(self.run_argv(dest, queue, job),
                                start_new_session=True,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is not None or proc.kill())
        jobs = os.path.join(queue, 'jobs')
        wait_for(lambda: os.path.isdir(jobs) and os.listdir(jobs),
                 timeout=120, interval=0.01, what='the upload to start')
        if how == 'SIGINT':
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130 if how == 'SIGINT' else -9,
                         err)
        q = tej.RemoteQueue(dest, queue, ssh_options=self.server.options)
        self.addCleanup(q.close)
        # the server side ends by itself (its input is gone)
        listing = wait_for(
            lambda: (os.listdir(jobs), [(i, r['state'])
                                        for i, r in q.list()]),
            lambda found: not [n for n in found[0] if n.startswith('.')] and
            not [s for _, s in found[1] if s in ('created', 'running')],
            timeout=60, what='the submission to be cleaned up or done')
        # not even lost: the half-made job was removed (or, if the upload
        # was over, the job ran)
        for job_id, state in listing[1]:
            self.assertEqual(state, 'finished', listing)
        # run again: it runs (or follows) the job, with its exit code
        again = subprocess.run(self.run_argv(dest, queue, job),
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=300)
        self.assertEqual((again.returncode, again.stdout), (4, b'ran\n'),
                         again.stderr)
        self.assertEqual(os.listdir(jobs), [])

    def test_local_sigint(self):
        self.interrupt('local:', 'SIGINT')

    def test_local_sigkill(self):
        self.interrupt('local:', 'SIGKILL')

    def test_ssh_sigint(self):
        self.interrupt(self.dest, 'SIGINT')

    def test_ssh_sigkill(self):
        self.interrupt(self.dest, 'SIGKILL')


class TestTerminatedSubmission(unittest.TestCase):
    """The server side of a submit, terminated (TERM to its process group,
    as the client's interrupted call sends) while its upload is still
    coming: it removes its half-made job.
    """

    def test_term_mid_upload_removes_the_job(self):
        tmp = support.temporary(self)
        queue = os.path.join(tmp, 'q')
        tej.RemoteQueue('local:', queue).setup()
        proc = subprocess.Popen(
            ['sh', os.path.join(queue, 'tej.sh'), queue, 'submit', 'cut',
             'file', 'start.sh'], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self.addCleanup(lambda: proc.poll() is not None or proc.kill())
        # the start of an archive whose one file is far from complete; the
        # pipe stays open
        info = tarfile.TarInfo('big')
        info.size = 1 << 30
        proc.stdin.write(info.tobuf(tarfile.GNU_FORMAT) + b'\0' * 65536)
        proc.stdin.flush()
        jobs = os.path.join(queue, 'jobs')
        wait_for(lambda: os.listdir(jobs), what='the job to be begun')
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        self.assertEqual(os.listdir(jobs), [])
        self.assertEqual(list(tej.RemoteQueue('local:', queue).list()), [])


class TestKilledProcesses(support.ServerCase):
    """The job's wrapper SIGKILLed (as by the OOM killer): lost. The job's
    own process SIGKILLed: finished 137. Never running.
    """

    def start(self, job_id, marker):
        q = self.queue()
        q.submit(job_id, self.job(job_id, {
            'start.sh': 'exec sleep %d\n' % marker}))
        wait_state(q, job_id, ('running',))
        pids = wait_for(lambda: self.server.processes('sleep %d' % marker),
                        what='the job to run')
        for pid in pids:
            self.addCleanup(lambda p=pid: support.alive(p) and
                            os.kill(p, signal.SIGKILL))
        state = support.read_record(self.queue_path, job_id)
        return q, int(state['pid']), pids[0]

    def test_wrapper_killed(self):
        q, wrapper, job = self.start('oom', 1017)
        os.kill(wrapper, signal.SIGKILL)
        wait_for(lambda: not support.alive(wrapper), what='the wrapper to die')
        record = wait_state(q, 'oom', ('lost',), timeout=20)
        self.assertIsNone(record['exit'])
        code, out, err = self.cli('status', self.dest, '--id', 'oom')
        self.assertEqual(out, 'lost\n')
        # left behind: the job's own process, which nothing waits for
        self.assertTrue(support.alive(job))

    def test_job_killed(self):
        q, wrapper, job = self.start('job9', 1018)
        os.kill(job, signal.SIGKILL)
        record = wait_state(q, 'job9', timeout=20)
        self.assertEqual((record['state'], record['exit']), ('finished', 137))
        self.assertEqual(q.wait('job9'), 137)
        wait_for(lambda: not support.alive(wrapper), what='the wrapper to end')


class TestReboot(unittest.TestCase):
    """A reboot, simulated by a change of the boot id (TEJ_BOOT_ID_FILE):
    a job recorded before it reads lost; one submitted after runs.
    """

    def test_job_from_before_the_reboot_is_lost(self):
        tmp = support.temporary(self)
        boot = os.path.join(tmp, 'boot_id')
        with open(boot, 'w') as fp:
            fp.write('faults-boot-1\n')
        support.patch_env(self.addCleanup, TEJ_BOOT_ID_FILE=boot)
        q = tej.RemoteQueue('local:', os.path.join(tmp, 'q'))
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'exec sleep 1019\n'})
        q.submit('before', job)
        self.assertEqual(wait_state(q, 'before', ('running',))['state'],
                         'running')
        # once lost, kill leaves it alone: its process group is killed here
        # (recorded by the wrapper once it runs, after the submission said
        # "running")
        pgid = int(wait_for(
            lambda: support.read_record(os.path.join(tmp, 'q'),
                                        'before').get('pgid'),
            what="the wrapper's record of its group"))
        self.addCleanup(lambda: support.alive(pgid) and
                        os.killpg(pgid, signal.SIGKILL))
        with open(boot, 'w') as fp:
            fp.write('faults-boot-2\n')
        record = q.info('before')
        self.assertEqual((record['state'], record['exit']), ('lost', None))
        self.assertEqual(run_cli('status', 'local:', '--id', 'before',
                                 '--queue', os.path.join(tmp, 'q'))[1],
                         'lost\n')
        q.submit('after', job, script='exit 2')
        self.assertEqual(q.wait('after'), 2)


class TestBrokenQueue(unittest.TestCase):
    """A queue on a read-only file system, and a queue whose directory was
    deleted under a running job: clean errors, and the rest answers.
    """

    def setUp(self):
        self.tmp = support.temporary(self)
        os.chmod(self.tmp, 0o755)
        self.job = support.make_tree(os.path.join(self.tmp, 'job'),
                                     {'start.sh': 'exit 0\n'})
        self.other = tej.RemoteQueue('local:', os.path.join(self.tmp, 'ok'))
        self.other.submit('fine', self.job)
        self.other.wait('fine')

    def assert_error(self, *argv):
        code, out, err = run_cli(*argv)
        self.assertEqual((code, out), (1, ''), err)
        self.assertRegex(err, r'\Atej: error: [^\n]+\n\Z')
        return err

    def test_read_only(self):
        need('sshd', os.getuid() == 0 and which('mount'),
             "a read-only mount needs root")
        where = os.path.join(self.tmp, 'faults-ro')
        os.mkdir(where)
        subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=16m',
                               'faults-ro', where])
        self.addCleanup(subprocess.call, ['umount', '-l', where])
        path = os.path.join(where, 'q')
        q = tej.RemoteQueue('local:', path)
        q.submit('done', self.job, script='exit 5')
        self.assertEqual(q.wait('done'), 5)
        subprocess.check_call(['mount', '-o', 'remount,ro', where])
        queue = ['--queue', path]
        results = {}
        for argv in (['status', 'local:', '--id', 'done'],
                     ['list', 'local:'],
                     ['wait', 'local:', '--id', 'done']):
            results[argv[0]] = run_cli(*(argv + queue))
        # reading needs no writing
        self.assertEqual(results['status'][:2], (0, 'finished 5\n'),
                         results['status'])
        self.assertEqual(results['list'][:2], (0, 'done finished\n'),
                         results['list'])
        self.assertEqual(results['wait'][0], 5, results['wait'])
        err = self.assert_error('submit', 'local:', self.job, *queue)
        self.assertIn('Read-only', err)
        self.assert_error('delete', 'local:', '--id', 'done', *queue)
        self.assertEqual(self.other.status('fine')[::2], ('finished', '0'))

    def test_deleted_under_a_running_job(self):
        path = os.path.join(self.tmp, 'q')
        q = tej.RemoteQueue('local:', path)
        q.submit('orphan', self.job, script='sleep 2; exit 3')
        wait_state(q, 'orphan', ('running',))
        marker = lambda p: 'sleep 2' in p.args and path in p.cwd  # noqa
        remove_tree(path)
        err = self.assert_error('status', 'local:', '--id', 'orphan',
                                '--queue', path)
        self.assertIn('no queue', err)
        self.assert_error('list', 'local:', '--queue', path)
        code = run_cli('wait', 'local:', '--id', 'orphan', '--queue', path)
        self.assertEqual(code[0], 125, code)
        self.assertEqual(self.other.status('fine')[::2], ('finished', '0'))
        # left behind: nothing, once the job has ended
        wait_for(lambda: support.processes(marker), lambda found: not found,
                 timeout=30, what="the job's processes to end")
        self.assertFalse(os.path.exists(path))


def remove_tree(path):
    """rm -rf PATH, as a user would, while processes may still write in it
    (a lock's "beat" replaced, a lock given back): what vanishes meanwhile
    is not an error, nor what appears; done once PATH is gone.
    """
    def meanwhile(function, name, exc_info):
        error = exc_info[1]
        if not (isinstance(error, FileNotFoundError) or
                getattr(error, 'errno', None) == errno.ENOTEMPTY):
            raise error
    wait_for(lambda: shutil.rmtree(path, onerror=meanwhile) or
             not os.path.lexists(path), what='%s to be removed' % path)


LOAD_CLIENT = r"""
import sys, threading
sys.path.insert(0, sys.argv[1])
import tej
proc, job, queue = int(sys.argv[2]), sys.argv[3], sys.argv[4]
q = tej.RemoteQueue(sys.argv[5], queue, ssh_options=sys.argv[6:])
errors = []
def submit(thread):
    n = proc * 10 + thread
    try:
        q.submit('load-%03d' % n, job, script='exit %d' % (n % 256))
    except Exception as e:
        errors.append('%d: %r' % (n, e))
threads = [threading.Thread(target=submit, args=(t,)) for t in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stderr.write(''.join(e + '\n' for e in errors))
sys.exit(1 if errors else 0)
"""


class TestLoad(support.ServerCase):
    """200 jobs submitted from 20 processes of 10 threads at once, through
    one server: all succeed, list shows exactly them, each finishes with
    its own exit code.
    """

    def test_200_jobs(self):
        job = self.job('load', {'start.sh': 'exit 0\n'})
        q = self.queue()
        q.setup()
        procs = [subprocess.Popen(
            [sys.executable, '-c', LOAD_CLIENT, support.TOP, str(p), job,
             self.queue_path, self.dest] + self.server.options,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for p in range(20)]
        failures = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            if p.returncode:
                failures.append(err.decode())
        self.assertEqual(failures, [])
        ids = ['load-%03d' % n for n in range(200)]
        self.assertEqual(sorted(j for j, _ in q.list()), ids)
        records = q.wait_all(ids, timeout=300)
        self.assertEqual([(r['id'], r['state'], r['exit']) for r in records],
                         [(i, 'finished', n % 256) for n, i in
                          enumerate(ids)])


if __name__ == '__main__':
    unittest.main()

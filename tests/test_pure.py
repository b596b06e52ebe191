"""Pure tests: destinations, ids, quoting, parsers, safe extraction, embed
sync, command line errors. No server.
"""

import getpass
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

from . import support
from .support import tej, run_cli

NASTY = ['plain', 'with space', "it's", 'say "hi"', '$HOME', '$(id)', '`id`',
         '-n', '--help', 'new\nline', 'tab\there', 'caf\u00e9 \u4e2d\u6587',
         '*', '\\', ';rm', '', '!bang', '~']


class TestDestinations(unittest.TestCase):
    def test_parse(self):
        me = getpass.getuser()
        P = tej.parse_ssh_destination
        self.assertEqual(P('host'), {'hostname': 'host', 'username': me})
        self.assertEqual(P('ssh://user@host'),
                         {'hostname': 'host', 'username': 'user'})
        self.assertEqual(P('user@host:2222'),
                         {'hostname': 'host', 'username': 'user', 'port': 2222})
        self.assertEqual(P('me:p4$$w0rd@host:12'),
                         {'hostname': 'host', 'username': 'me',
                          'password': 'p4$$w0rd', 'port': 12})
        self.assertEqual(P('[::1]:22'),
                         {'hostname': '::1', 'username': me, 'port': 22})
        self.assertEqual(P('u@[fe80::1%eth0]'),
                         {'hostname': 'fe80::1%eth0', 'username': 'u'})
        self.assertEqual(P('my-alias.example.org'),
                         {'hostname': 'my-alias.example.org', 'username': me})

    def test_invalid(self):
        for bad in ['http://host', 'ssh://test@test@host', 'ssh://host:port',
                    '', 'host:99999', '-oProxyCommand=x', 'a b', 'host/x',
                    'user@', '@host', 'local:', 'ho;st']:
            with self.assertRaises(tej.InvalidDestination, msg=bad):
                tej.parse_ssh_destination(bad)

    def test_as_string(self):
        S = tej.destination_as_string
        self.assertEqual(S({'hostname': 'h', 'username': 'u'}), 'ssh://u@h')
        self.assertEqual(S({'hostname': 'h', 'username': 'u', 'port': 22}),
                         'ssh://u@h')
        self.assertEqual(S({'hostname': 'h', 'username': 'u', 'port': 2}),
                         'ssh://u@h:2')
        self.assertEqual(S({'hostname': 'h', 'username': 'u',
                            'password': 'p'}), 'ssh://u:p@h')
        self.assertEqual(S({'hostname': '::1', 'port': 2}), 'ssh://[::1]:2')
        d = tej.parse_ssh_destination('ssh://me@h:12')
        self.assertEqual(tej.parse_ssh_destination(S(d)), d)

    def test_queue_hides_password(self):
        q = tej.RemoteQueue('me:secret@host:12', '~/.tej')
        self.assertEqual(q.destination_string, 'ssh://me@host:12')
        self.assertNotIn('secret', repr(q))
        q = tej.RemoteQueue({'hostname': 'h', 'username': 'u'})
        self.assertEqual(q.destination_string, 'ssh://u@h')
        with self.assertRaises(tej.InvalidDestination):
            tej.RemoteQueue({'username': 'u'})
        with self.assertRaises(ValueError):
            tej.RemoteQueue('h', setup_runtime='nope')
        with self.assertRaises(ValueError):
            tej.RemoteQueue('h', 'bad\nqueue')

    def test_control_path_is_short_and_private(self):
        q = tej.RemoteQueue('u@' + 'h' * 200, '~/.tej')
        path = q._transport.control_path
        self.assertLess(len(path), 100)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777,
                         0o700)
        other = tej.RemoteQueue('u@' + 'h' * 200, '~/.tej',
                                ssh_options=['-p', '2'])
        self.assertNotEqual(path, other._transport.control_path)

    def test_control_path_too_long(self):
        old = os.environ['HOME']
        os.environ['HOME'] = os.path.join(support.Hermetic.start(), 'x' * 120)
        try:
            q = tej.RemoteQueue('host')
            with self.assertRaises(tej.Error) as ctx:
                q._transport.control_path
            self.assertIn('too long', str(ctx.exception))
        finally:
            os.environ['HOME'] = old


class TestPasswords(unittest.TestCase):
    def test_at_and_colon_in_a_password(self):
        self.assertEqual(tej.parse_ssh_destination('u:p@s:s@w@host:2222'),
                         {'hostname': 'host', 'username': 'u',
                          'password': 'p@s:s@w', 'port': 2222})

    def test_masked(self):
        M = tej._masked
        self.assertEqual(M('u:p@s:s@host'), 'u:***@host')
        self.assertEqual(M('ssh://u:secret@host:22'), 'ssh://u:***@host:22')
        self.assertEqual(M('u@host'), 'u@host')
        self.assertEqual(M('host:22'), 'host:22')
        for bad in ['u:secret@bad host', 'u:secret@host:99999',
                    'j@corp.com:secret@host', 'us/er:secret@h']:
            with self.assertRaises(tej.InvalidDestination) as ctx:
                tej.RemoteQueue(bad)
            self.assertNotIn('secret', str(ctx.exception))
            self.assertIn(':***@', str(ctx.exception))

    def test_askpass_answers_the_target_only(self):
        script = os.path.join(tempfile.mkdtemp(), 'askpass')
        with open(script, 'w') as fp:
            fp.write(tej._ASKPASS)
        os.chmod(script, 0o700)
        env = tej._askpass_env(script, "it's $x", 'me@target')
        for prompt, answer in [
                ("me@target's password: ", b"it's $x\n"),
                ('(me@target) Password: ', b"it's $x\n"),
                ('(me@target) Verification code: ', None),
                # a ProxyJump host asks in the same words, for itself
                ("me@jump's password: ", None),
                ("me@target.evil's password: ", None),
                ('(me@jump) Password: ', None),
                ('Enter passphrase for key: ', None)]:
            proc = subprocess.run([script, prompt], env=env,
                                  stdout=subprocess.PIPE)
            if answer is None:
                self.assertNotEqual(proc.returncode, 0, prompt)
                self.assertEqual(proc.stdout, b'', prompt)
            else:
                self.assertEqual((proc.returncode, proc.stdout), (0, answer))

    def test_prompt_for(self):
        config = 'user tejtest\nhostname 127.0.0.1\nport 22\n'
        self.assertEqual(tej._prompt_for(config), 'tejtest@127.0.0.1')
        self.assertEqual(tej._prompt_for(config + 'hostkeyalias tejhost\n'),
                         'tejtest@tejhost')
        # ssh 9 says the whole name; ssh 8 cut it at 30 characters
        long_user = tej._askpass_env('askpass', 'pw', 'u' * 40 + '@h')
        self.assertEqual(long_user['TEJ_PASSWORD_FOR'], 'u' * 40 + '@h')
        self.assertEqual(long_user['TEJ_PASSWORD_FOR_CUT'], 'u' * 30 + '@h')


class TestOriginalModules(unittest.TestCase):
    """The original package's module paths, each imported in a fresh
    interpreter.
    """

    def python(self, code, path):
        proc = subprocess.run([sys.executable, '-c', code], cwd=path,
                              env=dict(os.environ, PYTHONPATH=path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        return proc.stdout.decode()

    def test_imports(self):
        out = self.python(
            'import importlib, tej\n'
            'import tej.submission, tej.errors, tej.utils\n'
            'from tej.submission import RemoteQueue\n'
            'from tej.errors import JobNotFound\n'
            'from tej.utils import unicode_, shell_escape, iteritems\n'
            'assert RemoteQueue is tej.RemoteQueue\n'
            'assert issubclass(JobNotFound, tej.Error)\n'
            'q = tej.submission.RemoteQueue("local:")\n'
            'importlib.reload(tej)\n'
            'from tej.utils import listvalues\n'
            'print(unicode_ is str, shell_escape(\'bl"a $x\'), '
            'shell_escape("a/b"), list(iteritems({1: 2})), '
            'listvalues({3: 4}))\n', support.TOP)
        self.assertEqual(out, 'True "bl\\"a \\$x" a/b [(1, 2)] [4]\n')

    def test_vendored_under_another_name(self):
        # mypkg.tej has its own paths; a real package named tej is not
        # shadowed
        top = support.temporary(self)
        support.make_tree(top, {'mypkg/__init__.py': '',
                                'tej/__init__.py': '',
                                'tej/submission.py': 'REAL = True\n'})
        shutil.copy(os.path.join(support.TOP, 'tej.py'),
                    os.path.join(top, 'mypkg', 'tej.py'))
        out = self.python(
            'from mypkg import tej\n'
            'from mypkg.tej.submission import RemoteQueue\n'
            'from mypkg.tej.utils import string_types\n'
            'import tej.submission\n'
            'print(RemoteQueue.__module__, tej.submission.REAL, '
            'string_types)\n', top)
        self.assertEqual(out, "mypkg.tej True (<class 'str'>,)\n")


class TestIds(unittest.TestCase):
    def test_valid(self):
        for good in ['a', 'job_1', 'A.b,c+d=e@f%g:h-i', '0' * 128, '_x']:
            tej.check_jobid(good)

    def test_invalid(self):
        for bad in ['', '..', '.hidden', '-rf', 'a/b', '../x', 'a b',
                    '$(id)', 'a\nb', 'a\tb', 'caf\u00e9', '0' * 129, 'a;b',
                    "a'b", None, 12]:
            with self.assertRaises(ValueError, msg=repr(bad)):
                tej.check_jobid(bad)

    def test_unique_names(self):
        names = {tej.make_unique_name() for _ in range(100)}
        self.assertEqual(len(names), 100)
        for name in names:
            self.assertRegex(name, r'\A[a-z0-9]{10}\Z')

    def test_default_id(self):
        job_id = tej._default_job_id('/some/my job dir/', 'me')
        self.assertRegex(job_id, r'\Amy_job_dir_me_[a-z0-9]{10}\Z')
        tej.check_jobid(job_id)
        tej.check_jobid(tej._default_job_id('/x/.hidden', 'u'))
        tej.check_jobid(tej._default_job_id('/x/' + 'a' * 300, 'u'))


class TestQuoting(unittest.TestCase):
    def test_round_trip_through_sh(self):
        """Every argument reaches the remote sh byte for byte."""
        command = tej._shell_command(
            ['sh', '-c', 'printf "%s\\0" "$@"', 'sh'] + NASTY)
        out = subprocess.run(['sh', '-c', command],
                             stdout=subprocess.PIPE).stdout
        self.assertEqual(out.decode('utf-8').split('\0')[:-1], NASTY)

    def test_bootstrap_is_one_line(self):
        # a csh login shell reads it: no newline, no history "!"
        self.assertNotIn('\n', tej._BOOTSTRAP)
        self.assertNotIn('!', tej._BOOTSTRAP)


class TestParsers(unittest.TestCase):
    def test_split_answer(self):
        out = b'Welcome to the cluster!\nTEJ 1\nid=x\n'
        self.assertEqual(tej._split_answer(out), ['id=x'])
        self.assertEqual(tej._split_answer(b'TEJ 1\r\na=1\r\n'), ['a=1\r'])
        with self.assertRaises(tej.RemoteCommandFailure):
            tej._split_answer(b'no sentinel here\n')
        with self.assertRaises(tej.RemoteCommandFailure):
            tej._split_answer(b'TEJ 12\n')

    def test_read_until_stream(self):
        def R(data):
            return tej._read_until_stream(io.BytesIO(data))
        self.assertEqual(R(b'motd\nTEJ 1\nstream=logs\nout 1\n'),
                         'stream=logs')
        self.assertEqual(R(b'TEJ 1\r\nstream=download\r\n'),
                         'stream=download')
        # a near miss is not the sentinel: another protocol, or noise
        self.assertEqual(R(b'TEJ 12\nstream=logs\n'), '')
        self.assertEqual(R(b'TEJ 10 banner\nstream=logs\n'), '')
        self.assertEqual(R(b'no sentinel\n'), '')

    def test_record(self):
        line = ('id=j\tstate=finished\texit=3\tsubmitted=10\tstarted=11\t'
                'finished=20\tnow=30\truntime=default\truntime_id=\t'
                'dir=/q/jobs/j/st\tage')
        record = tej._parse_record(line)
        self.assertEqual(record, {
            'id': 'j', 'state': 'finished', 'exit': 3, 'submitted': 10,
            'started': 11, 'finished': 20, 'now': 30, 'runtime': 'default',
            'runtime_id': None, 'dir': '/q/jobs/j/st\tage'})
        running = tej._parse_record(
            'id=j\tstate=running\texit=\tsubmitted=4\tstarted=5\tfinished=\t'
            'now=6\truntime=default\truntime_id=\tdir=/q/jobs/j/stage')
        self.assertIsNone(running['exit'])
        self.assertEqual(tej._compat_status(record)[::2], ('finished', '3'))
        self.assertEqual(tej._compat_status(record)[1], '/q/jobs/j/st\tage')
        killed = dict(record, state='killed', exit=143)
        self.assertEqual(tej._compat_status(killed)[::2], ('finished', '143'))
        self.assertEqual(tej._compat_status(dict(record, state='lost'))[::2],
                         ('lost', None))
        self.assertEqual(tej._parse_record('id=x\tstate=notfound'),
                         {'id': 'x', 'state': 'notfound', 'exit': None,
                          'submitted': None, 'started': None,
                          'finished': None, 'now': None})

    def test_record_errors(self):
        for line in ['', 'id=x', 'state=running', 'id=x\tstate=running\texit=a',
                     'id=x\tstate=finished\tstarted=1.5']:
            with self.assertRaises(tej.RemoteCommandFailure, msg=line):
                tej._parse_record(line)

    def test_version(self):
        V = tej._parse_version
        self.assertEqual(V(tej._runtime_version('slurm')), 'slurm')
        self.assertEqual(V('1/default/0123'), 'default')
        for line in ['', 'garbage', '1//0123', '1/default', '1/a/b/c']:
            self.assertIsNone(V(line), line)

    def test_need_runtime(self):
        N = tej._parse_need_runtime
        self.assertEqual(N(['queue=missing', 'installed=',
                            'detected=slurm']), (True, None, 'slurm'))
        self.assertEqual(N(['installed=1/pbs/0123']), (False, 'pbs', None))
        self.assertEqual(N([]), (False, None, None))

    def test_frames(self):
        F = tej._parse_frame
        self.assertEqual(F(b'out 12\n'), ('out', 12))
        self.assertEqual(F(b'err 0\n'), ('err', 0))
        self.assertEqual(F(b'tick\n'), ('tick', None))
        self.assertEqual(F(b'end finished 3\n'), ('end', ('finished', 3)))
        self.assertEqual(F(b'end lost\n'), ('end', ('lost', None)))
        for line in [b'out x\n', b'out -1\n', b'hello\n', b'end\n',
                     b'tick 1\n', b'end finished x\n', b'\n']:
            with self.assertRaises(tej.RemoteCommandFailure, msg=line):
                F(line)

    def test_runtime_errors(self):
        E = tej._runtime_error
        for code, cls in [(tej._RC_RUNNING, tej.JobStillRunning),
                          (tej._RC_NO_JOB, tej.JobNotFound),
                          (tej._RC_JOB_EXISTS, tej.JobAlreadyExists),
                          (tej._RC_LINK_BROKEN, tej.QueueLinkBroken),
                          (tej._RC_QUEUE_EXISTS, tej.QueueExists),
                          (tej._RC_INVALID, ValueError),
                          (tej._RC_UNSUPPORTED, tej.Error),
                          (tej._RC_NO_FILE, tej._NoSuchFile)]:
            error = E('verb', code, b'noise\ntej: it says why\n')
            self.assertIs(type(error), cls, code)
            self.assertEqual(str(error), 'it says why')
        # no message of the runtime's: a tool's status, through set -e
        error = E('status', tej._RC_RUNNING, b'tar: broken\n')
        self.assertIs(type(error), tej.RemoteCommandFailure)
        self.assertEqual((error.ret, error.stderr), (2, 'tar: broken'))
        self.assertIs(type(E('status', tej._RC_NO_JOB, b'')), tej.JobNotFound)
        self.assertIs(type(E('x', 127, b'tej: sh: not found\n')),
                      tej.RemoteCommandFailure)

    def test_prelude_names_every_code(self):
        names = sorted(n[4:] for n in dir(tej) if n.startswith('_RC_'))
        out = subprocess.run(
            ['sh', '-c', tej._prelude() + 'echo "$TEJ_PROTOCOL" ' + ' '.join(
                '"$RC_%s"' % name for name in names)],
            stdout=subprocess.PIPE, check=True).stdout.split()
        self.assertEqual([int(x) for x in out], [tej.PROTOCOL] + [
            getattr(tej, '_RC_' + name) for name in names])

    def test_fold_means_the_same(self):
        script = ('# a comment\n'
                  'f() {\n'
                  '    echo "f $1"\n'
                  '}\n'
                  'if [ -n "$1" ]; then\n'
                  '    f one\n'
                  'else\n'
                  '    f none\n'
                  'fi\n'
                  'for x in a b; do\n'
                  '    echo "$x"\n'
                  'done\n'
                  'case $1 in\n'
                  '    1) echo is1 ;;\n'
                  '    *) echo other ;;\n'
                  'esac\n'
                  'true &&\n'
                  '    echo and\n'
                  'printf "%s\\n" x |\n'
                  '    tr x y\n')
        folded = tej._fold(script)
        self.assertNotIn('\n', folded)
        self.assertNotIn('comment', folded)
        for arg in ['1', '']:
            run = [subprocess.run(['sh', '-c', text, 'sh', arg],
                                  stdout=subprocess.PIPE, check=True).stdout
                   for text in (script, folded)]
            self.assertEqual(run[0], run[1])
        self.assertEqual(run[0], b'f none\na\nb\nother\nand\ny\n')

    def test_seconds_text(self):
        self.assertEqual([tej._seconds_text(n) for n in (1, 2, 0.5, 300.0)],
                         ['1 second', '2 seconds', '0.5 seconds',
                          '300 seconds'])

    def test_duration(self):
        self.assertEqual(tej._format_duration(5337), '1:28:57')
        self.assertEqual(tej._format_duration(0), '0:00:00')
        self.assertEqual(tej._format_duration(-3), '0:00:00')

    def test_pairs(self):
        self.assertEqual(tej._parse_pairs(['a=1', 'b=x=y', 'junk']),
                         {'a': '1', 'b': 'x=y'})


class TestHelpers(unittest.TestCase):
    def test_prepend_takes_the_whole_file(self):
        # the file may have been read by a first try (ssh reads its stdin)
        with tempfile.TemporaryFile() as fp:
            fp.write(b'archive')
            combined = io.BytesIO()
            tej._prepend(b'runtime:', fp)(combined)
            self.assertEqual(combined.getvalue(), b'runtime:archive')
        # a producer is run again, whole
        combined = io.BytesIO()
        tej._prepend(b'runtime:', lambda pipe: pipe.write(b'tar'))(combined)
        self.assertEqual(combined.getvalue(), b'runtime:tar')

    def test_json_record(self):
        record = {'id': 'j', 'state': 'finished', 'exit': 3,
                  'submitted': 0, 'started': 60, 'finished': 3661,
                  'dir': '/q/jobs/j/stage', 'runtime': 'default',
                  'runtime_id': ''}
        J = tej._json_record
        self.assertEqual(J(record), {
            'tej': 1, 'id': 'j', 'state': 'finished', 'exit_code': 3,
            'submitted': '1970-01-01T00:00:00Z', 'submitted_epoch': 0,
            'started': '1970-01-01T00:01:00Z', 'started_epoch': 60,
            'finished': '1970-01-01T01:01:01Z', 'finished_epoch': 3661,
            'directory': '/q/jobs/j/stage', 'runtime': 'default',
            'runtime_id': None})
        # no exit code is null, never 0: a lost or running job did not
        # succeed
        for state in ('lost', 'running', 'created'):
            self.assertIsNone(J(dict(record, state=state,
                                     exit=None))['exit_code'], state)
        self.assertEqual(J(dict(record, exit=0))['exit_code'], 0)
        self.assertEqual(J({'id': 'x', 'state': 'notfound'})['exit_code'],
                         None)


class TestScriptMode(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        support.make_tree(self.dir, {'start.sh': 'true', 'bin/run.py': '',
                                     'has space.sh': ''})

    def test_modes(self):
        M = tej._script_mode
        self.assertEqual(M(self.dir, None), ('file', 'start.sh'))
        self.assertEqual(M(self.dir, './bin/run.py'), ('file', 'bin/run.py'))
        self.assertEqual(M(self.dir, 'has space.sh'), ('file', 'has space.sh'))
        self.assertEqual(M(self.dir, 'echo "hi"'), ('command', 'echo "hi"'))
        self.assertEqual(M(self.dir, 'make'), ('command', 'make'))
        for missing in ['nope.sh', 'bin/nope', '../start.sh']:
            with self.assertRaises(ValueError, msg=missing):
                M(self.dir, missing)
        with self.assertRaises(ValueError):
            M(self.dir, '  ')
        os.unlink(os.path.join(self.dir, 'start.sh'))
        with self.assertRaises(ValueError):
            M(self.dir, None)


def _tar(members):
    """A tar archive in memory: members are (TarInfo kwargs, data)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as t:
        for fields, data in members:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop('name'))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
    buf.seek(0)
    return buf


def _sparse_member(name, size, blocks):
    """A tar archive of one GNU sparse member (PAX, format 1.0): ``size``
    bytes, ``blocks`` (offset, data) of data, holes elsewhere.
    """
    sparse_map = '%d\n' % len(blocks) + ''.join(
        '%d\n%d\n' % (offset, len(data)) for offset, data in blocks)
    sparse_map = sparse_map.encode() + bytes(-len(sparse_map) % 512)
    data = sparse_map + b''.join(data for _, data in blocks)
    info = tarfile.TarInfo('GNUSparseFile.0/' + name)
    info.size = len(data)
    info.pax_headers = {'GNU.sparse.major': '1', 'GNU.sparse.minor': '0',
                        'GNU.sparse.name': name,
                        'GNU.sparse.realsize': str(size)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
        t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class TestMembers(unittest.TestCase):
    """Paths inside a job, as download takes them and archives hold them."""

    def test_normalized(self):
        N = tej._normalize_member
        self.assertEqual(N('./a//b/./c'), 'a/b/c')
        self.assertEqual(N('-n'), '-n')
        self.assertEqual(N('a..b/..c'), 'a..b/..c')
        for bad in ['/etc/passwd', '//etc', '..', '../x', 'a/../../x',
                    'a/..', '', '.', './', None]:
            with self.assertRaises(ValueError, msg=bad):
                N(bad, ValueError)

    def test_download_arguments_checked_first(self):
        q = tej.RemoteQueue('local:', '/nonexistent/queue')
        for bad in ['/etc/passwd', '../x', 'a/../../x']:
            with self.assertRaises(ValueError, msg=bad):
                q.download('j', bad)
        # two files of one name would overwrite each other
        with self.assertRaises(ValueError):
            q.download('j', ['a/x', 'b/x'], directory='/nonexistent')
        # a path inside another asked for: the inner one would be lost
        with self.assertRaisesRegex(ValueError, 'd/f is inside d'):
            q.download('j', ['d', 'd/f'], directory='/nonexistent')


class TestExtract(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp()
        self.dest = os.path.join(self.top, 'dest')

    def extract(self, members, targets=None, recursive=True):
        targets = targets or {'out': os.path.join(self.dest, 'out')}
        tej._extract(_tar(members), targets, recursive)

    def test_names_survive(self):
        names = ['out/with space', "out/it's", 'out/$HOME', 'out/-n',
                 'out/new\nline', 'out/caf\u00e9 \u4e2d\u6587', 'out/sub/x']
        self.extract([({'name': 'out', 'type': tarfile.DIRTYPE}, None)] +
                     [({'name': './' + n}, n.encode('utf-8')) for n in names])
        for name in names:
            with open(os.path.join(self.dest, name), 'rb') as fp:
                self.assertEqual(fp.read(), name.encode('utf-8'))

    def test_rename_and_not_recursive(self):
        self.extract([({'name': 'out/a'}, b'a'), ({'name': 'out/d/b'}, b'b')],
                     {'out': os.path.join(self.dest, 'renamed')})
        self.assertTrue(os.path.isfile(os.path.join(self.dest, 'renamed/d/b')))
        self.extract([({'name': 'out', 'type': tarfile.DIRTYPE}, None),
                      ({'name': 'out/a'}, b'a')],
                     {'out': os.path.join(self.dest, 'flat')}, recursive=False)
        self.assertEqual(os.listdir(os.path.join(self.dest, 'flat')), [])

    def test_hostile_names(self):
        for name in ['/etc/evil', 'out/../../evil', '../evil', 'other/x',
                     'outside/evil']:
            with self.assertRaises(tej.Error, msg=name):
                self.extract([({'name': name}, b'x')])
        self.assertFalse(os.path.exists(os.path.join(self.top, 'evil')))
        # a sibling whose name starts with the target's
        self.assertFalse(os.path.exists(os.path.join(self.dest, 'outside')))

    def test_links_pointing_out(self):
        # a sibling whose name starts with the target's, there on disk
        os.makedirs(os.path.join(self.dest, 'out2'))
        self.extract([({'name': 'out/up', 'type': tarfile.SYMTYPE,
                        'linkname': '../../..'}, None),
                      ({'name': 'out/abs', 'type': tarfile.SYMTYPE,
                        'linkname': '/etc'}, None),
                      ({'name': 'out/ok', 'type': tarfile.SYMTYPE,
                        'linkname': 'file'}, None),
                      # a sibling whose name starts with the target's
                      ({'name': 'out/esc', 'type': tarfile.SYMTYPE,
                        'linkname': '../out2'}, None),
                      ({'name': 'out/file'}, b'in')])
        out = os.path.join(self.dest, 'out')
        self.assertFalse(os.path.lexists(os.path.join(out, 'up')))
        self.assertFalse(os.path.lexists(os.path.join(out, 'abs')))
        self.assertFalse(os.path.lexists(os.path.join(out, 'esc')))
        self.assertEqual(os.readlink(os.path.join(out, 'ok')), 'file')

    def test_links_never_lead_writes_elsewhere(self):
        # a link to elsewhere in the download directory (.git/hooks)
        os.makedirs(os.path.join(self.dest, '.git', 'hooks'))
        self.extract([({'name': 'out', 'type': tarfile.SYMTYPE,
                        'linkname': '.git/hooks'}, None),
                      ({'name': 'out/pre-commit', 'mode': 0o755}, b'x')])
        self.assertEqual(os.listdir(os.path.join(self.dest, '.git',
                                                 'hooks')), [])
        self.assertFalse(os.path.islink(os.path.join(self.dest, 'out')))
        shutil.rmtree(os.path.join(self.dest, 'out'))
        # a link made first, pointing through a second one made later
        self.extract([({'name': 'out/l1', 'type': tarfile.SYMTYPE,
                        'linkname': 'l2/../..'}, None),
                      ({'name': 'out/l2', 'type': tarfile.SYMTYPE,
                        'linkname': '..'}, None),
                      ({'name': 'out/l1/ESCAPED/x'}, b'x')])
        self.assertTrue(os.path.isfile(os.path.join(
            self.dest, 'out', 'l1', 'ESCAPED', 'x')))
        self.assertFalse(os.path.exists(os.path.join(self.top, 'ESCAPED')))
        # a link inside the target, then a member through it
        with self.assertRaises(tej.Error):
            self.extract([({'name': 'out/sub', 'type': tarfile.DIRTYPE},
                           None),
                          ({'name': 'out/in', 'type': tarfile.SYMTYPE,
                            'linkname': 'sub'}, None),
                          ({'name': 'out/in/x'}, b'x')])
        self.assertFalse(os.path.exists(os.path.join(self.dest, 'ESCAPED')))

    def test_write_through_local_link_refused(self):
        os.makedirs(os.path.join(self.dest, 'out'))
        os.symlink(self.top, os.path.join(self.dest, 'out', 'esc'))
        with self.assertRaises(tej.Error):
            self.extract([({'name': 'out/esc/evil'}, b'x')])
        self.assertFalse(os.path.exists(os.path.join(self.top, 'evil')))

    def test_existing_link_replaced_not_followed(self):
        os.makedirs(os.path.join(self.dest, 'out'))
        victim = os.path.join(self.top, 'victim')
        with open(victim, 'w') as fp:
            fp.write('safe')
        os.symlink(victim, os.path.join(self.dest, 'out', 'f'))
        self.extract([({'name': 'out/f'}, b'new')])
        with open(victim) as fp:
            self.assertEqual(fp.read(), 'safe')

    def test_no_setuid_setgid_or_sticky_bits(self):
        self.extract([({'name': 'out', 'type': tarfile.DIRTYPE,
                        'mode': 0o7777}, None),
                      ({'name': 'out/suid', 'mode': 0o6755}, b'#!/bin/sh\n'),
                      ({'name': 'out/plain', 'mode': 0o640}, b'x')])
        out = os.path.join(self.dest, 'out')
        for name, mode in [('', 0o755), ('suid', 0o755), ('plain', 0o640)]:
            self.assertEqual(os.stat(os.path.join(out, name)).st_mode
                             & 0o7777, mode, name)

    def test_modes_follow_the_umask(self):
        members = [({'name': 'out', 'type': tarfile.DIRTYPE, 'mode': 0o777},
                    None),
                   ({'name': 'out/all', 'mode': 0o777}, b'x'),
                   ({'name': 'out/none', 'mode': 0}, b'x')]
        for mask, modes in [(0o002, (0o775, 0o775, 0o600)),
                            (0o077, (0o700, 0o700, 0o600)),
                            (0o000, (0o777, 0o777, 0o600))]:
            shutil.rmtree(self.dest, ignore_errors=True)
            old = os.umask(mask)
            try:
                self.extract(members)
            finally:
                os.umask(old)
            out = os.path.join(self.dest, 'out')
            got = tuple(os.stat(os.path.join(out, n)).st_mode & 0o7777
                        for n in ('', 'all', 'none'))
            self.assertEqual(got, modes, oct(mask))

    def test_link_chain_climbing_out(self):
        # each link looks inside as text; on disk, y, w and v climb out
        chain = [('x', '.'), ('y', 'x/..'), ('w', 'y/..'), ('v', 'w/..')]
        with self.assertLogs('tej', 'WARNING') as logs:
            self.extract([({'name': 'out/' + n, 'type': tarfile.SYMTYPE,
                            'linkname': t}, None) for n, t in chain])
        out = os.path.join(self.dest, 'out')
        self.assertEqual(os.readlink(os.path.join(out, 'x')), '.')
        for name in 'ywv':
            self.assertFalse(os.path.lexists(os.path.join(out, name)))
        self.assertEqual(len(logs.output), 3, logs.output)
        support.assert_links_within(self, out)

    def test_link_chain_never_leads_a_copy_or_a_write(self):
        # the client's own file, one directory up from the target
        with open(os.path.join(self.dest + '-secret'), 'w') as fp:
            fp.write('key')
        chain = [({'name': 'out/' + n, 'type': tarfile.SYMTYPE,
                   'linkname': t}, None)
                 for n, t in [('x', '.'), ('y', 'x/..'), ('w', 'y/..')]]
        with self.assertRaises(tej.Error):
            self.extract(chain + [({'name': 'out/leak',
                                    'type': tarfile.LNKTYPE,
                                    'linkname': 'out/w/dest-secret'}, None)])
        self.assertFalse(os.path.exists(os.path.join(self.dest, 'out',
                                                     'leak')))
        # a file through the chain: w is a directory, not the link
        shutil.rmtree(self.dest)
        with self.assertLogs('tej', 'WARNING'):
            self.extract(chain + [({'name': 'out/w/evil'}, b'x')])
        self.assertFalse(os.path.exists(os.path.join(self.top, 'evil')))
        self.assertFalse(os.path.islink(os.path.join(self.dest, 'out', 'w')))
        self.assertTrue(os.path.isfile(os.path.join(self.dest, 'out', 'w',
                                                    'evil')))
        support.assert_links_within(self, os.path.join(self.dest, 'out'))
        # a chain a previous download left on disk is not followed either
        shutil.rmtree(self.dest, ignore_errors=True)
        os.makedirs(os.path.join(self.dest, 'out'))
        os.symlink('..', os.path.join(self.dest, 'out', 'w'))
        with self.assertRaises(tej.Error):
            self.extract([({'name': 'out/leak', 'type': tarfile.LNKTYPE,
                            'linkname': 'out/w/dest-secret'}, None)])
        self.assertFalse(os.path.exists(os.path.join(self.dest, 'out',
                                                     'leak')))

    def test_later_link_leading_an_earlier_one_out(self):
        # a -> p/.. is inside while p is a file; p -> . makes it the parent
        with self.assertLogs('tej', 'WARNING'):
            self.extract([({'name': 'out/p'}, b'file'),
                          ({'name': 'out/a', 'type': tarfile.SYMTYPE,
                            'linkname': 'p/..'}, None),
                          ({'name': 'out/p', 'type': tarfile.SYMTYPE,
                            'linkname': '.'}, None)])
        out = os.path.join(self.dest, 'out')
        self.assertFalse(os.path.lexists(os.path.join(out, 'a')))
        self.assertEqual(os.readlink(os.path.join(out, 'p')), '.')
        support.assert_links_within(self, out)

    def test_hard_links_across_targets_and_to_themselves(self):
        # tar stores a file given twice, or a second name of one file, as a
        # hard link to the first: both are copies, nothing is lost
        self.extract([({'name': 'out/a'}, b'A'),
                      ({'name': 'out/b', 'type': tarfile.LNKTYPE,
                        'linkname': 'out/a'}, None),
                      ({'name': 'out/a', 'type': tarfile.LNKTYPE,
                        'linkname': 'out/a'}, None)],
                     {'out/a': os.path.join(self.dest, 'a'),
                      'out/b': os.path.join(self.dest, 'b')})
        for name in 'ab':
            with open(os.path.join(self.dest, name)) as fp:
                self.assertEqual(fp.read(), 'A')

    def test_zeros_and_sparse_members_are_holes(self):
        size = 1 << 36  # 64 GiB, almost all of it a hole
        sparse = _sparse_member('out/sparse', size,
                                [(0, b'start'), (size - 3, b'end')])
        self.extract([({'name': 'out/zeros'}, bytes(1 << 20))], None)
        tej._extract(sparse, {'out': os.path.join(self.dest, 'out')}, True)
        zeros = os.path.join(self.dest, 'out', 'zeros')
        with open(zeros, 'rb') as fp:
            self.assertEqual(fp.read(), bytes(1 << 20))
        path = os.path.join(self.dest, 'out', 'sparse')
        st = os.stat(path)
        self.assertEqual(st.st_size, size)
        self.assertLess(st.st_blocks * 512, 1 << 20)
        with open(path, 'rb') as fp:
            self.assertEqual(fp.read(5), b'start')
            fp.seek(1 << 30)
            self.assertEqual(fp.read(4), bytes(4))
            fp.seek(size - 3)
            self.assertEqual(fp.read(), b'end')
        self.assertEqual(sorted(os.listdir(os.path.join(self.dest, 'out'))),
                         ['sparse', 'zeros'])  # no part file left

    def test_broken_and_oversized_archives_are_errors(self):
        whole = _tar([({'name': 'out/a'}, b'x' * 5000)]).getvalue()
        for data in [whole[:1000], whole[:512 + 100], b'\1' * 1024]:
            with self.assertRaises(tej.Error):
                tej._extract(io.BytesIO(data),
                             {'out': os.path.join(self.dest, 'out')}, True)
        # a long name that tarfile would hold whole in memory
        buf = io.BytesIO()
        info = tarfile.TarInfo('././@LongLink')
        info.type = tarfile.GNUTYPE_LONGNAME
        info.size = tej._MAX_TAR_HEADER + 1
        buf.write(info.tobuf(format=tarfile.GNU_FORMAT))
        buf.seek(0)
        with self.assertRaisesRegex(tej.Error, 'header of'):
            tej._extract(buf, {'out': os.path.join(self.dest, 'out')}, True)

    def test_second_name_of_a_link(self):
        # GNU tar: a hard link to a symbolic link
        self.extract([({'name': 'out/s2', 'type': tarfile.SYMTYPE,
                        'linkname': 'file'}, None),
                      ({'name': 'out/s', 'type': tarfile.LNKTYPE,
                        'linkname': 'out/s2'}, None),
                      ({'name': 'out/file'}, b'x')])
        for name in ('s', 's2'):
            self.assertEqual(os.readlink(os.path.join(self.dest, 'out',
                                                      name)), 'file')

    def test_devices_and_hard_links(self):
        self.extract([({'name': 'out/dev', 'type': tarfile.CHRTYPE,
                        'devmajor': 1, 'devminor': 3}, None),
                      ({'name': 'out/fifo', 'type': tarfile.FIFOTYPE}, None),
                      ({'name': 'out/a'}, b'A'),
                      ({'name': 'out/b', 'type': tarfile.LNKTYPE,
                        'linkname': 'out/a'}, None)])
        out = os.path.join(self.dest, 'out')
        self.assertFalse(os.path.lexists(os.path.join(out, 'dev')))
        self.assertFalse(os.path.lexists(os.path.join(out, 'fifo')))
        with open(os.path.join(out, 'b')) as fp:
            self.assertEqual(fp.read(), 'A')
        with self.assertRaises(tej.Error):
            self.extract([({'name': 'out/c', 'type': tarfile.LNKTYPE,
                            'linkname': '/etc/passwd'}, None)])


class TestEmbed(unittest.TestCase):
    def test_in_sync(self):
        sys.path.insert(0, os.path.join(support.TOP, 'tests'))
        import embed
        with open(os.path.join(support.TOP, 'tej.py')) as fp:
            text = fp.read()
        blocks = embed.embedded(text)
        self.assertEqual(sorted(blocks), ['runtimes/bootstrap.sh',
                                          'runtimes/common.sh',
                                          'runtimes/default.sh',
                                          'runtimes/pbs.sh',
                                          'runtimes/probe.sh',
                                          'runtimes/slurm.sh'])
        for name, content in blocks.items():
            with open(os.path.join(support.TOP, name)) as fp:
                self.assertEqual(content, fp.read(),
                                 "%s differs from tej.py (make embed)" % name)

    def test_versions(self):
        version = tej._runtime_version('default')
        self.assertRegex(version, r'\A1/default/[0-9a-f]{16}\Z')


class TestStartUp(unittest.TestCase):
    """What importing tej costs is kept low (tests/bench.py measures it);
    these check that doing so changed nothing it offers.
    """

    # every public name of tej before its imports were made lazy
    NAMES = ['ConnectionLost', 'DEFAULT_TEJ_DIR', 'Error',
             'InvalidDestination', 'Job', 'JobAlreadyExists', 'JobNotFound',
             'JobStillRunning', 'PROTOCOL', 'QueueDoesntExist', 'QueueExists',
             'QueueLinkBroken', 'RemoteCommandFailure', 'RemoteQueue',
             'ServerLogger', 'check_jobid', 'content_id',
             'destination_as_string', 'logger', 'main', 'make_unique_name',
             'parse_ssh_destination']

    def test_the_same_names(self):
        for name in self.NAMES + tej.__all__:
            self.assertTrue(hasattr(tej, name), name)

    def test_imports_that_wait_for_their_use(self):
        code = ('import sys; before = set(sys.modules); import tej; '
                'print(" ".join(sorted(m for m in ("logging", "hashlib", '
                '"getpass", "argparse", "json", "tempfile", "tarfile") '
                'if m in set(sys.modules) - before)))')
        out = subprocess.run([sys.executable, '-c', code], cwd=support.TOP,
                             stdout=subprocess.PIPE, check=True).stdout
        self.assertEqual(out, b'\n')

    def test_logging_still_gets_the_messages(self):
        # API users configure logging; the command line writes itself
        with self.assertLogs('tej', 'INFO') as logs:
            tej.logger.info("a %s", 'message')
        self.assertEqual(logs.output, ['INFO:tej:a message'])
        self.assertEqual(tej.logger.name, 'tej')
        self.assertEqual(tej.ServerLogger.logger.getEffectiveLevel(),
                         __import__('logging').getLogger(
                             'tej.server').getEffectiveLevel())

    def test_sha256_is_hashlibs(self):
        import hashlib
        self.assertEqual(tej._sha256(b'tej').hexdigest(),
                         hashlib.sha256(b'tej').hexdigest())

    def test_each_command_alone_parses_as_all_of_them(self):
        argv = ['status', 'h', '--id', 'x', '-v', '--queue', 'q', '-o', 'A=b']
        self.assertEqual(vars(tej._parser('status').parse_args(argv)),
                         vars(tej._parser().parse_args(argv)))


class TestCommandLine(unittest.TestCase):
    def test_no_command(self):
        code, out, err = run_cli()
        self.assertEqual((code, out), (2, ''))
        self.assertIn('a command is required', err)

    def test_version(self):
        code, out, err = run_cli('--version')
        self.assertEqual(code, 0)
        self.assertEqual(out.strip(), 'tej version %s' % tej.__version__)

    def test_help_lists_commands_and_exit_codes(self):
        code, out, err = run_cli('--help')
        self.assertEqual(code, 0)
        for word in ['setup', 'submit', 'status', 'download', 'kill',
                     'delete', 'list', 'login', 'logout', 'exit status']:
            self.assertIn(word, out)

    def test_each_commands_help(self):
        # its own exit codes, -v and -q; --queue where there is a queue
        for command in sorted(tej._COMMANDS):
            code, out, err = run_cli(command, '--help')
            self.assertEqual(code, 0, command)
            self.assertIn('-v, --verbose', out)
            self.assertIn('-q, --quiet', out)
            self.assertEqual('--queue' in out, command not in (
                'login', 'logout', 'jobs', 'monitor'), command)
            codes = re.findall(r'^  (\d+) ', out.split('exit status:')[1],
                               re.M)
            self.assertEqual(codes, {
                'status': ['0', '1', '2', '130', '120', '121', '122', '123',
                           '125'],
                'wait': ['2', '130', '121', '122', '123', '124', '125'],
                'run': ['2', '130', '121', '122', '123', '124', '125'],
                'monitor': ['0', '1', '2', '130', '121', '122', '123',
                            '125'],
            }.get(command, ['0', '1', '2', '130']), command)
        code, out, err = run_cli('login', 'local:', '--queue', 'q')
        self.assertEqual(code, 2)

    def test_how_much_it_says(self):
        # -q: errors only; default: what happened; -v: each call; -vv: the
        # remote commands
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'exit 0\n'})
        queue = ['--queue', os.path.join(tmp, 'q')]
        code, out, err = run_cli('-q', 'submit', 'local:', job, '--id', 'a',
                                 *queue)
        self.assertEqual((code, out, err), (0, 'a\n', ''))
        code, out, err = run_cli('submit', 'local:', job, '--id', 'b',
                                 *queue)
        self.assertEqual((code, err), (0, 'tej: Submitted job b\n'))
        code, out, err = run_cli('submit', 'local:', job, '--id', 'c', '-v',
                                 *queue)
        self.assertEqual(err, 'tej: submit c on local:\n'
                              'tej: Submitted job c\n')
        code, out, err = run_cli('-vv', 'submit', 'local:', job, '--id', 'd',
                                 *queue)
        self.assertRegex(err, r"\Atej: submit d on local:\ntej: local: \S+ "
                              r"'1/default/[^']*' submit d ")
        code, out, err = run_cli('-q', 'wait', 'local:', '--id', 'x', *queue)
        self.assertEqual((code, err), (121, ''))
        code, out, err = run_cli('-q', 'status', 'local:', '--id', '.x',
                                 *queue)
        self.assertEqual(code, 2)  # a bad command line: its usage
        self.assertRegex(err, r'\ntej status: error: argument --id: ')
        code, out, err = run_cli('-q', 'status', 'local:', '--id', 'x',
                                 '--queue', os.path.join(tmp, 'none'))
        self.assertEqual(code, 1)
        self.assertRegex(err, r'\Atej: error: ')

    def test_setup_says_installed_only_when_it_installs(self):
        tmp = support.temporary(self)
        queue = ['--queue', os.path.join(tmp, 'q')]
        code, out, err = run_cli('setup', 'local:', *queue)
        self.assertEqual((code, err), (0, 'tej: Installed the default runtime '
                                          'in %s on local:\n' % queue[1]))
        code, out, err = run_cli('setup', 'local:', *queue)
        self.assertEqual(code, 1)
        self.assertRegex(err, r'\Atej: error: a queue already exists at '
                              r'.*\(setup --force replaces its runtime; '
                              r'jobs are kept\)\n\Z')
        code, out, err = run_cli('setup', 'local:', '--only-links',
                                 '--make-link', os.path.join(tmp, 'l'),
                                 *queue)
        self.assertEqual((code, err), (0, ''))

    def test_user_mistakes_are_one_line(self):
        cases = [
            ('status', 'local:', '--id', '../x'),
            ('status', 'http://host', '--id', 'x'),
            ('submit', 'local:', '/nonexistent/dir'),
            ('submit', 'local:', '.', '--id', 'a b'),
            ('login', 'local:'),
            ('logout', 'local:'),
        ]
        for argv in cases:
            code, out, err = run_cli(*argv)
            self.assertEqual(out, '', argv)
            self.assertNotIn('Traceback', err)
            if code == 2:  # a bad value: the subcommand's usage
                self.assertTrue(err.startswith('usage: tej %s ' % argv[0]),
                                (argv, err))
                self.assertIn('\ntej %s: error: ' % argv[0], err)
            else:
                self.assertEqual(code, 1, argv)
                self.assertTrue(err.startswith('tej: error: '), (argv, err))

    def test_messages_that_say_what_to_do(self):
        tmp = support.temporary(self)
        empty = support.make_tree(os.path.join(tmp, 'empty'), {'x': ''})
        queue = ['--queue', os.path.join(tmp, 'q')]
        code, out, err = run_cli('submit', 'local:', empty, *queue)
        self.assertEqual((code, out), (1, ''))
        self.assertIn("--script FILE, or a command with --script 'a "
                      "command'", err)
        code, out, err = run_cli('submit', 'local:', empty, '--id', 'long',
                                 '--script', 'sleep 100', *queue)
        self.assertEqual(code, 0, err)
        self.addCleanup(run_cli, 'delete', 'local:', '--id', 'long',
                        '--kill', *queue)
        code, out, err = run_cli('delete', 'local:', '--id', 'long', *queue)
        self.assertEqual((code, out), (1, ''))
        self.assertRegex(err, r'\Atej: error: .*still running: delete '
                              r'--kill kills it first\n\Z')
        # list says of a killed job what status says
        self.assertEqual(run_cli('kill', 'local:', '--id', 'long',
                                 *queue)[0], 0)
        self.assertEqual(run_cli('status', 'local:', '--id', 'long',
                                 *queue)[1], 'finished 143\n')
        self.assertEqual(run_cli('list', 'local:', *queue),
                         (0, 'long finished\n', ''))
        code, out, err = run_cli('list', 'local:', '-l', *queue)
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r'\Along killed 143 0:00:\d\d default\n\Z')

    def test_missing_directory_or_not_a_directory(self):
        tmp = support.temporary(self)
        plain = os.path.join(tmp, 'file')
        open(plain, 'w').close()
        for path, words in [(os.path.join(tmp, 'simm'), 'No such directory'),
                            (plain, 'Not a directory')]:
            code, out, err = run_cli('submit', 'local:', path, '--queue',
                                     os.path.join(tmp, 'q'))
            self.assertEqual((code, out), (1, ''))
            self.assertEqual(err, 'tej: error: %s: %s\n' % (words, path))

    def test_wait_says_which_jobs_did_not_succeed(self):
        tmp = support.temporary(self)
        job = support.make_tree(os.path.join(tmp, 'job'),
                                {'start.sh': 'exit 3\n'})
        queue = ['--queue', os.path.join(tmp, 'q')]
        for job_id in ('ok', 'bad'):
            code, out, err = run_cli('submit', 'local:', job, '--id', job_id,
                                     '--script', 'exit 0' if job_id == 'ok'
                                     else 'start.sh', *queue)
            self.assertEqual(code, 0, err)
        code, out, err = run_cli('wait', 'local:', '--id', 'ok', '--id',
                                 'bad', '--id', 'nope', *queue)
        self.assertEqual(code, 3, err)
        self.assertEqual(err, 'tej: Job bad failed with exit code 3\n'
                              'tej: no job nope\n')

    def test_login_needs_ssh(self):
        queue = tej.RemoteQueue('local:')
        for call in (queue.login, queue.logout):
            with self.assertRaisesRegex(tej.Error, 'needs an SSH destination'):
                call()

    def test_missing_id(self):
        code, out, err = run_cli('status', 'local:')
        self.assertEqual(code, 2)
        self.assertIn('--id', err)


setUpModule = support.hermetic_module

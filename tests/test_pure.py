"""Pure tests: destinations, passwords, ids, quoting, the answers' parsers
and frames, durations, embed sync, what the command line says without a
server. No server, no job.
"""

import getpass
import io
import os
import re
import shutil
import subprocess
import sys
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
        path = q._transport.master.path
        self.assertLess(len(path), 100)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777,
                         0o700)
        other = tej.RemoteQueue('u@' + 'h' * 200, '~/.tej',
                                ssh_options=['-p', '2'])
        self.assertNotEqual(path, other._transport.master.path)

    def test_control_path_too_long(self):
        old = os.environ['HOME']
        os.environ['HOME'] = os.path.join(support.Hermetic.start(), 'x' * 120)
        try:
            q = tej.RemoteQueue('host')
            with self.assertRaises(tej.Error) as ctx:
                q._transport.master.path
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
        env = tej._Askpass.environment(script, "it's $x", 'me@target')
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
        self.assertEqual(tej._Askpass.prompt_for(config), 'tejtest@127.0.0.1')
        self.assertEqual(tej._Askpass.prompt_for(config + 'hostkeyalias tejhost\n'),
                         'tejtest@tejhost')
        # ssh 9 says the whole name; ssh 8 cut it at 30 characters
        long_user = tej._Askpass.environment('askpass', 'pw', 'u' * 40 + '@h')
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

    def test_content_id_keeps_96_bits(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        for name in ('my job', '.x', 'a' * 250, '-n'):
            job = os.path.join(tmp, name)
            os.mkdir(job)
            with open(os.path.join(job, 'start.sh'), 'w') as fp:
                fp.write('true\n')
            job_id = tej.content_id(job)
            base, _, digest = job_id.rpartition('_')
            self.assertRegex(digest, r'\A[0-9a-f]{24}\Z')
            tej.check_jobid(job_id)  # and the runtime's _check_id: the same
            self.assertLessEqual(len(job_id), 128)


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
        # login noise with no newline of its own: a banner, a title escape
        self.assertEqual(tej._split_answer(b'Loading modules...TEJ 1\na=1\n'),
                         ['a=1'])
        self.assertEqual(tej._split_answer(b'\x1b]0;title\x07TEJ 1\r\n'
                                           b'a=1\n'), ['a=1'])

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
        self.assertEqual(R(b'Loading...\x1b]0;t\x07TEJ 1\nstream=logs\n'),
                         'stream=logs')
        # noise longer than a read, the sentinel across two reads
        noise = b'x' * (tej._MAX_ANSWER - 2)
        self.assertEqual(R(noise + b'TEJ 1\nstream=logs\n'), 'stream=logs')
        self.assertEqual(R(noise + b'TEJ 12\nstream=logs\n'), '')

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
        # numbers no runtime sends: a lying server's
        good = ('id=j\tstate=finished\texit=255\tsubmitted=10\tstarted=11\t'
                'finished=%d\tnow=30\truntime=default\truntime_id=\tdir=/d'
                % tej._MAX_EPOCH)
        self.assertEqual(tej._parse_record(good)['exit'], 255)
        for old, new in (('exit=255', 'exit=256'), ('now=30', 'now=-1'),
                         ('now=30', 'now=%d' % (tej._MAX_EPOCH + 1)),
                         ('now=30', 'now=' + '9' * 5000),
                         ('exit=255', 'exit=\u0661'),  # a digit, not ASCII
                         ('submitted=10', 'submitted=1e9')):
            with self.assertRaises(tej.RemoteCommandFailure, msg=new[:20]):
                tej._parse_record(good.replace(old, new))

    def test_listing(self):
        L = tej._parse_listing
        self.assertEqual(L(['81a4 12 1700000000 ./out/a b',
                            '41ed 4096 -5 ./out']),
                         [(0o100644, 12, 1700000000, 'out/a b'),
                          (0o40755, 4096, -5, 'out')])
        self.assertIsNone(L(['none']))
        # what does not parse (huge numbers too): everything is fetched
        for line in ('81a4 12 ./a', '81a4 %s 1 ./a' % ('9' * 5000),
                     '81a4 1 %s ./a' % ('9' * 30), '%s 1 1 ./a' % ('f' * 30),
                     '81a4 -1 1 ./a', '81a4 1 1 a'):
            self.assertIsNone(L([line]), line[:30])

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
                     b'tick 1\n', b'end finished x\n', b'\n',
                     b'end finished 256\n', b'end finished -1\n',
                     b'out ' + b'9' * 5000 + b'\n',
                     'out \u0661\n'.encode()]:
            with self.assertRaises(tej.RemoteCommandFailure, msg=line[:20]):
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
        # login noise on stderr with no newline, ahead of the message
        error = E('submit', tej._RC_JOB_EXISTS, b'Loading...tej: exists\n')
        self.assertIs(type(error), tej.JobAlreadyExists)
        self.assertEqual(str(error), 'exists')
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

    def test_download_frames(self):
        P = tej._parse_download_frame
        self.assertEqual(P('size=1024'), ('size', 1024))
        self.assertEqual(P('size='), ('size', None))
        self.assertEqual(P('part 0 changed'), ('part', (0, None)))
        self.assertEqual(P('part 12 70000 cksum'),
                         ('part', (12, 70000, 'cksum')))
        self.assertEqual(P('part 1 5 md5sum'), ('part', (1, 5, 'md5sum')))
        # a sum is text: cksum's is a number, md5sum's hex
        self.assertEqual(P('sum 4294967295'), ('sum', '4294967295'))
        self.assertEqual(P('tar'), ('tar', None))
        self.assertEqual(P('end'), ('end', None))
        for bad in ('', 'size=x', 'part 1 5 sha1', 'part x changed',
                    'part 1 changed ', 'tar ', 'ending', 'end\r',
                    'size=' + '9' * 5000, 'part %s changed' % ('9' * 30),
                    'part 1 %s cksum' % ('9' * 5000)):
            with self.assertRaises(tej.ConnectionLost, msg=bad):
                P(bad)
        read = tej._read_download_frame
        self.assertEqual(read(io.BytesIO(b'part 2 3 cksum\nrest')),
                         ('part', (2, 3, 'cksum'), 'part 2 3 cksum'))
        for cut in (b'', b'end'):  # no newline: the stream broke off
            with self.assertRaises(tej.ConnectionLost):
                read(io.BytesIO(cut))

    def test_log_frames(self):
        out, err = io.BytesIO(), io.BytesIO()
        offsets = {'out': 3, 'err': 0, 'tick': 0}
        stream = io.BytesIO(b'out 5\nhello' b'tick\n' b'err 2\nno'
                            b'out 0\n' b'end finished 4\nafter')
        end = tej._read_log_frames(stream, {'out': out, 'err': err},
                                   offsets)
        self.assertEqual(end, ('finished', 4))
        self.assertEqual((out.getvalue(), err.getvalue()), (b'hello', b'no'))
        self.assertEqual(offsets, {'out': 8, 'err': 2, 'tick': 1})
        self.assertEqual(stream.read(), b'after')  # no further than the end
        # cut in a frame's data, or before a line ends: None, what came kept
        for cut, kept in ((b'out 5\nhel', b'hel'), (b'out 5\nhello' b'en',
                                                      b'hello')):
            out = io.BytesIO()
            self.assertIsNone(tej._read_log_frames(
                io.BytesIO(cut), {'out': out, 'err': None},
                {'out': 0, 'err': 0, 'tick': 0}))
            self.assertEqual(out.getvalue(), kept)
        with self.assertRaises(tej.RemoteCommandFailure):  # not asked for
            tej._read_log_frames(io.BytesIO(b'err 1\nx'),
                                 {'out': out, 'err': None},
                                 {'out': 0, 'err': 0, 'tick': 0})


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
            'runtime_id': None, 'scheduler_error': None})
        # a scheduler that could not be asked: the record says why
        self.assertEqual(J(dict(record, scheduler_error='squeue: down'))[
            'scheduler_error'], 'squeue: down')
        self.assertEqual(tej._parse_record(
            'id=j\tstate=running\texit=\tsubmitted=1\tstarted=2\t'
            'finished=\tnow=3\truntime=slurm\truntime_id=5\t'
            'scheduler_error=squeue: down\tdir=/q/j/stage')[
                'scheduler_error'], 'squeue: down')
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
                                          'runtimes/fast.sh',
                                          'runtimes/pbs.sh',
                                          'runtimes/probe.sh',
                                          'runtimes/queue.sh',
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

"""What tej sends reaches the server intact whatever the login shell.

sshd hands the remote command string to the user's login shell, not to sh:
csh and tcsh expand "!" (history) even inside single quotes, and end a
command at a newline even inside quotes, running the next line as a command
of their own; fish reads "\\\\" and "\\'" as escapes inside single quotes,
so that a trailing backslash ends nothing and the next argument is code.

Each class here makes one of sh (dash), bash, tcsh and fish the login shell
of a user of the module's own (support.SHELL_USER), checks that it is the
one that runs tej's commands, then sends odd text through every channel
that carries it (the script, the prologue, file names, the queue path, job
ids) and asserts that it arrives
byte for byte, and that none of it ran as a command: each case has a canary
file name of its own (a token of the test, and the case's number), which
must appear nowhere.
"""

import io
import os
import pwd
import re
import shlex
import shutil
import subprocess
import uuid

from . import support
from .scenario import NASTY_FILES
from .support import tej

setUpModule = support.ssh_module

#: Seconds a remote call, or a wait, may take here.
TIMEOUT = 30

#: In the texts of the cases, replaced with the case's canary file name.
CANARY = '@CANARY@'


def say(text):
    """A script that prints ``text`` as is (quoted for the job's sh)."""
    return "printf '%s' " + shlex.quote(text)


class Case(object):
    """A job: its name (for the messages), script, expected _stdout, and
    prologue (None: none).
    """

    def __init__(self, name, script, expected, prologue=None):
        self.name, self.script, self.expected = name, script, expected
        self.prologue = prologue

    def with_canary(self, canary):
        def put(text):
            return None if text is None else text.replace(CANARY, canary)
        return Case(self.name, put(self.script), put(self.expected),
                    put(self.prologue))


#: Scripts that print a text that is data to sh, and that a login shell
#: other than sh may expand or run.
SAID = [
    ('bang', 'x!y'),
    ('double bang', '!!'),
    ('history event', '!touch ' + CANARY),
    ('two backslashes', 'a\\\\b'),
    ('literal \\n', 'a\\nb'),
    ('trailing backslash', 'end\\'),
    ('backslash quote', "\\'"),
    ('single quote', "it's"),
    ('double quotes', 'say "hi"'),
    ('$HOME', '$HOME'),
    ('command substitution', '$(touch %s)' % CANARY),
    ('backticks', '`touch %s`' % CANARY),
    ('semicolon', ';touch ' + CANARY),
    ('non-ASCII', 'caf\u00e9 \u4e2d\u6587'),
    ('tab', 'tab\there'),
    ('newline', 'two\nlines'),
    ('backslash newline', 'a\\\nb'),
    # fish: a quote ends, a double-quoted string ends, "#" hides the rest
    ('quote breakout', '\\\'";touch %s;#' % CANARY),
]

#: The jobs of test_scripts.
SCRIPTS = [Case(name, say(text), text) for name, text in SAID] + [
    Case('awk', "printf 'a\\nb\\na\\n' | awk '!seen[$0]++'", 'a\nb\n'),
    Case('multi-line script',
         "printf '%s\\n' 'line1'\nprintf '%s\\n' \"x!y\"", 'line1\nx!y\n'),
    # tcsh: the here-document's line runs as a command
    Case('here-document',
         "cat <<'EOF'\ntouch %s\n$HOME `id` !!\nEOF" % CANARY,
         'touch %s\n$HOME `id` !!\n' % CANARY),
    Case('multi-line prologue', "printf '%s\\n' \"$P\"",
         'from prologue !1\nfrom prologue\n',
         prologue="export P='from prologue'\nprintf '%s\\n' \"$P !1\""),
    # fish: the script's trailing backslash makes the prologue code, whereas
    # for sh both end in comments
    Case('prologue after a trailing backslash', "printf '%s\\n' ok #\\",
         'ok\n', prologue='# ;touch %s;#' % CANARY),
]

#: The commands of test_command_line: (name, tej command, its arguments,
#: expected output).
COMMAND_LINES = [
    ('submit: multi-line script and prologue', 'submit',
     ['--id', 'cli-submit',
      '--script', "printf '%s\\n' 'line1'\nprintf '%s\\n' \"x!y\"\n"
                  "cat input.txt",
      '--prologue', "printf '%s\\n' 'prologue 1'\n"
                    "printf '%s\\n' \"prologue $((1 + 1)) !!\""],
     'prologue 1\nprologue 2 !!\nline1\nx!y\ninput\n'),
    ('run: awk, bang, backslashes', 'run',
     ['--script', "printf 'b\\na\\nb\\n' | awk '!seen[$0]++'\n"
                  "printf '%s\\n' '\\\\ \\n \\' \"$HOME\"",
      '--prologue', "HOME='~x'\n: !touch " + CANARY],
     'b\na\n\\\\ \\n \\\n~x\n'),
    ('run: here-document', 'run',
     ['--script', "cat <<'EOF'\ntouch {c}\n`touch {c}` $(touch {c})\nEOF"
                  .format(c=CANARY)],
     'touch {c}\n`touch {c}` $(touch {c})\n'.format(c=CANARY)),
]

#: The job of test_file_names: the odd names of the scenario, and more, each
#: with CANARY replaced by a canary of its own. The one with a newline comes
#: before the one that ends in a backslash, which comes before the one with
#: a ";": a download of all of them runs that ";" under fish.
FILES = dict(NASTY_FILES, **{
    '!!bang': b'bang\n',
    'tab\there': b'tab\n',
    'x\ntouch %s\ny' % CANARY: b'newline\n',
    'trail\\': b'trailing backslash\n',
    ';touch %s;#' % CANARY: b'semicolon\n',
})
#: Sent, but not downloaded: GNU tar unquotes the names it is given ("\\\\"
#: and "\\n" become one character), whatever the login shell.
UPLOAD_ONLY = {'two \\\\ backslashes \\n': b'backslashes\n'}


def top_names(paths):
    """The first components of ``paths``, in their order."""
    names = []
    for path in paths:
        name = path.split('/')[0]
        if name not in names:
            names.append(name)
    return names


def read(path):
    with open(path, 'rb') as fp:
        return fp.read()


def server_files(stage):
    """The relative paths of the files in a job's stage directory."""
    found = set()
    for top, dirs, files in os.walk(stage):
        for name in files:
            found.add(os.path.relpath(os.path.join(top, name), stage))
    return found


class LoginShell(object):
    """The tests, for the login shell that a subclass (also a ServerCase)
    names, as the login shell of a user of their own (support.SHELL_USER:
    no other test sees it): ``shell`` (its name on the PATH), ``probe`` (a command that
    only this shell runs as intended) and ``expect`` (a pattern for the
    whole of what the probe prints). The class's queue, with a space and a
    "$" in its path, is ``qpath``.
    """

    shell = probe = expect = path = None
    server_user = support.SHELL_USER

    @classmethod
    def setUpClass(cls):
        super(LoginShell, cls).setUpClass()
        # without it, each test skips (or fails) in setUp
        path = cls.path = shutil.which(cls.shell)
        if path is None or os.getuid() != 0:
            return
        server = support.ssh_server(cls.server_user)
        cls.remote_top = server.remote_dir()
        cls.addClassCleanup(shutil.rmtree, cls.remote_top, True)
        cls.qpath = os.path.join(cls.remote_top, 'queue $HOME x')
        cls.q = server.queue(cls.qpath)
        cls.q.timeout = TIMEOUT
        # sshd reads the login shell when a connection is made: a shared
        # connection made before this (by another module) keeps the old one
        cls.q.close()
        entry = pwd.getpwnam(server.user)
        cls.addClassCleanup(subprocess.check_call,
                            ['usermod', '-s', entry.pw_shell, server.user])
        subprocess.check_call(['usermod', '-s', path, server.user])
        # and the one made with this shell goes with it
        cls.addClassCleanup(cls.q.close)
        cls.q.setup()
        if not os.path.isdir(os.path.join(cls.qpath, 'jobs')):
            raise AssertionError("%s login shell: no queue at %r" % (
                cls.shell, cls.qpath))
        # the probe goes through the shared connection that tej made
        proc = subprocess.run(
            ['ssh', '-F', server.config, '-o', 'BatchMode=yes',
             '-o', 'ControlMaster=no',
             '-o', 'ControlPath=%s' % cls.q._transport.master.path,
             '-T', server.alias, cls.probe],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=TIMEOUT)
        said = proc.stdout.decode('utf-8', 'replace').strip()
        if not cls.q._transport.master.check() or \
                not re.match(cls.expect + r'\Z', said):
            raise AssertionError(
                "The login shell is not %s: %r printed %r (exit %d, "
                "stderr %r)" % (cls.shell, cls.probe, said, proc.returncode,
                                proc.stderr.decode('utf-8', 'replace')))

    def setUp(self):
        support.need('shells', self.path, "%s is not installed" % self.shell)
        support.need('shells', os.getuid() == 0,
                     "changing the test user's login shell needs root")
        super(LoginShell, self).setUp()
        self.token = 'canary-' + uuid.uuid4().hex[:12]

    def canary(self, index):
        """The canary file name of a case."""
        return '%s-%02d' % (self.token, index)

    def where(self, index, total, name):
        """Which shell and which case, for a failure's message."""
        return "%s login shell, case %d of %d (%s)" % (self.shell, index,
                                                       total, name)

    def assert_no_canary(self, cases):
        """No canary file anywhere: in the home directories (where the
        login shell runs), the queue and its jobs, /tmp or /. ``cases``:
        {canary: where}. The canaries found are removed.
        """
        found = {}
        trees = [pwd.getpwnam(self.server.user).pw_dir,
                 support.Hermetic.root]  # with the server's home
        for tree in trees:
            for top, dirs, files in os.walk(tree):
                for name in dirs + files:
                    if name.startswith(self.token):
                        found[os.path.join(top, name)] = name
        for top in ('/tmp', '/'):
            for name in os.listdir(top):
                if name.startswith(self.token):
                    found[os.path.join(top, name)] = name
        for path in found:
            if os.path.isdir(path):
                shutil.rmtree(path, True)
            else:
                os.unlink(path)
        if found:
            self.fail("Text of the cases ran as a command: %s" % '; '.join(
                "%s made %s" % (cases.get(name, 'no case'), path)
                for path, name in sorted(found.items())))

    def test_scripts(self):
        """Scripts and prologues (the Python API), as the job gets them."""
        total = len(SCRIPTS)
        cases = [case.with_canary(self.canary(i))
                 for i, case in enumerate(SCRIPTS, 1)]
        ids, errors = {}, {}
        for index, case in enumerate(cases, 1):
            # the characters a job id may have besides letters and digits
            job_id = 'script%02d_a.b,c+d=e@f%%g:h-i' % index
            try:
                self.q.submit(job_id, self.tmp, script=case.script,
                              prologue=case.prologue)
                ids[index] = job_id
            except tej.Error as e:
                errors[index] = e
        try:
            records = {r['id']: r for r in self.q.wait_all(
                list(ids.values()), timeout=TIMEOUT)}
        except tej.Error as e:
            self.fail("%s login shell: waiting for %d jobs: %s" % (
                self.shell, len(ids), e))
        for index, case in enumerate(cases, 1):
            where = self.where(index, total, case.name)
            with self.subTest(shell=self.shell, case=case.name):
                if index in errors:
                    self.fail("%s: submit failed: %s" % (where,
                                                         errors[index]))
                job = os.path.join(self.qpath, 'jobs', ids[index])
                self.assertEqual(read(os.path.join(job, 'script')),
                                 case.script.encode('utf-8'),
                                 "%s: the script the server got" % where)
                if case.prologue is not None:
                    self.assertEqual(read(os.path.join(job, 'prologue')),
                                     case.prologue.encode('utf-8') + b'\n',
                                     "%s: the prologue the server got"
                                     % where)
                out, err = io.BytesIO(), io.BytesIO()
                try:
                    self.q.logs(ids[index], stdout=out, stderr=err)
                except tej.Error as e:
                    self.fail("%s: logs failed: %s" % (where, e))
                record = records[ids[index]]
                self.assertEqual(
                    (record['state'], record['exit']), ('finished', 0),
                    "%s: stderr %r" % (where, err.getvalue()))
                self.assertEqual(out.getvalue().decode('utf-8'),
                                 case.expected, "%s: _stdout" % where)
        self.assert_no_canary({self.canary(i): self.where(i, total, c.name)
                               for i, c in enumerate(cases, 1)})

    def test_file_names(self):
        """Odd file names, up in the job's archive and down as arguments."""
        files, canaries = {}, {}
        for path, content in FILES.items():
            if CANARY in path:
                canary = self.canary(len(canaries) + 1)
                path = path.replace(CANARY, canary)
                canaries[canary] = "%s login shell, a download of %r" % (
                    self.shell, path)
            files[path] = content
        job_dir = self.job('names', dict(files, **UPLOAD_ONLY))
        names = top_names(files)
        cases = [(repr(name), [name]) for name in names] + \
            [('all names in one call', names)]
        total = len(cases) + 1
        job_id = 'names'
        try:
            self.q.submit(job_id, job_dir, script='true')
            self.q.wait(job_id, timeout=TIMEOUT)
        except tej.Error as e:
            self.fail("%s: %s" % (self.where(1, total, 'upload'), e))
        with self.subTest(shell=self.shell, case='upload'):
            stage = os.path.join(self.qpath, 'jobs', job_id, 'stage')
            self.assertEqual(server_files(stage) - {'_stdout', '_stderr'},
                             set(files) | set(UPLOAD_ONLY),
                             "%s: the names on the server" %
                             self.where(1, total, 'upload'))
        for index, (name, download) in enumerate(cases, 2):
            where = self.where(index, total, 'download ' + name)
            with self.subTest(shell=self.shell, case='download ' + name):
                into = os.path.join(self.tmp, 'back%d' % index)
                os.mkdir(into)
                try:
                    self.q.download(job_id, download, directory=into)
                except tej.Error as e:
                    self.fail("%s: %s" % (where, e))
                for path, content in files.items():
                    if path.split('/')[0] in download:
                        target = os.path.join(into, path)
                        self.assertTrue(os.path.isfile(target),
                                        "%s: %r missing" % (where, path))
                        self.assertEqual(read(target), content,
                                         "%s: %r" % (where, path))
        self.assert_no_canary(canaries)

    def test_command_line(self):
        """--script and --prologue given to "tej submit" and "tej run"."""
        job_dir = self.job('cli', {'input.txt': 'input\n'})
        common = ['--queue', self.qpath]
        total = len(COMMAND_LINES)
        for index, (name, command, argv, expected) in enumerate(
                COMMAND_LINES, 1):
            where = self.where(index, total, name)
            argv = [a.replace(CANARY, self.canary(index)) for a in argv]
            expected = expected.replace(CANARY, self.canary(index))
            with self.subTest(shell=self.shell, case=name):
                if command == 'run':
                    argv += ['--keep', '--timeout', str(TIMEOUT)]
                code, out, err = self.cli(command, self.server.alias,
                                          job_dir, *(argv + common))
                self.assertEqual(code, 0, "%s: tej %s: %s" % (
                    where, command, err))
                if command == 'submit':
                    job_id = out.strip()
                    self.assertEqual(job_id, 'cli-submit', where)
                    code, _, err = self.cli('wait', self.server.alias,
                                            '--id', job_id, *common)
                    self.assertEqual(code, 0, "%s: tej wait: %s" % (
                        where, err))
                    code, out, err = self.cli('logs', self.server.alias,
                                              '--id', job_id, *common)
                    self.assertEqual(code, 0, "%s: tej logs: %s" % (
                        where, err))
                self.assertEqual(out, expected, "%s: the output" % where)
        self.assert_no_canary({self.canary(i): self.where(i, total, c[0])
                               for i, c in enumerate(COMMAND_LINES, 1)})

    def test_queue_path(self):
        """A queue path that a login shell would mangle."""
        path = os.path.join(self.remote, "q2 !x \\\\ 'y' $HOME `id`")
        where = self.where(1, 1, 'queue %r' % os.path.basename(path))
        q = self.server.queue(path)
        self.addCleanup(self.server.queues.remove, q)
        q.timeout = TIMEOUT
        out = io.BytesIO()
        try:
            q.submit('odd-queue', self.tmp, script=say('in the odd queue'))
            self.assertEqual(q.wait('odd-queue', timeout=TIMEOUT), 0, where)
            q.logs('odd-queue', stdout=out)
        except tej.Error as e:
            self.fail("%s: %s" % (where, e))
        self.assertTrue(os.path.isdir(os.path.join(
            path, 'jobs', 'odd-queue', 'stage')),
            "%s: no job in the queue; the server has %r" % (
                where, os.listdir(self.remote)))
        self.assertEqual(out.getvalue(), b'in the odd queue', where)


class TestDashLogin(LoginShell, support.ServerCase):
    shell = 'dash'
    probe = 'echo "$0 ${BASH_VERSION:-no bash}"'
    expect = r'dash no bash'


class TestBashLogin(LoginShell, support.ServerCase):
    shell = 'bash'
    probe = 'echo "$0 ${BASH_VERSION:-no bash}"'
    expect = r'bash \d.*'


class TestTcshLogin(LoginShell, support.ServerCase):
    shell = 'tcsh'
    probe = 'echo $version'  # fish has a $version too: "3.6.0"
    expect = r'tcsh \d.*'


class TestFishLogin(LoginShell, support.ServerCase):
    shell = 'fish'
    probe = 'echo fish $FISH_VERSION'
    expect = r'fish \d.*'

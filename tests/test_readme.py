"""README.rst's examples, run as written: every literal block of it (the
indented text after a line ending in ``::``) is run by one of the tests
here, against local: or the test sshd, with only the destination, the
queue and the ssh options put in. A block that no test runs is a failure,
so that no example can rot unseen.
"""

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

from . import support
from .support import tej, run_cli

setUpModule = support.ssh_module

README = os.path.join(support.TOP, 'README.rst')


def literal_blocks(text):
    """The literal blocks of an reST text: a list of (line number, text
    dedented)."""
    blocks, lines = [], text.split('\n')
    i = 0
    while i < len(lines):
        if lines[i].endswith('::') and not lines[i].lstrip().startswith('..'):
            start = i + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = start
            while end < len(lines) and (not lines[end].strip() or
                                        lines[end].startswith(' ')):
                end += 1
            body = lines[start:end]
            while body and not body[-1].strip():
                body.pop()
            indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
            blocks.append((start + 1, '\n'.join(l[indent:] for l in body)))
            i = end
        else:
            i += 1
    return blocks


def sh(script, cwd, env=None):
    """Run ``script`` with ``sh -e``; return (exit status, stdout), with
    stderr after stdout when it fails.
    """
    proc = subprocess.run(['sh', '-ec', script], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)
    out = proc.stdout
    if proc.returncode:
        out += proc.stderr
    return proc.returncode, out.decode('utf-8', 'replace')


class TestReadme(support.ServerCase):
    @classmethod
    def setUpClass(cls):
        super(TestReadme, cls).setUpClass()
        with open(README) as fp:
            cls.blocks = literal_blocks(fp.read())

    def block(self, first_line):
        """The one block that starts with ``first_line``; counted as run."""
        found = [text for _, text in self.blocks
                 if text.split('\n', 1)[0].startswith(first_line)]
        self.assertEqual(len(found), 1, first_line)
        return found[0]

    def test_every_block_is_run(self):
        starts = tuple(FIRST_LINES)
        for line, text in self.blocks:
            self.assertTrue(text.startswith(starts),
                            "README.rst line %d: a block that no test runs: "
                            "%r" % (line, text[:60]))

    def test_install(self):
        text = self.block(FIRST_LINES[0])
        home = self.make_dir('home')
        env = dict(os.environ, HOME=home,
                   PATH='%s/.local/bin:%s' % (home, os.environ['PATH']))
        code, out = sh(text, support.TOP, env)
        self.assertEqual(code, 0, out)
        self.assertEqual(out, 'tej version %s\n' % tej.__version__)
        # the command runs the copy, from its bytecode, even where no
        # bytecode may be written (with the python3 of its "#!" line)
        command = os.path.join(home, '.local', 'bin', 'tej')
        env['PYTHONDONTWRITEBYTECODE'] = '1'
        proc = subprocess.run(['python3', '-v', command, '--version'],
                              env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(proc.stdout, 'tej version %s\n' % tej.__version__)
        cached = os.path.join(home, '.local', 'lib', 'tej', '__pycache__',
                              'tej.')
        self.assertIn("code object from '%s" % cached, proc.stderr)

    def test_quick_start(self):
        # in a copy of the checkout: the download lands here
        text = self.block(FIRST_LINES[1])
        top = self.make_dir('checkout')
        shutil.copy(os.path.join(support.TOP, 'tej.py'), top)
        shutil.copytree(os.path.join(support.TOP, 'runtimes'),
                        os.path.join(top, 'runtimes'))
        lines = text.replace('python3 ', sys.executable + ' ').split('\n')
        outputs = []
        for line in lines:
            code, out = sh(line, top)
            self.assertEqual(code, 0, (line, out))
            outputs.append(out)
        self.assertEqual(outputs[0], 'demo\n')
        self.assertIn('# finished 0', lines[2])
        self.assertEqual(outputs[2], 'finished 0\n')
        self.assertEqual(outputs[3], 'done\n')
        self.assertEqual(run_cli('status', 'local:', '--id', 'demo'),
                         (0, 'not found\n', ''))

    def test_make_test(self):
        text = self.block(FIRST_LINES[2])
        self.assertEqual(text, 'make test-quick\nmake test')
        for target in ('test-quick', 'test'):
            code, out = sh('make -n ' + target, support.TOP)
            self.assertEqual(code, 0, out)
            self.assertIn('-m tests', out)

    def test_json(self):
        # the documented object has the keys that status --json prints
        text = re.sub(r'#.*', '', self.block(FIRST_LINES[3]))
        documented = json.loads(text)
        job = self.job('j', {'start.sh': 'exit 0\n'})
        q = self.queue()
        q.submit('j', job)
        q.wait('j')
        code, out, err = self.cli('status', self.dest, '--id', 'j', '--json')
        self.assertEqual(code, 0, err)
        printed = json.loads(out)
        self.assertEqual(sorted(printed), sorted(documented))
        self.assertEqual(printed['runtime'], documented['runtime'])

    def ci_command(self, text):
        """The tej command line of a CI example (YAML, folded), with the
        destination made the test server's.
        """
        # up to the next YAML item or key
        match = re.search(r'python3 tej\.py run (.*?)(?=\n *- |\n *[\w-]+:|'
                          r'\Z)', text, re.S)
        argv = shlex.split(match.group(1))
        self.assertIn('--download', argv)
        self.assertEqual(argv[0], 'ci@cluster.example.org')
        return ['run', self.dest] + argv[1:]

    def run_ci_example(self, first_line):
        argv = self.ci_command(self.block(first_line))
        self.job('simulation', {'start.sh': 'mkdir results\n'
                                            'echo 42 > results/answer\n'})
        proc = subprocess.run(
            [sys.executable, os.path.join(support.TOP, 'tej.py')] +
            self.args(*argv), cwd=self.tmp, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=120)
        self.assertEqual((proc.returncode, proc.stdout), (0, b''),
                         proc.stderr)
        with open(os.path.join(self.tmp, 'artifacts', 'results',
                               'answer')) as fp:
            self.assertEqual(fp.read(), '42\n')
        shutil.rmtree(os.path.join(self.tmp, 'artifacts'))

    def test_github_actions(self):
        self.run_ci_example(FIRST_LINES[4])

    def test_gitlab_ci(self):
        self.run_ci_example(FIRST_LINES[5])

    def python_example(self, first_line):
        """Run a Python example against the test server: the destination,
        queue and ssh options put in, in a directory of its own with the
        job at path/to/dir.
        """
        text = self.block(first_line)
        call = "tej.RemoteQueue('user@cluster', '~/.tej')"
        self.assertIn(call, text)
        text = text.replace(call, 'tej.RemoteQueue(%r, %r, ssh_options=%r)'
                            % (self.dest, self.queue_path,
                               self.server.options))
        here = self.make_dir(first_line.split()[-1])
        support.make_tree(os.path.join(here, 'path', 'to', 'dir'), {
            'start.sh': 'echo out; echo err >&2; mkdir results\n'})
        old = os.getcwd()
        os.chdir(here)
        try:
            namespace = {}
            exec(compile(text, 'README.rst', 'exec'), namespace)
        finally:
            os.chdir(old)
            if 'queue' in namespace:
                namespace['queue'].close()
        return here, namespace

    def test_python_api(self):
        here, ns = self.python_example(FIRST_LINES[6])
        self.assertEqual(ns['exit_code'], 0)
        with open(os.path.join(here, 'out', '_stdout')) as fp:
            self.assertEqual(fp.read(), 'out\n')
        self.assertTrue(os.path.isdir(os.path.join(here, 'out', 'results')))
        self.assertEqual(list(ns['queue'].list()), [])

    def test_workflow_pattern(self):
        here, ns = self.python_example(FIRST_LINES[7])
        self.assertEqual(ns['exit_code'], 0)
        with open(os.path.join(here, 'logs', '_stderr')) as fp:
            self.assertEqual(fp.read(), 'err\n')
        # again: the same job is found, not started twice
        first = ns['job_id']
        here, ns = self.python_example(FIRST_LINES[7])
        self.assertEqual(ns['job_id'], first)
        self.assertEqual([i for i, _ in ns['queue'].list()], [first])

    def test_server_side(self):
        # each file the layout names is there in a queue with a job
        text = self.block(FIRST_LINES[8])
        q = self.queue()
        q.submit('ID', self.job('job', {'start.sh': 'exit 0\n'}),
                 walltime=60, prologue='true')
        q.wait('ID')
        # (batch.sh is the schedulers', lost a lost job's)
        names = re.findall(r'^ *(\S+/\S*|version|tej\.sh)\s', re.sub(
            r'.*\((slurm, pbs|a lost job)\).*', '', text) + '\n', re.M)
        self.assertIn('jobs/ID/umask', names)
        for name in names:
            path = name.replace('~/.tej/', '').rstrip('/') or '.'
            with self.subTest(name=name):
                self.assertTrue(os.path.exists(os.path.join(
                    self.queue_path, path)), name)
        self.assertIn('jobs/ID/prologue', text)
        self.assertTrue(os.path.exists(os.path.join(
            self.queue_path, 'jobs', 'ID', 'prologue')))

    def test_the_originals_tests(self):
        # they need the original's sdist from the network: the commands are
        # checked by sh, and the launcher it writes is run
        text = self.block(FIRST_LINES[9])
        code, out = sh('set -n\n' + text, self.tmp)
        self.assertEqual(code, 0, out)
        launcher = re.search(r"(printf '[^']*' \\\s*\"\$PWD\" > bin/tej)",
                             text).group(1).replace('\\\n', ' ')
        here = self.make_dir('original')
        shutil.copy(os.path.join(support.TOP, 'tej.py'), here)
        code, out = sh('mkdir bin && ' + launcher + ' && chmod 755 bin/tej '
                       '&& bin/tej --version', here)
        self.assertEqual((code, out), (0, 'tej version %s\n'
                                       % tej.__version__))

    def test_keeping_track_of_jobs(self):
        # the session, with the two servers the test server (two queues)
        text = self.block(FIRST_LINES[10])
        support.patch_env(self.addCleanup, TEJ_REGISTRY=os.path.join(
            self.tmp, 'jobs.sqlite3'))
        here = self.make_dir('session')
        # sim and train run until "tej jobs" has shown them running
        go = os.path.join(self.remote, 'go')
        wait = 'while [ ! -e %s ] && [ -d "$PWD" ]; do sleep 0.1; done' % go
        support.make_tree(here, {
            'sim/start.sh': 'mkdir results; %s\n' % wait,
            'train/start.sh': 'mkdir results; %s; exit 1\n' % wait,
            'check/start.sh': 'mkdir results\n'})
        config = self.server.config
        tej_py = '%s %s' % (sys.executable, os.path.join(support.TOP,
                                                         'tej.py'))
        commands, outputs = [], []
        for line in text.split('\n'):
            if line.startswith('$ '):
                commands.append(line[2:])
                outputs.append([])
            else:
                outputs[-1].append(line)
        shown = dict(zip(commands, outputs))
        self.assertEqual(commands[-1], 'echo $?')
        env = dict(os.environ, HOME=here)
        results = []
        for command in commands[:-1]:
            shown_command = command
            if command == 'tej jobs':  # as shown: check has finished
                tej.RemoteQueue('local:', os.path.join(here, '.tej')).wait(
                    results[2][1].strip())
            command = re.sub(r'\btej (\w+) (cluster|me@gpu\.example\.org:2222'
                             r'|"\$TEJ_DEST"|local:)', r'%s \1 \2 -F %s' % (
                                 tej_py, config), command)
            command = re.sub(r'\btej (jobs|monitor)', r'%s \1' % tej_py,
                             command)
            command = command.replace(
                ' cluster ', ' %s --queue %s ' % (self.dest, self.queue_path))
            command = command.replace(
                ' me@gpu.example.org:2222 ', ' %s ' % self.dest).replace(
                    '/scratch/q', os.path.join(self.remote, 'scratch'))
            proc = subprocess.run(['sh', '-c', command], cwd=here, env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=120)
            results.append((proc.returncode, proc.stdout.decode()))
            if shown_command == 'tej jobs':
                open(go, 'w').close()
        ids = [results[i][1].strip() for i in range(3)]
        for (code, out), name in zip(results, ('sim', 'train', 'check')):
            self.assertEqual(code, 0, out)
            self.assertRegex(out, r'\A%s_\w+_[a-z0-9]{10}\n\Z' % name)
        code, out = results[3]
        self.assertEqual(out.split('\n')[0].split(),
                         shown['tej jobs'][0].split())
        states = [line.split()[2] for line in out.split('\n')[1:] if line]
        self.assertEqual(states, ['running', 'running', 'finished'])
        self.assertEqual(results[4], (0, ''))  # mkdir out
        code, out = results[5]
        self.assertEqual(code, 1)
        self.assertEqual(sorted(line.split()[1:] for line in out.split('\n')
                                if line),
                         sorted([[ids[0], 'finished', '0'],
                                 [ids[1], 'finished', '1'],
                                 [ids[2], 'finished', '0']]))
        for job_id in ids:  # --on-end downloaded each one's results
            self.assertTrue(os.path.isdir(os.path.join(
                here, 'out', job_id, 'results')), job_id)

    def test_job_monitor_api(self):
        support.patch_env(self.addCleanup, TEJ_REGISTRY=os.path.join(
            self.tmp, 'jobs.sqlite3'))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            here, ns = self.python_example(FIRST_LINES[11])
            try:
                job, = ns['monitor'].jobs(label='step-3')
                self.assertEqual(job.destination, self.dest)
                support.wait_for(lambda: ns['monitor'].jobs(
                    label='step-3')[0].reported, what='the end reported')
            finally:
                ns['stop'].set()
                ns['watcher'].join(30)
        self.assertFalse(ns['watcher'].is_alive())
        self.assertEqual(printed.getvalue(), '%s %s None None\n'
                         '%s ended: finished 0\n' % (self.dest, job.id,
                                                      job.id))

    def make_dir(self, name):
        return tempfile.mkdtemp(prefix=name + '-', dir=self.tmp)


#: How each README block starts, in order; each test above takes one.
FIRST_LINES = [
    'mkdir -p ~/.local/lib/tej ~/.local/bin && install',
    'python3 tej.py submit local: runtimes',
    'make test-quick',
    '{"tej": 1,',
    'jobs:',
    'simulate:',
    'import tej',
    'import hashlib',
    '~/.tej/ ',
    'cp /path/to/tej.py .',
    '$ tej submit cluster sim',
    'import threading',
]


if __name__ == '__main__':
    unittest.main()

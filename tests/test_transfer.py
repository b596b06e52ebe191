"""Transfers: the tar writer's headers, the reader of a download stream
and its safe extraction of hostile archives (no server); then the data
path through the real sshd: uploads streamed as they are made
(no temporary copy, first contact too), downloads written under temporary
names and resumed after an interruption (a connection killed mid-file,
a server without cksum), zeros that are data, broken streams that are
errors, what goes up (--exclude, .tejignore, links that lead out,
--compress), progress, a server's or the local disk full, and where
downloads may write.

As root, the tests mount small tmpfs file systems (names starting with
"data-") and remove them after.
"""

import filecmp
import io
import os
import pty
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest

from . import support
from .support import tej, wait_for, wait_state

setUpModule = support.ssh_module

MiB = 1 << 20


def big_file(path, size):
    """A file of ``size`` bytes that neither compresses nor has holes."""
    block = os.urandom(MiB)
    with open(path, 'wb') as fp:
        for _ in range(size // MiB):
            fp.write(block)
        fp.write(block[:size % MiB])
    return path


def mount_tmpfs(test, path, size, owner=None):
    """A tmpfs of ``size`` at ``path`` (owned by ``owner``, a uid), removed
    after ``test`` (a TestCase or its class).
    """
    support.need('root', os.getuid() == 0, "mounting a tmpfs needs root")
    os.makedirs(path, exist_ok=True)
    subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=%d' % size,
                           'data-tmpfs', path])
    test.addCleanup(subprocess.call, ['umount', '-l', path])
    if owner is not None:
        os.chown(path, owner, -1)
    return path


def path_alias(server, name, bindir, rest=True):
    """Another name for the test server, whose sessions have ``bindir``
    first on their PATH (wrappers for the server's tools), then (``rest``)
    the hermetic PATH.
    """
    alias = '%s-%s' % (server.alias, name)
    server.add_alias(alias, path=bindir + (
        ':' + support.Hermetic.bin if rest else ''))
    return alias


def server_readable(test):
    """A directory that the test user can read, removed after ``test``."""
    import tempfile
    path = tempfile.mkdtemp(dir=support.ssh_server().dir)
    test.addCleanup(shutil.rmtree, path, True)
    os.chmod(path, 0o755)
    return path


def wrapper_dir(test, tools):
    """A directory of executable scripts, {name: text}, readable by the
    test user.
    """
    path = server_readable(test)
    for name, text in tools.items():
        with open(os.path.join(path, name), 'w') as fp:
            fp.write(text)
        os.chmod(os.path.join(path, name), 0o755)
    return path


def parts(directory):
    """The part files left in ``directory`` (and below)."""
    found = []
    for root, dirs, files in os.walk(directory):
        found += [os.path.join(root, f) for f in files
                  if f.endswith(tej._PART)]
    return found


class Counter(object):
    """A progress callback: the bytes received."""

    def __init__(self):
        self.done = 0
        self.total = None

    def __call__(self, done, total):
        self.done, self.total = done, total


class TransferCase(support.ServerCase):
    def kill_sessions_when(self, condition, timeout=60):
        """In a thread: once ``condition()`` holds, kill the server's
        session processes (every sshd, the shared connection with them).
        """
        def watch():
            wait_for(condition, timeout=timeout, interval=0.01,
                     what="the transfer to be under way")
            self.server.kill_sshd()
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 1)
        return thread


_shared = {}


def shared_big_job():
    """A job directory holding ``data``, 1 GiB, made once for the run."""
    if 'big' not in _shared:
        job = os.path.join(support.Hermetic.start(), 'big-job')
        os.mkdir(job)
        support.make_tree(job, {'start.sh': 'true\n'})
        big_file(os.path.join(job, 'data'), 1 << 30)
        _shared['big'] = job
    return _shared['big']


class TestTarHeaders(unittest.TestCase):
    """The packer's own headers are tarfile's (but for the device fields
    of files, which tarfile leaves empty since Python 3.8 or writes as 0)
    and read back the same, names long or odd included.
    """

    def test_as_tarfile_makes_them(self):
        import tarfile
        cases = [('a', tarfile.REGTYPE, 0, 0, 0o644, ''),
                 ('d/caf\u00e9 x', tarfile.REGTYPE, 12345678, 1795272705,
                  0o755, ''),
                 ('dir', tarfile.DIRTYPE, 0, 5, 0o700, ''),
                 ('l', tarfile.SYMTYPE, 0, 5, 0o777, '../x' * 25),
                 ('h', tarfile.LNKTYPE, 0, 5, 0o644, 'a'),
                 ('x' * 100, tarfile.REGTYPE, 1, 1, 0o4755, ''),
                 ('y' * 101, tarfile.REGTYPE, 1, 1, 0o644, ''),
                 ('l2', tarfile.SYMTYPE, 0, 5, 0o777, 'z' * 101),
                 ('big', tarfile.REGTYPE, 9 << 30, 1, 0o644, ''),
                 ('\udcff-\n', tarfile.REGTYPE, 1, 1, 0o644, '')]
        for name, kind, size, mtime, mode, link in cases:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime, info.mode = \
                kind, size, mtime, mode
            info.linkname = link
            info.uid = info.gid = 0
            info.uname = info.gname = ''
            ours = tej._tar_header(info)
            theirs = info.tobuf(tarfile.GNU_FORMAT, 'utf-8',
                                'surrogateescape')
            self.assertEqual(len(ours), len(theirs), name)

            def masked(block):
                return block[:148] + block[156:329] + block[345:]
            self.assertEqual(masked(ours), masked(theirs), name)
            back = tarfile.open(fileobj=io.BytesIO(
                ours + b'\0' * (tarfile.RECORDSIZE * 2)), mode='r|',
                encoding='utf-8', errors='surrogateescape').next()
            self.assertEqual((back.name.rstrip('/'), back.type, back.size,
                              back.mtime, back.mode, back.linkname),
                             (name, kind, size, mtime, mode, link))


class TestStreamEnd(unittest.TestCase):
    """Without a server: an archive that ends before its end blocks (cut
    between members, or followed by garbage, which tarfile takes for its
    end) is a lost connection; a file cut short leaves its part, and no
    file under its name.
    """

    def setUp(self):
        self.tmp = support.temporary(self)
        self.into = os.path.join(self.tmp, 'into')
        os.mkdir(self.into)
        job = support.make_tree(os.path.join(self.tmp, 'job'), {
            'out/a': b'a' * 1024, 'out/b': os.urandom(3 * MiB)})
        archive = io.BytesIO()
        tej._write_tar(job, archive)
        # as a download's: without the upload's mark (tej._WHOLE)
        mark = tarfile.open(fileobj=io.BytesIO(archive.getvalue())).getmember(
            tej._WHOLE)
        self.archive = archive.getvalue()[:mark.offset] + \
            tarfile.NUL * tarfile.RECORDSIZE

    def extract(self, data):
        tej._extract(io.BytesIO(data), {'out': os.path.join(self.into,
                                                            'out')}, True)

    def test_whole(self):
        self.extract(self.archive)
        self.assertEqual(sorted(os.listdir(os.path.join(self.into, 'out'))),
                         ['a', 'b'])

    def test_cut_between_members(self):
        # out/, out/a: then nothing, or garbage
        for tail in (b'', b'garbage' * 100, os.urandom(1024)):
            with self.assertRaises(tej.ConnectionLost) as ctx:
                self.extract(self.archive[:512 * 2 + 1024] + tail)
            self.assertIn('the connection was lost', str(ctx.exception))
            self.assertFalse(os.path.exists(os.path.join(self.into, 'out',
                                                         'b')))

    def test_cut_in_a_member_leaves_its_part(self):
        with self.assertRaises(tej.ConnectionLost):
            self.extract(self.archive[:512 * 4 + 1024 + 2 * MiB + 1000])
        out = os.path.join(self.into, 'out')
        self.assertFalse(os.path.exists(os.path.join(out, 'b')))
        # what came, but for the piece being read (1 MiB at most)
        sizes = [os.path.getsize(p) for p in parts(out)]
        self.assertEqual(len(sizes), 1)
        self.assertTrue(MiB <= sizes[0] <= 2 * MiB + 1000, sizes)
        self.extract(self.archive)  # the whole: no part left
        self.assertEqual(parts(out), [])


class TestBigFile(TransferCase):
    """A 1 GiB job: uploaded with TMPDIR on a 64 MiB tmpfs, downloaded
    with the connection killed halfway, then resumed.
    """

    size = 1 << 30

    def setUp(self):
        super(TestBigFile, self).setUp()
        self.data = os.path.join(shared_big_job(), 'data')

    def test_upload_without_temporary_space_then_resumed_download(self):
        tmp = mount_tmpfs(self, os.path.join(self.tmp, 'data-tmp'),
                          64 * MiB)
        support.patch_env(self.addCleanup, TMPDIR=tmp)
        import tempfile
        tempfile.tempdir = None
        self.addCleanup(setattr, tempfile, 'tempdir', None)
        job = os.path.dirname(self.data)
        # first contact: the runtime goes ahead of the stream
        code, out, err = self.cli('submit', self.dest, job, '--id', 'big',
                                  '--script', 'true')
        self.assertEqual((code, out), (0, 'big\n'), err)
        q = self.queue()
        wait_state(q, 'big')
        self.assertTrue(filecmp.cmp(self.data, os.path.join(
            self.stage('big'), 'data'), shallow=False))

        # the download, cut halfway: an error, no file under its name
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        target = os.path.join(into, 'data')

        def half():
            return any(os.path.getsize(p) > self.size // 2
                       for p in parts(into))
        self.kill_sessions_when(half)
        with self.assertRaises(tej.ConnectionLost):
            q.download('big', 'data', directory=into)
        self.assertFalse(os.path.exists(target))
        self.assertEqual(len(parts(into)), 1)
        # again: it goes on from where it stopped
        counter = Counter()
        q = self.queue()
        q.download('big', 'data', directory=into, progress=counter)
        self.assertTrue(filecmp.cmp(self.data, target, shallow=False))
        self.assertEqual(parts(into), [])
        self.assertLess(counter.done, self.size // 2)
        self.assertGreater(counter.done, 0)
        sys.stderr.write(' (resumed: %d bytes of %d) ' % (counter.done,
                                                          self.size))
        # and once more: nothing left to fetch
        counter = Counter()
        q.download('big', 'data', directory=into, progress=counter)
        self.assertEqual(counter.done, 0)
        self.assertTrue(filecmp.cmp(self.data, target, shallow=False))


class TestUpload(TransferCase):
    def test_connection_dropped_mid_upload(self):
        job = self.job('job', {'start.sh': 'true\n'})
        big_file(os.path.join(job, 'data'), 400 * MiB)
        q = self.queue()
        q.setup()
        stage = os.path.join(self.queue_path, 'jobs', 'up', 'stage', 'data')

        def under_way():
            return os.path.exists(stage) and \
                os.path.getsize(stage) > 20 * MiB
        self.kill_sessions_when(under_way)
        code, out, err = self.cli('submit', self.dest, job, '--id', 'up')
        self.assertEqual(code, 1)
        self.assertIn('the connection was lost', err)
        self.assertIn('tej: error: ', err)
        self.assertNotIn('Traceback', err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        # no half-made job that would pass for the job: gone, or lost
        q = self.queue()
        jobs = dict(q.list())
        if 'up' in jobs:
            self.assertEqual(jobs['up']['state'], 'lost')
            q.delete('up')
        q.submit('up', job)
        wait_state(q, 'up')
        self.assertTrue(filecmp.cmp(os.path.join(job, 'data'), stage,
                                    shallow=False))

    def test_an_error_while_streaming_makes_no_job(self):
        q = self.queue()
        q.setup()

        def produce(pipe):
            archive = io.BytesIO()
            tej._write_tar(self.job('job', {'start.sh': 'true\n',
                                            'x': 'x' * 10000}), archive)
            # start.sh whole: tar would take the end of its input here for
            # the end of the archive
            pipe.write(archive.getvalue()[:1024])
            raise tej.Error("Cannot read x: Input/output error")
        with self.assertRaises(tej.Error) as ctx:
            q._calls.call('submit', ['broken', 'file', 'start.sh'],
                          stdin=produce, transfer=True)
        self.assertIn('Input/output error', str(ctx.exception))
        self.assertEqual(list(q.list()), [])

    def test_refused_session_sends_it_all_again(self):
        # the first session is refused after ssh read some of the stream
        # (nothing of it reached the server): the next try sends it whole
        marker = os.path.join(self.tmp, 'refused')
        q = self.queue()
        q.setup()
        job = self.job('job', {'start.sh': 'true\n'})
        big_file(os.path.join(job, 'data'), 20 * MiB)
        support.stub_ssh(
            self,
            'case " $* " in *" -O "*) exec ssh "$@" ;; esac\n'
            'if [ ! -f "%s" ]; then\n'
            '    : > "%s"\n'
            '    head -c 3000000 > /dev/null\n'
            '    echo "mux_client_request_session: session request '
            'failed: Session open refused by peer" >> "$TEJ_SSH_LOG"\n'
            '    exit 255\n'
            'fi\n'
            'exec ssh "$@"\n' % (marker, marker))
        q = self.queue()
        q.submit('again', job)
        self.assertTrue(os.path.exists(marker))
        wait_state(q, 'again')
        self.assertTrue(filecmp.cmp(os.path.join(job, 'data'), os.path.join(
            self.stage('again'), 'data'), shallow=False))

    def test_a_file_that_shrinks_as_it_is_read(self):
        path = os.path.join(self.tmp, 'f')
        with open(path, 'wb') as fp:
            fp.write(b'x' * 100000)
        st = os.stat(path)
        with open(path, 'wb') as fp:
            fp.write(b'x' * 10)
        with self.assertRaises(tej.Error) as ctx:
            tej._write_tar(self.tmp, io.BytesIO(),
                           entries=[('f', path, st, None)])
        self.assertIn('changed as it was read', str(ctx.exception))

    def test_fifo_and_socket_are_refused(self):
        import socket
        for kind in ('fifo', 'socket'):
            job = self.job(kind, {'start.sh': 'true\n'})
            path = os.path.join(job, 'sub', 'special')
            os.mkdir(os.path.dirname(path))
            if kind == 'fifo':
                os.mkfifo(path)
            else:
                sock = socket.socket(socket.AF_UNIX)
                sock.bind(path)
                self.addCleanup(sock.close)
            for argv in (['submit', self.dest, job, '--content-id'],
                         ['submit', self.dest, job],
                         ['run', self.dest, job]):
                code, out, err = self.cli(*argv)
                self.assertEqual(code, 125 if argv[0] == 'run' else 1, err)
                self.assertEqual(err, 'tej: error: Cannot send %s: it is a '
                                 '%s\n' % (path, 'fifo (named pipe)'
                                           if kind == 'fifo' else kind))
            self.assertRaises(tej.Error, tej.content_id, job)

    def test_exclude_and_tejignore(self):
        job = self.job('job', {'start.sh': 'true\n', 'keep/a.txt': 'a',
                               'keep/b.o': 'b', 'build/x': 'x',
                               'deep/build/y': 'y', 'cache.tmp': 'c',
                               'data/big.tmp': 'd', 'data/ok': 'ok'})
        before = tej.content_id(job, exclude=['*.o', 'build'])
        support.make_tree(job, {'.tejignore': '# scratch\n\n*.tmp\n'
                                              'data/*.tmp\n'})
        with_ignore = tej.content_id(job, exclude=['*.o', 'build'])
        self.assertNotEqual(before, with_ignore)  # .tejignore is sent
        code, out, err = self.cli('submit', self.dest, job, '--content-id',
                                  '--exclude', '*.o', '--exclude', 'build/')
        self.assertEqual(code, 0, err)
        job_id = out.strip()
        self.assertEqual(job_id, with_ignore)
        wait_state(self.queue(), job_id)
        stage = self.stage(job_id)
        sent = sorted(os.path.relpath(os.path.join(r, f), stage)
                      for r, d, fs in os.walk(stage) for f in fs)
        self.assertEqual(sent, ['.tejignore', '_stderr', '_stdout',
                                'data/ok', 'keep/a.txt', 'start.sh'])
        # what is left out does not count in the id
        support.make_tree(job, {'build/z': 'new', 'keep/c.o': 'new',
                                'other.tmp': 'new'})
        self.assertEqual(tej.content_id(job, exclude=['*.o', 'build']),
                         with_ignore)
        support.make_tree(job, {'keep/new.txt': 'new'})
        self.assertNotEqual(tej.content_id(job, exclude=['*.o', 'build']),
                            with_ignore)

    def test_an_unreadable_tejignore_stops_the_upload(self):
        # a .tejignore that cannot be read (a directory; mode 000 read by
        # a user who is not root) is an error before anything goes up,
        # never taken for no patterns: what it leaves out may be a secret
        job = self.job('job', {'start.sh': 'true\n', 'secret.key': 'k'})
        ignore = os.path.join(job, '.tejignore')
        os.mkdir(ignore)
        q = self.queue()
        q.setup()
        for extra in ([], ['--content-id']):
            code, out, err = self.cli('submit', self.dest, job, *extra)
            self.assertEqual((code, out), (1, ''), err)
            self.assertEqual(err, 'tej: error: Cannot read %s: it is a '
                             'directory, not a file of patterns\n' % ignore)
        code, out, err = self.cli('run', self.dest, job)
        self.assertEqual(code, 125, err)
        self.assertIn('tej: error: Cannot read %s' % ignore, err)
        self.assertNotIn('Traceback', err)
        self.assertRaises(tej.Error, q.submit, None, job)
        self.assertRaises(tej.Error, q.submit, None, job, content_id=True)
        self.assertRaises(tej.Error, tej.content_id, job)
        self.assertEqual(list(q.list()), [])

        # mode 000, read as a user (root reads it)
        top = server_readable(self)
        job = support.make_tree(os.path.join(top, 'job'), {
            'start.sh': 'true\n', 'secret.key': 'k',
            '.tejignore': 'secret.key\n'})
        ignore = os.path.join(job, '.tejignore')
        os.chmod(job, 0o755)
        os.chmod(ignore, 0)
        python, owner = sys.executable, None
        if os.getuid() == 0:
            python = '/usr/bin/python3'
            support.need('sshd', os.path.exists(python),
                         "as root, the test user runs /usr/bin/python3")
            owner = self.server.uid, self.server.gid

        def drop():
            if owner is not None:
                os.setgroups([])
                os.setgid(owner[1])
                os.setuid(owner[0])
        home = os.path.join(top, 'home')
        os.mkdir(home)
        if owner is not None:
            os.chown(home, *owner)
        env = dict(os.environ, HOME=home, TEJ_REGISTRY='off')
        env.pop('XDG_RUNTIME_DIR', None)
        queue = os.path.join(home, 'q')
        for extra in ([], ['--content-id']):
            proc = subprocess.run(
                [python, os.path.join(support.TOP, 'tej.py'), 'submit',
                 'local:', job, '--queue', queue] + extra,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=home, preexec_fn=drop, timeout=60)
            err = proc.stderr.decode()
            self.assertEqual((proc.returncode, proc.stdout), (1, b''), err)
            self.assertEqual(err, 'tej: error: Cannot read %s: Permission '
                             'denied\n' % ignore)
        jobs = os.path.join(queue, 'jobs')
        self.assertEqual(os.listdir(jobs) if os.path.isdir(jobs) else [], [])

    def test_links_that_lead_out(self):
        outside = support.make_tree(os.path.join(self.tmp, 'outside'),
                                    {'file': 'outside\n'})
        job = self.job('job', {'start.sh': 'cat abs up\n', 'in': 'in\n'})
        os.symlink(os.path.join(outside, 'file'), os.path.join(job, 'abs'))
        os.symlink('../outside/file', os.path.join(job, 'up'))
        os.symlink('in', os.path.join(job, 'fine'))
        code, out, err = self.cli('submit', self.dest, job, '--id', 'links')
        self.assertEqual(code, 0, err)
        warnings = err.splitlines()
        self.assertEqual(len([w for w in warnings if 'outside the job '
                              'directory' in w]), 2, err)
        self.assertIn('--dereference', err)
        self.assertNotIn('fine', err)
        self.assertTrue(os.path.islink(os.path.join(self.stage('links'),
                                                    'abs')))
        code, out, err = self.cli('submit', self.dest, job, '--id', 'deref',
                                  '--dereference')
        self.assertEqual(code, 0, err)
        self.assertNotIn('outside the job', err)
        stage = self.stage('deref')
        for name in ('abs', 'up'):
            self.assertFalse(os.path.islink(os.path.join(stage, name)))
        self.assertTrue(os.path.islink(os.path.join(stage, 'fine')))
        q = self.queue()
        wait_state(q, 'deref')
        with open(os.path.join(stage, '_stdout')) as fp:
            self.assertEqual(fp.read(), 'outside\noutside\n')
        # the content id is that of what is sent
        self.assertNotEqual(tej.content_id(job),
                            tej.content_id(job, dereference=True))


class TestCompress(TransferCase):
    def test_with_and_without_gzip_on_the_server(self):
        job = self.job('job', {'start.sh': 'true\n',
                               'text': 'compressible\n' * 100000})
        code, out, err = self.cli('submit', self.dest, job, '--id', 'z',
                                  '--compress')
        self.assertEqual(code, 0, err)
        self.assertTrue(filecmp.cmp(os.path.join(job, 'text'), os.path.join(
            self.stage('z'), 'text'), shallow=False))
        # a PATH without gzip (every other tool there)
        bindir = support.bin_without('gzip', 'gunzip', 'zcat')
        alias = path_alias(self.server, 'nogzip', bindir, rest=False)
        args = self.args('submit', alias, job, '--id', 'nz', '--compress')
        args[args.index('--queue') + 1] = os.path.join(self.remote, 'q2')
        code, out, err = support.run_cli(*args)
        self.assertEqual(code, 1)
        self.assertEqual(err.splitlines()[-1], 'tej: error: --compress: '
                         'there is no gzip on the server')
        self.assertFalse(os.path.exists(os.path.join(self.remote, 'q2',
                                                     'jobs', 'nz')))


class TestBrokenDownloads(TransferCase):
    """A stream cut short, or garbage instead of an archive, through a tar
    wrapper on the server's PATH: an error that says the connection was
    lost, no file under a final name that is not whole.
    """

    def download_through(self, tar_script):
        # of one size: the members' ends are where they are, in whatever
        # order tar sends them (readdir's)
        job = self.job('job', {'start.sh': 'true\n',
                               'out/a': 'a' * 1024, 'out/b': 'b' * 1024,
                               'out/c': 'c' * 1024})
        q = self.queue()
        q.submit('j', job)
        wait_state(q, 'j')
        real = shutil.which('tar')
        bindir = wrapper_dir(self, {'tar': tar_script % {'tar': real}})
        alias = path_alias(self.server, 'cut%d' % id(self), bindir)
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        code, out, err = support.run_cli(
            'download', alias, '--id', 'j', 'out', '--directory', into,
            '--queue', self.queue_path, '-F', self.server.config)
        return code, err, into

    def check_broken(self, code, err, into):
        self.assertEqual(code, 1, err)
        self.assertNotIn('Traceback', err)
        self.assertIn('the connection was lost', err)
        self.assertTrue(err.startswith('tej: error: '), err)
        self.assertEqual(len(err.splitlines()), 1, err)
        out = os.path.join(into, 'out')
        names = [n for n in os.listdir(out) if not n.startswith('.')] \
            if os.path.isdir(out) else []
        # (tar sends a directory in the order of readdir)
        self.assertLess(len(names), 3)
        for name in names:  # a file there is whole
            with open(os.path.join(out, name), 'rb') as fp:
                self.assertEqual(fp.read(), name.encode() * 1024)

    CUT = ('#!/bin/sh\n'
           'case " $* " in *" -cf "*) "%(tar)s" "$@" | head -c CUT; '
           'exit 0 ;; esac\n'
           'exec "%(tar)s" "$@"\n')

    def test_cut_in_a_file(self):
        # the directory, a first file, 300 bytes of the second
        code, err, into = self.download_through(self.CUT.replace(
            'CUT', str(512 + 1536 + 512 + 300)))
        self.check_broken(code, err, into)

    def test_cut_between_files(self):
        # the directory, a first file, and nothing of what follows: no
        # end of archive
        code, err, into = self.download_through(self.CUT.replace(
            'CUT', str(512 + 1536)))
        self.check_broken(code, err, into)

    def test_garbage(self):
        code, err, into = self.download_through(
            '#!/bin/sh\n'
            'case " $* " in *" -cf "*) head -c 3000 /dev/urandom; '
            'exit 0 ;; esac\n'
            'exec "%(tar)s" "$@"\n')
        self.check_broken(code, err, into)

    def test_garbage_after_a_file(self):
        code, err, into = self.download_through(self.CUT.replace(
            'CUT', str(512 + 1536)).replace(
                'exit 0', 'head -c 2000 /dev/urandom; exit 0'))
        self.check_broken(code, err, into)


class TestResume(TransferCase):
    def test_directory_resumes_file_by_file(self):
        files = {'start.sh': 'true\n'}
        files.update({'res/d%d/f%d' % (i % 3, i): os.urandom(100000)
                      for i in range(30)})
        job = self.job('job', files)
        hour_ago = time.time() - 3600  # a change here is another time
        for root, dirs, names in os.walk(job):
            for name in names:
                os.utime(os.path.join(root, name), (hour_ago, hour_ago))
        os.symlink('d0/f0', os.path.join(job, 'res', 'link'))
        os.mkdir(os.path.join(job, 'res', 'empty'))
        q = self.queue()
        q.submit('r', job)
        wait_state(q, 'r')
        into = os.path.join(self.tmp, 'into')
        q.download('r', 'res', directory=into)
        # lose some of it: files gone, one changed locally, one cut short
        res = os.path.join(into, 'res')
        shutil.rmtree(os.path.join(res, 'd1'))
        os.unlink(os.path.join(res, 'link'))
        os.rmdir(os.path.join(res, 'empty'))
        with open(os.path.join(res, 'd2', 'f2'), 'wb') as fp:
            fp.write(b'changed')
        # the same size, another time: changed too
        with open(os.path.join(res, 'd2', 'f5'), 'r+b') as fp:
            fp.write(b'changed')
        cut = os.path.join(res, 'd0', 'f3')
        st = os.stat(os.path.join(job, 'res', 'd0', 'f3'))
        part = tej._part_name(cut, st.st_size, int(st.st_mtime))
        os.rename(cut, part)
        with open(part, 'r+b') as fp:
            fp.truncate(30000)
        # and a part of another version of a file: removed
        stale = tej._part_name(os.path.join(res, 'd1', 'f1'), 5, 5)
        os.makedirs(os.path.dirname(stale))
        with open(stale, 'wb') as fp:
            fp.write(b'stale')
        counter = Counter()
        q.download('r', 'res', directory=into, progress=counter)
        self.assertEqual(filecmp.dircmp(os.path.join(job, 'res'), res)
                         .diff_files, [])
        for root, dirs, names in os.walk(os.path.join(job, 'res')):
            for name in names + dirs:
                theirs = os.path.join(root, name)
                ours = os.path.join(res, os.path.relpath(theirs, os.path.join(
                    job, 'res')))
                self.assertTrue(os.path.lexists(ours), ours)
                if os.path.isfile(theirs) and not os.path.islink(theirs):
                    self.assertTrue(filecmp.cmp(theirs, ours, shallow=False))
        self.assertEqual(os.readlink(os.path.join(res, 'link')), 'd0/f0')
        self.assertEqual(parts(into), [])
        # d1 (10 files) whole, d2/f2 and f5 whole, the rest of d0/f3
        self.assertEqual(counter.done, 12 * 100000 + 70000)

    def test_changed_on_the_server_is_fetched_whole(self):
        job = self.job('job', {'start.sh': 'true\n',
                               'f': os.urandom(200000)})
        q = self.queue()
        q.submit('c', job)
        wait_state(q, 'c')
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        remote = os.path.join(self.stage('c'), 'f')
        st = os.stat(remote)
        # a part of what the file was: same size and time, other bytes
        part = tej._part_name(os.path.join(into, 'f'), st.st_size,
                              int(st.st_mtime))
        with open(part, 'wb') as fp:
            fp.write(b'x' * 1000)
        counter = Counter()
        q.download('c', 'f', directory=into, progress=counter)
        self.assertTrue(filecmp.cmp(remote, os.path.join(into, 'f'),
                                    shallow=False))
        self.assertEqual(counter.done, 199000 + 200000)
        self.assertEqual(parts(into), [])

    def test_a_file_being_written(self):
        job = self.job('job', {
            'start.sh': 'i=0; while [ $i -lt 400 ]; do echo line $i; '
                        'i=$((i+1)); sleep 0.01; done\n'})
        q = self.queue()
        q.submit('w', job)
        into = os.path.join(self.tmp, 'into')
        os.mkdir(into)
        sizes = []
        wait_for(lambda: os.path.exists(os.path.join(self.stage('w'),
                                                     '_stdout')))
        while q.info('w')['state'] == 'running':
            q.download('w', '_stdout', directory=into)
            sizes.append(os.path.getsize(os.path.join(into, '_stdout')))
        wait_state(q, 'w')
        q.download('w', '_stdout', directory=into)
        with open(os.path.join(into, '_stdout')) as fp:
            self.assertEqual(fp.read(), ''.join('line %d\n' % i
                                                for i in range(400)))
        self.assertEqual(sizes, sorted(sizes))
        self.assertEqual(parts(into), [])


class TestResumeAfterCut(TransferCase):
    """A download cut in the middle of a file by its connection being
    killed (a real cut: the part is what the writer had written, with the
    part's mode), then run again: the file ends as a whole download makes
    it, whatever tools the server has to check the part.
    """

    size = 3 * MiB + 12345  # 1 MiB and more arrive before the cut

    def setUp(self):
        super(TestResumeAfterCut, self).setUp()
        mask = os.umask(0o022)
        self.addCleanup(os.umask, mask)
        job = self.job('job', {'start.sh': 'chmod 755 exe\n'})
        big_file(os.path.join(job, 'exe'), self.size)
        q = self.queue()
        q.submit('x', job)
        self.assertEqual(wait_state(q, 'x')['exit'], 0)
        self.remote_file = os.path.join(self.stage('x'), 'exe')
        self.assertEqual(os.stat(self.remote_file).st_mode & 0o777, 0o755)
        self.into = os.path.join(self.tmp, 'into')
        os.mkdir(self.into)
        self.target = os.path.join(self.into, 'exe')

    def cut(self):
        """Download exe through a server whose tar sends 2 MiB of the
        archive and then hangs; kill the connection once 1 MiB is in the
        part. Return the part's size.
        """
        real = shutil.which('tar')
        bindir = wrapper_dir(self, {'tar': (
            '#!/bin/sh\n'
            'case " $* " in *" -cf "*) "%(tar)s" "$@" | '
            '{ head -c %(cut)d; sleep 60; }; exit 0 ;; esac\n'
            'exec "%(tar)s" "$@"\n') % {'tar': real, 'cut': 2 * MiB}})
        alias = path_alias(self.server, 'hang%d' % id(self), bindir)
        q = self.server.queue(self.queue_path, alias=alias)
        self.addCleanup(q.close)
        self.kill_sessions_when(lambda: any(
            os.path.getsize(p) >= MiB for p in parts(self.into)))
        with self.assertRaises(tej.ConnectionLost):
            q.download('x', 'exe', directory=self.into)
        self.assertFalse(os.path.lexists(self.target))
        [part] = parts(self.into)
        size = os.path.getsize(part)
        self.assertTrue(MiB <= size < self.size, size)
        self.assertEqual(os.stat(part).st_mode & 0o777, 0o600)
        return size

    def check_whole(self, counter, fetched):
        """exe is there, whole, with the server's time and the mode of a
        whole download (0755 less the umask 022), no part left; the
        download fetched ``fetched`` bytes.
        """
        self.assertTrue(os.path.isfile(self.target), "exe is missing")
        self.assertTrue(filecmp.cmp(self.remote_file, self.target,
                                    shallow=False))
        self.assertEqual(parts(self.into), [])
        self.assertEqual(counter.done, fetched)
        st = os.stat(self.target)
        self.assertEqual(st.st_mode & 0o7777, 0o755)
        self.assertEqual(int(st.st_mtime),
                         int(os.stat(self.remote_file).st_mtime))
        whole = os.path.join(self.tmp, 'whole')
        self.queue().download('x', 'exe', directory=whole)
        self.assertEqual(os.stat(os.path.join(whole, 'exe')).st_mode,
                         st.st_mode)

    def test_resumed_file_has_the_mode_of_a_whole_download(self):
        done = self.cut()
        counter = Counter()
        self.assertEqual(self.queue().download(
            'x', 'exe', directory=self.into, progress=counter),
            [self.target])
        self.check_whole(counter, self.size - done)  # the rest alone

    def test_resumed_without_cksum_or_md5sum(self):
        # the server cannot check the part ("part 0 changed"): the file
        # comes again whole, never left missing
        self.cut()
        alias = path_alias(self.server, 'nosum',
                           support.bin_without('cksum', 'md5sum'),
                           rest=False)
        q = self.server.queue(self.queue_path, alias=alias)
        self.addCleanup(q.close)
        counter = Counter()
        self.assertEqual(q.download('x', 'exe', directory=self.into,
                                    progress=counter), [self.target])
        self.check_whole(counter, self.size)


class TestZerosAtChunkEdges(TransferCase):
    """Files whose 1 MiB pieces (as the download reads and writes them)
    have a zero byte at the start, in the middle and at the end, beside
    whole pieces of zeros (holes on disk, one at the end too): they come
    back byte for byte, whether written at once (under 4 MiB) or by the
    writer thread (4 MiB and more). Only zeros make holes, never data
    that merely starts, ends or turns at the middle with one.
    """

    @staticmethod
    def edged(size):
        data = bytearray(os.urandom(size))
        data[0] = data[size // 2] = data[-1] = 0
        return bytes(data)

    def test_zero_bytes_at_the_edges_of_pieces(self):
        zeros = bytes(MiB)
        small = b''.join([self.edged(MiB), zeros, self.edged(MiB),
                          self.edged(1001)])
        big = b''.join([zeros, self.edged(MiB), self.edged(MiB), zeros,
                        self.edged(MiB), self.edged(MiB), zeros,
                        bytes(4097)])
        self.assertLess(len(small), 4 * MiB)
        self.assertGreater(len(big), 4 * MiB)
        job = self.job('job', {'start.sh': 'true\n', 'out/small': small,
                               'out/big': big})
        q = self.queue()
        q.submit('z', job)
        wait_state(q, 'z')
        into = os.path.join(self.tmp, 'into')
        q.download('z', 'out', directory=into)
        differ = []
        for name, data in [('small', small), ('big', big)]:
            with open(os.path.join(into, 'out', name), 'rb') as fp:
                if fp.read() != data:
                    differ.append(name)
        self.assertEqual(differ, [])
        self.assertEqual(parts(into), [])


class TestWhereDownloadsGo(TransferCase):
    def setUp(self):
        super(TestWhereDownloadsGo, self).setUp()
        self.q = self.queue()
        self.q.submit('w', self.job('job', {'start.sh': 'echo out\n',
                                            'sub/a': 'a'}))
        wait_state(self.q, 'w')

    def test_only_the_last_component_is_made(self):
        os.chdir(self.tmp)
        self.addCleanup(os.chdir, '/')
        for argv in (['--directory', 'no/such'],
                     ['--destination', 'no/such']):
            code, out, err = self.cli('download', self.dest, '--id', 'w',
                                      'sub', *argv)
            self.assertEqual(code, 1, err)
            self.assertEqual(err.splitlines()[-1][:39],
                             'tej: error: No such directory: no (the ')
            self.assertFalse(os.path.exists('no'))
        code, out, err = self.cli('run', self.dest, self.job('r', {
            'start.sh': 'echo x > res\n'}), '--download', 'res', '--into',
            'no/such')
        self.assertEqual((code, out), (125, ''), err)
        self.assertEqual(err, 'tej: error: No such directory: no (the '
                              '--into no/such is made only in a directory '
                              'that is there)\n')
        self.assertFalse(os.path.exists('no'))
        self.assertEqual(list(self.q.list())[0][0], 'w')  # nothing ran
        self.assertEqual(len(list(self.q.list())), 1)
        code, out, err = self.cli('download', self.dest, '--id', 'w', 'sub',
                                  '--directory', 'new')
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.isfile('new/sub/a'))
        code, out, err = self.cli('download', self.dest, '--id', 'w', 'sub',
                                  '--destination', 'new/renamed')
        self.assertEqual(code, 0, err)
        self.assertTrue(os.path.isfile('new/renamed/a'))

    def test_dot_is_the_whole_job(self):
        into = os.path.join(self.tmp, 'all')
        code, out, err = self.cli('download', self.dest, '--id', 'w', '.',
                                  '--directory', into)
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(os.listdir(into)),
                         ['_stderr', '_stdout', 'start.sh', 'sub'])
        self.assertEqual(self.q.download('w', './', destination=os.path.join(
            self.tmp, 'copy')), [os.path.join(self.tmp, 'copy')])
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, 'copy', 'sub',
                                                    'a')))
        with self.assertRaises(ValueError):
            self.q.download('w', ['.', 'sub'], directory=into)


class TestProgress(TransferCase):
    """Shown at a terminal (a pseudo-terminal of the pty module), redrawn
    in place; not without one; lines with --progress; never with -q.
    """

    def run_cli(self, argv, terminal):
        cmd = [sys.executable, os.path.join(support.TOP, 'tej.py')] + argv
        if not terminal:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            return proc.returncode, proc.stderr.decode('utf-8', 'replace')
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL)
        os.close(slave)
        output = b''
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed: EIO
                break
            if not data:
                break
            output += data
        os.close(master)
        proc.stdout.read()
        proc.wait()
        return proc.returncode, output.decode('utf-8', 'replace')

    def test_upload_and_download(self):
        job = shared_big_job()
        self.queue().setup()
        into = support.temporary(self)
        for i, (options, terminal) in enumerate([
                ([], True), ([], False), (['--progress'], False),
                (['-q'], True)]):
            code, err = self.run_cli(self.args(
                'submit', self.dest, job, '--id', 'p%d' % i) + options,
                terminal)
            self.assertEqual(code, 0, err)
            code, down = self.run_cli(self.args(
                'download', self.dest, '--id', 'p%d' % i, 'data',
                '--directory', os.path.join(into, str(i))) + options,
                terminal)
            self.assertEqual(code, 0, down)
            for text, what in ((err, 'Uploading'), (down, 'Downloading')):
                if i == 0:
                    self.assertIn('\r\x1b[Ktej: %s: ' % what, text)
                    self.assertIn(' of 1.0 GiB (', text)
                    self.assertIn('/s', text)
                elif i == 2:
                    lines = [line for line in text.splitlines()
                             if line.startswith('tej: %s: ' % what)]
                    self.assertTrue(lines, text)
                    self.assertNotIn('\r', text)
                else:
                    self.assertNotIn(what, text)
            shutil.rmtree(os.path.join(into, str(i)))
            self.queue().delete('p%d' % i)


class TestServerDiskFull(TransferCase):
    """The queue on a small tmpfs of the server's user: an upload that
    fills it is an error that says so, leaves no job, and the queue works
    on.
    """

    def test_disk_full(self):
        home = mount_tmpfs(self, os.path.join(self.remote, 'data-full'),
                           8 * MiB, owner=self.server.uid)
        queue = os.path.join(home, 'q')
        small = self.job('small', {'start.sh': 'echo ok\n'})
        big = self.job('big', {'start.sh': 'true\n'})
        big_file(os.path.join(big, 'data'), 20 * MiB)
        code, out, err = self.cli('submit', self.dest, big, '--id', 'big',
                                  '--queue', queue)
        self.assertEqual(code, 1, err)
        self.assertTrue(err.splitlines()[-1].startswith(
            'tej: error: no space left on the server ('), err)
        self.assertNotIn('Traceback', err)
        q = self.server.queue(queue)
        self.addCleanup(q.close)
        self.assertEqual([job for job, info in q.list()
                          if info['state'] != 'lost'], [])
        for job, info in q.list():
            q.delete(job)
        q.submit('small', small)
        self.assertEqual(wait_state(q, 'small')['exit'], 0)
        # full to the last block: even the job's directory cannot be made
        filler = os.path.join(home, 'filler')
        with open(filler, 'wb') as fp:
            try:
                while True:
                    fp.write(b'x' * 65536)
                    fp.flush()
            except OSError:
                pass
        code, out, err = self.cli('submit', self.dest, small, '--id',
                                  'small2', '--queue', queue)
        self.assertEqual(code, 1, err)
        self.assertTrue(err.splitlines()[-1].startswith(
            'tej: error: no space left on the server ('), err)
        os.unlink(filler)
        q.submit('small2', small)
        self.assertEqual(wait_state(q, 'small2')['exit'], 0)


class TestLocalDiskFull(TransferCase):
    """A download whose local disk fills (ENOSPC) while the writer thread
    writes a big file: an error that says so (tej.Error; on the command
    line one line and exit code 1, no traceback), nothing under the
    file's name; once there is room, the download goes on from its part.
    """

    size = 8 * MiB  # 4 MiB and more: written by the writer thread

    def test_disk_full_as_a_big_file_is_written(self):
        job = self.job('job', {'start.sh': 'true\n'})
        big_file(os.path.join(job, 'data'), self.size)
        q = self.queue()
        q.submit('f', job)
        wait_state(q, 'f')
        disk = mount_tmpfs(self, os.path.join(self.tmp, 'data-disk'),
                           2 * MiB)
        target = os.path.join(disk, 'data')
        code, out, err = self.cli('download', self.dest, '--id', 'f',
                                  'data', '--directory', disk)
        self.assertEqual((code, out), (1, ''), err)
        self.assertNotIn('Traceback', err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith('tej: error: Cannot write %s: '
                                       % target), err)
        self.assertIn('No space left on device', err)
        self.assertFalse(os.path.lexists(target))
        # again, still full (from the part it left): the same
        with self.assertRaises(tej.Error) as caught:
            q.download('f', 'data', directory=disk)
        self.assertIn('No space left on device', str(caught.exception))
        self.assertFalse(os.path.lexists(target))
        # room: it goes on from the part
        subprocess.check_call(['mount', '-o', 'remount,size=%d'
                               % (2 * self.size), disk])
        [part] = parts(disk)
        kept = os.path.getsize(part)
        self.assertGreater(kept, 0)
        counter = Counter()
        q.download('f', 'data', directory=disk, progress=counter)
        self.assertTrue(filecmp.cmp(os.path.join(job, 'data'), target,
                                    shallow=False))
        self.assertEqual(counter.done, self.size - kept)
        self.assertEqual(parts(disk), [])


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


class TestResumeScales(unittest.TestCase):
    """A resume of many missing files (local:, no server) costs about what
    a fresh download does: the server reads its arguments once each, not
    once for each of them (it took 6.6 times a fresh download's time for
    5,000 files, 10 times for 30,000).
    """

    def test_many_missing_files(self):
        tmp = support.temporary(self)
        count = 5000
        job = support.make_tree(os.path.join(tmp, 'job'), dict(
            [('start.sh', 'true\n')] +
            [('res/f%05d' % i, 'x') for i in range(count)]))
        q = tej.RemoteQueue('local:', os.path.join(tmp, 'q'))
        q.submit('m', job)
        wait_state(q, 'm')
        into = os.path.join(tmp, 'into')
        start = time.monotonic()
        q.download('m', 'res', directory=into)
        fresh = time.monotonic() - start
        res = os.path.join(into, 'res')
        for name in sorted(os.listdir(res))[1:]:
            os.unlink(os.path.join(res, name))
        start = time.monotonic()
        with self.assertLogs('tej', 'INFO') as logs:
            q.download('m', 'res', directory=into)
        resume = time.monotonic() - start
        self.assertIn('%d to fetch' % (count - 1), '\n'.join(logs.output))
        self.assertEqual(len(os.listdir(res)), count)
        self.assertLess(resume, 3.5 * fresh + 1,
                        "fresh %.1f s, resume %.1f s" % (fresh, resume))


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

    def test_huge_times(self):
        # a lying server's: GNU base-256, and pax's float (1e400 is inf)
        for mtime in (10 ** 20, -10 ** 20, 2 ** 70):
            with self.assertRaises(tej.Error, msg=mtime):
                self.extract([({'name': 'out/a', 'mtime': mtime}, b'a')])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w',
                          format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo('out/b')
            info.size = 1
            info.pax_headers = {'mtime': '1e400'}
            t.addfile(info, io.BytesIO(b'b'))
        buf.seek(0)
        with self.assertRaises(tej.Error):
            tej._extract(buf, {'out': os.path.join(self.dest, 'out')}, True)
        # an old time is fine
        self.extract([({'name': 'out/c', 'mtime': -86400}, b'c')])
        self.assertEqual(os.stat(os.path.join(self.dest, 'out/c')).st_mtime,
                         -86400)

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

    def test_the_users_own_link_as_the_target(self):
        # the directory the user names may be a link of theirs, to
        # anywhere: it is used; what lies beneath it obeys the link rules
        elsewhere = os.path.join(self.top, 'elsewhere')
        os.makedirs(os.path.join(elsewhere, 'sub'))
        os.makedirs(self.dest)
        os.symlink(elsewhere, os.path.join(self.dest, 'out'))
        for _ in range(2):  # again, over what the first one made
            with self.assertLogs('tej', 'WARNING'):  # not making "up"
                self.extract([({'name': 'out/a'}, b'a'),
                              ({'name': 'out/d/b'}, b'b'),
                              ({'name': 'out/up', 'type': tarfile.SYMTYPE,
                                'linkname': '../../ESCAPED'}, None)])
            self.assertTrue(os.path.islink(os.path.join(self.dest, 'out')))
            with open(os.path.join(elsewhere, 'd', 'b')) as fp:
                self.assertEqual(fp.read(), 'b')
            self.assertFalse(os.path.lexists(os.path.join(elsewhere, 'up')))
        os.symlink(self.top, os.path.join(elsewhere, 'sub', 'esc'))
        with self.assertRaises(tej.Error):
            self.extract([({'name': 'out/sub/esc/evil'}, b'x')])
        self.assertFalse(os.path.exists(os.path.join(self.top, 'evil')))

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

    def test_links_of_earlier_downloads_led_out(self):
        # a -> d/../.. is inside while d is deep; a second download makes
        # d -> ., and a would be "/": removed, as is the user's own link
        # that d now leads out; a third leaves them all as they are
        depth = os.path.realpath(self.dest).count('/') + 2
        deep = '/'.join(['x'] * depth)
        up = 'd' + '/..' * depth
        self.extract([({'name': 'out/' + deep, 'type': tarfile.DIRTYPE},
                       None),
                      ({'name': 'out/d', 'type': tarfile.SYMTYPE,
                        'linkname': deep}, None),
                      ({'name': 'out/a', 'type': tarfile.SYMTYPE,
                        'linkname': up}, None),
                      ({'name': 'out/f'}, b'f')])
        out = os.path.join(self.dest, 'out')
        self.assertEqual(os.readlink(os.path.join(out, 'a')), up)
        os.symlink('d/../f', os.path.join(out, 'mine'))
        second = [({'name': 'out/d', 'type': tarfile.SYMTYPE,
                    'linkname': '.'}, None)]
        with self.assertLogs('tej', 'WARNING') as logs:
            self.extract(second)
        self.assertEqual(len(logs.output), 2, logs.output)
        support.assert_links_within(self, out)
        self.assertEqual(sorted(os.listdir(out)), ['d', 'f', 'x'])
        self.extract(second)
        self.assertEqual(sorted(os.listdir(out)), ['d', 'f', 'x'])
        self.assertEqual(os.readlink(os.path.join(out, 'd')), '.')

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



if __name__ == '__main__':
    unittest.main()


class _Gate(object):
    """A stream of ``data`` that, once ``at`` bytes are read, sets
    ``reached`` and waits for ``go`` (at most ``wait`` seconds).
    """

    def __init__(self, data, at=None, reached=None, go=None, wait=3):
        self.data, self.at, self.pos = data, at, 0
        self.reached, self.go, self.wait = reached, go, wait

    def read(self, size=-1):
        if self.at is not None and self.pos >= self.at:
            self.at = None
            self.reached.set()
            self.go.wait(self.wait)
        end = len(self.data) if size < 0 else self.pos + size
        if self.at is not None:
            end = min(end, self.at)
        data = self.data[self.pos:end]
        self.pos += len(data)
        return data


class TestParts(unittest.TestCase):
    """The files a download writes as it goes (no server): never written
    through a link or into another's file, never mixed by two downloads,
    of a name that fits and that no output takes.
    """

    def setUp(self):
        self.top = support.temporary(self)
        self.local = os.path.join(self.top, 'f')
        self.victim = os.path.join(self.top, 'victim')
        with open(self.victim, 'wb') as fp:
            fp.write(b'01234')
        os.chmod(self.victim, 0o640)

    def resume(self, swap):
        """A resume of f (5 of its 10 bytes there) whose part ``swap``
        replaces after the plan: what _receive says, and the victim's
        bytes and mode after.
        """
        entries = [(0o100755, 10, 1000, 'f')]
        part = tej._part_name(self.local, 10, 1000)
        with open(part, 'wb') as fp:
            fp.write(b'01234')
        plan = tej._Plan({'f': self.local}, True, None, entries)
        self.assertEqual(len(plan.parts), 1)
        swap(part)
        crc = tej._Cksum()
        crc.update(b'0123456789')
        stream = io.BytesIO(b'part 0 5 cksum\n56789sum %d\nend\n'
                            % crc.value())
        again = tej._receive(stream, plan, None)
        with open(self.victim, 'rb') as fp:
            return again, fp.read(), os.stat(self.victim).st_mode & 0o777

    def test_a_resumed_part_swapped_for_a_link(self):
        def symlink(part):
            os.unlink(part)
            os.symlink(self.victim, part)

        def hard_link(part):
            os.unlink(part)
            os.link(self.victim, part)

        def other_file(part):  # made while the first is there
            with open(part + '.new', 'wb') as fp:
                fp.write(b'01234')
            os.rename(part + '.new', part)
        for swap in (symlink, hard_link, other_file):
            self.assertEqual(self.resume(swap), (['f'], b'01234', 0o640),
                             swap.__name__)
            self.assertFalse(os.path.exists(self.local), swap.__name__)
            for name in os.listdir(self.top):
                if name != 'victim':
                    os.unlink(os.path.join(self.top, name))

    def test_two_downloads_of_one_file_never_mix(self):
        # the second starts as the first is half way, and writes half of
        # its own when the first ends: the first must not have renamed
        # the second's part into place
        data = os.urandom(4 * MiB)
        archive = _tar([({'name': 'f', 'mtime': 1000}, data)]).getvalue()
        half_first, half_second = threading.Event(), threading.Event()
        first_done = threading.Event()
        first = _Gate(archive, 512 + 2 * MiB, half_first, half_second)
        second = _Gate(archive, 512 + MiB, half_second, first_done)
        errors = []

        def run(stream, wait=None):
            if wait is not None:
                wait.wait(5)
            try:
                tej._extract(stream, {'f': self.local}, True)
            except Exception as e:
                errors.append(e)
        thread = threading.Thread(target=run, args=(second, half_first))
        thread.start()
        run(first)
        with open(self.local, 'rb') as fp:
            self.assertTrue(fp.read() == data, "mixed")
        first_done.set()
        thread.join()
        self.assertEqual(errors, [])
        with open(self.local, 'rb') as fp:
            self.assertTrue(fp.read() == data, "mixed")
        self.assertEqual(sorted(os.listdir(self.top)), ['f', 'victim'])

    def test_a_destination_that_cannot_be_written_leaves_no_part(self):
        os.makedirs(os.path.join(self.local, 'sub'))
        with self.assertRaisesRegex(tej.Error, 'Cannot write'):
            tej._extract(_tar([({'name': 'x'}, b'data')]),
                         {'x': self.local}, True)
        self.assertEqual(sorted(os.listdir(self.top)), ['f', 'victim'])

    def test_names_of_any_length_and_none_of_a_parts(self):
        for length in (200, 233, 255):
            name = 'n' * length
            tej._extract(_tar([({'name': 'd/' + name}, b'x')]),
                         {'d': os.path.join(self.top, 'd')}, True)
            self.assertTrue(os.path.isfile(os.path.join(self.top, 'd',
                                                        name)), length)
            self.assertLessEqual(len(os.path.basename(tej._part_name(
                name, 1 << 62, -tej._MAX_EPOCH))), 80)
        part = os.path.basename(tej._part_name(
            os.path.join(self.top, 'd', 'x'), 1, 1))
        with self.assertRaisesRegex(tej.Error, "names of this form"):
            tej._extract(_tar([({'name': 'd/x'}, b'x'),
                               ({'name': 'd/' + part}, b'y')]),
                         {'d': os.path.join(self.top, 'd')}, True)
        with self.assertRaisesRegex(tej.Error, "names of this form"):
            tej._Plan({'d': os.path.join(self.top, 'd')}, True, None,
                      [(0o100644, 1, 1, 'd/' + part)])


class LocalTransfers(object):
    """The server side of transfers under each POSIX shell (local:, with
    TEJ_SH), and with busybox's tools alone: compressed upload, the list
    for a resume, a part gone on with, a file fetched whole again.
    """

    shell = None
    busybox_only = False

    def setUp(self):
        from .test_runtime import SHELLS, shell_wrapper
        support.need('shells', shutil.which(SHELLS[self.shell][0]),
                     "%s is not installed" % self.shell)
        self.tmp = support.temporary(self)
        if self.busybox_only:
            busybox = shutil.which('busybox')
            bindir = os.path.join(self.tmp, 'bin')
            os.mkdir(bindir)
            for applet in subprocess.run([busybox, '--list'],
                                         stdout=subprocess.PIPE
                                         ).stdout.split():
                os.symlink(busybox, os.path.join(bindir, applet.decode()))
            support.patch_env(self.addCleanup, TEJ_SH='sh', PATH=bindir)
        else:
            support.patch_env(self.addCleanup,
                              TEJ_SH=shell_wrapper(self.shell))

    def test_resume(self):
        job = support.make_tree(os.path.join(self.tmp, 'job'), {
            'start.sh': 'true\n', 'res/a': os.urandom(300000),
            'res/sub/b': os.urandom(1000), 'res/sub/c': b'c' * 5000})
        q = tej.RemoteQueue('local:', os.path.join(self.tmp, 'q'))
        q.submit('t', job, compress=True)
        wait_state(q, 't')
        into = os.path.join(self.tmp, 'into')
        q.download('t', 'res', directory=into)
        res = os.path.join(into, 'res')
        os.unlink(os.path.join(res, 'sub', 'c'))
        st = os.stat(os.path.join(job, 'res', 'a'))
        part = tej._part_name(os.path.join(res, 'a'), st.st_size,
                              int(st.st_mtime))
        os.rename(os.path.join(res, 'a'), part)
        with open(part, 'r+b') as fp:
            fp.truncate(100000)
        counter = Counter()
        q.download('t', 'res', directory=into, progress=counter)
        self.assertEqual(counter.done, 200000 + 5000)
        for name in ('a', 'sub/b', 'sub/c'):
            self.assertTrue(filecmp.cmp(os.path.join(job, 'res', name),
                                        os.path.join(res, name),
                                        shallow=False), name)
        self.assertEqual(parts(into), [])
        self.assertEqual(counter.total >= 200000, True)


def _local_case(name, busybox_only=False):
    return type('TestLocal_%s%s' % (name, '_only' if busybox_only else ''),
                (LocalTransfers, unittest.TestCase),
                {'shell': name, 'busybox_only': busybox_only})


for _name in ('dash', 'bash', 'busybox', 'mksh', 'yash', 'posh'):
    globals()['TestLocal_%s' % _name] = _local_case(_name)
TestLocal_busybox_only = _local_case('busybox', True)
del _name

"""What the tests share: a hermetic environment, a real sshd, waiting.

TEJ_TEST_REQUIRE (comma-separated: sshd, shells, python-versions, slurm) turns
the skip of a test whose component is missing into a failure; CI sets it.

Hermetic: HOME, TMPDIR and the control sockets are in a temporary directory,
and no batch scheduler is in reach: the PATH (here, for local:, and for
every session of the test sshd) is a directory of links to the commands of
the caller's PATH but those of schedulers (`SCHEDULER_COMMANDS`), and the
schedulers' variables (`SCHEDULER_VARIABLES`) are unset. Only the Slurm
tests see a scheduler: the one they started (`SlurmCluster`).
"""

import collections
import contextlib
import io
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

import tej  # noqa: E402

REQUIRED = set(filter(None, os.environ.get('TEJ_TEST_REQUIRE', '').split(',')))
TEST_USER = 'tejtest'
#: test_shells's: it changes this one's login shell, which no other test
#: then sees (it runs beside them)
SHELL_USER = 'tejshell'

#: The PATH the suite was started with: where the commands come from.
CALLER_PATH = os.environ.get('PATH', os.defpath)

#: The commands of batch schedulers (Slurm, PBS/Torque, Grid Engine, LSF,
#: HTCondor, Flux): none is on a test's PATH, but the Slurm tests'.
SCHEDULER_COMMANDS = frozenset("""
    sbatch squeue scancel sacct sinfo scontrol srun salloc sattach sbcast
    sstat sprio sshare sreport sacctmgr sdiag strigger sview smap scrontab
    qsub qstat qdel qalter qhold qrls qsig qselect qrerun qmove qmgr qrun
    qorder qchkpt qmsg pbsnodes pbsdsh tracejob
    qrsh qsh qlogin qconf qhost qacct qmod qquota qresub qping qmon
    bsub bjobs bkill bqueues bhosts bpeek bstop bresume bmod bswitch
    lsid lsload lshosts
    condor_submit condor_q condor_rm flux
""".split())

#: The variables that point a scheduler's commands somewhere, or that a
#: scheduler's job carries; unset for every test.
SCHEDULER_VARIABLES = re.compile(
    r'(SLURM|SBATCH|SALLOC|SRUN|SQUEUE|SACCT|SCANCEL|SINFO|SCONTROL|PBS|'
    r'SGE|LSF|LSB|CONDOR|FLUX)_')


def need(component, available, reason):
    """Skip (or fail, when TEJ_TEST_REQUIRE names the component) unless
    ``available``.
    """
    if available:
        return
    if component in REQUIRED or 'all' in REQUIRED:
        raise AssertionError("%s is required (TEJ_TEST_REQUIRE) but "
                             "missing: %s" % (component, reason))
    raise unittest.SkipTest(reason)


def serial(reason, beside=False):
    """Class decorator: the class runs in the serial lane of ``python3 -m
    tests`` (one unit at a time), because of ``reason``: alone, after the
    parallel lanes; or, with ``beside``, beside them (what must not
    overlap itself only, and waits long: the scheduler's tests).
    """
    def mark(cls):
        cls.serial_lane = reason
        cls.serial_lane_beside = beside
        return cls
    return mark


def one_process(key, reason):
    """Class decorator: the classes of a module with the same ``key`` run
    in one process, one after the other (``reason``: what they share).
    """
    def mark(cls):
        cls.process_key = key
        return cls
    return mark


def which(name):
    return shutil.which(name)


def scheduler_which(name):
    """A scheduler's command (or daemon) on the PATH the suite was started
    with: for the Slurm tests only.
    """
    return shutil.which(name, path=CALLER_PATH)


def link_commands(bindir, dirs, keep):
    """Fill ``bindir`` with links to the commands of ``dirs`` (in order: the
    first of a name wins, as on a PATH) whose names ``keep(name)`` accepts.
    """
    os.makedirs(bindir, 0o755, exist_ok=True)
    for top in dirs:
        try:
            names = sorted(os.listdir(top))
        except OSError:
            continue
        for name in names:
            target = os.path.join(top, name)
            link = os.path.join(bindir, name)
            if keep(name) and not os.path.lexists(link) and \
                    os.path.isfile(target) and os.access(target, os.X_OK):
                os.symlink(target, link)
    return bindir


#: A scheduler's command that notes its call (its name and arguments, in
#: $TEJ_RECORD) and answers as a scheduler that is up would.
RECORDING_SCHEDULER = r"""#!/bin/sh
printf '%s %s\n' "${0##*/}" "$*" >> "${TEJ_RECORD:-/dev/null}"
case ${0##*/} in
    sinfo) echo idle ;;
    sbatch) echo 1 ;;
    qsub) echo 1.server ;;
esac
exit 0
"""

#: The variables a site's scheduler sets up (with made-up values).
SCHEDULER_SETTINGS = {'SLURM_CONF': '/nonexistent/slurm.conf',
                      'SGE_ROOT': '/nonexistent/sge', 'SGE_CELL': 'default',
                      'LSF_ENVDIR': '/nonexistent/lsf',
                      'PBS_DEFAULT': 'nonexistent.invalid',
                      'SBATCH_PARTITION': 'nonexistent'}


def recording_schedulers(bindir):
    """Fill ``bindir`` with a `RECORDING_SCHEDULER` for every name of
    `SCHEDULER_COMMANDS`; return it.
    """
    os.makedirs(bindir, exist_ok=True)
    for name in SCHEDULER_COMMANDS:
        path = os.path.join(bindir, name)
        with open(path, 'w') as fp:
            fp.write(RECORDING_SCHEDULER)
        os.chmod(path, 0o755)
    return bindir


def bin_without(*names):
    """A directory of links to every command of the hermetic PATH but
    ``names``, for a PATH without them (made once a run; the test user
    reads it).
    """
    bindir = os.path.join(Hermetic.start(), 'bin-without-' + '-'.join(names))
    if not os.path.isdir(bindir):
        link_commands(bindir + '.tmp', [Hermetic.bin],
                      lambda name: name not in names)
        os.rename(bindir + '.tmp', bindir)
    return bindir


def scheduler_bin():
    """The hermetic PATH's commands, and the schedulers' commands of the
    PATH the suite was started with: the PATH of the Slurm tests' server.
    """
    bindir = os.path.join(Hermetic.start(), 'bin-scheduler')
    if not os.path.isdir(bindir):
        link_commands(bindir + '.tmp',
                      CALLER_PATH.split(os.pathsep) + [Hermetic.bin],
                      lambda name: name in SCHEDULER_COMMANDS)
        link_commands(bindir + '.tmp', [Hermetic.bin], lambda name: True)
        os.rename(bindir + '.tmp', bindir)
    return bindir


def hermetic_bin(bindir):
    """Make ``bindir`` the hermetic PATH: links to the commands of
    `CALLER_PATH` but the schedulers'. (python3 -m tests makes one for its
    processes, TEJ_TEST_BIN: some file systems take a second for it.)
    """
    return link_commands(bindir, CALLER_PATH.split(os.pathsep),
                         lambda name: name not in SCHEDULER_COMMANDS)


class Hermetic(object):
    """HOME, TMPDIR and the control socket directory in a temporary
    directory, for the whole test run; the real ones are never touched.
    PATH is ``bin``, the caller's commands but the schedulers'; the
    schedulers' variables are unset.
    """

    root = None
    bin = None
    _saved = None

    @classmethod
    def start(cls):
        if cls.root is not None:
            return cls.root
        # short: control socket paths must stay under ~100 bytes
        cls.root = tempfile.mkdtemp(prefix='tej-', dir='/tmp')
        os.chmod(cls.root, 0o755)  # the test user reads the sshd files here
        home = os.path.join(cls.root, 'home')
        tmp = os.path.join(cls.root, 'tmp')
        os.mkdir(home, 0o700)
        os.mkdir(tmp, 0o700)
        cls.bin = os.environ.get('TEJ_TEST_BIN') or hermetic_bin(
            os.path.join(cls.root, 'bin'))
        schedulers = [k for k in os.environ if SCHEDULER_VARIABLES.match(k)]
        cls._saved = {k: os.environ.get(k)
                      for k in ['HOME', 'TMPDIR', 'XDG_RUNTIME_DIR', 'TEJ_SH',
                                'XDG_DATA_HOME', 'TEJ_REGISTRY', 'PATH'] +
                      schedulers}
        os.environ['HOME'] = home
        os.environ['TMPDIR'] = tmp
        os.environ['PATH'] = cls.bin
        # Ctrl-C as a terminal gives it, to the tej processes that the
        # tests interrupt: a suite started in the background by sh (as
        # "cmd &") inherits SIGINT ignored, and so would they
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        for key in schedulers:
            del os.environ[key]
        # the job registry too is in HOME (~/.local/share/tej)
        for key in ('XDG_RUNTIME_DIR', 'TEJ_SH', 'XDG_DATA_HOME',
                    'TEJ_REGISTRY'):
            os.environ.pop(key, None)
        tempfile.tempdir = None
        return cls.root

    @classmethod
    def stop(cls):
        if cls.root is None:
            return
        for key, value in cls._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = None
        shutil.rmtree(cls.root, ignore_errors=True)
        cls.root = cls.bin = None


def wait_for(fetch, until=bool, timeout=20, interval=0.05, what='condition'):
    """Call ``fetch`` until ``until`` holds for what it returns; return that
    value. Fail after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s (last: %r)" % (
                what, value))
        time.sleep(interval)


def record_path(queue_dir, job_id):
    """The file of a job's record in a queue directory."""
    return os.path.join(queue_dir, 'jobs', job_id, 'state')


def read_record(queue_dir, job_id):
    """A job's record as {key: value}, or None when there is none yet."""
    try:
        with open(record_path(queue_dir, job_id)) as fp:
            text = fp.read()
    except FileNotFoundError:
        return None
    return dict(line.split('=', 1) for line in text.splitlines()
                if '=' in line)


def lock_claim(lock):
    """The claim in a job's lock directory (runtimes/common.sh): (owner,
    beat), owner "HOST:PID" and beat the epoch seconds; None when there is
    no lock or no claim in it.
    """
    try:
        names = [n for n in os.listdir(lock) if n.startswith('.lock.')]
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not names:
        return None
    owner, beat = names[0][len('.lock.'):].rsplit(':', 1)
    return owner, int(beat) if beat.isdigit() else beat


def plant_lock(lock, owner=None, beat=None):
    """A lock as another process holds it: the directory ``lock``, with the
    claim of ``owner`` ("HOST:PID", none when None) of ``beat`` (now when
    None).
    """
    os.mkdir(lock)
    if owner is not None:
        set_claim(lock, owner, time.time() if beat is None else beat)


def set_claim(lock, owner, beat):
    """Make the claim of ``owner`` in ``lock`` say ``beat`` (a holder that
    renews its beat), in one rename.
    """
    name = '.lock.%s:%s' % (owner, beat if isinstance(beat, str)
                            else int(beat))
    old = [n for n in os.listdir(lock) if n.startswith('.lock.%s:' % owner)]
    if old:
        os.rename(os.path.join(lock, old[0]), os.path.join(lock, name))
    else:
        open(os.path.join(lock, name), 'w').close()


def wait_state(queue, job_id, states=('finished', 'killed', 'lost'),
               timeout=30):
    """Wait until a job is in one of ``states``; return its record."""
    return wait_for(lambda: queue.info(job_id),
                    lambda r: r['state'] in states, timeout=timeout,
                    what="job %s to be %s" % (job_id, '/'.join(states)))


def patch_env(cleanup, **values):
    """Set environment variables (None: unset them); ``cleanup`` (a test's
    addCleanup, unittest.addModuleCleanup) gets what puts them back.
    """
    def put(values):
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    cleanup(put, {key: os.environ.get(key) for key in values})
    put(values)


def hermetic_module():
    """setUpModule: the hermetic environment, put back (with the servers
    stopped) after the module.
    """
    Hermetic.start()
    unittest.addModuleCleanup(stop_all)


def ssh_module():
    """setUpModule of the modules that go through the test sshd: also
    shared connections that outlive a test.
    """
    hermetic_module()
    patch_env(unittest.addModuleCleanup, TEJ_CONTROL_PERSIST='60')


Process = collections.namedtuple('Process', 'pid ppid pgid uid args cwd')


def processes(match=None):
    """The live (not zombie) processes, from /proc, as `Process` (args: the
    command line joined with spaces; cwd: '' where it cannot be read); only
    those for which ``match(process)`` holds, when given.
    """
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        base = '/proc/' + entry
        try:
            with open(base + '/stat') as fp:
                fields = fp.read().rsplit(') ', 1)[1].split()
            with open(base + '/cmdline', 'rb') as fp:
                args = fp.read().replace(b'\0', b' ').decode('utf-8',
                                                             'replace')
            uid = os.stat(base).st_uid
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] == 'Z':
            continue
        try:
            cwd = os.readlink(base + '/cwd')
        except OSError:
            cwd = ''
        process = Process(int(entry), int(fields[1]), int(fields[2]), uid,
                          args.rstrip(' '), cwd)
        if match is None or match(process):
            found.append(process)
    return found


def process_tree(pids, among=None):
    """The pids of the live processes in the trees rooted at ``pids``
    (``among``: a list of processes already read).
    """
    procs = processes() if among is None else among
    children = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    live = {p.pid for p in procs}
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid in live:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def alive(pid):
    """Is ``pid`` a live process (not a zombie)?"""
    return bool(processes(lambda p: p.pid == pid))


def start_time(pid):
    """When process ``pid`` started (clock ticks since boot), or None: with
    its pid, what names one process, whatever took the pid after it (the
    suite's processes wrap pids around within minutes).
    """
    try:
        with open('/proc/%d/stat' % pid) as fp:
            return int(fp.read().rsplit(') ', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_same(pid, started, sig):
    """Send ``sig`` to ``pid`` if it is still the process that started at
    ``started`` (see `start_time`), not another that took its pid.
    """
    if started is not None and start_time(pid) == started:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def run_cli(*argv):
    """Run ``tej.main(argv)`` in-process; return (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = tej.main(list(argv))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def stub_ssh(test, script, name='ssh', where=None):
    """A stand-in for ssh, for ``test``, where the real sshd cannot make
    the fault: the sh ``script`` (without its "#!" line), which
    ``$TEJ_SSH_LOG`` (``-E``'s file, or /dev/null) and ``$TEJ_SSH_DEST``
    (the argument after ``--``) start with, in the directory ``where``
    (default: a temporary one). Made TEJ_SSH; return its path.
    """
    path = os.path.join(where or temporary(test), name)
    with open(path, 'w') as fp:
        fp.write('#!/bin/sh\n'
                 'TEJ_SSH_LOG=/dev/null TEJ_SSH_DEST= _prev=\n'
                 'for _arg do\n'
                 '    [ "$_prev" = -E ] && TEJ_SSH_LOG=$_arg\n'
                 '    [ "$_prev" = -- ] && [ -z "$TEJ_SSH_DEST" ] && '
                 'TEJ_SSH_DEST=$_arg\n'
                 '    _prev=$_arg\n'
                 'done\n' + script)
    os.chmod(path, 0o755)
    patch_env(test.addCleanup, TEJ_SSH=path)
    return path


class ExecCounter(object):
    """TEJ_SSH as the real ssh in a wrapper that notes, for each ssh a
    call runs (not the ``-O`` requests to a shared connection), its
    destination and whether it was a command ("exec") or the start of the
    shared connection ("start", ``-N``).
    """

    def __init__(self, test):
        self.log = os.path.join(temporary(test), 'execs')
        open(self.log, 'w').close()
        stub_ssh(test,
                 'case " $* " in\n'
                 '    *" -O "*) ;;\n'
                 '    *" -N "*) echo "start $TEJ_SSH_DEST" >> "%s" ;;\n'
                 '    *) echo "exec $TEJ_SSH_DEST" >> "%s" ;;\n'
                 'esac\n'
                 'exec ssh "$@"\n' % (self.log, self.log),
                 name='counting-ssh')

    def _take(self):
        with open(self.log) as fp:
            lines = [line.split(' ', 1) for line in fp.read().splitlines()]
        open(self.log, 'w').close()
        return lines

    def count(self, action):
        """Run ``action``; return (its result, the execs it made)."""
        self._take()
        result = action()
        return result, sum(1 for kind, _ in self._take() if kind == 'exec')

    def by_destination(self):
        """{destination: the ssh run for it, execs and starts} since the
        last call.
        """
        return dict(collections.Counter(dest for _, dest in self._take()))


class LocalCase(unittest.TestCase):
    """A queue through local:, in a temporary directory: ``queue_dir``,
    and a job ``job`` that says hi.
    """

    def setUp(self):
        self.tmp = temporary(self)
        self.queue_dir = os.path.join(self.tmp, 'q')
        self.job = make_tree(os.path.join(self.tmp, 'job'),
                             {'start.sh': 'echo hi\n'})

    def queue(self, shell=None):
        """The queue, through the shell ``shell`` (TEJ_SH; default sh)."""
        patch_env(self.addCleanup, TEJ_SH=shell)
        return tej.RemoteQueue('local:', self.queue_dir)


def temporary(test):
    """A temporary directory, removed after ``test``."""
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, True)
    return path


def make_tree(root, files):
    """Create files under ``root``: {relative path: bytes or str}."""
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, str):
            content = content.encode('utf-8')
        with open(path, 'wb') as fp:
            fp.write(content)
    return root


def assert_links_within(test, top):
    """Every link under ``top`` leads within it, on disk."""
    real = os.path.realpath(top)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                test.assertTrue(target == real or
                                target.startswith(real + '/'),
                                (path, os.readlink(path), target))


class SSHServer(object):
    """A real OpenSSH server, no port and no daemon: ssh's ProxyCommand runs
    ``sshd -i`` with a private configuration and throwaway keys (as
    OpenSSH's own regression tests do). As root, the login is an
    unprivileged user, as on real servers. The remote HOME is a fresh
    directory (sshd's SetEnv). Every sshd started records its pid; `stop`
    closes the shared connections and kills those pids.
    """

    alias = 'tejtest'
    #: TEJ_TICK of the server: seconds of a followed log's silence before
    #: its keep-alive line
    tick = 1

    def __init__(self, user=TEST_USER):
        self.sshd = which('sshd') or (
            '/usr/sbin/sshd' if os.path.exists('/usr/sbin/sshd') else None)
        need('sshd', self.sshd and which('ssh') and which('ssh-keygen'),
             "OpenSSH server or client is not installed")
        root = Hermetic.start()
        self.dir = tempfile.mkdtemp(prefix='sshd-', dir=root)
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            self.user = user
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                subprocess.check_call(['useradd', '-m', '-s', '/bin/sh',
                                       self.user])
                # useradd leaves it locked; sshd (UsePAM no) refuses that
                subprocess.check_call(['usermod', '-p', '*', self.user])
            # sshd's privilege separation directory
            os.makedirs('/run/sshd', 0o755, exist_ok=True)
        else:
            self.user = pwd.getpwuid(os.getuid()).pw_name
        entry = pwd.getpwnam(self.user)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.home = self.path('home')
        os.mkdir(self.home, 0o700)
        os.chown(self.home, self.uid, self.gid)
        for key in ('host_key', 'client_key'):
            subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519',
                                   '-N', '', '-C', key, '-f', self.path(key)])
        shutil.copy(self.path('client_key.pub'), self.path('authorized_keys'))
        os.chmod(self.path('authorized_keys'), 0o644)
        self.pids = self.path('pids')
        with open(self.path('sshd_config'), 'w') as fp:
            fp.write(
                "HostKey {d}/host_key\n"
                "AuthorizedKeysFile {d}/authorized_keys\n"
                "StrictModes no\nUsePAM no\nPidFile none\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\nLogLevel ERROR\n"
                # the server's environment: the hermetic PATH (sshd's
                # own would have the schedulers), a fresh HOME, a short
                # grace before a job Slurm forgot is lost, a keep-alive
                # line after `tick` s of a followed log's silence (not 4);
                # the kill's grace is the client's (SendEnv)
                "AllowUsers {u}\n"
                "SetEnv PATH={p} HOME={h} TEJ_LOST_GRACE=3 TEJ_TICK={t}\n"
                "AcceptEnv TEJ_GRACE\n".format(
                    d=self.dir, u=self.user, h=self.home, p=Hermetic.bin,
                    t=self.tick))
        with open(self.path('host_key.pub')) as fp:
            host_key = fp.read().split()
        with open(self.path('known_hosts'), 'w') as fp:
            fp.write('%s %s %s\n' % (self.alias, host_key[0], host_key[1]))
        self.config = self.path('ssh_config')
        with open(self.config, 'w') as fp:
            fp.write(
                "Host {a}\n"
                "  HostName 127.0.0.1\n"
                "  User {u}\n"
                "  HostKeyAlias {a}\n"
                # the file "down" makes the server unreachable
                # (its pid and start time: see kill_sshd)
                "  ProxyCommand sh -c 'test -f {d}/down && exit 1; "
                "echo $$ $(cut -d\" \" -f22 /proc/$$/stat) >> {d}/pids; "
                "exec {sshd} -i -f {d}/sshd_config'\n"
                "  IdentityFile {d}/client_key\n"
                "  IdentitiesOnly yes\n"
                "  UserKnownHostsFile {d}/known_hosts\n"
                "  GlobalKnownHostsFile /dev/null\n"
                "  StrictHostKeyChecking yes\n"
                "  SendEnv TEJ_GRACE\n"
                "  LogLevel ERROR\n".format(
                    a=self.alias, u=self.user, d=self.dir, sshd=self.sshd))
        self.options = ['-F', self.config]
        self.queues = []

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def add_alias(self, alias, prefix=(), path=None):
        """Another name for this server, whose sshd runs under ``prefix``
        (a command line, e.g. nsenter into a namespace), and whose sessions
        have ``path`` as PATH (default: the hermetic one).
        """
        config = 'sshd_config_' + alias
        with open(self.path('sshd_config')) as fp:
            text = fp.read()
        setenv = 'SetEnv PATH=%s ' % Hermetic.bin
        assert setenv in text
        with open(self.path(config), 'w') as fp:
            fp.write(text.replace(setenv, 'SetEnv PATH=%s ' % (
                path or Hermetic.bin)))
        self._add_host(alias, {
            'exec %s -i -f %s/sshd_config\'' % (self.sshd, self.dir):
                'exec %s %s -i -f %s/%s\'' % (
                    ' '.join(prefix), self.sshd, self.dir, config)})

    def password_alias(self):
        """Another name for this server, whose sshd takes a password and no
        key, and whose client config offers no key.
        """
        alias = self.alias + '-pw'
        with open(self.path('sshd_config')) as fp:
            text = fp.read()
        with open(self.path('sshd_config_pw'), 'w') as fp:
            fp.write(text.replace('PasswordAuthentication no',
                                  'PasswordAuthentication yes')
                     .replace('PubkeyAuthentication yes',
                              'PubkeyAuthentication no'))
        self._add_host(alias, {
            '/sshd_config': '/sshd_config_pw',
            '  IdentityFile %s/client_key\n' % self.dir:
                '  PubkeyAuthentication no\n'})
        return alias

    def login_alias(self, alias, rc):
        """Another name for this server, whose sessions first run the sh
        text ``rc`` (as a login shell's .profile or .bashrc would, say a
        banner with no newline), then the command asked for, with sh: the
        test user's login shell is left alone (test_shells changes it).
        """
        with open(self.path('rc_' + alias), 'w') as fp:
            fp.write(rc)
        with open(self.path('sshd_config')) as fp:
            text = fp.read()
        with open(self.path('sshd_config_' + alias), 'w') as fp:
            fp.write(text + "ForceCommand /bin/sh -c '. %s; exec /bin/sh -c "
                     "\"$SSH_ORIGINAL_COMMAND\"'\n" % self.path('rc_' + alias))
        self._add_host(alias, {'/sshd_config\'': '/sshd_config_%s\'' % alias})
        return alias

    def _add_host(self, alias, changes):
        """Add to the ssh config a copy of this server's Host block, named
        ``alias``, with ``changes`` ({old text: new text}) made to it.
        """
        with open(self.config) as fp:
            block = fp.read().split('\nHost ')[0]
        block = block.replace('Host %s\n' % self.alias, 'Host %s\n' % alias)
        for old, new in changes.items():
            block = block.replace(old, new)
        with open(self.config, 'a') as fp:
            fp.write('\n' + block)

    def queue(self, queue='~/.tej', alias=None, cls=tej.RemoteQueue,
              **kwargs):
        """A RemoteQueue (or ``cls``) on this server (or its ``alias``),
        closed by `stop`.
        """
        q = cls(alias or self.alias, queue, ssh_options=self.options,
                **kwargs)
        self.queues.append(q)
        return q

    def cli(self, *args):
        """The CLI options that reach this server."""
        return list(args) + ['-F', self.config]

    def remote_dir(self):
        """A fresh directory in the server's home, the test user's."""
        path = tempfile.mkdtemp(dir=self.home)
        os.chown(path, self.uid, self.gid)
        return path

    def processes(self, pattern):
        """Pids of this server's processes (the test user's, in its
        directory) whose command line or working directory has ``pattern``.
        """
        return [p.pid for p in processes(
            lambda p: p.uid == self.uid and
            (pattern in p.args or pattern in p.cwd) and
            (self.dir in p.args or self.dir in p.cwd))]

    def kill_sshd(self):
        """Kill every sshd started so far, with the processes it forked (the
        shared connections die); return how many were killed.
        """
        with open(self.pids) as fp:
            started = [line.split() for line in fp.read().splitlines()]
        open(self.pids, 'w').close()
        # those still running (a pid of one that ended may be another
        # process's now, another test's)
        pids = [int(pid) for pid, when in started
                if start_time(int(pid)) == int(when)]
        killed = 0
        for pid in process_tree(pids):
            try:
                os.kill(pid, 9)
                killed += 1
            except OSError:
                pass
        return killed

    def sshd_started(self):
        """How many sshd were started since the last `kill_sshd`."""
        with open(self.pids) as fp:
            return len(fp.read().splitlines())

    def masters(self, queue):
        """Pids of the shared connection (ssh -M) of a queue: one that a
        call became ("[mux]"), or that tej started (ControlMaster=yes).
        """
        path = queue._transport.master.path
        word = tej._ssh_config_word(path)  # as tej gives it to ssh
        return [p.pid for p in processes(
            lambda p: (path in p.args and '[mux]' in p.args) or
            (word in p.args and 'ControlMaster=yes' in p.args))]

    def stop(self):
        for q in self.queues:
            q.close()
        if os.path.exists(self.pids):
            self.kill_sshd()
        # the test user's jobs
        for pid in self.processes(self.dir):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


#: The SSHServers of this process, by the user they log in as
_servers = {}


def ssh_server(user=TEST_USER):
    """The one SSHServer of this process that logs in as ``user`` (as
    root; else as the caller), started on first use.
    """
    if user not in _servers:
        _servers[user] = SSHServer(user)
    return _servers[user]


class ServerCase(unittest.TestCase):
    """A test through the test sshd: ``self.tmp`` here, ``self.remote`` a
    fresh directory on the server (both removed after the test), the queue
    path ``self.queue_path`` in it, the destination ``self.dest`` (the
    class's, or the server's alias).
    """

    dest = None
    #: the user that the sshd logs in (as root)
    server_user = TEST_USER

    def setUp(self):
        self.server = ssh_server(self.server_user)
        self.dest = self.dest or self.server.alias
        self.tmp = temporary(self)
        self.remote = self.remote_dir()
        self.queue_path = os.path.join(self.remote, 'q')

    def remote_dir(self):
        """A fresh directory on the server, removed after the test."""
        path = self.server.remote_dir()
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def queue(self, name='q', **kwargs):
        """A queue in ``self.remote`` (see SSHServer.queue), closed after
        the test.
        """
        q = self.server.queue(os.path.join(self.remote, name),
                              alias=self.dest, **kwargs)
        self.addCleanup(self.server.queues.remove, q)
        self.addCleanup(q.close)
        return q

    def job(self, name, files):
        """A job directory ``name`` here, with ``files`` (see make_tree)."""
        return make_tree(os.path.join(self.tmp, name), files)

    def stage(self, job_id):
        """A job's directory on the server, in ``self.queue_path``."""
        return os.path.join(self.queue_path, 'jobs', job_id, 'stage')

    def args(self, *argv):
        """A command line through the test sshd, on ``self.queue_path``
        unless ``argv`` names a queue.
        """
        queue = [] if '--queue' in argv else ['--queue', self.queue_path]
        return list(argv) + queue + ['-F', self.server.config]

    def cli(self, *argv):
        """``run_cli`` with `args`: (code, stdout, stderr)."""
        return run_cli(*self.args(*argv))


def stop_slurm():
    global _slurm
    if _slurm is not None:
        _slurm.stop()
        _slurm = None


def stop_all():
    """Stop Slurm and the sshd, and put the environment back."""
    try:
        stop_slurm()
    finally:
        try:
            while _servers:
                _servers.popitem()[1].stop()
        finally:
            Hermetic.stop()


class SlurmCluster(object):
    """A single-node Slurm (munged, slurmctld, slurmd from Debian's
    packages) started in a temporary directory, its daemons inside a
    network namespace of its own (they listen on every address: there,
    those are only this test's), and an ssh alias whose sshd runs in that
    namespace too. Needs root. /etc/slurm/slurm.conf is linked to the
    clients' configuration while it runs (ssh sessions do not carry
    SLURM_CONF), and removed after. Everything is stopped by pid.
    """

    alias = 'tejslurm'

    def __init__(self, server):
        missing = [name for name in ('munged', 'slurmctld', 'slurmd',
                                     'sbatch', 'unshare', 'nsenter', 'ip')
                   if not (scheduler_which(name) or
                           os.path.exists('/usr/sbin/' + name))]
        need('slurm', not missing and os.getuid() == 0,
             "a Slurm test bed needs root and %s" % (
                 ', '.join(missing) or 'root'))
        self.conf_link = '/etc/slurm/slurm.conf'
        if self.left_behind(self.conf_link):
            os.unlink(self.conf_link)
        need('slurm', not os.path.lexists(self.conf_link),
             "%s exists: a real Slurm is configured here" % self.conf_link)
        self.server = server
        self.dir = tempfile.mkdtemp(prefix='slurm-', dir=Hermetic.start())
        os.chmod(self.dir, 0o755)
        # the run that made it: its link is left behind once it is gone
        with open(self.path('run'), 'w') as fp:
            fp.write('%d %s\n' % (os.getpid(), start_time(os.getpid())))
        self.pids = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def left_behind(link):
        """Is ``link`` one to the configuration of a test bed whose run
        was interrupted (killed: it could not remove it)? Its target is
        gone, or the run that made it is.
        """
        if not os.path.islink(link) or '/slurm-' not in os.readlink(link):
            return False
        try:
            with open(os.path.join(os.path.dirname(os.readlink(link)),
                                   'run')) as fp:
                pid, started = fp.read().split()
        except (OSError, ValueError):
            return not os.path.exists(link)
        return start_time(int(pid)) != int(started)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def ns(self, argv):
        """argv run inside the namespace."""
        return ['nsenter', '--net=/proc/%d/ns/net' % self.holder] + argv

    def _start(self):
        # the namespace, held by a sleeping process; an address other than
        # loopback, on a veth pair whose both ends are inside, so that
        # getaddrinfo(AI_ADDRCONFIG) answers for 127.0.0.1
        holder = subprocess.Popen(['unshare', '--net', 'sleep', '100000'])
        self.started(holder.pid)
        self.holder = holder.pid
        wait_for(lambda: os.readlink('/proc/%d/ns/net' % holder.pid),
                 lambda ns: ns != os.readlink('/proc/self/ns/net'),
                 what='the namespace')
        for argv in (['ip', 'link', 'set', 'lo', 'up'],
                     ['ip', 'link', 'add', 'tej0', 'type', 'veth', 'peer',
                      'name', 'tej1'],
                     ['ip', 'addr', 'add', '169.254.77.1/32', 'dev', 'tej0'],
                     ['ip', 'link', 'set', 'tej0', 'up'],
                     ['ip', 'link', 'set', 'tej1', 'up']):
            subprocess.check_call(self.ns(argv))
        # munge, as user munge, with a socket of its own
        munge = self.path('munge')
        os.mkdir(munge, 0o755)
        key = self.path('munge', 'munge.key')
        with open(key, 'wb') as fp:
            fp.write(os.urandom(1024))
        os.chmod(key, 0o400)
        entry = pwd.getpwnam('munge')
        for path in (munge, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.socket = self.path('munge', 'munge.socket.2')
        subprocess.check_call([
            'runuser', '-u', 'munge', '--', 'munged',
            '--socket=' + self.socket, '--key-file=' + key,
            '--pid-file=' + self.path('munge', 'munged.pid'),
            '--seed-file=' + self.path('munge', 'seed'),
            '--log-file=' + self.path('munge', 'log')])
        self.started(int(self._read(self.path('munge', 'munged.pid'))))
        self.conf = self.path('slurm.conf')
        self.client_conf = self.path('client.conf')
        node = subprocess.run(['slurmd', '-C'], stdout=subprocess.PIPE,
                              env=self.env(), check=True).stdout.decode().splitlines()[0]
        hostname = node.split()[0].split('=', 1)[1]
        for sub in ('state', 'spool'):
            os.mkdir(self.path(sub), 0o755)
        with open(self.conf, 'w') as fp:
            fp.write(
                "ClusterName=tejtest\n"
                "SlurmctldHost={h}(127.0.0.1)\n"
                "AuthType=auth/munge\nCredType=cred/munge\n"
                "AuthInfo=socket={s}\n"
                "SlurmUser=root\nSlurmdUser=root\n"
                "SlurmctldPidFile={d}/slurmctld.pid\n"
                "SlurmdPidFile={d}/slurmd.pid\n"
                "SlurmdSpoolDir={d}/spool\nStateSaveLocation={d}/state\n"
                "SlurmctldLogFile={d}/slurmctld.log\n"
                "SlurmdLogFile={d}/slurmd.log\n"
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                "SelectType=select/cons_tres\n"
                "AccountingStorageType=accounting_storage/none\n"
                "JobAcctGatherType=jobacct_gather/none\n"
                "SchedulerParameters=batch_sched_delay=0\n"
                # KillWait: between scancel's TERM and its KILL, the
                # job's wrapper records the end (its lock, its record): on
                # a loaded machine that took over 2 s once
                "ReturnToService=2\nKillWait=10\nOverTimeLimit=0\n"
                "{n} NodeAddr=127.0.0.1\n"
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE "
                "State=UP\n".format(h=hostname, s=self.socket, d=self.dir,
                                   n=node))
        os.chmod(self.conf, 0o644)
        # the clients tej runs (through the link: ssh sessions do not
        # carry SLURM_CONF) give up on a stopped controller after 1 s
        # (squeue, scontrol: 2 s), not 9 (18): they try to connect once a
        # second for MessageTimeout seconds (squeue and scontrol twice
        # over), which is also how long they wait for an answer, plenty
        # for a controller on this machine; the daemons, and this test
        # bed's own commands, keep the default's 10 s
        with open(self.conf) as fp, open(self.client_conf, 'w') as out:
            out.write(fp.read() + "MessageTimeout=2\n")
        os.chmod(self.client_conf, 0o644)
        os.makedirs(os.path.dirname(self.conf_link), exist_ok=True)
        os.symlink(self.client_conf, self.conf_link)
        for daemon in ('slurmctld', 'slurmd'):
            subprocess.check_call(self.ns([daemon, '-f', self.conf]),
                                  env=self.env())
            self.started(int(self._read(self.path(daemon + '.pid'))))
        self._wait_idle()
        # the only sessions whose PATH has a scheduler: this one
        self.server.add_alias(self.alias, self.ns([]), path=scheduler_bin())

    def env(self):
        """The environment of this Slurm's commands: its configuration,
        and a PATH with them.
        """
        return dict(os.environ, SLURM_CONF=self.conf, PATH=scheduler_bin())

    def _wait_idle(self):
        wait_for(lambda: self.run(['sinfo', '-h', '-o', '%T']),
                 lambda out: b'idle' in out, timeout=30,
                 what='the Slurm node to be idle')

    @staticmethod
    def _read(path):
        def read():
            try:
                with open(path) as fp:
                    return fp.read().strip()
            except FileNotFoundError:
                return ''
        return wait_for(read, what=path)

    def run(self, argv, check=False):
        """A Slurm command's output (inside the namespace); with ``check``,
        fail unless it succeeded.
        """
        proc = subprocess.run(self.ns(argv), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=self.env())
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (
                ' '.join(argv), proc.returncode, proc.stderr.decode()))
        return proc.stdout

    def job_field(self, job_id, field):
        """A field of "scontrol show job" (JobName, TimeLimit...)."""
        out = self.run(['scontrol', 'show', 'job', '-o', str(job_id)])
        for word in out.decode().split():
            if word.startswith(field + '='):
                return word.split('=', 1)[1]
        return None

    def stop_controller(self):
        """Stop slurmctld (auto-detection must then pick default)."""
        pid = int(self._read(self.path('slurmctld.pid')))
        os.kill(pid, 15)
        wait_for(lambda: alive(pid), lambda up: not up,
                 what='slurmctld to stop')

    def start_controller(self):
        """Start slurmctld again; return once it answers (its node is idle,
        or runs the jobs it had).
        """
        subprocess.check_call(self.ns(['slurmctld', '-f', self.conf]),
                              env=self.env())
        self.started(int(self._read(self.path('slurmctld.pid'))))
        wait_for(lambda: self.run(['sinfo', '-h', '-o', '%T']),
                 lambda out: out.strip() in (b'idle', b'mixed',
                                             b'allocated'),
                 timeout=30, what='the Slurm node to be up')

    def started(self, pid):
        """Note a process to stop, with its start time (its pid may be
        another process's once it has ended).
        """
        self.pids.append((pid, start_time(pid)))

    def stop(self):
        for pid, started in reversed(self.pids):
            kill_same(pid, started, 15)
        if os.path.islink(self.conf_link) and \
                os.readlink(self.conf_link) == self.path('client.conf'):
            os.unlink(self.conf_link)
        deadline = time.monotonic() + 10
        for pid, started in self.pids:
            while alive(pid) and start_time(pid) == started and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            kill_same(pid, started, 9)


_slurm = None


def slurm_cluster():
    """The one SlurmCluster of this test run (started on first use)."""
    global _slurm
    if _slurm is None:
        _slurm = SlurmCluster(ssh_server())
    return _slurm

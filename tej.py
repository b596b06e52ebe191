#!/usr/bin/env python3
"""tej: the Trivial Extensible Job-submission system.

Sends a job directory to any server reachable over SSH, starts it there, and
later tells its status, fetches its files, kills it and cleans it up. One
file, standard library only: copy it anywhere and run it.

Usage (the command line)::

    python3 tej.py submit DEST DIRECTORY [--id ID] [--script S]   # prints the id
    python3 tej.py status DEST --id ID     # running / finished N / not found
    python3 tej.py status DEST ID ID ...   # several: <id> <status> each
    python3 tej.py download DEST --id ID FILE ... [--directory D]
    python3 tej.py kill DEST --id ID
    python3 tej.py delete DEST --id ID
    python3 tej.py list DEST [--state STATE] [--since DURATION]
    python3 tej.py gc DEST --older-than DURATION [--dry-run]
    python3 tej.py setup DEST [--make-link PATH] [--force]
    python3 tej.py jobs                    # every job submitted from here
    python3 tej.py monitor [--until-done] [--on-end COMMAND]

DEST is ``[ssh://][user@]host[:port]``, an alias from ``~/.ssh/config``, or
``local:`` to run jobs on this machine. Usage (the Python API)::

    import tej
    queue = tej.RemoteQueue('user@cluster', '~/.tej')
    job_id = queue.submit(None, 'my_job_dir')
    status, directory, exit_code = queue.status(job_id)

The system OpenSSH client is used, with connection sharing (ControlMaster),
so ``~/.ssh/config``, agents, keys and ProxyJump work as they do for ssh.
On first contact, small POSIX shell scripts (the "runtime") are copied to
the server; nothing needs to be installed there beforehand.
"""

import collections
import contextlib
import errno
import functools
import os
import random
import re
import shlex
import stat
import subprocess
import sys
import time

if sys.version_info < (3, 6):  # pragma: no cover
    sys.exit("tej needs Python 3.6 or later")

__version__ = '1.0.0.dev0'

__all__ = [
    'DEFAULT_TEJ_DIR', 'RemoteQueue', 'Job', 'ServerLogger',
    'parse_ssh_destination', 'destination_as_string', 'make_unique_name',
    'check_jobid', 'content_id', 'main', 'JobMonitor', 'KnownJob',
    'Error', 'InvalidDestination', 'QueueDoesntExist', 'QueueLinkBroken',
    'QueueExists', 'JobAlreadyExists', 'JobNotFound', 'JobStillRunning',
    'RemoteCommandFailure', 'ConnectionLost',
]


class _Logger(object):
    """The logger ``name`` of the logging module, which is imported only
    when a message comes (start-up time); other attributes are the real
    logger's. While the command line runs, `cli` is its (level, stream) and
    messages go straight there, logging not imported at all.
    """

    #: (level, stream) of the command line that runs, else None.
    cli = None

    def __init__(self, name, prefix):
        self.name = name
        self.prefix = prefix

    def __getattr__(self, attr):
        import logging
        return getattr(logging.getLogger(self.name), attr)

    def log(self, level, msg, *args):
        cli = _Logger.cli
        if cli is None:
            import logging
            logging.getLogger(self.name).log(level, msg, *args)
        elif level >= cli[0]:
            cli[1].write('%s%s\n' % (self.prefix, msg % args if args else msg))

    def debug(self, msg, *args):
        self.log(10, msg, *args)

    def info(self, msg, *args):
        self.log(20, msg, *args)

    def warning(self, msg, *args):
        self.log(30, msg, *args)

    def error(self, msg, *args):
        self.log(40, msg, *args)


logger = _Logger('tej', 'tej: ')

#: The levels of messages, as the logging module's: -v's is what tej does
#: (-vv, DEBUG, adds the remote commands).
_DEBUG, _VERBOSE, _INFO, _ERROR = 10, 15, 20, 40


def _sha256(data):
    """hashlib.sha256(data), from the built-in module where there is one:
    every call hashes the runtime (_runtime_version), and importing hashlib
    takes 3.8-4.2 ms on Python 3.11 (its OpenSSL binding, _hashlib, most
    of it) against 0.15 ms for _sha2 (python3 -X importtime, 3 runs each).
    """
    try:
        from _sha2 import sha256  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:  # pragma: no cover
            from hashlib import sha256
    return sha256(data)


# ===========================================================================
# Constants
# ===========================================================================

DEFAULT_TEJ_DIR = '~/.tej'

#: Characters allowed in job ids, and their bound length.
_JOB_ID = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.,+=@%:-]{0,127}\Z')

#: Seconds a remote command may take (transfers excepted) before tej gives
#: up on it; TEJ_TIMEOUT overrides it.
_DEFAULT_TIMEOUT = 300
#: Seconds an idle shared connection stays open; TEJ_CONTROL_PERSIST
#: overrides it.
_DEFAULT_PERSIST = 600
#: Seconds to establish a connection.
_CONNECT_TIMEOUT = 20
#: Seconds of silence from the server after which a connection is taken
#: for dead (ssh's keepalives); TEJ_KEEPALIVE overrides it.
_DEFAULT_KEEPALIVE = 60
#: The longest duration tej takes (a walltime, a timeout, a setting): about
#: 31 years, within every shell's arithmetic (mksh's is 32 bits).
_MAX_SECONDS = 10 ** 9 - 1

#: How a call uses the shared connection (_SSHTransport._argv): it shares
#: it (starting it when there is none), has a connection of its own, or
#: starts it (tej login).
_SHARED, _OWN, _MASTER = 'shared', 'own', 'master'
#: Attempts at one call when ssh fails before running the command
#: (_SSH_RETRIED), and after how many refusals by a shared connection that
#: has all its sessions a call takes a connection of its own.
_SSH_ATTEMPTS = 8
_SHARED_REFUSALS = 4
#: Between attempts, a random wait from half _SSH_BACKOFF seconds up to
#: _SSH_BACKOFF * 2**N, N the attempt's number up to _SSH_BACKOFF_STEPS.
_SSH_BACKOFF = 0.1
_SSH_BACKOFF_STEPS = 5

#: Seconds a call that finds no shared connection waits for the one that
#: another tej process is starting (_ControlMaster.await_start) before it
#: goes on without it; and between its looks.
_MASTER_WAIT = _CONNECT_TIMEOUT + 10
_MASTER_POLL = 0.02

#: Longest line read before a streaming answer's data, and most of a
#: bootstrap's answer read in its place.
_MAX_ANSWER = 1 << 20
#: Largest long name or pax header accepted in a downloaded archive
#: (tarfile holds one whole in memory).
_MAX_TAR_HEADER = 1 << 24

#: Longest control socket path: sun_path is 104 bytes on BSD and macOS (108
#: on Linux), and ssh binds a temporary name 17 bytes longer first.
_MAX_SOCKET_PATH = 104 - 1 - 17


# ===========================================================================
# Errors
# ===========================================================================

def _last_line(text):
    """The last line of ``text`` that is not blank, stripped ('' for
    none): ssh's log says what went wrong last.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ''


class Error(Exception):
    """Base class for the errors tej raises. Each takes a message, ``msg``;
    without one, its class's `default`.
    """

    #: The message when none is given.
    default = None

    def __init__(self, msg=None):
        if msg is None:
            msg = self.default
        super(Error, self).__init__(*(() if msg is None else (msg,)))


class InvalidDestination(Error):
    """The destination string or dictionary is not usable."""
    default = "Invalid destination"


class QueueDoesntExist(Error):
    """There is no queue at the given location on the server."""
    default = "Queue doesn't exist on the server"


class QueueLinkBroken(QueueDoesntExist):
    """A "tejdir:" link file leads to a location where there is no queue."""
    default = "Queue link chain is broken"


class QueueExists(Error):
    """Setting up a queue (or a link) where one already exists."""
    default = "Queue already exists"


class JobAlreadyExists(Error):
    """Submitting a job with an id that is already in the queue."""
    default = "Job already exists"


class JobNotFound(Error):
    """There is no job with that id in the queue."""
    default = "Job not found"


class JobStillRunning(Error):
    """The operation needs the job to have ended."""
    default = "Job is still running"


class _NoSuchFile(Error):
    """A path asked for is not in the job's directory."""


class RemoteCommandFailure(Error):
    """A command failed on the server, or ssh could not run it.

    Attributes: ``command`` (what was run), ``ret`` (its exit status) and
    ``stderr`` (the last lines it wrote on its standard error).
    """

    def __init__(self, msg=None, command=None, ret=None, stderr=None):
        self.command = command
        self.ret = ret
        self.stderr = stderr
        if msg is None:
            msg = "Command %r failed with status %s" % (command, ret)
            if stderr and stderr.strip():
                # one line: the last the command wrote (all in .stderr)
                msg += ": " + _last_line(stderr)
        super(RemoteCommandFailure, self).__init__(msg)


class ConnectionLost(RemoteCommandFailure):
    """ssh could not connect, or the connection broke during a call (the
    command may or may not have run). Worth trying again later, unless
    ``transient`` is False: the host name did not resolve, which a call
    that never connected does not try again.
    """

    #: Can it heal? False for a name that does not resolve.
    transient = True


# ===========================================================================
# Protocol: what tej.py and runtimes/*.sh agree on
# ===========================================================================
#
# The whole wire, both ways: what a call sends (its first line, the words
# ps shows) and the parsers of every answer. Each item names its twin on
# the server side. The sh side gets the version and the exit codes from
# _prelude, so they are written only here. The runtimes themselves, and
# the bootstrap that every call sends, are data: the appendix at the end
# of the file holds them (_BOOTSTRAP, _FAST_START, _runtime_version).

#: The protocol's version: every answer starts with the sentinel line
#: "TEJ 1". Produced by _header in common.sh and by bootstrap.sh.
PROTOCOL = 1
_SENTINEL = b'TEJ %d' % PROTOCOL

# The runtimes' exit codes, RC_<NAME> on the sh side (see _prelude).
# Produced by _die in common.sh and by bootstrap.sh; mapped to exceptions
# by _runtime_error. Never 126, 127, 128+N or 255: the shell's and ssh's.
_RC_OK = 0             # success
_RC_FAILURE = 1        # failure; the message is on stderr
_RC_RUNNING = 2        # the job is still running (delete, cleanup)
_RC_NO_JOB = 3         # no such job
_RC_JOB_EXISTS = 4     # a job has that id (submit)
_RC_LINK_BROKEN = 6    # a "tejdir:" link leads nowhere (bootstrap.sh)
_RC_QUEUE_EXISTS = 7   # a queue or link is there already (_install)
_RC_INVALID = 8        # an invalid argument
_RC_UNSUPPORTED = 9    # the runtime cannot do that
_RC_NO_FILE = 10       # no such file in the job (download, submit)
_RC_NO_SPACE = 11      # the server's disk is full (submit: _no_space)
_RC_NEED_RUNTIME = 90  # no runtime, or another version (bootstrap.sh)

# Job states: the "state" field of a record. Produced by _record in
# common.sh (its header has the same table).
_CREATED = 'created'    # being submitted
_QUEUED = 'queued'      # the scheduler has it, not started
_RUNNING = 'running'    # started, not ended
_FINISHED = 'finished'  # ended with an exit code
_KILLED = 'killed'      # ended by kill, the scheduler or the walltime
_LOST = 'lost'          # can no longer end: no exit code will come
_NOTFOUND = 'notfound'  # no such job (status, wait, logs)
#: The states that do not change any more.
_ENDED = (_FINISHED, _KILLED, _LOST, _NOTFOUND)
#: Every state a record may have.
_STATES = (_CREATED, _QUEUED, _RUNNING) + _ENDED

#: The last member of a job's upload (_write_tar): a stream cut on a
#: member's boundary is a good archive to tar (GNU's and busybox's exit 0),
#: so the runtime makes the job only when this member arrived, then removes
#: it (_submit in common.sh). A job directory may not have a file of that
#: name (_job_files).
_WHOLE = '.tej-whole'
_WHOLE_TEXT = b'whole\n'

#: The integer fields of a record (empty: None). Produced by _format_record
#: in common.sh: "id state exit submitted started finished now runtime
#: runtime_id", tab-separated key=value, then "scheduler_error" when the
#: scheduler could not be asked (the state is the last known; see
#: _sched_ask), then "dir" last.
_RECORD_INTS = ('exit', 'submitted', 'started', 'finished', 'now')
#: The integers of an answer: a size (of a file, a frame), bounded so that
#: a lying server's 5,000 digits are a bad answer, not a number of them.
_ANSWER_INT = re.compile(r'[0-9]{1,19}\Z')
#: An exit code, as the runtimes record it: a shell's (128+N for a signal).
_MAX_EXIT = 255
#: An epoch time, at most (the year 5138): time.gmtime and the formatting
#: of ages take it.
_MAX_EPOCH = 10 ** 11 - 1
#: The fields every record has but a "notfound" one (a record without one
#: was cut short).
_RECORD_KEYS = _RECORD_INTS + ('runtime', 'runtime_id', 'dir')


def _prelude():
    """The sh lines that give the runtimes the protocol's version and exit
    codes (TEJ_PROTOCOL, RC_OK, RC_FAILURE...): ahead of bootstrap.sh and
    of every installed tej.sh.
    """
    codes = sorted((value, name[4:]) for name, value in globals().items()
                   if name.startswith('_RC_'))
    return 'TEJ_PROTOCOL=%d\n%s\n' % (PROTOCOL, ' '.join(
        'RC_%s=%d' % (name, value) for value, name in codes))


def _fold(script):
    """A readable sh script as one line (a csh login shell reads it too):
    whole-line comments and indentation dropped, lines joined with "; ", or
    with a space after a word or operator that a command follows (``then``,
    ``do``, ``else``, ``in``, ``{``, ``&&``, ``||``, ``|``, ``;;``).
    Used for bootstrap.sh and probe.sh, which are written for it.
    """
    lines = [line.strip() for line in script.splitlines()]
    lines = [line for line in lines if line and not line.startswith('#')]
    joined = lines[:1]
    for previous, line in zip(lines, lines[1:]):
        if re.search(r'(?:^|\s)(?:then|do|else|in|\{)$|(?:&&|\|\||\||;;)$',
                     previous):
            joined.append(' ')
        elif not previous.endswith(';'):
            joined.append('; ')
        joined.append(line)
    return ''.join(joined)


def _ends_in_sentinel(line):
    """Does ``line`` (bytes, its newline stripped or not) end with the
    sentinel? What comes before it on the line is login noise that had no
    newline of its own (a "Loading modules..." of .bashrc, a terminal
    title escape of .profile): the runtime's _header always starts a line
    of its own, but the noise may leave it in the middle of one.
    """
    return line.rstrip(b'\r\n').endswith(_SENTINEL)


def _split_answer(output):
    """The lines of a runtime's answer after its sentinel, decoded. Anything
    before it (login banners, rc-file noise, even on the sentinel's line)
    is ignored. Raise `RemoteCommandFailure` when there is no sentinel.
    """
    lines = output.split(b'\n')
    for i, line in enumerate(lines):
        if _ends_in_sentinel(line):
            return [l.decode('utf-8', 'surrogateescape')
                    for l in lines[i + 1:] if l]
    raise RemoteCommandFailure(
        "The server's answer has no '%s' line: %r"
        % (_SENTINEL.decode(), output[-200:]))


def _read_until_stream(stdout):
    """Read a streaming answer's header (download, logs): skip to the
    sentinel (`_ends_in_sentinel`), return the line after it, decoded (''
    when there is none). Produced by _header then "stream=VERB" in
    common.sh.
    """
    carried = b''  # the end of a piece of noise longer than a read
    for line in iter(lambda: stdout.readline(_MAX_ANSWER), b''):
        if line.endswith(b'\n') and _ends_in_sentinel(carried + line):
            return stdout.readline(_MAX_ANSWER).rstrip(b'\r\n').decode(
                'utf-8', 'replace')
        carried = b'' if line.endswith(b'\n') else line[-len(_SENTINEL):]
    return ''


def _parse_pairs(lines):
    """Parse ``key=value`` lines into a dict (bootstrap.sh's answers,
    _install's)."""
    result = {}
    for line in lines:
        key, sep, value = line.partition('=')
        if sep:
            result[key] = value
    return result


def _parse_record(line):
    """Parse one job record (_format_record in common.sh): tab-separated
    ``key=value`` fields, ``dir=`` last (a directory may hold tabs). The
    fields of _RECORD_INTS become ints (None when empty). Raise
    `RemoteCommandFailure` for a line that is not a record.
    """
    head, sep, directory = line.partition('\tdir=')
    record = _parse_pairs(head.split('\t'))
    if sep:
        record['dir'] = directory
    if not record.get('id') or record.get('state') not in _STATES or (
            record['state'] != _NOTFOUND and
            not all(key in record for key in _RECORD_KEYS)):
        raise RemoteCommandFailure("The server sent a bad record: %r"
                                   % line[:200])
    for key in _RECORD_INTS:
        value = record.get(key)
        if value and not (_ANSWER_INT.match(value) and int(value) <= (
                _MAX_EXIT if key == 'exit' else _MAX_EPOCH)):
            raise RemoteCommandFailure("The server sent a bad record (%s=%s): "
                                       "%r" % (key, value[:20], line[:200]))
        record[key] = int(value) if value else None
    for key in ('runtime', 'runtime_id'):
        if key in record:
            record[key] = record[key] or None
    return record


def _parse_records(lines, job_ids=None):
    """Parse the records of a status, wait or list answer; with
    ``job_ids``, one for each, in that order (else `RemoteCommandFailure`).
    """
    records = [_parse_record(line) for line in lines]
    if job_ids is not None and [r['id'] for r in records] != list(job_ids):
        raise RemoteCommandFailure(
            "The server sent the records of %s for %s" % (
                ', '.join(r['id'] for r in records) or 'no job',
                ', '.join(job_ids)))
    return records


def _parse_version(version):
    """A QUEUE/version line, "PROTOCOL/RUNTIME/HASH" (written by _install
    in common.sh, from _runtime_version): return the runtime's name, or
    None for an empty or unreadable line.
    """
    fields = version.split('/')
    return fields[1] if len(fields) == 3 and fields[1] else None


def _parse_need_runtime(lines):
    """bootstrap.sh's answer when it found no usable runtime (exit
    RC_NEED_RUNTIME) or to _detect: return (queue missing?, name of the
    runtime installed or None, name of the runtime detected or None).
    """
    info = _parse_pairs(lines)
    return (info.get('queue') == 'missing',
            _parse_version(info.get('installed', '')), info.get('detected'))


def _parse_frame(line):
    """One header line of a logs stream (_logs and _send in common.sh):
    ``out N`` or ``err N`` (N bytes follow), ``tick`` (the server checks
    that the reader is there), ``end STATE [EXIT]``. Return ``(name,
    size)``, ``('tick', None)`` or ``('end', (state, exit code or None))``.
    Raise `RemoteCommandFailure` for anything else.
    """
    text = line.decode('utf-8', 'replace').rstrip('\n')
    name, _, rest = text.partition(' ')
    if name == 'tick' and not rest:
        return name, None
    if name == 'end':
        state, _, exit_code = rest.partition(' ')
        if state and not exit_code:
            return name, (state, None)
        if state and _ANSWER_INT.match(exit_code) and \
                int(exit_code) <= _MAX_EXIT:
            return name, (state, int(exit_code))
    elif name in ('out', 'err') and _ANSWER_INT.match(rest):
        return name, int(rest)
    raise RemoteCommandFailure("The server sent a bad log frame: %r"
                               % text[:200])


def _parse_listing(lines):
    """The answer of _files: a list of (mode, size, mtime, path), or None
    when the server cannot list (its stat is neither GNU's, busybox's
    nor BSD's). A line that does not parse (a name with a newline) is
    None too: the download then fetches everything, as it would have.
    """
    if lines == ['none']:
        return None
    entries = []
    for line in lines:
        match = re.match(r'([0-9a-fA-F]{1,8}) ([0-9]{1,19}) '
                         r'(-?[0-9]{1,19}) \./(.*)\Z', line)
        if not match:
            logger.debug("not resuming: listing line %r", line)
            return None
        mode, size, mtime, name = match.groups()
        # _normalize_member is a helper, of the chapter after this one
        entries.append((int(mode, 16), int(size), int(mtime),
                        _normalize_member(name or '.', top=True)))
    return entries


def _broken_download(detail):
    """The error of a download stream that broke off."""
    return ConnectionLost(
        "The download broke off: the connection was lost or the server "
        "sent something else (%s). Run it again to resume." % detail)


#: The lines of a download's framing (_download in common.sh): the size of
#: the whole, a part's rest that follows (LENGTH bytes, checked with
#: TOOL) or that changed on the server, the checksum of a whole part, then
#: the archive of the rest, or nothing more.
_DOWNLOAD_FRAME = re.compile(
    r'size=(?P<size>[0-9]{0,19})|'
    r'part (?P<index>[0-9]{1,9}) (?:(?P<changed>changed)|'
    r'(?P<length>[0-9]{1,19}) (?P<tool>cksum|md5sum))|'
    r'sum (?P<sum>.*)|(?P<tar>tar)|(?P<end>end)\Z')


def _parse_download_frame(line):
    """One line of a download's framing (_DOWNLOAD_FRAME), decoded: return
    ``('size', bytes or None)``, ``('part', (index, None))`` for a part
    that changed, ``('part', (index, length, tool))``, ``('sum', text)``,
    ``('tar', None)`` or ``('end', None)``. Raise `ConnectionLost` (a
    broken stream) for anything else.
    """
    match = _DOWNLOAD_FRAME.fullmatch(line)
    if not match:
        raise _broken_download("a bad line %r" % line[:80])
    if match.group('index') is not None:
        index = int(match.group('index'))
        if match.group('changed'):
            return 'part', (index, None)
        return 'part', (index, int(match.group('length')),
                        match.group('tool'))
    if match.group('sum') is not None:
        return 'sum', match.group('sum')
    if match.group('size') is not None:
        size = match.group('size')
        return 'size', int(size) if size else None
    return ('tar' if match.group('tar') else 'end'), None


def _read_download_frame(stdout):
    """Read the next line of a download's framing: return its kind and
    value (`_parse_download_frame`) and the line.
    """
    line = stdout.readline(4096)
    if not line.endswith(b'\n'):
        raise _broken_download("it ended early" if not line
                               else "a bad line %r" % line[:80])
    line = line[:-1].decode('utf-8', 'replace')
    return _parse_download_frame(line) + (line,)


def _read_log_frames(source, targets, offsets):
    """Read a logs stream's frames (`_parse_frame`) from ``source``, a
    binary file, after "stream=logs": write the data of each to
    ``targets[name]`` ('out' or 'err': a binary file, or None for one
    that was not asked for) and add its size to ``offsets[name]``; count
    the ticks in ``offsets['tick']``. Return the end's ``(state, exit code
    or None)``, or None when the stream ended before it. Raise
    `RemoteCommandFailure` for a bad frame.
    """
    while True:
        line = source.readline()
        if not line.endswith(b'\n'):
            return None  # the connection ended early
        name, value = _parse_frame(line)
        if name == 'end':
            return value
        if name == 'tick':
            offsets['tick'] += 1
            continue
        if targets[name] is None:
            raise RemoteCommandFailure(
                "The server sent %s, which was not asked for: %r"
                % (name, line[:200]))
        while value:
            data = source.read(min(value, 65536))
            if not data:
                return None
            targets[name].write(data)
            targets[name].flush()
            offsets[name] += len(data)
            value -= len(data)


def _runtime_error(verb, code, stderr):
    """The exception for a runtime's exit status ``code`` (not RC_OK).
    The message is the last line of ``stderr`` (bytes) that _die wrote
    ("tej: ..."); without one, the status is a tool's that passed through
    ``set -e``: a `RemoteCommandFailure`.
    """
    errors = {
        _RC_RUNNING: JobStillRunning,
        _RC_NO_JOB: JobNotFound,
        _RC_JOB_EXISTS: JobAlreadyExists,
        _RC_LINK_BROKEN: QueueLinkBroken,
        _RC_QUEUE_EXISTS: QueueExists,
        _RC_NO_FILE: _NoSuchFile,
        _RC_NO_SPACE: Error,
        _RC_UNSUPPORTED: Error,
        _RC_INVALID: ValueError,
    }
    text = stderr.decode('utf-8', 'replace').strip()
    lines = text.splitlines()
    message = lines[-1] if text else ''
    if not message.startswith('tej: ') and 'tej: ' in message:
        # login noise on stderr with no newline, ahead of _die's message
        message = message[message.index('tej: '):]
    if message.startswith('tej: ') and code in errors:
        return errors[code](message[5:])
    if code == _RC_NO_JOB:
        return JobNotFound()
    if message.startswith('tej: ') and code == _RC_FAILURE:
        # one line: _die's message, and what the tool before it said
        before = lines[-2].strip() if len(lines) > 1 else ''
        if before and not before.startswith('tej: '):
            message += ' (%s)' % before
        return RemoteCommandFailure(
            message[5:], command='tej.sh %s' % verb, ret=code,
            stderr='\n'.join(lines[-10:]))
    return RemoteCommandFailure(command='tej.sh %s' % verb, ret=code,
                                stderr='\n'.join(text.splitlines()[-10:]))


# What a failed ssh (exit status 255) means, from its log: _classify_ssh.
_SSH_RAN = 'ran'            # not a failure of ssh: the command ran
_SSH_REFUSED = 'refused'    # the shared connection has all the sessions
                            # it may: try again soon
_SSH_MUX = 'mux'            # the shared connection failed before the
                            # session started: try without it
_SSH_EARLY = 'early'        # dropped before authentication (as sshd's
                            # MaxStartups does): safe to try again
_SSH_HOST_KEY = 'host key'  # the host key is unknown or changed
_SSH_AUTH = 'auth'          # authentication failed: never tried again
_SSH_NO_HOST = 'no host'    # the host name does not resolve: tried again
                            # only in a call that had connected before
_SSH_CONFIG = 'config'      # ssh refuses its options or configuration
_SSH_LOST = 'lost'          # could not connect, or the connection broke
                            # during the call (the command may have run)
#: The outcomes of a failure before the command ran: worth another attempt.
_SSH_RETRIED = (_SSH_REFUSED, _SSH_MUX, _SSH_EARLY)


def _classify_ssh(code, log):
    """What ssh's exit status ``code`` and its log (the -E file, and its
    stderr) say happened: one of the _SSH_* outcomes.
    """
    if code != 255:
        return _SSH_RAN
    if 'Host key verification failed' in log or \
            'host key is known' in log or 'HOST IDENTIFICATION' in log:
        return _SSH_HOST_KEY
    if 'Permission denied' in log or 'Too many authentication' in log:
        return _SSH_AUTH
    if 'Could not resolve hostname' in log:
        return _SSH_NO_HOST
    # an -o that ssh refuses is "command-line line 0: ..." (with a colon
    # after "command-line" for some); a -F file's bad lines end in
    # "FILE: terminating, N bad configuration options", whatever they were
    # (an unknown keyword, a value that is no time, no number)
    if re.search(r"^command-line:? line \d+: |: terminating, \d+ bad "
                 r"configuration option|Bad configuration option|"
                 r"Can't open user config|^Invalid -J argument|"
                 r"[Uu]nsupported option|garbage at end of line|Bad port",
                 log, re.M):
        return _SSH_CONFIG
    if 'Session open refused' in log:
        return _SSH_REFUSED
    # a shared connection that failed before the session started; one that
    # broke during it ("read from master failed") may have run the command
    if re.search(r'[Cc]ontrol ?[Ss]ocket|mux_client_hello|'
                 r'mux_client_request_session', log) and \
            'read from master failed' not in log and \
            'read_packet' not in log:
        return _SSH_MUX
    if re.search(r'kex_exchange_identification|ssh_exchange_identification',
                 log):
        return _SSH_EARLY
    return _SSH_LOST


#: The command of every call, the same whatever the call: sh reads the
#: first line of its stdin, the call's arguments and the bootstrap
#: (_call_line), and runs it; the rest of stdin is the call's own input
#: (read reads no further than the line). It is what sshd hands to the
#: user's login shell, and means the same to sh, bash, csh, tcsh and fish:
#: no argument ever passes through that shell. (Words only for ps to show
#: come after it: _shown.)
_READ_AND_RUN = 'IFS= read -r tej_call && eval "$tej_call"'


#: A word of a call that _shown shows as it is, in single quotes: only
#: characters that no login shell reads there (not "'", csh's "!" and
#: newline, fish's backslash, nor any other).
_SHOWN_WORD = re.compile(r'[A-Za-z0-9_.,+=@%:/~-]{1,128}\Z')


def _shown(argv):
    """The words that follow _READ_AND_RUN, after sh's "$0", for the
    server's process list to show what a call is doing: the queue, the
    verb and the arguments of ``argv`` (QUEUE VERSIONS VERB ARG...), "..."
    for each that _SHOWN_WORD does not allow, and for the rest after 16.
    sh never reads them: the call's arguments come on stdin.
    """
    words = [word if _SHOWN_WORD.match(word) else '...'
             for word in argv[:1] + argv[2:]]
    return words[:16] + ['...'] * (len(words) > 16)


def _call_line(argv, fast=False):
    """The first line of a call's stdin (see _READ_AND_RUN): ``set --``
    with ``argv`` (QUEUE VERSIONS VERB ARG...), then the bootstrap. A
    newline in an argument is written "$tej_nl", to keep it one line.
    With ``fast`` (a call that has no input: its stdin ends there), two
    lines: _FAST_START's first, then that one. (Both are made of the
    runtimes, in the appendix at the end of the file.)
    """
    words = ' '.join(shlex.quote(arg).replace('\n', '\'"$tej_nl"\'')
                     for arg in argv)
    prefix = ''
    if any('\n' in arg for arg in argv):
        prefix = "tej_nl=$(printf '\\n_'); tej_nl=${tej_nl%_}; "
    line = '%sset -- %s; %s\n' % (prefix, words, _BOOTSTRAP)
    if fast:
        line = '%sset -- %s; %s\n' % (prefix, words, _FAST_START) + line
    return line.encode('utf-8', 'surrogateescape')


# ===========================================================================
# Helpers (pure: no I/O)
# ===========================================================================

_DESTINATION = re.compile(r'''
    (?:ssh://|(?!ssh://))  # a scheme, never a user "ssh" with a password
    (?:(?P<username>[A-Za-z0-9_.][A-Za-z0-9_.-]*)(?::(?P<password>.+))?@)?
    (?:\[(?P<ipv6>[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?)\]|(?P<hostname>[A-Za-z0-9_.][A-Za-z0-9_.-]*))
    (?::(?P<port>[0-9]{1,5}))?
    \Z''', re.VERBOSE)


def _parse_destination(destination):
    """Parse a destination string; return a dict with ``hostname`` and, when
    given, ``username``, ``password``, ``port`` (int). ``local:`` gives
    ``{'local': True}``. Raise `InvalidDestination`.
    """
    if not isinstance(destination, str):
        raise TypeError("destination must be a string, not %s"
                        % type(destination).__name__)
    if destination == 'local:':
        return {'local': True}
    match = _DESTINATION.match(destination)
    if match is None:
        masked = _masked(destination)
        raise InvalidDestination("Invalid destination: %s" % (
            masked if masked.isprintable() and masked.strip() == masked
            else repr(masked)))
    result = {'hostname': match.group('ipv6') or match.group('hostname')}
    for key in ('username', 'password'):
        if match.group(key) is not None:
            result[key] = match.group(key)
    if match.group('port') is not None:
        port = int(match.group('port'))
        if not 0 < port < 65536:
            raise InvalidDestination("Invalid port in destination: %s"
                                     % _masked(destination))
        result['port'] = port
    return result


def _masked(destination):
    """A destination string with its password, if any, as ``***``."""
    return re.sub(r'\A((?:ssh://|(?!ssh://))[^:]*):.*@', r'\1:***@',
                  destination, flags=re.DOTALL)


def parse_ssh_destination(destination):
    """Parse ``[ssh://][user[:password]@]host[:port]`` into a dictionary.

    Return a dict with the keys ``hostname``, ``username`` (the local user
    when none is given), ``port`` (an int, only when given) and ``password``
    (only when given). An IPv6 address is written in brackets: ``[::1]:22``.
    Raise `InvalidDestination` when the string is not a destination.
    """
    result = _parse_destination(destination)
    if 'local' in result:
        raise InvalidDestination("Not an SSH destination: %s" % destination)
    import getpass
    result.setdefault('username', getpass.getuser())
    return result


def destination_as_string(destination):
    """Format a destination dictionary as ``ssh://user@host[:port]``.

    The port is only written when it is not 22; the password, when there is
    one, as ``user:password@``.
    """
    if destination.get('local'):
        return 'local:'
    host = destination['hostname']
    if ':' in host:
        host = '[%s]' % host
    user = destination.get('username')
    if user is None:
        user = ''
    elif destination.get('password') is not None:
        user = '%s:%s@' % (user, destination['password'])
    else:
        user += '@'
    port = destination.get('port', 22)
    if port != 22:
        return 'ssh://%s%s:%d' % (user, host, port)
    return 'ssh://%s%s' % (user, host)


def make_unique_name():
    """Return 10 random characters from ``[a-z0-9]``, for job ids."""
    rand = random.SystemRandom()
    return ''.join(rand.choice('abcdefghijklmnopqrstuvwxyz0123456789')
                   for _ in range(10))


def check_jobid(job_id):
    """Raise `ValueError` unless ``job_id`` is a valid job id.

    Valid ids are made of letters, digits and ``_.,+=@%:-``, do not start
    with ``-`` or ``.``, and have at most 128 characters.
    """
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise ValueError("Invalid job identifier %r: use letters, digits and "
                         "_.,+=@%%:- (not first: - or .), at most 128"
                         % (job_id,))


#: The control characters a terminal acts on: C0 (ESC starts the
#: sequences that set the title, write the clipboard, clear the screen),
#: DEL, and C1 (U+009B is a CSI of its own).
_CONTROLS = re.compile('[\x00-\x1f\x7f-\x9f]')


def _harmless(text, keep='\t\n'):
    """``text`` with each control character but those of ``keep``
    written ``\\xNN``: what a server or a registry says, shown on a
    terminal, only shows.
    """
    return _CONTROLS.sub(lambda m: m.group() if m.group() in keep else
                         '\\x%02x' % ord(m.group()), text)


def _check_label(label):
    """Raise `ValueError` unless ``label`` (a job's label in the registry)
    is None or a string without control characters: a newline or an
    escape would break the lines of tej jobs, or act on its terminal.
    """
    if label is not None and (not isinstance(label, str) or
                              _CONTROLS.search(label)):
        raise ValueError("Invalid label %r: no newline, tab or other "
                         "control character" % (label,))


def _default_job_id(directory, username):
    """``<dirname>_<user>_<random>``, with invalid characters replaced."""
    base = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    import getpass
    job_id = '%s_%s_%s' % (base, username or getpass.getuser(),
                           make_unique_name())
    job_id = re.sub(r'[^A-Za-z0-9_.,+=@%:-]', '_', job_id).lstrip('.-')
    return job_id[-128:].lstrip('.-')


def _shell_command(argv):
    """Quote an argv list into one string for a POSIX shell."""
    return ' '.join(shlex.quote(arg) for arg in argv)


def _ssh_config_word(text):
    """``text`` as one word of an ssh_config value (``-o KEY=VALUE``):
    quoted, so that blanks do not end it, and with "%" doubled, so that
    ssh expands none of it.
    """
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace(
        '%', '%%')


def _seconds_text(seconds):
    """``1 second``, ``2.5 seconds``."""
    return '%g second%s' % (seconds, '' if seconds == 1 else 's')


def _format_duration(seconds):
    """Format a duration as ``H:MM:SS``."""
    seconds = max(0, int(seconds))
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


#: The units of a duration, largest first, and their seconds.
_UNITS = (('w', 604800), ('d', 86400), ('h', 3600), ('m', 60), ('s', 1))


def _duration(value, what, integer=False):
    """Seconds (an int, or a float unless ``integer``) from a number, a
    string of seconds, ``[D-]HH:MM:SS`` (or ``MM:SS``), or numbers with
    units, largest first: ``90s``, ``10m``, ``1.5h``, ``2d``, ``2w``,
    ``1h30m``. Raise `ValueError`, naming ``what``, for anything else:
    negative, not finite, above _MAX_SECONDS, or a fraction of a second
    when ``integer``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("Invalid %s %r: give seconds or [D-]HH:MM:SS"
                         % (what, value))
    text = str(value).strip()
    if not isinstance(value, str) and value == value and \
            value not in (float('inf'), float('-inf')) and value >= 0:
        text = '%.9f' % value  # not 1e-05
    colons = re.match(r'(?:(\d{1,12})-)?(?:(?:(\d{1,12}):)?(\d{1,12}):)?(\d{1,12})'
                      r'\Z', text)
    parts = re.findall(r'(\d{1,30}(?:\.\d{0,9})?|\.\d{1,9})([wdhms]?)', text)
    units = [unit for _, unit in parts]
    order = [u for u, _ in _UNITS]
    numbers = ''.join(n + u for n, u in parts) == text and parts and (
        units == [''] or ('' not in units and units == sorted(
            set(units), key=order.index)))
    if colons:
        fields = colons.groups()
        # each field after the first given is bounded (1:99:99 is a typo)
        given = [i for i, field in enumerate(fields) if field is not None]
        if any(int(fields[i]) > (23, 59, 59)[i - 1] for i in given[1:]):
            raise ValueError("Invalid %s %r: after the first field, hours "
                             "go up to 23, minutes and seconds to 59"
                             % (what, value))
        days, hours, minutes, secs = (int(g or 0) for g in fields)
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    elif numbers:
        seconds = sum(float(n) * dict(_UNITS, **{'': 1})[u] for n, u in parts)
    else:
        raise ValueError("Invalid %s %r: give seconds, [D-]HH:MM:SS, or "
                         "numbers with units (90s, 10m, 1h30m, 2d, 2w)"
                         % (what, value))
    if seconds > _MAX_SECONDS:
        raise ValueError("Invalid %s %r: at most %d seconds"
                         % (what, value, _MAX_SECONDS))
    if integer:
        if seconds != int(seconds):
            raise ValueError("Invalid %s %r: whole seconds" % (what, value))
        return int(seconds)
    return seconds


def _normalize_member(name, error=Error, top=False):
    """A relative path inside a job, normalized; raise ``error`` if it is
    absolute or goes up with ``..``. With ``top``, ``.`` (the job's whole
    directory) is ``''``.
    """
    if not isinstance(name, str) or not name:
        raise error("Invalid path %r" % (name,))
    given = name
    while name.startswith('./'):
        name = name[2:]
    parts = [p for p in name.split('/') if p not in ('', '.')]
    if top and not parts and not given.startswith('/'):
        return ''
    if name.startswith('/') or '..' in parts or not parts:
        raise error("Invalid path %r: it must be relative to the job "
                    "directory, without '..'" % (name,))
    return '/'.join(parts)


def _within(path, top):
    """Is ``path`` ``top`` or below it (both normalized, absolute)?"""
    return path == top or path.startswith(top.rstrip('/') + '/')


def _check_queue_path(path):
    """Raise `ValueError` for a queue path that the runtime cannot take."""
    if not path or '\n' in path or '\0' in path:
        raise ValueError("Invalid queue path %r" % (path,))


def _check_directory(directory):
    """Raise `ValueError` unless ``directory`` is a directory, saying
    whether it is missing or something else.
    """
    if not os.path.isdir(directory):
        raise ValueError("%s: %s" % (
            "Not a directory" if os.path.exists(directory)
            else "No such directory", directory))


def _script_mode(directory, script):
    """Decide how a job's script runs: return ``('file', relative path)`` or
    ``('command', text)``.

    A name of a file in the directory is a file; a missing name that looks
    like a file (it has a ``/`` or an extension, like ``start.sh``, and no
    blanks) is an error; anything else is a shell command. Raise
    `ValueError`.
    """
    if script is None:
        if not os.path.isfile(os.path.join(directory, 'start.sh')):
            raise ValueError("No start.sh in %s: give the file to run with "
                             "--script FILE, or a command with --script "
                             "'a command'" % directory)
        script = 'start.sh'
    if not script.strip():
        raise ValueError("The script is empty")
    path = os.path.join(directory, script)
    relative = os.path.normpath(script)
    if os.path.isfile(path) and not os.path.isabs(script) and \
            relative != '..' and not relative.startswith('../'):
        return 'file', relative
    if re.match(r'[\w.,+=@%:/-]+\Z', script) and \
            ('/' in script or re.search(r'\.\w+\Z', script)):
        raise ValueError("No file %r in %s (to run a shell command, "
                         "give it with its arguments)" % (script, directory))
    return 'command', script


# ===========================================================================
# Transports
# ===========================================================================

def _timeout_setting(name, default, zero=False):
    """The environment's setting ``name``, seconds (``default`` when it is
    unset or empty); 0 only when ``zero`` says it means something. Raise
    `Error` for anything else.
    """
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = _duration(value, name)
    except ValueError as e:
        raise Error(str(e))
    if seconds == 0 and not zero:
        raise Error("%s must be more than 0 seconds" % name)
    return seconds


class _Transport(object):
    """Runs the runtime's bootstrap somewhere; subclasses say where."""

    #: What this transport prefixes to the commands it logs.
    name = None

    def run(self, argv, stdin=None, timeout=None):
        """Run the bootstrap with ``argv`` (QUEUE VERSIONS VERB ARG...; see
        _READ_AND_RUN); return (exit code, stdout bytes, stderr bytes).
        ``stdin`` is None, bytes, or a file.
        """
        raise NotImplementedError

    def stream(self, argv):
        """Start ``argv`` with its stdout readable as a stream; return an
        object with ``stdout``, ``finish() -> (code, stderr bytes)`` and
        ``abort()``.
        """
        raise NotImplementedError

    def close(self):
        """Close the shared connection, if there is one."""


#: What a new pipe surely takes without blocking (Linux 64 KiB, macOS 16
#: KiB at first), for _start_call.
_PIPE_BUF = 8192


class _NoFeeder(object):
    """The feeder of a call whose stdin was written whole beforehand."""

    @staticmethod
    def join(timeout=None):
        pass

    @staticmethod
    def is_alive():
        return False


_NO_FEEDER = _NoFeeder()


def _start_call(popen, command, argv, stdin, **kwargs):
    """Start ``popen(command, stdin=PIPE_END, **kwargs)``, a call whose
    stdin is its line (_call_line of ``argv``) then ``stdin``: None, bytes,
    a file, or a producer, ``stdin(pipe)``, that writes to the binary
    ``pipe`` as it goes (an upload: no copy of it is made). A thread feeds
    it (none when it is only a short line, written beforehand): the process
    has it as ``feeder``, to join once the process has ended, and
    ``feed_error``, what the producer raised (not the process going away),
    to raise then (see _fed).
    """
    import threading
    # the verbs of the runtime itself (_install, _detect) are the
    # bootstrap's
    head = _call_line(argv, fast=stdin is None and not argv[2].startswith('_'))
    read, write = os.pipe()
    if stdin is None and len(head) <= _PIPE_BUF:
        # all of it fits in the pipe now: no thread (a call is quicker)
        try:
            with open(write, 'wb') as pipe:
                pipe.write(head)
            proc = popen(command, stdin=read, **kwargs)
        finally:
            os.close(read)
        proc.feeder, proc.feed_error = _NO_FEEDER, []
        return proc
    _grow_pipe(write)
    failed = []

    def feed():
        try:
            with open(write, 'wb') as pipe:
                pipe.write(head)
                if isinstance(stdin, bytes):
                    pipe.write(stdin)
                elif callable(stdin):
                    try:
                        stdin(pipe)
                    except (BrokenPipeError, ConnectionResetError):
                        raise
                    except BaseException as e:
                        failed.append(e)
                        # what the server has is no archive: its tar fails
                        # instead of taking a part of the job for all of it
                        pipe.write(b'\xff' * 1024)
                elif stdin is not None:
                    # what has come so far, not a whole buffer (a pipe)
                    chunk = getattr(stdin, 'read1', stdin.read)
                    data = chunk(1 << 16)
                    while data:
                        pipe.write(data)
                        pipe.flush()
                        data = chunk(1 << 16)
        except OSError:
            pass  # the process has gone: its exit status says why

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        proc = popen(command, stdin=read, **kwargs)
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    feeder.start()
    proc.feeder = feeder
    proc.feed_error = failed
    return proc


def _grow_pipe(fd):
    """Make a pipe's buffer 1 MiB where the system allows it (Linux): a
    transfer then wakes ssh once per MiB, not once per 64 KiB, and either
    side goes on while the other is busy.
    """
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, 'F_SETPIPE_SZ', 1031), 1 << 20)
    except (ImportError, OSError):
        pass


#: Seconds that the feeder of a call that has ended may take to end too:
#: a producer stuck in a read (a file on a hung network file system), or a
#: pipe that a process left behind holds open, never holds tej up.
_FEEDER_WAIT = 10


def _join_feeder(proc):
    """Wait for the feeder of ``proc`` (which has ended), _FEEDER_WAIT
    seconds at most; one still at work is left behind (a daemon thread).
    """
    proc.feeder.join(_FEEDER_WAIT)
    if proc.feeder.is_alive():
        logger.debug("The input of the call is still being read: left "
                     "behind")


def _fed(proc):
    """Raise what the producer of ``proc``'s stdin raised, if it did."""
    if proc.feed_error:
        raise proc.feed_error[0]


def _communicate(proc, command, timeout):
    """Collect a call's output, enforce the timeout (killing ``proc``)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RemoteCommandFailure(
            "Timed out after %s: %s" % (_seconds_text(timeout), command),
            command=command)
    except BaseException:
        _end_call(proc)
        raise
    finally:
        _join_feeder(proc)
    _fed(proc)
    return proc.returncode, out, err


def _end_call(proc):
    """End an interrupted call: TERM (to its process group, for ``local:``'s
    sh, which has one), so that the server side cleans up after itself (a
    job half submitted is removed); KILL if it is still there after a few
    seconds.
    """
    import signal
    try:
        if getattr(proc, 'group', False):
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


class _Stream(object):
    """A running remote command whose stdout is read as a stream."""

    def __init__(self, proc, errfile, on_finish=None):
        self.proc = proc
        self.stdout = proc.stdout
        self._errfile = errfile
        self._on_finish = on_finish

    def finish(self):
        self.stdout.read()
        self.proc.wait()
        _join_feeder(self.proc)
        self._errfile.seek(0)
        err = self._errfile.read()
        self._errfile.close()
        code = self.proc.returncode
        if self._on_finish is not None:
            code = self._on_finish(code, err)
        return code, err

    def abort(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        _join_feeder(self.proc)
        self.proc.stdout.close()
        self._errfile.close()
        if self._on_finish is not None:
            try:
                self._on_finish(self.proc.returncode, b'')
            except Error:
                pass


class _LocalTransport(_Transport):
    """Runs the runtime on this machine with sh: the ``local:`` destination.

    The shell is ``sh``, or TEJ_SH (tests run the runtime under each shell).
    The home directory is where relative queue paths start, as with ssh.
    """

    name = 'local:'

    def __init__(self):
        self.shell = os.environ.get('TEJ_SH') or 'sh'

    def _start(self, argv, stdin, stdout, stderr):
        logger.debug("local: %s", _shell_command(argv))
        home = os.path.expanduser('~')
        if not os.path.isdir(home):
            raise Error("The home directory %s does not exist: set HOME to "
                        "a directory" % home)
        try:
            # a process group of its own: the terminal's Ctrl-C reaches the
            # client, which ends the call (_end_call) so that sh cleans up
            proc = _start_call(subprocess.Popen,
                               [self.shell, '-c', _READ_AND_RUN, self.shell] +
                               _shown(argv), argv, stdin,
                               stdout=stdout, stderr=stderr, cwd=home,
                               start_new_session=True)
        except OSError as e:
            raise Error("Cannot run %s: %s" % (self.shell, e))
        proc.group = True
        return proc

    def run(self, argv, stdin=None, timeout=None):
        proc = self._start(argv, stdin, subprocess.PIPE, subprocess.PIPE)
        return _communicate(proc, _shell_command(argv), timeout)

    def stream(self, argv):
        import tempfile
        errfile = tempfile.TemporaryFile()
        proc = self._start(argv, None, subprocess.PIPE, errfile)
        _grow_pipe(proc.stdout.fileno())
        return _Stream(proc, errfile)


def _control_dir():
    """The private directory for control sockets: $XDG_RUNTIME_DIR/tej, or
    ~/.cache/tej. Created 0700; refused when it is someone else's or open to
    others.
    """
    runtime_dir = os.environ.get('XDG_RUNTIME_DIR')
    home = None
    if runtime_dir and os.path.isdir(runtime_dir):
        path = os.path.join(runtime_dir, 'tej')
    else:
        home = os.path.expanduser('~')
        path = os.path.join(home, '.cache', 'tej')
    try:
        os.makedirs(path, 0o700)
    except OSError as e:
        if home is not None and not os.path.isdir(home):
            raise Error("The home directory %s does not exist: set HOME "
                        "(or XDG_RUNTIME_DIR) to a directory" % home)
        if e.errno != errno.EEXIST:
            raise Error("Cannot create %s, for ssh's control sockets: %s "
                        "(set XDG_RUNTIME_DIR to a directory of yours)"
                        % (path, e.strerror or e))
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise Error("%s must be a directory of yours that only you can "
                    "access (chmod 700)" % path)
    return path


#: The program that answers ssh's password prompt (SSH_ASKPASS, called
#: with the prompt) with TEJ_PASSWORD, only when it is the prompt of the
#: target's login as TEJ_PASSWORD_FOR (user@host; TEJ_PASSWORD_FOR_CUT as
#: ssh before 9 cut it): a ProxyJump host, which asks in the same words for
#: itself, gets nothing, nor does a question that is not for a password.
_ASKPASS = r"""#!/bin/sh
case $1 in
    "$TEJ_PASSWORD_FOR's password: "|"$TEJ_PASSWORD_FOR_CUT's password: "|\
    "($TEJ_PASSWORD_FOR) "*[Pp]assword*)
        printf '%s\n' "$TEJ_PASSWORD" ;;
    *) exit 1 ;;
esac
"""


class _Askpass(object):
    """The password of a destination, which ssh gets from _ASKPASS, never
    from a command line. ``ssh_config()`` returns ``ssh -G``'s output for
    the destination: it says for which login the password is, and is
    asked once, when a call first needs it.
    """

    def __init__(self, password, ssh_config):
        self.password = password
        self.ssh_config = ssh_config
        self._prompt = None

    def env(self):
        """ssh's environment for a password login (`environment`)."""
        if self._prompt is None:
            self._prompt = self.prompt_for(self.ssh_config())
        return self.environment(self.program(), self.password, self._prompt)

    @staticmethod
    def program():
        """The file of _ASKPASS, in the private control directory (written
        the first time; its name says its version): return its path.
        """
        import tempfile
        digest = _sha256(_ASKPASS.encode()).hexdigest()[:8]
        path = os.path.join(_control_dir(), 'askpass-' + digest)
        if not os.path.exists(path):
            # a name of its own, renamed into place: others may be at it
            fd, part = tempfile.mkstemp(dir=os.path.dirname(path))
            with os.fdopen(fd, 'w') as fp:
                fp.write(_ASKPASS)
            os.chmod(part, 0o700)
            os.rename(part, path)
        return path

    @staticmethod
    def environment(program, password, prompt_for):
        """ssh's environment for a password login: ours, plus the askpass
        ``program`` that ssh must use (even without a display), the
        password it answers with, and for which login (``user@host`` as
        ssh's prompt says it).
        """
        user, _, host = prompt_for.partition('@')
        env = dict(os.environ, SSH_ASKPASS=program, TEJ_PASSWORD=password,
                   TEJ_PASSWORD_FOR=prompt_for,
                   TEJ_PASSWORD_FOR_CUT='%s@%s' % (user[:30], host[:128]),
                   SSH_ASKPASS_REQUIRE='force')
        env.setdefault('DISPLAY', 'tej:0')
        return env

    @staticmethod
    def prompt_for(config):
        """``user@host`` as ssh's password prompt says it, from ``ssh
        -G``'s output (its configuration for the destination): the user,
        and the host key alias or else the host name.
        """
        values = {}
        for line in config.splitlines():
            key, _, value = line.partition(' ')
            values.setdefault(key.lower(), value)
        host = values.get('hostkeyalias')
        if not host or host == 'none':
            host = values.get('hostname', '')
        return '%s@%s' % (values.get('user', ''), host)


def _read_log(log):
    """ssh's log (its -E file), as text; the file is removed."""
    try:
        with open(log, 'rb') as fp:
            return fp.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''  # (removed by someone else: nothing to say)
    finally:
        try:
            os.unlink(log)
        except FileNotFoundError:
            pass


#: Whether this process has removed the ssh logs that gone ones left.
_logs_swept = []


def _new_log():
    """A new file for ssh's log (-E): return its path. It is in the
    private directory of the control sockets (the system's temporary
    directory if there is none), named after this host and process,
    ``ssh-HOST-PID-*.log`` (a home directory may be shared by hosts);
    _read_log removes it. The first of a process removes those that
    processes of this host that are gone left (killed before they read
    theirs).
    """
    import tempfile
    try:
        directory = _control_dir()
    except (Error, OSError):
        directory = None
    if directory is not None and not _logs_swept:
        _logs_swept.append(True)
        _sweep_logs(directory)
    fd, log = tempfile.mkstemp(prefix='ssh-%s-%d-' % (_log_host(),
                                                       os.getpid()),
                               suffix='.log', dir=directory)
    os.close(fd)
    return log


def _log_host():
    """This host's name as the logs have it (no "/", no NUL)."""
    import socket
    return re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname())


def _sweep_logs(directory):
    """Remove the ssh logs in ``directory`` of processes of this host that
    are gone.
    """
    if os.name != 'posix':
        return  # (os.kill(pid, 0) is not a question on Windows)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    prefix = 'ssh-%s-' % _log_host()
    for name in names:
        found = re.match(r'([0-9]{1,9})-[A-Za-z0-9_]+\.log$',
                         name[len(prefix):])
        if (not name.startswith(prefix) or not found or
                int(found.group(1)) == os.getpid()):
            continue
        try:
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass  # another tej removed it first
        except OSError:
            pass  # a process of another user's


class _ControlMaster(object):
    """The shared connection (ControlMaster) of one destination, through
    its life: its socket, `check`, `start` (one tej process at a time:
    `await_start`), `stop`. ``key`` is what identifies the connection;
    ``argv(log, connection, flags)`` is the transport's ssh command line
    (_SSHTransport._argv) and ``popen(argv, **kwargs)`` starts it.
    """

    def __init__(self, key, argv, popen):
        self.key = key
        self.argv = argv
        self.popen = popen
        self._path = None

    @property
    def path(self):
        """The socket: a short hash of the key, in a private directory."""
        if self._path is None:
            name = _sha256(self.key.encode('utf-8')).hexdigest()[:16]
            path = os.path.join(_control_dir(), name)
            if len(path.encode('utf-8')) > _MAX_SOCKET_PATH:
                raise Error(
                    "The control socket path %s is too long for a socket "
                    "(%d bytes at most): set XDG_RUNTIME_DIR or HOME to a "
                    "shorter directory" % (path, _MAX_SOCKET_PATH))
            self._path = path
        return self._path

    def there(self):
        """Is its socket there (alive or not)?"""
        return os.path.exists(self.path)

    def request(self, command):
        """``ssh -O command`` to the shared connection; its exit status (1
        when it timed out).
        """
        proc = self.popen(self.argv(os.devnull, _SHARED, ['-O', command]),
                          stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return 1

    def check(self):
        """Is there a live shared connection? A stale socket is removed."""
        if not self.there():
            return False
        if self.request('check') != 0:
            logger.debug("removing stale control socket %s", self.path)
            try:
                os.unlink(self.path)
            except OSError:
                pass
            return False
        return True

    def await_start(self):
        """Before a call on the shared connection: when there is none, make
        sure that one tej process starts it and the others wait for it,
        instead of each starting one of its own at the same moment (one
        connection would win the socket; sshd, or its limits, would see
        them all).

        Who starts it is decided by an exclusive lock (flock) on the file
        SOCKET.lock beside the socket: its holder starts the connection
        (`start`), the others look every _MASTER_POLL seconds for the
        socket, and use it once it is there. The kernel drops the lock of a
        process that died, so a crashed starter blocks no one: the next
        waiter takes the lock and starts the connection. A starter that
        failed says so in the lock file, with the time: the processes that
        were waiting then make their calls as they would have (without the
        lock: ssh's own ControlMaster=auto), to meet the same error, rather
        than each trying again in turn. After _MASTER_WAIT seconds a waiter
        goes on without waiting more.
        """
        path = self.path
        if os.path.exists(path):
            return
        try:
            import fcntl
        except ImportError:  # Windows: no fcntl, and no shared connection
            return
        began = time.time()
        deadline = time.monotonic() + _MASTER_WAIT
        try:
            fd = os.open(path + '.lock', os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            logger.debug("cannot open %s.lock: %s", path, e)
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES,
                                       errno.EWOULDBLOCK):
                        logger.debug("cannot lock %s.lock: %s", path, e)
                        return
                if os.path.exists(path):
                    return
                if time.monotonic() > deadline:
                    logger.debug("no shared connection after %s: going on "
                                 "without waiting",
                                 _seconds_text(_MASTER_WAIT))
                    return
                time.sleep(_MASTER_POLL)
            if os.path.exists(path):
                return  # made while this process waited
            note = os.pread(fd, 64, 0).decode('ascii', 'replace').split()
            try:
                failed = note[0] == 'failed' and float(note[1]) >= began
            except (IndexError, ValueError):
                failed = False
            if failed:
                return  # the starter this process waited for failed
            if not self.start():
                os.ftruncate(fd, 0)
                os.pwrite(fd, b'failed %f\n' % time.time(), 0)
        finally:
            os.close(fd)  # and the lock with it

    def start(self):
        """Start the shared connection in the background (ssh -M -N -f,
        never prompting); return whether it is there. A failure is not an
        error here: the call that follows meets it and reports it.
        """
        log = _new_log()
        # -N: no command; -f: to the background once the connection is up,
        # its socket listening
        proc = self.popen(self.argv(log, _MASTER, ['-N', '-f']),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=_MASTER_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        text = _read_log(log)
        if code != 0:
            logger.debug("could not start the shared connection (%d): %s",
                         code, text.strip())
        return code == 0 and self.there()

    def stop(self):
        """Close the shared connection, if there is one (ssh -O exit)."""
        if self.there():
            self.request('exit')


class _SSHTransport(_Transport):
    """Runs the runtime through the system OpenSSH client.

    One shared connection per destination (ControlMaster), kept open for
    TEJ_CONTROL_PERSIST seconds after its last use.
    """

    def __init__(self, destination, ssh_options=(), multiplex=True,
                 ssh=None, command_for=None):
        self.hostname = destination['hostname']
        self.username = destination.get('username')
        self.port = destination.get('port')
        self.password = destination.get('password')
        self.options = list(ssh_options)
        self.multiplex = multiplex
        self.ssh = ssh or os.environ.get('TEJ_SSH') or 'ssh'
        self.name = destination_as_string(dict(destination, password=None))
        #: command_for(COMMAND): the tej command line that a message
        #: suggests (RemoteQueue.command_for)
        self.command_for = command_for or (
            lambda command: _shell_command(['tej', command, self.name]))
        self.persist = int(_timeout_setting('TEJ_CONTROL_PERSIST',
                                            _DEFAULT_PERSIST, zero=True))
        # ssh asks every interval, and gives up after 4 without an answer
        self.keepalive = max(1, int(-(-_timeout_setting(
            'TEJ_KEEPALIVE', _DEFAULT_KEEPALIVE) // 4)))
        # used only when multiplex is on (tej login makes one all the same)
        self.master = _ControlMaster(
            '\0'.join([self.hostname, self.username or '',
                       str(self.port or '')] + self.options),
            self._argv, self._popen)
        self.askpass = None
        if self.password is not None:
            self.askpass = _Askpass(self.password, self._ssh_config)

    def _argv(self, log, connection, flags=(), prompt=False):
        """The ssh command line of every call, login and ``-O`` request, up
        to the destination: ``connection`` is _SHARED, _OWN or _MASTER (see
        Constants), ``flags`` go before the destination; ssh may ask in the
        terminal only with ``prompt`` (tej login).

        The user's options come first: ssh keeps the first value it is
        given for each option.
        """
        argv = [self.ssh] + self.options + [
            # ssh's own messages go to a file, apart from the job's stderr
            '-E', log,
            # give up on an unreachable host instead of hanging
            '-o', 'ConnectTimeout=%d' % _CONNECT_TIMEOUT,
            # notice a dead network or server within TEJ_KEEPALIVE seconds
            '-o', 'ServerAliveInterval=%d' % self.keepalive,
            '-o', 'ServerAliveCountMax=4',
        ]
        if self.password is not None:
            # the password comes from SSH_ASKPASS (_Askpass), never a
            # command line; one try: a wrong one is not asked again
            argv += ['-o', 'BatchMode=no', '-o', 'NumberOfPasswordPrompts=1']
        else:
            # never prompt: "tej login" is the interactive way in, and
            # prompts whatever ssh_config says (a -o given to tej wins)
            argv += ['-o', 'BatchMode=%s' % ('no' if prompt else 'yes')]
        if connection == _OWN:
            # neither use nor create a shared connection
            argv += ['-o', 'ControlMaster=no', '-o', 'ControlPath=none']
        else:
            mux_only = connection == _SHARED and self._mux_only()
            argv += [
                # share one connection between calls: use the one there is,
                # else become it; "tej login" starts it in any case
                '-o', 'ControlMaster=%s' % (
                    'yes' if connection == _MASTER else
                    'no' if mux_only else 'auto'),
                # our own socket, in a private directory
                '-o', 'ControlPath=%s' % _ssh_config_word(self.master.path),
                # keep the connection open a while for the next call
                '-o', 'ControlPersist=%d' % self.persist,
            ]
            if mux_only:
                # the shared connection is there: a session that it refuses
                # (sshd's MaxSessions, 10) fails and is tried again a moment
                # later (_SSH_REFUSED), instead of ssh silently making a
                # whole connection of its own in its place
                argv += ['-o', 'ProxyCommand=false']
        argv += list(flags)
        if self.username is not None:
            argv += ['-l', self.username]
        if self.port is not None:
            argv += ['-p', str(self.port)]
        return argv + ['--', self.hostname]

    def _popen(self, argv, **kwargs):
        """Start ssh; with a password, the askpass program answers it (in
        a session of its own: ssh asks the terminal when it has one).
        """
        env = None if self.askpass is None else self.askpass.env()
        try:
            return subprocess.Popen(argv, env=env,
                                    start_new_session=env is not None,
                                    **kwargs)
        except OSError as e:
            raise Error("Cannot run %s: %s" % (self.ssh, e))

    def _ssh_config(self):
        """``ssh -G``'s output: how ssh sees the destination."""
        argv = self._argv(os.devnull, _OWN, ['-G'])
        try:
            config = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Error("Cannot run %s -G: %s" % (self.ssh, e))
        if config.returncode != 0:
            raise Error("%s -G %s failed: %s" % (
                self.ssh, self.hostname,
                _last_line(config.stderr.decode('utf-8', 'replace'))))
        return config.stdout.decode('utf-8', 'replace')

    def _start(self, argv, stdin, stdout, stderr, connection):
        """Start the call ``argv`` (see _start_call); return the process
        and the path of ssh's log (read it with _read_log).
        """
        log = _new_log()
        logger.debug("%s: %s", self.name, _shell_command(argv))
        try:
            # no terminal, no X11: a plain pipe to sh. "exec": the login
            # shell (sh, csh, fish alike) becomes that sh, one process less
            proc = _start_call(
                self._popen, self._argv(log, connection, ['-T', '-x']) +
                ['exec %s sh %s' % (
                    _shell_command(['sh', '-c', _READ_AND_RUN]),
                    ' '.join("'%s'" % word for word in _shown(argv)))],
                argv, stdin, stdout=stdout, stderr=stderr)
        except BaseException:
            os.unlink(log)
            raise
        return proc, log

    def _error(self, outcome, log):
        """The exception that reports an ssh failure (see _classify_ssh)."""
        if outcome == _SSH_HOST_KEY:
            return Error(
                "The host key of %s is unknown or has changed. Check it, "
                "then accept it with: %s" % (self.hostname,
                                             self.command_for('login')))
        if outcome == _SSH_AUTH:
            return Error(
                "Authentication to %s failed. tej does not prompt: use a "
                "key or an agent, or log in first with: %s"
                % (self.name, self.command_for('login')))
        if outcome == _SSH_CONFIG:
            # the lines it refused, not the "terminating" after them
            said = [line.strip() for line in log.splitlines() if line.strip()
                    and not re.search(r': terminating, \d+ bad', line)]
            return Error("ssh cannot use its options or configuration: %s"
                         % ('; '.join(said[:3]) or _last_line(log)))
        error = ConnectionLost(
            "Cannot connect to %s: %s" % (
                self.name, _last_line(log) or "the connection was lost"),
            command=self.ssh, ret=255, stderr=log[-2000:])
        error.transient = outcome != _SSH_NO_HOST
        return error

    def _attempts(self, attempt):
        """The retry loop of `run` and `stream`. ``attempt(connection)``
        makes one attempt: it returns ``(result, None)`` once ssh ran the
        command, ``(None, log)`` when ssh failed (exit status 255). Failures
        that happened before the command ran are tried again, a while later
        (_next_connection); return the result, or raise the error.
        """
        connection = _SHARED if self.multiplex else _OWN
        if connection == _SHARED:
            self.master.await_start()
        for count in range(1, _SSH_ATTEMPTS + 1):
            result, log = attempt(connection)
            if log is None:
                return result
            outcome = _classify_ssh(255, log)
            logger.debug("ssh failed (%s), attempt %d: %s", outcome, count,
                         log.strip())
            if outcome not in _SSH_RETRIED or count == _SSH_ATTEMPTS:
                break
            connection = self._next_connection(outcome, count, connection)
        raise self._error(outcome, log)

    def _next_connection(self, outcome, count, connection):
        """After the ``count``-th attempt failed with a retried ``outcome``:
        wait a little, and return the connection of the next attempt.
        """
        if outcome == _SSH_MUX:
            # a stale socket is removed and the shared connection made
            # again, once; a live master that fails is avoided
            if connection == _SHARED and count == 1 and \
                    not self.master.check():
                self.master.await_start()
                return _SHARED
            return _OWN
        time.sleep(random.uniform(
            _SSH_BACKOFF / 2,
            _SSH_BACKOFF * 2 ** min(count, _SSH_BACKOFF_STEPS)))
        if outcome == _SSH_REFUSED and count >= _SHARED_REFUSALS:
            # sessions are short, a place is soon free; else a connection
            # of its own
            return _OWN
        return connection

    def _mux_only(self):
        """May a call on the shared connection forbid ssh a connection of
        its own (_argv)? When the socket is there, and the user's options
        name no proxy (theirs would come first and win, or clash).
        """
        if any(o == '-J' or o.lower().replace(' ', '').startswith(
                ('proxycommand', 'proxyjump')) for o in self.options):
            return False
        return self.master.there()

    def run(self, argv, stdin=None, timeout=None):
        rewind = getattr(stdin, 'seekable', lambda: False)()

        def attempt(connection):
            if rewind:  # a file: all of it again (a pipe is read once)
                stdin.seek(0)
            proc, log = self._start(argv, stdin, subprocess.PIPE,
                                    subprocess.PIPE, connection)
            try:
                code, out, err = _communicate(proc, _shell_command(argv),
                                              timeout)
            finally:
                log = _read_log(log)
            if code == 255:
                return None, log + err.decode('utf-8', 'replace')
            return (code, out, err), None
        return self._attempts(attempt)

    def stream(self, argv):
        import tempfile

        def attempt(connection):
            errfile = tempfile.TemporaryFile()
            proc, log = self._start(argv, None, subprocess.PIPE, errfile,
                                    connection)
            # ssh goes on while a file is written here
            _grow_pipe(proc.stdout.fileno())
            # ssh's failures come before any output: peek at the first byte
            if proc.stdout.peek(1):
                return _Stream(proc, errfile, self._stream_end(log)), None
            proc.wait()
            _join_feeder(proc)
            log = _read_log(log)
            if proc.returncode != 255:
                return _Stream(proc, errfile), None
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
            proc.stdout.close()
            return None, log + err.decode('utf-8', 'replace')
        return self._attempts(attempt)

    def _stream_end(self, log):
        """The end of a stream that started: exit status 255 is a connection
        that broke on the way.
        """
        def on_finish(code, err):
            text = _read_log(log)
            if code == 255:
                raise ConnectionLost(
                    "Connection to %s lost: %s" % (
                        self.name, _last_line(text) or "ssh failed"),
                    command=self.ssh, ret=255, stderr=text[-2000:])
            return code
        return on_finish

    def login(self):
        """Open the shared connection interactively: password, 2FA and
        host key questions happen here, once. Raise `Error` when it fails.
        """
        if self.multiplex and self.master.check():
            logger.info("Already logged in to %s; to close the connection: "
                        "%s", self.name, self.command_for('logout'))
            return
        log = _new_log()
        # -N: no command; -f: to the background once logged in
        code = self._popen(self._argv(log, _MASTER, ['-N', '-f'],
                                      prompt=True)).wait()
        text = _read_log(log)
        if code == 0:
            logger.info("Logged in to %s. The connection stays open for "
                        "%s unused, or until: %s", self.name,
                        _seconds_text(self.persist),
                        self.command_for('logout'))
        else:
            outcome = _classify_ssh(code, text)
            if outcome == _SSH_AUTH:
                raise Error("Authentication to %s failed: %s" % (
                    self.name, _last_line(text)))
            if outcome == _SSH_HOST_KEY:
                raise self._error(outcome, text)
            raise Error("Could not log in to %s: %s" % (
                self.name, _last_line(text) or "ssh failed"))

    def close(self):
        if self.multiplex:
            self.master.stop()


# ===========================================================================
# Transfers: job files up, downloads down
# ===========================================================================
#
# Which files a job sends and the tar stream that sends them; a download's
# plan (what is there already), its stream read into place, and the safe
# extraction of its archive. This chapter comes before the Queue API
# rather than after it (STYLE's order) so that the API, which calls it,
# refers back to it, never forward.

#: The file of a job directory that lists patterns to leave out.
_IGNORE_FILE = '.tejignore'


def _exclusions(directory, excludes=()):
    """The patterns to leave out of ``directory``: ``excludes`` and the
    lines of its .tejignore (blank lines and ``#`` comments skipped),
    normalized (no leading ``./``, no trailing ``/``).
    """
    patterns = list(excludes)
    path = os.path.join(directory, _IGNORE_FILE)

    def refuse(mode):
        if not stat.S_ISREG(mode):
            raise Error("Cannot read %s: it is a %s, not a file of patterns"
                        % (path, 'directory' if stat.S_ISDIR(mode)
                           else _file_kind(mode)))
    try:
        # reading a fifo waits for a writer, and a device may never end:
        # refused before it is opened, and opened without waiting (no
        # O_NONBLOCK on Windows, nor fifos)
        refuse(os.stat(path).st_mode)
        with open(os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0)),
                  'rb') as fp:
            refuse(os.fstat(fp.fileno()).st_mode)
            lines = fp.read().decode('utf-8', 'surrogateescape').splitlines()
    except (FileNotFoundError, NotADirectoryError):
        lines = []
    except OSError as e:
        raise Error("Cannot read %s: %s" % (path, e.strerror))
    patterns += [line.strip() for line in lines
                 if line.strip() and not line.lstrip().startswith('#')]
    result = []
    for pattern in patterns:
        while pattern.startswith('./'):
            pattern = pattern[2:]
        pattern = pattern.rstrip('/')
        if pattern:
            result.append(pattern)
    return result


def _excluded(relative, patterns):
    """Does a pattern match ``relative`` (a path in the job), as tar's
    --exclude does: the whole path, or its end from any ``/`` on (so
    ``*.o`` and ``build`` match at any depth, ``src/*.o`` below any
    ``src``); ``*`` matches ``/`` too.
    """
    import fnmatch
    parts = relative.split('/')
    for start in range(len(parts)):
        tail = '/'.join(parts[start:])
        for pattern in patterns:
            if fnmatch.fnmatchcase(tail, pattern):
                return True
    return False


def _job_files(directory, excludes=(), dereference=False, warn=True,
               warned=None):
    """What a job directory sends, in the order it is sent (each
    directory's entries sorted by name, then its subdirectories'): yield
    ``(relative path, path, stat, link target or None)``, each file
    stat'ed once. Patterns of ``excludes`` and of .tejignore leave out
    what they match (a directory with all below it). A symbolic link that
    is absolute or leads out of ``directory`` is sent as it is, with a
    warning (unless not ``warn``; once for the paths in the set
    ``warned``, which gets them), or with ``dereference`` as the file it
    leads to. Raise `Error`
    for a fifo, socket or device (it cannot be sent; reading it could
    hang) and for what cannot be read.
    """
    patterns = _exclusions(directory, excludes)
    top = os.path.realpath(directory)

    def walk(path, relative):
        try:
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as e:
            raise Error("Cannot read %s: %s" % (path, e.strerror))
        subdirectories = []
        for entry in entries:
            name = relative + entry.name
            if patterns and _excluded(name, patterns):
                continue
            if name == _WHOLE:
                raise Error("Cannot send %s: the name %s is tej's own (the "
                            "mark of an upload that arrived whole): rename "
                            "it, or leave it out with --exclude"
                            % (entry.path, _WHOLE))
            try:
                st = entry.stat(follow_symlinks=False)
                link = os.readlink(entry.path) \
                    if stat.S_ISLNK(st.st_mode) else None
            except OSError as e:
                raise Error("Cannot read %s: %s" % (entry.path, e.strerror))
            if link is not None and (os.path.isabs(link) or not _within(
                    os.path.realpath(entry.path), top)):
                if dereference:
                    try:
                        st = os.stat(entry.path)
                    except OSError:
                        raise Error("Cannot send %s: the link leads to %s, "
                                    "which is not there" % (entry.path,
                                                            link))
                    if stat.S_ISDIR(st.st_mode):
                        raise Error("Cannot send %s with --dereference: "
                                    "it leads to a directory, %s"
                                    % (entry.path, link))
                    link = None
                elif warn and entry.path not in (warned or ()):
                    if warned is not None:
                        warned.add(entry.path)
                    logger.warning(
                        "%s is a link to %s, outside the job directory: it "
                        "will lead elsewhere on the server, or nowhere "
                        "(--dereference sends what it leads to)",
                        entry.path, link)
            if link is None and not (stat.S_ISREG(st.st_mode) or
                                     stat.S_ISDIR(st.st_mode)):
                raise Error("Cannot send %s: it is a %s" % (
                    entry.path, _file_kind(st.st_mode)))
            yield name, entry.path, st, link
            if link is None and stat.S_ISDIR(st.st_mode):
                subdirectories.append((entry.path, name + '/'))
        for path, relative in subdirectories:
            for item in walk(path, relative):
                yield item

    return walk(directory, '')


def _file_kind(mode):
    """What a file that is not a regular file, directory or link is."""
    if stat.S_ISFIFO(mode):
        return 'fifo (named pipe)'
    if stat.S_ISSOCK(mode):
        return 'socket'
    return 'device'


def _size_text(size):
    """``size`` bytes, for people: 512 B, 3.2 MiB..."""
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            break
        size /= 1024.0
    return ('%d %s' if unit == 'B' else '%.1f %s') % (size, unit)


def _meter(progress, what):
    """The `_Meter` that ``progress`` asks for: None (false: no meter),
    one on stderr (True: redrawn in place on a terminal, else a line now
    and then; ``'lines'``: lines in any case), or one that calls
    ``progress(bytes done, total bytes or None)``.
    """
    if not progress:
        return None
    if callable(progress):
        return _Meter(what, callback=progress)
    return _Meter(what, lines=progress == 'lines' or not _isatty(sys.stderr))


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Meter(object):
    """Progress of a transfer on stderr: bytes done of the total, rate and
    time left, once it has lasted a second; redrawn in place, or (``lines``)
    a line every few seconds. Or a ``callback(done, total)`` for each
    piece.
    """

    def __init__(self, what, callback=None, lines=False):
        self.what = what
        self.callback = callback
        self.lines = lines
        self.total = None
        self.restart()

    def restart(self):
        self.bytes = 0
        self.start = time.monotonic()
        self.shown = None

    def add(self, count):
        self.bytes += count
        if self.callback is not None:
            self.callback(self.bytes, self.total)
            return
        now = time.monotonic()
        if now - self.start < 1:
            return
        if self.shown is None or \
                now - self.shown >= (5 if self.lines else 0.25):
            self.shown = now
            self.show(now)

    def show(self, now, last=False):
        elapsed = max(now - self.start, 1e-3)
        rate = self.bytes / elapsed
        text = '%s: %s' % (self.what, _size_text(self.bytes))
        if self.total:
            text += ' of %s (%d%%)' % (_size_text(self.total),
                                       min(100, 100 * self.bytes //
                                           self.total))
        text += ', %s/s' % _size_text(rate)
        if last:
            text += ', %s' % _format_duration(elapsed)
        elif self.total and rate > 0 and self.total > self.bytes:
            text += ', %s left' % _format_duration(
                (self.total - self.bytes) / rate)
        if self.lines:
            sys.stderr.write('tej: %s\n' % text)
        else:
            sys.stderr.write('\r\x1b[Ktej: %s%s' % (text, '\n' if last
                                                     else ''))
        sys.stderr.flush()

    def done(self):
        """The transfer ended: its last line, if it was shown at all."""
        if self.callback is None and self.shown is not None:
            self.show(time.monotonic(), last=True)
            self.shown = None

    def close(self):
        """The transfer stopped: end the line being redrawn."""
        if self.callback is None and self.shown is not None and \
                not self.lines:
            sys.stderr.write('\n')
            sys.stderr.flush()
        self.shown = None


class _Upload(object):
    """A job's directory as submit sends it: called with the pipe to the
    server, it writes the tar stream there as it makes it (no copy of the
    job), with the progress meter of ``progress`` (see `_meter`) when
    there is one. It may be called again (a call after the runtime was
    installed sends it again); `close` ends the meter.
    """

    def __init__(self, directory, excludes, dereference, compress,
                 progress):
        self.directory = directory
        self.excludes = excludes
        self.dereference = dereference
        self.compress = compress
        self.entries, self.warned = None, set()
        self.meter = _meter(progress, 'Uploading')
        if self.meter is not None:  # the total first, for the meter
            self.entries = list(_job_files(directory, excludes,
                                           dereference))
            self.meter.total = sum(
                st.st_size for _, _, st, link in self.entries
                if link is None and stat.S_ISREG(st.st_mode))

    def __call__(self, pipe):
        meter = self.meter
        if meter is not None:
            meter.restart()  # a try before the runtime was there
        _write_tar(self.directory, pipe, self.excludes, self.dereference,
                   meter and meter.add, self.compress, self.entries,
                   self.warned)
        if meter is not None:
            meter.done()

    def close(self):
        if self.meter is not None:
            self.meter.close()


def _download_targets(files, directory, destination):
    """What a download asks for (see `RemoteQueue.download`): return the
    normalized paths of ``files`` (a path or a list; each once), and
    ``{path: local path}``, in ``directory`` or, for one file, as
    ``destination`` (when it is not None). Raise `ValueError` for paths that
    overlap or would land on the same name, or a ``destination`` whose
    directory is not there.
    """
    if isinstance(files, str):
        files = [files]
    # one file asked for twice is fetched once
    files = list(dict.fromkeys(_normalize_member(f, ValueError, top=True)
                               for f in files))
    for inner in files:
        for outer in files:
            if inner != outer and (outer == '' or
                                   inner.startswith(outer + '/')):
                raise ValueError("%s is inside %s: ask for one of them"
                                 % (inner, outer or '.'))
    if not files:
        return files, {}
    if destination is not None:
        if len(files) != 1:
            raise ValueError("destination is for one file; use "
                             "directory for several")
        destination = str(destination)
        _need_parent(destination, 'destination')
        return files, {files[0]: destination}
    targets = {f: os.path.join(directory, f.rsplit('/', 1)[-1])
               if f else directory for f in files}
    if len(set(targets.values())) != len(targets):
        raise ValueError("Several files have the same name: give "
                         "their parent directory instead")
    return files, targets


#: os.open's flag for no newline translation (Windows; 0 elsewhere).
_O_BINARY = getattr(os, 'O_BINARY', 0)


class _TarSink(object):
    """Where an archive is written as it is made: small writes gathered,
    a big file's data sent by the kernel (sendfile) where it can, gzipped
    when asked; ``progress(n)`` is told of each ``n`` bytes of data.
    """

    def __init__(self, fileobj, compress=False, progress=None):
        import zlib
        self.fileobj = fileobj
        fileobj.flush()
        try:
            self.fd = fileobj.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None
        self.zip = zlib.compressobj(6, zlib.DEFLATED, 31) if compress \
            else None
        self.buffer = bytearray()
        self.progress = progress or (lambda n: None)

    def write(self, data):
        if self.zip is not None:
            data = self.zip.compress(data)
        self.buffer += data
        if len(self.buffer) >= 1 << 18:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        if self.fd is None:
            self.fileobj.write(self.buffer)
        else:
            view = memoryview(self.buffer)
            while view:
                view = view[os.write(self.fd, view):]
            view.release()
        self.buffer = bytearray()

    def close(self):
        if self.zip is not None:
            self.buffer += self.zip.flush()
        self.flush()
        self.fileobj.flush()

    def copy(self, fd, size, path):
        """Write ``size`` bytes of the file open as ``fd``; raise `Error`
        if it has fewer (it shrank as it was read).
        """
        done = 0
        if self.zip is None and self.fd is not None and size >= 1 << 16:
            self.flush()
            try:
                while done < size:
                    sent = os.sendfile(self.fd, fd, done,
                                       min(size - done, 1 << 23))
                    if not sent:
                        break
                    done += sent
                    self.progress(sent)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS,
                                   errno.ENOTSUP) or done:
                    raise
            except AttributeError:  # no os.sendfile
                pass
        if not hasattr(os, 'pread'):  # Windows
            os.lseek(fd, done, os.SEEK_SET)
        while done < size:
            if hasattr(os, 'pread'):
                data = os.pread(fd, min(size - done, 1 << 20), done)
            else:
                data = os.read(fd, min(size - done, 1 << 20))
            if not data:
                break
            self.write(data)
            done += len(data)
            self.progress(len(data))
        if done < size:
            raise Error("%s changed as it was read: it has %d bytes, not %d"
                        % (path, done, size))


def _tar_header(info):
    """``info.tobuf(GNU_FORMAT)``, made at once when it is one block (a
    name and link target of 100 bytes at most, sizes and times in 11 octal
    digits): a small job's files cost no more here than in tar.
    """
    import tarfile
    name = info.name
    if info.type == tarfile.DIRTYPE and not name.endswith('/'):
        name += '/'
    name = name.encode('utf-8', 'surrogateescape')
    link = info.linkname.encode('utf-8', 'surrogateescape')
    if len(name) > 100 or len(link) > 100 or not \
            0 <= info.size < 8 ** 11 or not 0 <= info.mtime < 8 ** 11:
        return info.tobuf(tarfile.GNU_FORMAT, 'utf-8', 'surrogateescape')
    block = b''.join([
        name.ljust(100, b'\0'), b'%07o\0' % info.mode, b'0000000\0' * 2,
        b'%011o\0' % info.size, b'%011o\0' % info.mtime, b' ' * 8,
        info.type, link.ljust(100, b'\0'), tarfile.GNU_MAGIC,
        b'\0' * 247])  # no owner names, device numbers nor prefix
    return block[:148] + b'%06o\0 ' % sum(block) + block[156:]


def _write_tar(directory, fileobj, excludes=(), dereference=False,
               progress=None, compress=False, entries=None, warned=None):
    """Write ``directory`` to ``fileobj`` as a tar archive, as it is read:
    what _job_files yields (or ``entries``, a list of it), each file
    stat'ed once, owners left out, a second name of a file as a hard link
    to the first; gzipped with ``compress``; ``progress(n)`` told of the
    data's bytes as they go; ``warned``: see _job_files. Raise `Error`
    for what cannot be sent.
    """
    import tarfile
    sink = _TarSink(fileobj, compress, progress)
    seen = {}  # (device, inode) -> the first name of a hard-linked file
    if entries is None:
        entries = _job_files(directory, excludes, dereference,
                             warned=warned)
    for relative, path, st, link in entries:
        info = tarfile.TarInfo(relative)
        info.mode = st.st_mode & 0o7777
        info.mtime = int(st.st_mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = ''
        regular = False
        if link is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = link
        elif stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
            info.type = tarfile.LNKTYPE
            info.linkname = seen[st.st_dev, st.st_ino]
        else:
            if st.st_nlink > 1:
                seen[st.st_dev, st.st_ino] = relative
            info.size = st.st_size
            regular = True
        if regular:
            try:
                # (a link --dereference sends is followed; nothing else)
                fd = os.open(path, os.O_RDONLY | _O_BINARY | (
                    0 if dereference else getattr(os, 'O_NOFOLLOW', 0)))
            except OSError as e:
                raise Error("Cannot read %s: %s" % (path, e.strerror))
            try:
                sink.write(_tar_header(info))
                sink.copy(fd, st.st_size, path)
            except OSError as e:
                if isinstance(e, (BrokenPipeError, ConnectionResetError)):
                    raise
                raise Error("Cannot read %s: %s" % (path, e.strerror))
            finally:
                os.close(fd)
            if st.st_size % tarfile.BLOCKSIZE:
                sink.write(tarfile.NUL * (tarfile.BLOCKSIZE -
                                          st.st_size % tarfile.BLOCKSIZE))
        else:
            sink.write(_tar_header(info))
    # the last member says that the stream arrived whole (_WHOLE)
    info = tarfile.TarInfo(_WHOLE)
    info.mode, info.size, info.mtime = 0o600, len(_WHOLE_TEXT), 0
    info.uname = info.gname = ''
    sink.write(_tar_header(info))
    sink.write(_WHOLE_TEXT.ljust(tarfile.BLOCKSIZE, tarfile.NUL))
    # the end: two zero blocks, in a whole record
    sink.write(tarfile.NUL * tarfile.RECORDSIZE)
    sink.close()


#: The end of the name of a file being downloaded (see _part_name).
_PART = '.tej-part'

#: A part's name (_part_name): no output may have one (_check_output_name).
_PART_NAME = re.compile(r'\.[0-9a-f]{32}\.[0-9]{1,20}--?[0-9]{1,20}'
                        + re.escape(_PART) + r'\Z')


def _part_prefix(local):
    """The start of the names of ``local``'s parts: ``.HASH.``, HASH the
    first 32 hex digits of the SHA-256 of its name.
    """
    import hashlib
    head, base = os.path.split(local)
    digest = hashlib.sha256(base.encode('utf-8', 'surrogateescape'))
    return head, '.%s.' % digest.hexdigest()[:32]


def _part_name(local, size, mtime):
    """Where a file is written as it comes, ``.HASH.SIZE-MTIME.tej-part``
    beside it (_part_prefix; the server's size and time: a download that
    resumes finds it there, for the same file), renamed to ``local`` when
    complete. Of one length whatever the file's name (80 bytes at most:
    within any NAME_MAX), and of a form no output may take
    (_check_output_name).
    """
    head, prefix = _part_prefix(local)
    return os.path.join(head, '%s%d-%d%s' % (prefix, size, mtime, _PART))


def _check_output_name(name):
    """Raise `Error` for a member of a download whose name is of a
    part's form (_PART_NAME): it could be taken for one, or be written
    over.
    """
    if _PART_NAME.match(name.rsplit('/', 1)[-1]):
        raise Error("Not downloading %s: names of this form are tej's, for "
                    "the files it is writing" % name)


def _leftovers(local):
    """Is there something at ``local``, or a part of it (a download to
    resume)?
    """
    if os.path.lexists(local):
        return True
    return bool(_parts_of(local, {}))


def _parts_of(local, listings):
    """The part files of ``local`` there are (of any size and time);
    ``listings`` caches each directory's names.
    """
    head, prefix = _part_prefix(local)
    if head not in listings:
        try:
            listings[head] = [n for n in os.listdir(head or '.')
                              if _PART_NAME.match(n)]
        except OSError:
            listings[head] = []
    return [os.path.join(head, n) for n in listings[head]
            if n.startswith(prefix)]


def _need_parent(path, what):
    """Raise `ValueError` unless the directory that would hold ``path``
    (a download's ``what``) is there: only the last part of a path is
    made.
    """
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError("No such directory: %s (the %s %s is made only in "
                         "a directory that is there)" % (
                             os.path.dirname(path) or parent, what, path))


#: The bits of each byte reversed: cksum's CRC is zlib's, bit-reversed.
_REVERSED = bytes(int('{:08b}'.format(i)[::-1], 2) for i in range(256))


class _Cksum(object):
    """The CRC that POSIX ``cksum`` prints, at zlib's speed: cksum's CRC
    is zlib's crc32 of the bit-reversed bytes, started at 0 and
    bit-reversed at the end (the length follows the data, as cksum has
    it).
    """

    def __init__(self):
        self.crc = 0xFFFFFFFF  # zlib's form of a register at 0
        self.size = 0

    def update(self, data):
        import zlib
        self.crc = zlib.crc32(bytes(data).translate(_REVERSED), self.crc)
        self.size += len(data)

    def value(self):
        import zlib
        size, tail = self.size, bytearray()
        while size:
            tail.append(size & 0xff)
            size >>= 8
        crc = zlib.crc32(bytes(tail).translate(_REVERSED), self.crc)
        return int('{:032b}'.format(crc ^ 0xFFFFFFFF)[::-1], 2) ^ 0xFFFFFFFF


class _Part(object):
    """A file cut short by a download: the first ``offset`` bytes of its
    ``size`` are in ``part``, to go on with.
    """

    def __init__(self, name, local, part, size, offset, mtime, mode, seen):
        self.name, self.local, self.part = name, local, part
        self.size, self.offset, self.mtime, self.mode = \
            size, offset, mtime, mode
        self.seen = seen  # its device and inode, as the plan saw it


class _Plan(object):
    """What a download fetches into ``targets`` (member path -> local
    path): ``paths`` whole, and ``parts`` (`_Part`). From ``entries``
    (_parse_listing), what is there already is left out: files with the
    server's size and time, and the beginning of those cut short.
    """

    def __init__(self, targets, recursive, paths, entries=None):
        self.targets = targets
        self.recursive = recursive
        self.parts = []
        self.paths = sorted(targets) if paths is None else list(paths)
        if entries is None:
            return
        place = _placer({n: os.path.abspath(l) for n, l in targets.items()})
        parents = set(name.rsplit('/', 1)[0] if '/' in name else ''
                      for _, _, _, name in entries if name)
        whole, kept = [], 0
        mask = _umask()
        listings = {}  # directory -> its names, for _parts_of
        for mode, size, mtime, name in entries:
            _check_output_name(name)
            top, local = place(name)
            if top is None:
                raise Error("The server listed %r, which was not asked for"
                            % name)
            if not recursive and name != top:
                continue
            if stat.S_ISDIR(mode):
                if name not in parents:  # empty: nothing makes it
                    whole.append(name)
                continue
            if stat.S_ISREG(mode):
                try:
                    st = os.lstat(local)
                except OSError:
                    st = None
                if st is not None and stat.S_ISREG(st.st_mode) and \
                        st.st_size == size and int(st.st_mtime) == mtime:
                    kept += 1
                    continue
                part = _part_name(local, size, mtime)
                for stale in _parts_of(local, listings):
                    if stale != part:  # of another version of the file
                        _unlink_if_there(stale)
                try:
                    st = os.lstat(part)
                except OSError:
                    st = None
                if st is not None and _ours(st) and 0 < st.st_size <= size:
                    self.parts.append(_Part(
                        name, local, part, size, st.st_size, mtime,
                        (mode & 0o777 & ~mask) | 0o600,
                        (st.st_dev, st.st_ino)))
                    continue
            whole.append(name)
        if not kept and not self.parts:
            return  # nothing to leave out: all of it, as asked
        if sum(len(name) + 3 for name in whole) > _MAX_ANSWER:
            logger.debug("not resuming: %d files to name", len(whole))
            self.parts = []
            return
        logger.info("Resuming: %d file(s) there already, %d to go on "
                    "with, %d to fetch", kept, len(self.parts), len(whole))
        self.paths = whole


def _receive(stdout, plan, meter):
    """Read a download's stream (after "stream=download") into place, as
    ``plan`` says; return the paths that changed on the server since
    their part was written, to fetch again whole.
    """
    again = []
    kind, value, line = _read_download_frame(stdout)
    if kind == 'size':
        if meter is not None and value is not None:
            meter.total = value
        kind, value, line = _read_download_frame(stdout)
    for index, part in enumerate(plan.parts):
        if kind != 'part' or value[0] != index:
            raise _broken_download("a bad line %r" % line[:80])
        if value[1] is None:  # changed
            held = _HeldPart.claim(part.part, part.seen, 0)
            if held is not None:
                held.remove()
                held.close()
            again.append(part.name)
            kind, value, line = _read_download_frame(stdout)
            continue
        length, tool = value[1:]
        if length != part.size - part.offset:
            raise _broken_download("a bad line %r" % line[:80])
        held = _HeldPart.claim(part.part, part.seen, part.offset)
        if held is None:  # gone, or not the file the plan saw: whole
            logger.info("%s is no longer the part it was: fetching %s "
                        "whole", part.part, part.local)
            _skip(stdout, length, part.name)
            again.append(part.name)
        try:
            crc = held and _receive_part(stdout, held, part, meter, tool)
            kind, value, line = _read_download_frame(stdout)
            if kind != 'sum':
                raise _broken_download("a bad line %r" % line[:80])
            if held is None:
                pass
            elif value == str(crc):  # cksum: a number; md5sum: hex
                held.finish(part.local, part.mode, part.mtime)
            else:
                logger.warning("%s had changed on the server: fetching "
                               "it again, whole", part.local)
                held.remove()
                again.append(part.name)
        finally:
            if held is not None:
                held.close()
        kind, value, line = _read_download_frame(stdout)
    if kind == 'tar':
        _extract(stdout, plan.targets, plan.recursive, meter)
    elif kind != 'end':
        raise _broken_download("a bad line %r" % line[:80])
    return again


def _receive_part(stdout, held, part, meter, tool):
    """Append the rest of a part (held: a `_HeldPart`), from the stream;
    return what ``tool`` (cksum or md5sum) says of the whole file.
    """
    if tool == 'cksum':
        crc = _Cksum()
    else:
        import hashlib
        crc = hashlib.md5()
    with os.fdopen(held.fd, 'rb', closefd=False) as held_part:
        left = part.offset
        while left:
            data = held_part.read(min(left, 1 << 20))
            if not data:
                raise Error("%s shrank" % part.part)
            crc.update(data)
            left -= len(data)
    out = _FileWriter(held.fd, part.local, False)
    out.truncate(part.offset)
    offset = part.offset
    while offset < part.size:
        data = stdout.read(min(part.size - offset, 1 << 20))
        if not data:
            raise _broken_download("it ended in %s" % part.name)
        out.write(offset, data)
        crc.update(data)
        offset += len(data)
        if meter is not None:
            meter.add(len(data))
    return crc.value() if tool == 'cksum' else crc.hexdigest()


def _skip(stdout, length, name):
    """Read ``length`` bytes of the stream (of ``name``) and drop them."""
    while length:
        data = stdout.read(min(length, 1 << 20))
        if not data:
            raise _broken_download("it ended in %s" % name)
        length -= len(data)


def _ours(st):
    """Is ``st`` (an lstat or fstat) that of a part tej may go on with: a
    regular file of this user's, of one name (no hard link elsewhere)?
    """
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and \
        (not hasattr(os, 'getuid') or st.st_uid == os.getuid())


class _HeldPart(object):
    """A part file, open (never through a link) and locked: a second
    download of the same file into the same place waits for the first,
    which then has renamed it away (the second writes it anew, or fetches
    it whole). The lock is flock's; without fcntl (Windows), a file
    ``PART.lock`` made with O_EXCL, there while the part is written: a
    second download then stops with an error. `finish` renames it into
    place; `remove` removes it; `close` lets it go.
    """

    def __init__(self, path, fd, lock):
        self.path, self.fd, self.lock = path, fd, lock

    @classmethod
    def claim(cls, path, seen=None, size=0):
        """Open and lock the part ``path``: with ``seen`` (device, inode),
        the one a plan saw, at least ``size`` bytes long (else return
        None: it is gone, or another); without, a new empty one (what was
        there is taken if it is a part of ours, else removed).
        """
        try:
            import fcntl
        except ImportError:  # Windows
            fcntl = None
        flags = os.O_RDWR | _O_BINARY | getattr(os, 'O_NOFOLLOW', 0)
        for attempt in range(100):
            lock = None
            if fcntl is None:
                lock = path + '.lock'
                try:
                    os.close(os.open(lock, os.O_WRONLY | os.O_CREAT |
                                     os.O_EXCL | _O_BINARY, 0o600))
                except FileExistsError:
                    raise Error("%s is being written by another download "
                                "(remove %s if none is)" % (path, lock))
            try:
                fd = os.open(path, flags | (os.O_CREAT if seen is None
                                            else 0), 0o600)
            except OSError as e:
                if lock is not None:
                    _unlink_if_there(lock)
                gone = isinstance(e, FileNotFoundError)
                if not (gone or os.path.islink(path)):
                    raise
                if seen is not None:
                    return None
                _unlink_if_there(path)  # a link: never followed
                continue
            held = cls(path, fd, lock)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # another's: wait
                st = os.fstat(fd)
                if not held.there(st):  # renamed away while we waited
                    held.close()
                    if seen is not None:
                        return None
                    continue
                if seen is not None:
                    if (st.st_dev, st.st_ino) != seen or not _ours(st) or \
                            st.st_size < size:
                        held.close()
                        return None
                    return held
                if not _ours(st):
                    held.remove()
                    held.close()
                    continue
                os.ftruncate(fd, 0)
                return held
            except BaseException:
                held.close()
                raise
        raise Error("Cannot write %s: it keeps being replaced" % path)

    def there(self, st=None):
        """Is the part still at its path (``st``: its fstat)?"""
        st = st or os.fstat(self.fd)
        try:
            there = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino)

    def finish(self, local, mode, mtime):
        """Give the part ``mode`` and ``mtime``, through its descriptor,
        and rename it to ``local``.
        """
        if os.chmod in os.supports_fd:
            os.chmod(self.fd, mode)
        if os.utime in os.supports_fd:
            os.utime(self.fd, (mtime, mtime))
        if self.lock is not None:  # Windows renames no open file
            os.close(self.fd)
            self.fd = None
            os.chmod(self.path, mode)
            os.utime(self.path, (mtime, mtime))
        elif not self.there():
            raise Error("%s was replaced as it was written" % self.path)
        os.rename(self.path, local)

    def remove(self):
        """Remove the part, if it is still the one held."""
        if self.lock is not None or self.there():
            _unlink_if_there(self.path)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)  # the lock with it
            self.fd = None
        if self.lock is not None:
            _unlink_if_there(self.lock)
            self.lock = None


def _unlink_if_there(path):
    """Remove the file ``path``, if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _umask():
    """The process's umask (reading it means setting it: set it back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _write_member(tar, member, local, mode, meter=None):
    """Write a regular member's data to ``local`` as it comes: into its
    part file beside it (_part_name), renamed into place when complete,
    with the member's time (what was at ``local``, a link included, is
    replaced, never written through). A part cut short by an error is
    kept, for a download that resumes. Runs of zeros, and a sparse
    member's holes, are holes on disk, not written.
    """
    # unbuffered: a sparse member's data blocks are read at their offsets,
    # in order (the stream only goes forwards), and its holes skipped
    source = tar.extractfile(member).raw
    blocks = member.sparse or [(0, member.size)]
    part = _part_name(local, member.size, int(member.mtime))
    held = _HeldPart.claim(part)  # never written through: a file of ours
    fd = held.fd
    # a big file is written by a thread while the next piece comes
    out = _FileWriter(fd, local, member.size >= 1 << 22)
    try:
        try:
            for offset, size in blocks:
                source.seek(offset)
                while size > 0:
                    data = source.read(min(size, 1 << 20))
                    if not data:
                        raise _broken_download("it ended in %s"
                                               % member.name)
                    size -= len(data)
                    if meter is not None:
                        meter.add(len(data))
                    if not _zeros(data):  # zeros are a hole
                        out.write(offset, data)
                    offset += len(data)
        finally:
            out.close()
        out.truncate(member.size)
        try:
            held.finish(local, mode, member.mtime)
        except OSError as e:  # a directory there: nothing to resume
            held.remove()
            raise Error("Cannot write %s: %s" % (local, e.strerror))
    except BaseException:
        # what came of a plain member is a beginning to go on from;
        # nothing else is
        if held.fd is not None and (member.sparse or
                                    os.fstat(held.fd).st_size == 0):
            held.remove()
        raise
    finally:
        held.close()


def _zeros(data):
    """Is ``data`` all zeros? Counting them costs 0.3 s a GiB: its ends
    and middle say no at once for most data.
    """
    return not data or (data[0] == 0 and data[-1] == 0 and
                        data[len(data) // 2] == 0 and
                        data.count(0) == len(data))


class _FileWriter(object):
    """Writes pieces of a file, open as ``fd``, at their offsets: in a
    thread of its own when ``threaded`` (the disk and the network then work
    at once, a few MiB apart at most), else at once. `close` waits for the
    thread. A write that failed (a disk full or failing) makes `write`,
    `close` and `truncate` raise `Error`, which names ``local``, the file
    that is being written.
    """

    def __init__(self, fd, local, threaded):
        self.fd, self.local = fd, local
        self.error = []
        self.thread = None
        if threaded and hasattr(os, 'pwrite'):
            import queue
            import threading
            self.queue = queue.Queue(8)
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _put(self, offset, data):
        if hasattr(os, 'pwrite'):
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        else:
            os.lseek(self.fd, offset, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]

    def _run(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if not self.error:
                try:
                    self._put(*item)
                except OSError as e:
                    self.error.append(e)

    def _check(self):
        if self.error:
            e = self.error[0]
            raise Error("Cannot write %s: %s" % (self.local, e.strerror or e))

    def write(self, offset, data):
        self._check()
        if self.thread is not None:
            self.queue.put((offset, data))
            return
        try:
            self._put(offset, data)
        except OSError as e:
            self.error.append(e)
            self._check()

    def truncate(self, size):
        """Make the file ``size`` bytes long (once closed: zeros at its
        end, never written, are a hole).
        """
        try:
            os.ftruncate(self.fd, size)
        except OSError as e:
            self.error.append(e)
        self._check()

    def close(self):
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        self._check()


def _bounded_tarinfo():
    """A TarInfo class that refuses a long name or a pax header of more
    than _MAX_TAR_HEADER bytes: tarfile reads them whole, in memory. Its
    ``ended`` says why the archive ended: True for its end (a block of
    zeros), False for anything else (the stream ended, or garbage), which
    tarfile takes silently for the end.
    """
    import tarfile

    class BoundedInfo(tarfile.TarInfo):
        ended = [None]

        @classmethod
        def fromtarfile(cls, tar):
            try:
                return super(BoundedInfo, cls).fromtarfile(tar)
            except tarfile.EOFHeaderError:
                cls.ended[0] = True
                raise
            except tarfile.HeaderError:
                cls.ended[0] = False
                raise

        def _proc_gnulong(self, tar):
            self._check_size()
            return super(BoundedInfo, self)._proc_gnulong(tar)

        def _proc_pax(self, tar):
            self._check_size()
            return super(BoundedInfo, self)._proc_pax(tar)

        def _check_size(self):
            if self.size > _MAX_TAR_HEADER:
                raise Error("The server sent a tar header of %d bytes"
                            % self.size)
    return BoundedInfo


def _placer(targets):
    """``place(member path)``: the target (of ``targets``, member path ->
    absolute local path; ``''`` is the job's whole directory) that holds
    it, and its local path; or None, None.
    """
    def place(name):
        for top, top_local in targets.items():
            if top == '':
                return top, os.path.join(top_local, name) if name \
                    else top_local
            if name == top or name.startswith(top + '/'):
                return top, top_local + name[len(top):]
        return None, None
    return place


def _extract(stream, targets, recursive, meter=None):
    """Extract a tar stream where ``targets`` says (member path -> local
    path), safely, for an archive that may come from a hostile server:

    - each member goes under its own target: no absolute names, no "..",
      nothing that was not asked for, no devices or fifos;
    - nothing is written through a link: a directory above a member must
      not be a link on disk, nor one the archive holds; a file or link at
      a member's place is replaced (a directory is not);
    - the archive's symbolic links are made last, each only if, resolved
      on disk through everything made before it, it stays within its
      target; once all are made, every link under each target that
      leads out (one that a later one led out, or one that was there) is
      removed, until none does. A link that leads out is skipped, or
      removed, with a warning;
    - a hard link copies the file at its source's place in the
      download (or, to a symbolic link, is that link again);
    - long names and pax headers are bounded (_MAX_TAR_HEADER);
    - modes are the server's permission bits less the client's umask, the
      owner's read and write bits always, never set-id or sticky bits;
    - files are copied as they come, never held in memory.
    """
    import shutil
    import tarfile

    targets = {name: os.path.abspath(local)
               for name, local in targets.items()}
    mask = _umask()
    links = {}  # local path -> (link target, local target): made at the end
    place = _placer(targets)
    whole = '' in targets  # "." was asked for: members are "." and below

    def leads_out(local, target, top_local):
        """Does a link at ``local`` to ``target`` lead out of
        ``top_local``, as things are on disk now? A link that goes up
        through something that is not there is taken to: where it leads
        would change with what is made there later.
        """
        path = os.path.join(os.path.dirname(local), target)
        if os.path.isabs(target) or \
                '..' in target.split('/') and not os.path.exists(path):
            return True
        return not _within(os.path.realpath(path),
                           os.path.realpath(top_local))

    def parents(local, top_local):
        """Create the directories between ``top_local`` and ``local``,
        refusing links on disk, and the archive's own links but those that
        lead out (skipped: a directory takes their place).
        """
        path = top_local
        for part in [''] + os.path.relpath(local, top_local).split('/')[:-1]:
            path = os.path.normpath(os.path.join(path, part))
            if path in links:
                target = links.pop(path)[0]
                if not leads_out(path, target, top_local):
                    raise Error("Not writing %s: the server sent %s as a "
                                "link" % (local, path))
                logger.warning("Not creating link %s -> %s: it leads "
                               "outside %s", path, target, top_local)
            if path != top_local and os.path.islink(path):
                raise Error("Not writing %s: %s is a link" % (local, path))
        os.makedirs(os.path.dirname(local), exist_ok=True)

    def make_way(local):
        """Remove a file or link at ``local`` (a directory stays)."""
        if os.path.lexists(local) and not (os.path.isdir(local) and
                                           not os.path.islink(local)):
            os.unlink(local)

    info = _bounded_tarinfo()
    try:
        # read 1 MiB at a time (tarfile's default is 10 KiB)
        tar = tarfile.open(fileobj=stream, mode='r|', encoding='utf-8',
                           errors='surrogateescape', tarinfo=info,
                           bufsize=1 << 20)
        for member in tar:
            name = _normalize_member(member.name, top=whole)
            _check_output_name(name)
            # os.utime takes no such time (tar's base-256, pax's "1e400")
            if not -_MAX_EPOCH <= member.mtime <= _MAX_EPOCH:
                raise Error("The server sent %r with the time %.20s"
                            % (member.name, member.mtime))
            top, local = place(name)
            if top is None:
                raise Error("The server sent %r, which was not asked for"
                            % member.name)
            if not recursive and name != top:
                continue
            top_local = targets[top]
            parents(local, top_local)
            links.pop(local, None)  # the last member of a name stays
            if member.isdir():
                if os.path.islink(local):
                    os.unlink(local)
                os.makedirs(local, exist_ok=True)
                os.chmod(local, (member.mode & 0o777 & ~mask) | 0o700)
            elif member.isfile():
                _write_member(tar, member, local,
                              (member.mode & 0o777 & ~mask) | 0o600, meter)
            elif member.issym():
                links[local] = (member.linkname, top_local)
            elif member.islnk():
                source_top, source = place(
                    _normalize_member(member.linkname, top=whole))
                if source_top is None:
                    raise Error("The server sent a hard link to %r, which "
                                "was not asked for" % member.linkname)
                if source == local:  # a file asked for twice
                    continue
                if source in links:  # a second name of a symbolic link
                    links[local] = (links[source][0], top_local)
                    continue
                parents(source, targets[source_top])
                if os.path.islink(source) or not os.path.isfile(source):
                    raise Error("Bad hard link %s -> %s"
                                % (local, member.linkname))
                make_way(local)
                shutil.copy2(source, local)
            else:
                logger.warning("Not creating %s: devices and fifos are not "
                               "downloaded", local)
        tar.close()
    except tarfile.TarError as e:
        raise _broken_download("a broken archive: %s" % e)
    if not info.ended[0]:
        raise _broken_download("the archive ended early")

    made = []
    for local, (target, top_local) in links.items():
        if leads_out(local, target, top_local):
            logger.warning("Not creating link %s -> %s: it leads outside "
                           "%s", local, target, top_local)
            continue
        if os.path.isdir(local) and not os.path.islink(local):
            logger.warning("Not creating link %s -> %s: a directory is "
                           "there", local, target)
            continue
        make_way(local)
        os.symlink(target, local)
        made.append((local, target, top_local))
    # where a link leads depends on the links made after it, and on those
    # that were there (an earlier download's: "a -> d/../.." inside, until
    # this one made "d -> ."): check every link under each target, again
    # after each removal, until none leads out
    while True:
        out = [link for link in made + _links_under(targets.values())
               if leads_out(*link)]
        if not out:
            break
        for link in set(out):
            local, target, top_local = link
            if link in made:
                logger.warning("Not creating link %s -> %s: it leads "
                               "outside %s", local, target, top_local)
                made.remove(link)
            else:
                logger.warning("Removing link %s -> %s: it leads outside "
                               "%s now", local, target, top_local)
            _unlink_if_there(local)


def _links_under(tops):
    """The symbolic links below each directory of ``tops`` (not through
    links): ``(path, link target, top)``.
    """
    found = []
    for top in set(tops):
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(root, name)
                try:
                    found.append((path, os.readlink(path), top))
                except OSError:  # not a link, or no longer there
                    pass
    return found


# ===========================================================================
# Queue API
# ===========================================================================

class ServerLogger(object):
    """Receives what the server writes on stderr during one call.

    `append` is called with bytes, `done` at the end of the call, which
    passes the text to `message`; override `message` (or return another
    object from `RemoteQueue.server_logger`) to route or hide it.
    """

    logger = _Logger('tej.server', '')

    def __init__(self):
        self.data = []

    def append(self, data):
        """Collect a chunk of the server's stderr (bytes)."""
        self.data.append(data)

    def done(self):
        """The call ended: pass what was collected to `message`, its
        control characters but tab and newline written ``\\xNN``
        (`_harmless`): the server's text may not set the terminal's title,
        write its clipboard or clear its screen.
        """
        if self.data:
            text = b''.join(self.data).decode('utf-8', 'replace').rstrip()
            if text:
                self.message(_harmless(text.replace('\r\n', '\n')))
        self.data = []

    def message(self, data):
        """Show the server's text; logs it at INFO on ``tej.server``."""
        self.logger.info(data)


class _Installer(object):
    """Negotiates and installs the runtime of one queue: which installed
    versions a call accepts, which runtime to install when the bootstrap
    finds none, and the call that installs it. Used by every call (through
    `_Calls`) and by `RemoteQueue.setup`.
    """

    def __init__(self, queue, where, setup_runtime, need_runtime):
        self.queue = queue
        self.where = where  # the destination, for messages
        self.setup_runtime = setup_runtime
        self.need_runtime = need_runtime

    def versions(self):
        """The versions a call accepts, for the bootstrap's VERSIONS."""
        names = self.need_runtime or _RUNTIMES
        return ' '.join(sorted(_runtime_version(n) for n in names))

    def choose(self, detected):
        """The runtime to set a queue up with: setup_runtime, else the one
        the server has (``detected``), if need_runtime allows it.
        """
        name = self.setup_runtime or detected
        if name not in _RUNTIMES:
            name = 'default'
        if self.need_runtime and name not in self.need_runtime:
            name = sorted(self.need_runtime)[0]
        return name

    def to_install(self, lines, create):
        """The bootstrap found no usable runtime (RC_NEED_RUNTIME, its
        answer's ``lines``): return the name of the runtime to install, or
        raise `QueueDoesntExist` (there is no queue and ``create`` is
        false) or `QueueExists` (the queue's runtime is not acceptable).
        """
        missing, installed, detected = _parse_need_runtime(lines)
        if missing:
            if not create:
                raise QueueDoesntExist("There is no queue at %s on %s" % (
                    self.queue, self.where))
            return self.choose(detected)
        if self.need_runtime and installed not in self.need_runtime:
            raise QueueExists(
                "The queue at %s uses the runtime %s, not %s" % (
                    self.queue, installed or 'unknown',
                    ' or '.join(sorted(self.need_runtime))))
        if installed is not None and installed not in _RUNTIMES:
            raise QueueExists(
                "The queue at %s uses the runtime %s, which this tej does "
                "not know (tej %s)" % (self.queue, installed, __version__))
        return installed or self.setup_runtime or 'default'

    def install(self, runtime, mode, force=False, links=(), then=()):
        """The verb, arguments and stdin that install ``runtime`` (pushed
        on stdin, ahead of what the verb ``then`` reads) and run ``then``
        after it. ``mode``: see _install in common.sh.
        """
        if self.need_runtime and runtime not in self.need_runtime:
            raise ValueError("Runtime %s is not one of %s" % (
                runtime, ', '.join(sorted(self.need_runtime))))
        script = _runtime_script(runtime).encode('utf-8')
        links = list(links)
        args = [str(len(script)), _runtime_version(runtime), mode,
                '1' if force else '0', str(len(links))] + links + list(then)
        return '_install', args, script


class _Calls(object):
    """Runs the runtime's verbs on a queue: the bootstrap's arguments, the
    runtime pushed when it is missing or outdated, the answer split, and
    exit codes mapped to exceptions (`_runtime_error`). ``server_logger``
    makes the `ServerLogger` of one call.
    """

    def __init__(self, transport, installer, server_logger, timeout):
        self.transport = transport
        self.installer = installer
        self.server_logger = server_logger
        self.timeout = timeout

    def argv(self, verb, args=()):
        """The bootstrap's arguments for ``verb``; -v says the call."""
        logger.log(_VERBOSE, "%s%s on %s", verb.lstrip('_'),
                   ' ' + args[0] if args and verb[0] != '_' else '',
                   self.transport.name)
        return [self.installer.queue, self.installer.versions(), verb] + \
            list(args)

    def run(self, verb, args=(), stdin=None, timeout=None):
        """Run a verb once; return (exit code, stdout, stderr)."""
        return self.transport.run(self.argv(verb, args), stdin,
                                  timeout=timeout)

    def call(self, verb, args=(), stdin=None, create=False, transfer=False,
             ok=(_RC_OK,)):
        """Run a verb of the runtime. When the runtime is missing or
        outdated, push it and run the verb again in the same call. Return
        the answer's lines; raise the error that the exit status means
        (unless it is in ``ok``). A ``transfer`` has no overall timeout.
        """
        timeout = None if transfer else self.timeout
        code, out, err = self.run(verb, args, stdin, timeout)
        if code == _RC_NEED_RUNTIME:
            runtime = self.installer.to_install(_split_answer(out), create)
            logger.info("Installing the %s runtime in %s on %s", runtime,
                        self.installer.queue, self.installer.where)
            install, args, script = self.installer.install(
                runtime, 'auto', then=[verb] + list(args))
            if stdin is None:
                code, out, err = self.run(install, args, script, timeout)
            else:  # the runtime goes ahead of the verb's own input
                code, out, err = self.run(install, args,
                                          _prepend(script, stdin), timeout)
            if code == _RC_NEED_RUNTIME:
                raise RemoteCommandFailure(
                    "The runtime was installed but the server still asks "
                    "for it", command=verb, ret=code)
        return self.answer(verb, code, out, err, ok)

    def answer(self, verb, code, out, err, ok=(_RC_OK,)):
        """The lines of an answer whose exit status is in ``ok``, the
        server's messages logged; else raise the error for it.
        """
        if code not in ok:
            raise _runtime_error(verb, code, err)
        self.log_server(err)
        return _split_answer(out)

    def log_server(self, err):
        if err:
            server = self.server_logger()
            server.append(err)
            server.done()

    def install(self, runtime, mode, force=False, links=()):
        """Install ``runtime`` (see `_Installer.install`), alone."""
        install, args, script = self.installer.install(runtime, mode, force,
                                                       links)
        self.answer(install, *self.run(install, args, script, self.timeout))
        if mode == 'setup':
            logger.info("Installed the %s runtime in %s on %s", runtime,
                        self.installer.queue, self.installer.where)

    def stream(self, verb, args, consume, deadline=None):
        """Run a verb whose answer is a stream: after the sentinel, a line
        "stream=VERB", then what ``consume(stdout)`` reads; return what it
        returns. The runtime is installed when needed (one more call). At
        the ``deadline`` (of time.monotonic), the stream is cut: raise
        `JobStillRunning`.
        """
        header = 'stream=' + verb
        for attempt in range(2):
            stream = self.transport.stream(self.argv(verb, args))
            timer, cut = None, []
            if deadline is not None:
                import threading

                def cut_stream(proc=stream.proc):
                    cut.append(True)
                    proc.kill()
                timer = threading.Timer(
                    max(0, deadline - time.monotonic()), cut_stream)
                timer.daemon = True
                timer.start()
            try:
                first = _read_until_stream(stream.stdout)
                if first == header:
                    result = consume(stream.stdout)
                else:  # the bootstrap's answer, or nothing
                    rest = stream.stdout.read(_MAX_ANSWER).decode(
                        'utf-8', 'replace')
                    lines = [first] + rest.splitlines()
            except Error as e:
                stream.abort()
                if stream.proc.returncode == 255 and \
                        not isinstance(e, ConnectionLost):
                    # what broke the stream was the connection
                    raise ConnectionLost(
                        "The connection to %s broke: %s"
                        % (self.transport.name, e), ret=255)
                raise
            except BaseException:
                stream.abort()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            code, err = stream.finish()
            if cut:
                raise JobStillRunning("The deadline passed")
            if code != _RC_NEED_RUNTIME:
                break
            self.install(self.installer.to_install(lines, False), 'auto')
        if code == _RC_OK and first == header:
            self.log_server(err)
            return result
        raise _runtime_error(verb, code or _RC_FAILURE, err)

    def detect(self):
        """Ask the server (one call): return the name of the runtime
        installed in the queue, or None, and the one it would detect.
        """
        code, out, err = self.run('_detect', timeout=self.timeout)
        _, installed, detected = _parse_need_runtime(
            self.answer('_detect', code, out, err))
        return installed, detected


class _Recorder(object):
    """What a `RemoteQueue` tells of the jobs that it makes and deletes,
    to a registry of them: here, nothing. The Registry chapter puts the
    job registry's in its place (_RegistryRecorder), so that this chapter
    never refers forward to that one.
    """

    def added(self, queue, job_id, label, directory, new):
        """Job ``job_id`` of ``queue`` was submitted from ``directory``
        (``new`` False: it was there before, a reused content id)."""

    def deleted(self, queue, job_ids=None):
        """Jobs of ``queue`` were deleted (None: all of them)."""


class RemoteQueue(object):
    """A queue of jobs on a server (or on this machine, with ``local:``).

    ``destination`` is ``[ssh://][user@]host[:port]``, an ssh-config alias,
    ``local:``, or a dictionary as returned by `parse_ssh_destination`.
    ``queue`` is the queue's directory on the server (``~`` and paths
    relative to the home directory work; a file "tejdir: PATH" is followed).
    ``setup_runtime`` names the runtime to install (None: the default),
    ``need_runtime`` the runtimes accepted in an existing queue (None: any).
    ``ssh_options`` are passed to ssh (``['-i', key]``, ``['-J', jump]``,
    ``['-F', config]``, ``['-o', 'K=V']``); ``multiplex=False`` makes every
    call a connection of its own. Nothing is done until the first call.
    Both stay as the attributes ``ssh_options`` (a list) and
    ``multiplex``.

    Raises `InvalidDestination` for a bad destination and `ValueError` for
    an unknown runtime.
    """

    JOB_DONE = _FINISHED
    JOB_RUNNING = _RUNNING
    JOB_INCOMPLETE = 'incomplete'  # the original's; no runtime says it
    JOB_CREATED = _CREATED
    JOB_QUEUED = _QUEUED
    JOB_LOST = _LOST

    #: Where the jobs made and deleted are told of (a _Recorder): this
    #: machine's job registry (JobMonitor), which sets it.
    recorder = _Recorder()

    def __init__(self, destination, queue=DEFAULT_TEJ_DIR, setup_runtime=None,
                 need_runtime=None, ssh_options=(), multiplex=True):
        if isinstance(destination, str):
            destination = _parse_destination(destination)
        elif isinstance(destination, dict):
            if not destination.get('local') and \
                    not destination.get('hostname'):
                raise InvalidDestination(
                    "destination dictionary is missing hostname")
            destination = dict(destination)
        else:
            raise TypeError("destination must be a string or a dict")
        for runtime in [setup_runtime] + list(need_runtime or ()):
            if runtime is not None and runtime not in _RUNTIMES:
                raise ValueError("Unknown runtime %r (known: %s)" % (
                    runtime, ', '.join(sorted(_RUNTIMES))))
        queue = str(queue)
        _check_queue_path(queue)
        self.destination = destination
        self._queue = queue
        self.setup_runtime = setup_runtime
        self.need_runtime = set(need_runtime) if need_runtime else None
        self.ssh_options = list(ssh_options)
        self.multiplex = bool(multiplex)
        if destination.get('local'):
            self._transport = _LocalTransport()
        else:
            self._transport = _SSHTransport(destination, self.ssh_options,
                                            multiplex,
                                            command_for=self.command_for)
        self._calls = _Calls(
            self._transport,
            _Installer(queue, self._transport.name, setup_runtime,
                       self.need_runtime),
            self.server_logger,
            _timeout_setting('TEJ_TIMEOUT', _DEFAULT_TIMEOUT))

    @property
    def timeout(self):
        """Seconds a remote call may take (transfers excepted): TEJ_TIMEOUT,
        default 300.
        """
        return self._calls.timeout

    @timeout.setter
    def timeout(self, value):
        self._calls.timeout = value

    @property
    def queue(self):
        """The queue's location as given (a PurePosixPath, unresolved)."""
        from pathlib import PurePosixPath
        return PurePosixPath(self._queue)

    @property
    def queue_string(self):
        """The queue's location as given, a string (see `queue`)."""
        return self._queue

    @property
    def destination_string(self):
        """The destination as a string, without its password."""
        return self._transport.name

    def __repr__(self):
        return '<RemoteQueue %s %s>' % (self.destination_string, self._queue)

    def server_logger(self):
        """Return a new `ServerLogger` for the server's messages of one
        call; override to route them elsewhere.
        """
        return ServerLogger()

    def command_for(self, command):
        """The tej command line ``command`` (login, logout) for this
        destination, as a message suggests it: ``tej COMMAND DEST``;
        override to suggest another (the command line adds the options
        it was given).
        """
        return _shell_command(['tej', command, self.destination_string])

    # --- the original API ------------------------------------------------

    def setup(self, links=None, force=False, only_links=False):
        """Create the queue and install the runtime, then write each path
        in ``links`` as a link file ("tejdir: QUEUE") to the queue.

        With ``only_links``, only the links are written. Raise `QueueExists`
        when a queue is already there (``force`` replaces its runtime; its
        jobs are kept) or a link path is taken (``force`` replaces it).
        """
        links = list(links or ())
        for link in links:
            if not link or '\n' in link:
                raise ValueError("Invalid link path %r" % (link,))
        runtime = self.setup_runtime
        if runtime is None and not only_links:
            # which scheduler the server has: one more call. A queue that
            # is there keeps its runtime (force replaces it with its update)
            installed, detected = self._calls.detect()
            runtime = installed or detected
        self._calls.install(self._calls.installer.choose(runtime),
                            'links' if only_links else 'setup', force=force,
                            links=links)

    def submit(self, job_id, directory, script=None, content_id=False,
               if_exists=None, **resources):
        """Send ``directory`` to the server as a new job and start it.

        ``job_id`` None makes one: ``<dirname>_<user>_<random>``, or with
        ``content_id`` the job's `content_id` (the same content gives the
        same id). ``script`` is a file of the directory to run (default
        ``start.sh``) or a shell command. ``if_exists`` says what to do when
        the id is taken: ``'fail'`` (raise `JobAlreadyExists`; the default)
        or ``'reuse'`` (return the id of the job that is there; the default
        with ``content_id``). A missing queue is set up.

        Resources, for the scheduler: ``walltime`` (seconds, or
        ``[D-]HH:MM:SS``), ``cpus``, ``mem`` (``4G``), ``partition``,
        ``account``, ``gpus``, ``scheduler_args`` (a list passed as is), and
        ``prologue`` (shell code run before the job, in its shell, e.g.
        ``module load x``). The default runtime enforces ``walltime`` and
        runs the prologue, and refuses the others. ``label`` and ``record``:
        see `submit_job`.

        Return the job id. Raise `ValueError` for an invalid id, a missing
        directory or script, a bad resource; `Error` for a resource the
        runtime cannot honour.
        """
        return self.submit_job(job_id, directory, script, content_id,
                               if_exists, **resources)[0]

    def submit_job(self, job_id, directory, script=None, content_id=False,
                   if_exists=None, label=None, record=True, **resources):
        """As `submit`, and say whether the job was made: return ``(job_id,
        created)``, where ``created`` is False when the job was there
        already and ``if_exists`` is ``'reuse'``.

        The job is recorded in this machine's job registry (see
        `JobMonitor`), with ``label``, unless ``record`` is False or
        TEJ_REGISTRY is "off".
        """
        _check_label(label)
        job_id, created = self._submit_job(job_id, directory, script,
                                           content_id, if_exists, **resources)
        if record:
            self.recorder.added(self, job_id, label, directory, created)
        return job_id, created

    def submit_once(self, directory, script=None, rerun_failed=False,
                    **resources):
        """Submit ``directory`` under its `content_id`, once: when the job
        of that id is there, re-attach to it instead of running the same
        work twice, unless it was killed, lost or deleted, or (with
        ``rerun_failed``) finished with a non-zero exit code: then it is
        replaced, and runs again. ``script`` and ``resources`` (``label``
        and ``record`` too) are as for `submit_job`. Return the job's id.
        This is what ``tej run`` does before it follows the job.
        """
        job_id, created = self.submit_job(None, directory, script, True,
                                          'reuse', **resources)
        if created:
            return job_id
        try:
            record = self.info(job_id)
        except JobNotFound:  # deleted since: submit it again
            record = {'state': _NOTFOUND, 'exit': None}
        state = record['state']
        if state in (_KILLED, _LOST, _NOTFOUND) or (
                rerun_failed and state == _FINISHED and record['exit']):
            logger.info("Job %s %s: running it again", job_id, {
                _KILLED: "was killed", _LOST: "was lost",
                _NOTFOUND: "was deleted"}.get(
                    state, "failed with exit code %s" % record['exit']))
            if state != _NOTFOUND:
                try:
                    self.delete(job_id)
                except JobNotFound:
                    pass
            self.submit_job(job_id, directory, script, False, 'reuse',
                            **resources)
        else:
            logger.info("Re-attaching to job %s, submitted before", job_id)
        return job_id

    def _submit_job(self, job_id, directory, script=None, content_id=False,
                    if_exists=None, **resources):
        if if_exists is None:
            if_exists = 'reuse' if content_id else 'fail'
        if if_exists not in ('fail', 'reuse'):
            raise ValueError("if_exists is 'fail' or 'reuse', not %r"
                             % (if_exists,))
        excludes = _as_list(resources.pop('exclude', None))
        dereference = resources.pop('dereference', False)
        compress = resources.pop('compress', False)
        progress = resources.pop('progress', None)
        _check_directory(directory)
        mode, script = _script_mode(directory, script)
        options = _job_options(**resources)
        if job_id is None:
            if content_id:
                job_id = _content_id(directory, mode, script, options,
                                     excludes, dereference)
            else:
                job_id = _default_job_id(directory,
                                         self.destination.get('username'))
        check_jobid(job_id)
        if compress:
            options.append('transfer=gzip')
        upload = _Upload(directory, excludes, dereference, compress,
                         progress)
        try:
            self._calls.call('submit', [job_id, mode, script] + options,
                             stdin=upload, create=True, transfer=True)
        except JobAlreadyExists:
            if if_exists != 'reuse':
                raise
            return job_id, False
        finally:
            upload.close()
        logger.info("Submitted job %s", job_id)
        return job_id, True

    def info(self, job_id):
        """Return the full record of a job: a dict with ``id``, ``state``
        (created, queued, running, finished, killed or lost), ``exit`` (int
        or None), the times ``submitted``, ``started``, ``finished`` and the
        server's ``now`` (epoch seconds or None), ``runtime``, ``runtime_id``
        and ``dir``. Raise `JobNotFound`, `QueueDoesntExist`.
        """
        check_jobid(job_id)
        try:
            return _parse_records(self._calls.call('status', [job_id]),
                                  [job_id])[0]
        except JobNotFound:
            raise JobNotFound("no job %s" % job_id)

    def infos(self, job_ids):
        """The records of several jobs, in one call: a list of dicts as
        `info` returns, with ``state`` ``'notfound'`` for a job that is not
        in the queue. Raise `QueueDoesntExist`.
        """
        for job_id in job_ids:
            check_jobid(job_id)
        return _parse_records(self._calls.call('status', list(job_ids),
                                         ok=(_RC_OK, _RC_NO_JOB)), job_ids)

    def status(self, job_id):
        """Return ``(status, directory, arg)`` for a job.

        ``status`` is ``'running'`` (``arg`` None), ``'finished'`` (``arg``
        the exit code, a string; a killed job is finished too), or
        ``'created'``, ``'queued'``, ``'lost'`` (``arg`` None).
        ``directory`` is the job's directory on the server. Raise
        `JobNotFound`, `QueueDoesntExist`.
        """
        from pathlib import PurePosixPath
        check_jobid(job_id)
        # -n: the record without the server's time, which needs no date
        # there (see the fast path at the top of common.sh)
        record = _parse_records(self._calls.call('status', ['-n', job_id]))[0]
        status, directory, arg = _compat_status(record)
        return status, PurePosixPath(directory), arg

    def download(self, job_id, files, **kwargs):
        """Fetch files or directories of a job.

        ``files`` is a path relative to the job directory (``'.'``: all of
        it), or a list of them. Keyword arguments: ``directory`` (put them
        in this directory, default the current one; it is made if its
        parent is there), or ``destination`` (one file or directory saved
        under this name, in a directory that is there); ``recursive``
        (default True: directories come whole); ``progress`` (True: show
        it on stderr; or a callable, ``progress(bytes done, total bytes
        or None)``).

        Each file is written under a temporary name beside its target and
        renamed into place when complete. Running the same download again
        after an interruption fetches only what is missing: files there
        with the server's size and time are kept, and a file cut short
        goes on from where it stopped (checked with cksum at the end).

        Return the local paths of the files or directories (the original
        returned None). Raise `JobNotFound`, `ConnectionLost` when the
        connection broke (run it again to resume), `Error` for a missing
        file, `TypeError`/`ValueError` for bad arguments.
        """
        recursive = kwargs.pop('recursive', True)
        destination = kwargs.pop('destination', None)
        directory = kwargs.pop('directory', None)
        progress = kwargs.pop('progress', None)
        if kwargs:
            raise TypeError("Unexpected arguments: %s" % ', '.join(kwargs))
        if destination is not None and directory is not None:
            raise TypeError("Give destination or directory, not both")
        if destination is None:
            directory = str(directory if directory is not None else '.')
        files, targets = _download_targets(files, directory, destination)
        if not files:
            return []
        check_jobid(job_id)
        resume = any(_leftovers(local) for local in targets.values())
        if directory is not None and not os.path.isdir(directory):
            _need_parent(directory, 'directory')
            os.mkdir(directory)
        meter = _meter(progress, 'Downloading')
        try:
            plan = None
            if resume:
                plan = self._resume_plan(job_id, targets, recursive)
            if plan is None:
                plan = _Plan(targets, recursive, None)
            again = self._fetch(job_id, plan, meter)
            if again:  # parts that had changed on the server: whole
                plan = _Plan(targets, recursive, again)
                self._fetch(job_id, plan, meter)
            if meter is not None:
                meter.done()
        finally:
            if meter is not None:
                meter.close()
        return [targets[f] for f in files]

    def _resume_plan(self, job_id, targets, recursive):
        """What is left to fetch of ``targets``, from the server's list
        of the files (one call): a `_Plan`, or None when the server cannot
        list them (fetch it all).
        """
        lines = self._calls.call('_files', [job_id] + [
            './' + (name or '.') for name in sorted(targets)])
        entries = _parse_listing(lines)
        if entries is None:
            return None
        return _Plan(targets, recursive, None, entries)

    def _fetch(self, job_id, plan, meter):
        """Run the download that ``plan`` says (one call); return the
        paths to fetch again whole (parts that changed on the server).
        """
        args = [job_id, 's' if meter is not None else '-',
                str(len(plan.parts))]
        # "./": a name that starts with "-" is no option to tar or find
        for part in plan.parts:
            args += [str(part.size), str(part.offset),
                     './' + (part.name or '.')]
        args += ['./' + (name or '.') for name in plan.paths]
        if not plan.parts and not plan.paths:
            return []
        return self._calls.stream(
            'download', args,
            lambda stdout: _receive(stdout, plan, meter))

    def kill(self, job_id):
        """Stop a running job (TERM to all its processes, KILL after a
        grace period); nothing happens if it is not running. Raise
        `JobNotFound`, `QueueDoesntExist`.
        """
        check_jobid(job_id)
        self._calls.call('kill', [job_id])

    def delete(self, job_id, kill=False):
        """Remove a job and its files from the server. Raise
        `JobStillRunning` if it runs (unless ``kill``: then it is killed
        first), `JobNotFound`, `QueueDoesntExist`.
        """
        check_jobid(job_id)
        self._calls.call('delete', [job_id] + (['kill'] if kill else []))
        self.recorder.deleted(self, [job_id])

    def list(self, states=None, since=None):
        """Yield ``(job_id, info)`` for each job in the queue, in the order
        of their ids, where ``info['status']`` is as in `status` and the
        rest as in `info`. One call, whatever the number of jobs.

        The server filters: ``states``, the jobs in one of these states
        (``created``, ``queued``, ``running``, ``finished``, ``killed``,
        ``lost``; None: any); ``since``, the jobs submitted in the last
        ``since`` seconds (None: any). Raise `QueueDoesntExist`;
        `ValueError` for an unknown state.
        """
        args = _filters(states, _LIST_STATES)
        if since is not None:
            args.append('since=%d' % _duration(since, 'since'))
        records = _parse_records(self._calls.call('list', args))
        for record in sorted(records, key=lambda r: r['id']):
            record['status'] = _compat_status(record)[0]
            yield record['id'], record

    def gc(self, older_than, states=None, dry_run=False):
        """Remove the jobs that ended (finished, killed or lost) more than
        ``older_than`` seconds ago, in one call; never a job that has not
        ended. ``states``: only those of these states (of ``finished``,
        ``killed``, ``lost``; None: all three). With ``dry_run``, remove
        nothing, say what would go.

        Return the records of the jobs removed (or that would be), as
        `infos` returns them, in the order of their ids. A job's end is its
        finished time; a lost job's without one, when tej first found it
        lost (any call that read it). Raise
        `QueueDoesntExist`; `ValueError` for a state that has not ended.
        """
        args = [str(int(_duration(older_than, 'older_than')))] + \
            _filters(states, _GC_STATES)
        if dry_run:
            args.append('dry')
        records = _parse_records(self._calls.call('gc', args))
        return sorted(records, key=lambda r: r['id'])

    def cleanup(self, kill=False):
        """Remove the queue with all its jobs, and the link files that led
        to it. Raise `JobStillRunning` if a job runs (unless ``kill``).
        Return True.
        """
        self._calls.call('cleanup', ['kill'] if kill else [])
        self.recorder.deleted(self)
        return True

    def close(self):
        """Close the shared SSH connection now, instead of when it has been
        idle for a while.
        """
        self._transport.close()

    def login(self):
        """Open the shared SSH connection interactively: ssh asks for a
        password, a second factor or a new host key in the terminal, once.
        Later calls, which never prompt, use it until `logout`, or until it
        has been idle for TEJ_CONTROL_PERSIST seconds. Raise `Error` when
        it fails, or for a ``local:`` queue.
        """
        self._ssh('login').login()

    def logout(self):
        """Close the shared SSH connection that `login` opened (as
        `close`). Raise `Error` for a ``local:`` queue.
        """
        self._ssh('logout').close()

    def _ssh(self, what):
        if not isinstance(self._transport, _SSHTransport):
            raise Error("%s needs an SSH destination" % what)
        return self._transport

    # --- new API ---------------------------------------------------------

    def wait(self, job_id, timeout=None, retry_for=None):
        """Wait until a job has ended; return its exit code (an int; 143 or
        137 for a killed job), or None for a lost job.

        The server waits, and answers within half a second of the job's
        end (one call per minute of waiting). A connection that fails is
        tried again for ``retry_for`` seconds (default TEJ_RETRY_FOR, 300).
        Raise `JobStillRunning` when ``timeout`` seconds have passed (the
        job goes on), `JobNotFound`, `QueueDoesntExist`, `ConnectionLost`.
        """
        record = self.wait_all([job_id], timeout, retry_for)[0]
        if record['state'] == _NOTFOUND:
            raise JobNotFound("no job %s" % job_id)
        return record['exit']

    def wait_all(self, job_ids, timeout=None, retry_for=None):
        """Wait until every job has ended (or is not found); return their
        records (see `infos`). The server waits and answers as soon as the
        jobs have ended: one call per minute, whatever the number of jobs.
        See `wait`.
        """
        for job_id in job_ids:
            check_jobid(job_id)
        if timeout is not None:
            timeout = _duration(timeout, 'timeout')
        deadline = None if timeout is None else time.monotonic() + timeout
        retry = _Retry(retry_for)
        while True:
            # the server's wait stays well within one call's timeout
            call = min(_WAIT_CALL, max(1, self.timeout - 10))
            left = call if deadline is None else \
                min(call, deadline - time.monotonic())
            try:
                records = _parse_records(self._calls.call(
                    'wait', [str(max(0, int(-(-left // 1))))] + list(job_ids),
                    ok=(_RC_OK, _RC_NO_JOB)), job_ids)
            except ConnectionLost as e:
                retry.failed(e)
                continue
            retry.succeeded()
            active = [r for r in records if r['state'] not in _ENDED]
            if not active:
                return records
            if deadline is not None and time.monotonic() >= deadline:
                raise JobStillRunning(
                    "Job %s is still %s after %s" % (
                        active[0]['id'], active[0]['state'],
                        _seconds_text(timeout)))

    def waitany(self, job_ids, seconds):
        """Wait on the server (one call) until any of ``job_ids`` has ended
        or is not there, or for ``seconds`` at most (well within
        `timeout`); return the records of all of them (see `infos`; a job
        that is not there has the state "notfound"). This is what
        `JobMonitor.watch` asks each queue.
        """
        job_ids = list(job_ids)
        for job_id in job_ids:
            check_jobid(job_id)
        seconds = _duration(seconds, 'seconds', integer=True)
        return _parse_records(self._calls.call(
            'waitany', [str(seconds)] + job_ids, ok=(_RC_OK, _RC_NO_JOB)))

    def logs(self, job_id, stdout=None, stderr=None, follow=False,
             timeout=None, retry_for=None):
        """Write the job's ``_stdout`` to ``stdout`` and its ``_stderr`` to
        ``stderr`` (binary file objects; None: not that one), as they are
        now, or with ``follow`` as the job writes them until it has ended
        (one call, streaming; no byte lost or repeated, also when the
        connection is made again after it broke).

        Return ``(state, exit code)`` as the job was at the end; with
        neither ``stdout`` nor ``stderr``, ``(stdout bytes, stderr
        bytes)`` instead. Raise `JobNotFound`, `JobStillRunning` after
        ``timeout`` seconds (the job goes on), `ConnectionLost` after
        ``retry_for`` seconds of failures.
        """
        check_jobid(job_id)
        if timeout is not None:
            timeout = _duration(timeout, 'timeout')
        if stdout is None and stderr is None:
            import io
            out, err = io.BytesIO(), io.BytesIO()
            self.logs(job_id, out, err, follow, timeout, retry_for)
            return out.getvalue(), err.getvalue()
        targets = {'out': stdout, 'err': stderr}
        streams = ''.join(n for n in ('out', 'err') if targets[n] is not None)
        offsets = {'out': 0, 'err': 0, 'tick': 0}
        deadline = None if timeout is None else time.monotonic() + timeout

        def late():  # only with a timeout: the stream is cut at its deadline
            return JobStillRunning("Job %s is still running after %s"
                                   % (job_id, _seconds_text(timeout)))
        retry = _Retry(retry_for)

        while True:
            began = time.monotonic()
            before = dict(offsets)
            try:
                # at the deadline, _Calls.stream cuts the stream
                end = self._calls.stream('logs', [
                    job_id, streams, 'follow' if follow else 'once',
                    str(offsets['out']), str(offsets['err'])],
                    functools.partial(_read_log_frames, targets=targets,
                                      offsets=offsets), deadline)
                error = ConnectionLost("The connection to %s ended early"
                                       % self.destination_string)
            except JobStillRunning:
                raise late()
            except ConnectionLost as e:
                end, error = None, e
            if end is not None or offsets != before:
                retry.worked = True  # a frame came: the connection worked
            if end is not None:
                return end
            if deadline is not None and time.monotonic() > deadline:
                raise late()
            if time.monotonic() - began >= _STREAM_UP:
                retry.succeeded()  # it worked a while: a new failure
            retry.failed(error)  # then again, from the offsets reached

    def job(self, job_id):
        """Return a `Job` handle for ``job_id`` (no remote call)."""
        return Job(self, job_id)


class Job(object):
    """A handle on one job of a `RemoteQueue`, for code that keeps jobs
    around, like a workflow engine's job monitor polling `finished`.

    Its methods are the queue's, for this job.
    """

    def __init__(self, queue, job_id):
        check_jobid(job_id)
        self.queue = queue
        self.id = job_id

    def __repr__(self):
        return '<Job %s on %s>' % (self.id, self.queue.destination_string)

    def info(self):
        """The full record: see `RemoteQueue.info`."""
        return self.queue.info(self.id)

    def status(self):
        """``(status, directory, arg)``: see `RemoteQueue.status`."""
        return self.queue.status(self.id)

    def finished(self):
        """Has the job ended (finished, killed or lost)? One call. Raise
        `JobNotFound` if it is not in the queue.
        """
        return self.info()['state'] in _ENDED

    def exit_code(self):
        """The exit code (an int), or None while it runs or if it is lost.
        """
        return self.info()['exit']

    def wait(self, timeout=None):
        """Wait until it ends; return its exit code: see
        `RemoteQueue.wait`.
        """
        return self.queue.wait(self.id, timeout=timeout)

    def download(self, files, **kwargs):
        """Fetch files: see `RemoteQueue.download`."""
        return self.queue.download(self.id, files, **kwargs)

    def logs(self, stdout=None, stderr=None, follow=False, timeout=None):
        """Its output: see `RemoteQueue.logs` (``job.logs()`` is
        ``(stdout bytes, stderr bytes)``).
        """
        return self.queue.logs(self.id, stdout, stderr, follow=follow,
                               timeout=timeout)

    def kill(self):
        """Stop it if it runs: see `RemoteQueue.kill`."""
        return self.queue.kill(self.id)

    def delete(self, kill=False):
        """Remove it: see `RemoteQueue.delete`."""
        return self.queue.delete(self.id, kill=kill)


#: The states a job can be in, for list's filter; those gc removes.
_LIST_STATES = (_CREATED, _QUEUED, _RUNNING, _FINISHED, _KILLED, _LOST)
_GC_STATES = (_FINISHED, _KILLED, _LOST)


def _filters(states, allowed):
    """The ``state=STATE`` arguments of list and gc (_filter in
    common.sh), from ``states`` (None: none), each one of ``allowed``.
    """
    if states is None:
        return []
    if isinstance(states, str):
        states = [states]
    states = list(states)
    for state in states:
        if state not in allowed:
            raise ValueError("Unknown state %r here (one of: %s)" % (
                state, ', '.join(allowed)))
    return ['state=' + state for state in dict.fromkeys(states)]


def _compat_status(record):
    """(status, directory, arg) as the original API returned them, but the
    directory a string.
    """
    state = record['state']
    directory = record.get('dir')
    if state in (_FINISHED, _KILLED):
        exit_code = record['exit']
        return _FINISHED, directory, str(exit_code if exit_code is not None
                                          else '')
    return state, directory, None


#: Seconds the server waits for jobs to end in one call of wait.
_WAIT_CALL = 60
#: Seconds a logs stream must have stayed up for its break to count as a
#: new failure, not as one more of those before it (see _Retry).
_STREAM_UP = 10


class _Retry(object):
    """Retries after connection failures, with backoff, for a bounded
    time: ``failed(error)`` sleeps, or raises ``error`` once ``retry_for``
    seconds have passed since the first failure in a row. An error that is
    not `ConnectionLost.transient` is raised at once, unless a connection
    worked before in this call (``succeeded``): a host name that resolved
    once and not now is a network that went away, and may come back.
    """

    def __init__(self, retry_for=None):
        if retry_for is None:
            retry_for = _timeout_setting('TEJ_RETRY_FOR', 300, zero=True)
        else:
            retry_for = _duration(retry_for, 'retry_for')
        self.retry_for = retry_for
        self.since = None
        self.delay = 1.0
        self.worked = False

    def failed(self, error):
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= self.retry_for or \
                not (self.worked or getattr(error, 'transient', True)):
            raise error
        logger.warning("%s; trying again in %d s", error, self.delay)
        time.sleep(min(self.delay, self.since + self.retry_for - now))
        self.delay = min(self.delay * 2, 30)

    def succeeded(self):
        self.since = None
        self.delay = 1.0
        self.worked = True


#: The hex digits of a content id's hash (96 bits).
_CONTENT_HEX = 24


def _content_id(directory, mode, script, options=(), excludes=(),
                dereference=False):
    """``<dirname>_<24 hex>``: a hash of the job's files as they are sent
    (see _job_files: names, contents, whether executable, link targets;
    not times nor owners), script and submit options. 96 bits of it, so
    that no two jobs of a queue share an id by chance, whoever made them
    (an earlier tej kept 12 hex digits: the jobs it made are not found
    again); at most 100 + 1 + 24 characters, a valid id (check_jobid).
    """
    digest = _sha256(b'')

    def add(*fields):
        for field in fields:
            if isinstance(field, str):
                field = field.encode('utf-8', 'surrogateescape')
            digest.update(b'%d:%s,' % (len(field), field))

    add('tej-content-1', mode, script, *options)
    for relative, path, st, link in _job_files(directory, excludes,
                                                dereference, warn=False):
        if link is not None:
            add('link', relative, link)
        elif stat.S_ISDIR(st.st_mode):
            add('dir', relative)
        else:
            add('file', relative, 'x' if st.st_mode & 0o111 else '-')
            size = 0
            with open(path, 'rb') as fp:
                for chunk in iter(lambda: fp.read(1 << 16), b''):
                    digest.update(chunk)
                    size += len(chunk)
            add(str(size))
    base = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    base = re.sub(r'[^A-Za-z0-9_.,+=@%:-]', '_', base).lstrip('.-')[:100]
    return '%s_%s' % (base or 'job', digest.hexdigest()[:_CONTENT_HEX])


def content_id(directory, script=None, **resources):
    """The id that ``submit(None, directory, script, content_id=True,
    **resources)`` gives: ``<dirname>_<24 hex>`` from a hash of the files
    (names, contents, whether executable; not times), the script and the
    resources. Raise `ValueError` for a missing directory or script.
    """
    excludes = resources.pop('exclude', ())
    dereference = resources.pop('dereference', False)
    _check_directory(directory)
    mode, script = _script_mode(directory, script)
    return _content_id(directory, mode, script, _job_options(**resources),
                       _as_list(excludes), dereference)


def _walltime(value):
    """Whole seconds from an int, ``[D-]HH:MM:SS`` or a number with a unit
    (``1h``: see _duration); raise `ValueError`.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ValueError("The walltime must be positive")
    seconds = _duration(value, 'walltime', integer=True)
    if seconds <= 0:
        raise ValueError("The walltime must be positive")
    return seconds


def _job_options(walltime=None, cpus=None, mem=None, partition=None,
                 account=None, gpus=None, scheduler_args=(), prologue=None):
    """The runtime's submit options (KEY=VALUE arguments), checked."""
    options = []
    if walltime is not None:
        options.append('walltime=%d' % _walltime(walltime))
    for key, value in (('cpus', cpus), ('gpus', gpus)):
        if value is not None:
            if not re.match(r'[1-9][0-9]{0,5}\Z', str(value)):
                raise ValueError("Invalid %s %r: a positive number"
                                 % (key, value))
            options.append('%s=%s' % (key, value))
    if mem is not None:
        if not re.match(r'[0-9]+[KMGTkmgt]?[Bb]?\Z', str(mem)):
            raise ValueError("Invalid mem %r: a size like 500M or 4G"
                             % (mem,))
        options.append('mem=%s' % mem)
    for key, value in (('partition', partition), ('account', account)):
        if value is not None:
            if not re.match(r'[\w.@+%:=,-]+\Z', str(value)):
                raise ValueError("Invalid %s %r" % (key, value))
            options.append('%s=%s' % (key, value))
    if isinstance(scheduler_args, str):
        scheduler_args = [scheduler_args]
    for arg in scheduler_args:
        if not arg or '\n' in arg:
            raise ValueError("Invalid scheduler argument %r" % (arg,))
        options.append('arg=%s' % arg)
    if prologue is not None:
        options.append('prologue=%s' % prologue)
    return options


def _as_list(value):
    """A string as a list of one, None as an empty list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _prepend(data, stdin):
    """A producer (see _start_call) that writes ``data``, then ``stdin``:
    a producer, or a file read from its start (a first try may have read
    some of it).
    """
    def produce(pipe):
        pipe.write(data)
        if callable(stdin):
            stdin(pipe)
        else:
            import shutil
            stdin.seek(0)
            shutil.copyfileobj(stdin, pipe)
    return produce


# ===========================================================================
# Job registry and monitor: the jobs submitted from this machine
# ===========================================================================
#
# An SQLite database (the standard library's sqlite3) remembers every job
# that submit and run made, on every server: `tej jobs` and `tej monitor`
# check them all, and a program finds its jobs again after a restart. Every
# operation opens its own connection (sqlite3 connections stay in their
# thread); WAL and a busy timeout let many tej processes write at once.

#: The registry's schema, as steps: _REGISTRY_SCHEMA[n], its statements,
#: brings a database of version n (PRAGMA user_version) to version n + 1.
#: Append, never edit.
_REGISTRY_SCHEMA = (
    # 1: the jobs. destination has no password; ssh_options is a JSON list
    ("""CREATE TABLE jobs (
        destination TEXT NOT NULL, ssh_options TEXT NOT NULL DEFAULT '[]',
        multiplex INTEGER NOT NULL DEFAULT 1, queue TEXT NOT NULL,
        job_id TEXT NOT NULL, directory TEXT, submitted REAL NOT NULL,
        label TEXT, state TEXT, exit_code INTEGER, checked REAL,
        paused INTEGER NOT NULL DEFAULT 0, deleted REAL,
        UNIQUE (destination, queue, job_id))""",),
    # 2: when the monitor reported the job's end (once), and the label
    # looked up by pause, unpause and forget
    ("ALTER TABLE jobs ADD COLUMN reported REAL",
     "CREATE INDEX jobs_label ON jobs (label)"),
)

#: Seconds a registry operation waits for another process's write.
_REGISTRY_BUSY = 30
#: Seconds `tej jobs` (JobMonitor.check) waits for one queue's answer:
#: TEJ_CHECK_TIMEOUT overrides it.
_CHECK_TIMEOUT = 30
#: The default interval of `tej monitor` (JobMonitor.watch).
_WATCH_INTERVAL = 60
#: Queues that `tej jobs` and `tej monitor` ask at once, the others after:
#: each is an ssh (and its pipes), and hundreds of destinations must not
#: run out of file descriptors or processes.
_ASK_AT_ONCE = 32

_KNOWN_FIELDS = ('destination', 'queue', 'id', 'directory', 'submitted',
                 'label', 'state', 'exit_code', 'checked', 'paused',
                 'deleted', 'reported', 'ssh_options', 'multiplex', 'key',
                 'error')
_COLUMNS = ('destination, queue, job_id, directory, submitted, label, state, '
            'exit_code, checked, paused, deleted, reported, ssh_options, '
            'multiplex, rowid')


class KnownJob(collections.namedtuple('KnownJob', _KNOWN_FIELDS)):
    """A job in the registry (see `JobMonitor`), as a named tuple.

    ``destination`` (without password; ``local:`` for this machine),
    ``queue`` and ``id`` say where it is; ``directory`` is the local
    directory submitted (absolute), ``submitted`` an epoch time, ``label``
    the user's (or None). ``state`` (None: never checked) and
    ``exit_code`` are the last known, from the time ``checked``; ``error``
    says why a check could not reach the job (None when it did).
    ``paused`` and ``deleted`` (a time, or None) say whether it is
    watched; ``reported`` is when the monitor reported its end.
    ``ssh_options`` and ``multiplex`` are what reaches it again; ``key``
    identifies the row (once the row is forgotten, or replaced by a job
    submitted again under its id, a later job's row may have it).
    """

    __slots__ = ()

    @property
    def ended(self):
        """Has the job ended (finished, killed, lost or not found)?"""
        return self.state in _ENDED

    def remote_queue(self):
        """A `RemoteQueue` for the job's queue."""
        return RemoteQueue(self.destination, self.queue,
                           ssh_options=self.ssh_options,
                           multiplex=self.multiplex)


def _registry_path():
    """The registry's file: TEJ_REGISTRY, else
    $XDG_DATA_HOME/tej/jobs.sqlite3 (~/.local/share/tej/); None when
    TEJ_REGISTRY is "off". Raise `Error` for a "~USER" that names no user.
    """
    setting = os.environ.get('TEJ_REGISTRY')
    if setting == 'off':
        return None
    if setting:
        path = os.path.expanduser(setting)
        if path.startswith('~'):  # not a directory here named "~USER"
            raise Error("TEJ_REGISTRY=%s: %s is no one's home directory "
                        "on this machine" % (setting, path.split('/')[0]))
        return os.path.abspath(path)
    base = os.environ.get('XDG_DATA_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'share')
    return os.path.join(os.path.abspath(base), 'tej', 'jobs.sqlite3')


def _short_destination(destination):
    """The destination as the registry keeps it: a string that parses
    back to it, without password nor "ssh://" (``user@host:2222``,
    ``alias``, ``local:``).
    """
    if isinstance(destination, str):
        destination = _parse_destination(destination)
    if destination.get('local'):
        return 'local:'
    text = destination_as_string(dict(destination, password=None))
    return text[len('ssh://'):]


def _lasting_options(options):
    """ssh options that reach the server again from another directory:
    the files of -F and -i made absolute.
    """
    options = list(options)
    for i, option in enumerate(options[:-1]):
        if option in ('-F', '-i') and os.path.exists(options[i + 1]):
            options[i + 1] = os.path.abspath(options[i + 1])
    return options


#: ssh_config options that run commands on this machine, or read more
#: options from elsewhere: never taken from the registry (lower case).
_COMMAND_OPTIONS = frozenset((
    'proxycommand', 'localcommand', 'permitlocalcommand',
    'knownhostscommand', 'remotecommand', 'include', 'match',
    'controlpath', 'controlmaster', 'securitykeyprovider', 'pkcs11provider',
    'identityagent', 'xauthlocation'))


def _stored_ssh_options(text):
    """The ssh options of a job in the registry (a JSON list), as they are
    used again: only -F and -i of a file of the user's (or root's) that
    others cannot write, -J, and -o options that run no command (not
    _COMMAND_OPTIONS); anything else is left out, with a warning. The
    registry is data: what it holds never becomes a command to run.
    """
    import json
    try:
        stored = json.loads(text)
    except ValueError:
        stored = None
    if not isinstance(stored, list) or not all(
            isinstance(o, str) for o in stored):
        logger.warning("The job registry holds ssh options that are not a "
                       "list of strings: left out")
        return []
    kept, left = [], []
    pairs = iter(stored)
    for option in pairs:
        value = next(pairs, None)
        if value is None or option not in ('-F', '-i', '-J', '-o'):
            left += [option] + ([] if value is None else [value])
        elif option == '-o' and re.split(r'[\s=]', value.strip(), 1)[
                0].lower() in _COMMAND_OPTIONS:
            left += [option, value]
        elif option in ('-F', '-i') and not _private_file(value):
            left += [option, value]
        else:
            kept += [option, value]
    if left:
        logger.warning("The job registry's ssh options %s are left out: "
                       "they could run commands", ' '.join(
                           shlex.quote(o) for o in left))
    return kept


def _private_file(path):
    """Is ``path`` a file of the user's (or root's: a system-wide ssh
    configuration) that no one else can write (where there are owners)?
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not hasattr(os, 'getuid'):
        return True
    return st.st_uid in (os.getuid(), 0) and not st.st_mode & 0o022


def _age(seconds):
    """A short age: 45s, 12m, 3h, 2d."""
    seconds = max(0, int(seconds))
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds


class _JobStore(object):
    """The registry's database: its schema and migrations (_REGISTRY_SCHEMA),
    the jobs recorded, and the queries on them. `JobMonitor`, the public
    face of the registry, adds what checks and watches the jobs.
    """

    def __init__(self, path=None):
        if path is None:
            path = _registry_path()
            if path is None:
                raise Error("The job registry is off (TEJ_REGISTRY=off)")
        self.path = os.fspath(path)

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.path)

    # --- the database ----------------------------------------------------

    def _connect(self):
        import sqlite3
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700, exist_ok=True)
        if not os.path.exists(self.path):
            # private: it names servers and directories
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._check_safe()
        # one that cannot be written (a read-only file system, a file of
        # mode 0400) is read as it is: no journal to keep, no migration
        read_only = not (os.access(self.path, os.W_OK) and
                         os.access(directory or '.', os.W_OK))
        try:
            if read_only:
                from urllib.parse import quote
                db = sqlite3.connect(
                    'file:%s?mode=ro&immutable=1' % quote(
                        os.path.abspath(self.path)),
                    timeout=_REGISTRY_BUSY, isolation_level=None, uri=True)
            else:
                db = sqlite3.connect(self.path, timeout=_REGISTRY_BUSY,
                                     isolation_level=None)
        except sqlite3.Error as e:
            raise Error("Cannot open the job registry %s: %s"
                        % (self.path, e))
        try:
            if read_only:
                self._check_version(
                    db.execute('PRAGMA user_version').fetchone()[0])
            else:
                self._prepare(db)
        except sqlite3.Error as e:
            db.close()
            raise Error("The job registry %s: %s" % (self.path, e))
        except BaseException:
            db.close()
            raise
        return db

    def _check_safe(self):
        """Refuse a registry that is not the user's, or that others can
        write (its file, its -wal and -shm, its directory): what it holds
        becomes ssh command lines (as _control_dir, for the sockets).
        """
        if not hasattr(os, 'getuid'):
            return  # Windows: the file's ACL is its directory's
        me = os.getuid()
        directory = os.path.dirname(self.path) or '.'
        st = os.stat(directory)
        # a directory of root's with the sticky bit (/tmp) is safe too
        if st.st_uid not in (me, 0) or (st.st_mode & 0o022 and
                                         not st.st_mode & stat.S_ISVTX):
            raise Error("The job registry's directory %s must be yours and "
                        "writable by you only (chmod go-w %s), or set "
                        "TEJ_REGISTRY to a file of yours"
                        % (directory, shlex.quote(directory)))
        for path in (self.path, self.path + '-wal', self.path + '-shm'):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if (st.st_uid != me or st.st_mode & 0o022 or
                    not stat.S_ISREG(st.st_mode)):
                raise Error("The job registry's file %s must be a file of "
                            "yours, writable by you only (chmod go-w %s), "
                            "or set TEJ_REGISTRY to a file of yours"
                            % (path, shlex.quote(path)))

    def _prepare(self, db):
        """WAL mode, and the schema brought up to date."""
        import sqlite3
        deadline = time.monotonic() + _REGISTRY_BUSY
        while True:
            try:
                # the busy timeout does not cover every lock a journal
                # mode change meets: try again a little later
                if db.execute('PRAGMA journal_mode').fetchone()[0] != 'wal':
                    db.execute('PRAGMA journal_mode=WAL')
                version = db.execute('PRAGMA user_version').fetchone()[0]
                break
            except sqlite3.OperationalError as e:
                if 'locked' not in str(e) or time.monotonic() > deadline:
                    raise Error("The job registry %s: %s" % (self.path, e))
                time.sleep(random.uniform(0.01, 0.05))
        db.execute('PRAGMA synchronous=NORMAL')  # WAL: safe, and fast
        self._check_version(version, writable=True)
        if version < len(_REGISTRY_SCHEMA):
            with self._write(db):
                # again, now that no other process can be at it
                version = db.execute('PRAGMA user_version').fetchone()[0]
                for step in _REGISTRY_SCHEMA[version:]:
                    for statement in step:
                        db.execute(statement)
                db.execute('PRAGMA user_version=%d' % len(_REGISTRY_SCHEMA))
            if 0 < version < len(_REGISTRY_SCHEMA):
                logger.info("The job registry %s was migrated from schema "
                            "%d to %d", self.path, version,
                            len(_REGISTRY_SCHEMA))

    def _check_version(self, version, writable=False):
        """Refuse a schema that this tej cannot read: a newer one, or an
        older one that it cannot bring up to date (not ``writable``).
        """
        if version > len(_REGISTRY_SCHEMA):
            raise Error("The job registry %s was made by a newer tej "
                        "(schema %d; this one knows %d)" % (
                            self.path, version, len(_REGISTRY_SCHEMA)))
        if version < len(_REGISTRY_SCHEMA) and not writable:
            raise Error("The job registry %s was made by an older tej "
                        "(schema %d), and it cannot be written to bring it "
                        "up to date" % (self.path, version))

    @staticmethod
    @contextlib.contextmanager
    def _write(db):
        """A write transaction, taken at once (no deadlock between two
        readers turning writers).
        """
        db.execute('BEGIN IMMEDIATE')
        try:
            yield db
        except BaseException:
            db.execute('ROLLBACK')
            raise
        db.execute('COMMIT')

    @contextlib.contextmanager
    def _db(self):
        import sqlite3
        db = self._connect()
        try:
            yield db
        except sqlite3.Error as e:
            raise Error("The job registry %s: %s" % (self.path, e))
        finally:
            db.close()

    @staticmethod
    def _row(row, error=None):
        return KnownJob(row[0], row[1], row[2], row[3], row[4], row[5],
                        row[6], row[7], row[8], bool(row[9]), row[10],
                        row[11], _stored_ssh_options(row[12]), bool(row[13]),
                        row[14], error)

    def _select(self, db, where='', args=()):
        return [self._row(r) for r in db.execute(
            'SELECT %s FROM jobs %s ORDER BY submitted, rowid'
            % (_COLUMNS, where), args)]

    # --- recording -------------------------------------------------------

    def add(self, queue, job_id, label=None, directory=None, new=True):
        """Record job ``job_id`` of ``queue`` (a `RemoteQueue`), submitted
        from ``directory``, with ``label``; return it as a `KnownJob`.
        ``new`` False: the job was there before (a reused content id), so
        what is known of it is kept (its label replaced if one is given).
        """
        import json
        check_jobid(job_id)
        _check_label(label)
        destination = _short_destination(queue.destination)
        options = json.dumps(_lasting_options(queue.ssh_options))
        multiplex = int(queue.multiplex)
        where = (destination, queue.queue_string, job_id)
        if directory is not None:
            directory = os.path.abspath(os.fspath(directory))
        with self._db() as db:
            with self._write(db):
                if new:
                    db.execute('DELETE FROM jobs WHERE destination=? AND '
                               'queue=? AND job_id=?', where)
                db.execute(
                    'INSERT OR IGNORE INTO jobs (destination, queue, job_id, '
                    'directory, submitted, label, ssh_options, multiplex) '
                    'VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    where + (directory, time.time(), label, options,
                             multiplex))
                db.execute(
                    'UPDATE jobs SET deleted=NULL, ssh_options=?, '
                    'multiplex=?, label=coalesce(?, label) WHERE '
                    'destination=? AND queue=? AND job_id=?',
                    (options, multiplex, label) + where)
            return self._select(db, 'WHERE destination=? AND queue=? AND '
                                'job_id=?', where)[0]

    def deleted(self, queue, job_ids=None):
        """Mark jobs of ``queue`` deleted (None: all of them)."""
        if not os.path.exists(self.path):
            return  # nothing recorded: no registry to make
        where, args = 'destination=? AND queue=?', [
            _short_destination(queue.destination), queue.queue_string]
        if job_ids is not None:
            where += ' AND job_id IN (%s)' % ','.join('?' * len(job_ids))
            args += list(job_ids)
        with self._db() as db:
            with self._write(db):
                db.execute('UPDATE jobs SET deleted=? WHERE deleted IS NULL '
                           'AND ' + where, [time.time()] + args)

    # --- looking ---------------------------------------------------------

    def _where(self, destination=None, job_id=None, label=None, queue=None,
               deleted=False):
        clauses, args = [], []
        if destination is not None:
            clauses.append('destination=?')
            args.append(_short_destination(destination))
        for column, value in (('job_id', job_id), ('label', label),
                              ('queue', queue)):
            if value is not None:
                clauses.append('%s=?' % column)
                args.append(value)
        if not deleted:
            clauses.append('deleted IS NULL')
        return ('WHERE ' + ' AND '.join(clauses)) if clauses else '', args

    def jobs(self, destination=None, job_id=None, label=None, queue=None,
             state=None, deleted=False):
        """The jobs recorded, as they were last seen (no connection), in
        the order they were submitted: a list of `KnownJob`. Each argument
        given narrows it: ``destination``, ``job_id``, ``label``, ``queue``,
        ``state`` (one or a list); ``deleted``: also deleted jobs.
        """
        where, args = self._where(destination, job_id, label, queue, deleted)
        with self._db() as db:
            found = self._select(db, where, args)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            found = [j for j in found if j.state in states]
        return found

    def pause(self, destination=None, job_id=None, label=None, queue=None):
        """Stop watching the jobs that the arguments name (see `jobs`):
        `check` and `watch` skip them. Return how many there were.
        """
        return self._change('paused=1', destination, job_id, label, queue)

    def unpause(self, destination=None, job_id=None, label=None,
                queue=None):
        """Watch paused jobs again; return how many there were."""
        return self._change('paused=0', destination, job_id, label, queue)

    def forget(self, destination=None, job_id=None, label=None, queue=None):
        """Drop the jobs from the registry; the jobs themselves are left
        alone. Return how many there were.
        """
        return self._change(None, destination, job_id, label, queue)

    def _change(self, change, destination, job_id, label, queue):
        if destination is None and label is None:
            raise ValueError("Name the jobs: a destination (and an id), or "
                             "a label")
        where, args = self._where(destination, job_id, label, queue, True)
        with self._db() as db:
            with self._write(db):
                if change is None:
                    cursor = db.execute('DELETE FROM jobs ' + where, args)
                else:
                    cursor = db.execute('UPDATE jobs SET %s %s'
                                        % (change, where), args)
                return cursor.rowcount

    # --- what checking writes --------------------------------------------

    def _active(self, db):
        """The jobs to watch: not paused, not deleted, not ended."""
        return [j for j in self._select(
            db, 'WHERE paused=0 AND deleted IS NULL') if not j.ended]

    def _changes(self, db, records, now):
        """What the server said of jobs ({(key, submitted): record}, see
        _ask), as ``[(job before, job after)]``.
        """
        pairs = []
        for (key, submitted), record in records.items():
            before = self._select(db, 'WHERE rowid=? AND submitted=?',
                                  (key, submitted))
            if before:  # (not forgotten, or submitted again, meanwhile)
                pairs.append((before[0], before[0]._replace(
                    state=record['state'], exit_code=record.get('exit'),
                    checked=now)))
        return pairs

    @staticmethod
    def _changed(pairs):
        """Those of ``[(job before, job after)]`` whose state changed."""
        return [(before, after) for before, after in pairs
                if (before.state, before.exit_code) !=
                (after.state, after.exit_code)]

    def _store(self, db, records, now):
        """Write what the server said of jobs ({key: record}); return
        ``[(job before, job after)]`` for each of them. A registry that
        cannot be written (read-only) is not: one warning.
        """
        import sqlite3
        try:
            with self._write(db):
                pairs = self._changes(db, records, now)
                for _, job in pairs:
                    db.execute('UPDATE jobs SET state=?, exit_code=?, '
                               'checked=? WHERE rowid=?', (
                                   job.state, job.exit_code, now, job.key))
        except sqlite3.OperationalError as e:
            if 'readonly' not in str(e):
                raise
            logger.warning("The job registry %s cannot be written: what "
                           "the servers said is shown, not kept", self.path)
            pairs = self._changes(db, records, now)
        return pairs

    def _claim(self, db, job):
        """Take the report of a job's end: True for the one monitor that
        gets it, once.
        """
        with self._write(db):
            return db.execute(
                'UPDATE jobs SET reported=? WHERE rowid=? AND submitted=? '
                'AND reported IS NULL', (time.time(), job.key,
                                         job.submitted)).rowcount == 1


class JobMonitor(_JobStore):
    """The registry of the jobs submitted from this machine, on every
    server, and what watches them: the job monitor of a workflow program.

    ``path`` is the SQLite database (None: TEJ_REGISTRY, else
    ``$XDG_DATA_HOME/tej/jobs.sqlite3``); it is made on first use (its
    directory private), and an older schema is migrated. Jobs come back
    as `KnownJob` tuples. ``RemoteQueue.submit`` records its jobs here
    unless TEJ_REGISTRY is "off" or it is given ``record=False``.

    Raise `Error` when the registry is off, or was made by a newer tej.
    """

    #: Held while a queue is asked (_ASK_AT_ONCE at a time), made on first
    #: use
    _asking = None

    # --- checking --------------------------------------------------------

    @staticmethod
    def _groups(jobs):
        """The jobs by queue: {(destination, options, multiplex, queue):
        [jobs]}.
        """
        import json
        groups = {}
        for job in jobs:
            groups.setdefault((job.destination, json.dumps(job.ssh_options),
                               job.multiplex, job.queue), []).append(job)
        return groups

    @staticmethod
    def _ask(jobs, verb, seconds, timeout):
        """One call to the queue of ``jobs``: their records, {(key,
        submitted): record}, or raise `Error`. A row is named by its time
        too: once a job is forgotten, or deleted and submitted again, its
        key may be another job's by the time the answer is stored (SQLite
        gives a new row the largest rowid plus one).
        """
        queue = jobs[0].remote_queue()
        queue.timeout = timeout
        ids = [j.id for j in jobs]
        try:
            if verb == 'status':
                records = queue.infos(ids)
            else:
                records = queue.waitany(ids, int(seconds))
        except QueueDoesntExist:
            records = [{'id': i, 'state': _NOTFOUND} for i in ids]
        by_id = {r['id']: r for r in records}
        return {(j.key, j.submitted): by_id.get(j.id, {'state': _NOTFOUND})
                for j in jobs}

    def _ask_all(self, groups, verb, seconds, timeout, results):
        """Ask every group in a thread of its own; each puts ``(group key,
        {(key, submitted): record} or Error)`` into ``results`` (a
        queue.Queue).
        Return the threads.
        """
        import threading
        if self._asking is None:
            self._asking = threading.BoundedSemaphore(_ASK_AT_ONCE)

        def ask(key, jobs):
            with self._asking:
                try:
                    answer = self._ask(jobs, verb, seconds, timeout)
                except Exception as e:  # reported as the jobs' error
                    answer = e if isinstance(e, Error) else Error(str(e))
            results.put((key, answer))
        threads = []
        for key, jobs in groups.items():
            thread = threading.Thread(target=ask, args=(key, jobs),
                                      daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def check(self, callback=None, timeout=None):
        """Check every job that is not paused, deleted or known to have
        ended: one call per queue, _ASK_AT_ONCE (32) queues at once, each
        for at most ``timeout`` seconds (default TEJ_CHECK_TIMEOUT, 30).
        ``callback(before, after)`` is called for each job whose state
        changed (two `KnownJob`). Return all the jobs (not deleted), as
        `jobs` does; those that could not be reached have ``error`` set
        and their last known state.
        """
        import queue as queuelib
        if timeout is None:
            timeout = _timeout_setting('TEJ_CHECK_TIMEOUT', _CHECK_TIMEOUT)
        with self._db() as db:
            groups = self._groups(self._active(db))
        results = queuelib.Queue()
        self._ask_all(groups, 'status', 0, timeout, results)
        errors, answers = {}, {}
        # _ASK_AT_ONCE queues at a time: as many timeouts as turns
        turns = -(-len(groups) // _ASK_AT_ONCE)
        deadline = time.monotonic() + timeout * turns + 5
        for _ in groups:
            try:
                key, answer = results.get(
                    timeout=max(0, deadline - time.monotonic()))
            except queuelib.Empty:
                break
            if isinstance(answer, Error):
                errors[key] = str(answer)
            else:
                answers.update(answer)
        for key in groups:
            if key not in errors and not all(
                    (j.key, j.submitted) in answers for j in groups[key]):
                errors[key] = "No answer within %s" % _seconds_text(timeout)
        with self._db() as db:
            pairs = self._store(db, answers, time.time())
            if callback is not None:
                for before, after in self._changed(pairs):
                    callback(before, after)
            now = {(after.key, after.submitted): after for _, after in pairs}
            unreachable = {j.key: errors[key] for key, jobs in groups.items()
                           if key in errors for j in jobs}
            return [now.get((j.key, j.submitted), j)._replace(
                error=unreachable.get(j.key))
                for j in self._select(db, 'WHERE deleted IS NULL')]

    def watch(self, interval=None, on_change=None, stop_event=None,
              on_end=None, until_done=False):
        """Watch the jobs that are not paused, deleted or reported ended,
        until ``stop_event`` (a threading.Event) is set or, with
        ``until_done``, until none is left.

        The servers do the waiting: each queue gets one call that returns
        as soon as one of its jobs ends, or after ``interval`` seconds
        (default 60), and then the next. ``on_change(before, after)`` is
        called for each change of state (two `KnownJob`); ``on_end(job)``
        once for each job's end, whichever monitor (or program) sees it:
        a job that ended while nothing watched is reported by the next
        watch. A queue that cannot be reached is tried again after 1 s,
        2 s, 4 s... up to ``interval``; ``on_change(before, after)`` gets
        ``after.error`` set the first time. Return the jobs whose end this
        watch reported.
        """
        import queue as queuelib
        interval = _WATCH_INTERVAL if interval is None else interval
        if interval < 1:
            raise ValueError("The interval is at least 1 second")
        timeout = interval + _timeout_setting('TEJ_CHECK_TIMEOUT',
                                              _CHECK_TIMEOUT)
        results = queuelib.Queue()
        asking, retry_at, failing, reported = {}, {}, {}, []
        delay = {}  # before a queue that failed is asked again

        def stopped():
            return stop_event is not None and stop_event.is_set()

        def report(db, jobs):
            for job in jobs:
                if job.ended and not job.paused and job.deleted is None \
                        and self._claim(db, job):
                    reported.append(job)
                    if on_end is not None:
                        on_end(job)

        while not stopped():
            with self._db() as db:
                # ends seen by `tej jobs`, or before a restart
                report(db, [j for j in self._select(
                    db, 'WHERE paused=0 AND deleted IS NULL AND reported '
                    'IS NULL') if j.ended])
                groups = self._groups(self._active(db))
            if until_done and not groups and not asking:
                break
            now = time.monotonic()
            start = {key: jobs for key, jobs in groups.items()
                     if key not in asking and retry_at.get(key, 0) <= now}
            for key in start:
                asking[key] = True
            self._ask_all(start, 'waitany', interval, timeout, results)
            try:
                key, answer = results.get(timeout=min(interval, 5))
            except queuelib.Empty:
                continue
            del asking[key]
            with self._db() as db:
                if isinstance(answer, Error):
                    # soon after a broken connection, less often after
                    # each failure, every interval at last
                    delay[key] = min(interval, delay.get(key, 0.5) * 2)
                    retry_at[key] = time.monotonic() + delay[key]
                    if key not in failing and on_change is not None:
                        for job in groups.get(key, ()):
                            on_change(job, job._replace(error=str(answer)))
                    failing[key] = str(answer)
                    continue
                for tried in (failing, retry_at, delay):
                    tried.pop(key, None)
                changes = self._changed(self._store(db, answer,
                                                    time.time()))
                for before, after in changes:
                    if on_change is not None:
                        on_change(before, after)
                report(db, [after for _, after in changes])
        return reported


def _registry():
    """The registry submit records into, or None (TEJ_REGISTRY=off)."""
    path = _registry_path()
    return None if path is None else JobMonitor(path)


class _RegistryRecorder(_Recorder):
    """Records in the job registry (`JobMonitor.add`, `JobMonitor.deleted`)
    what a `RemoteQueue` makes and deletes. A failure is a warning, never
    the operation's: the job is there all the same.
    """

    def added(self, queue, job_id, label, directory, new):
        self._write(lambda registry: registry.add(queue, job_id, label,
                                                  directory, new=new))

    def deleted(self, queue, job_ids=None):
        self._write(lambda registry: registry.deleted(queue, job_ids))

    @staticmethod
    def _write(write):
        """``write(registry)``, unless the registry is off; a failure is a
        warning."""
        try:
            registry = _registry()
            if registry is not None:
                write(registry)
        except (Error, OSError, ImportError) as e:
            logger.warning("The job registry was not updated: %s", e)


RemoteQueue.recorder = _RegistryRecorder()


# ===========================================================================
# Command line
# ===========================================================================

# Exit statuses of wait, run and status --check, which otherwise exit with
# the job's own exit code. Chosen where programs seldom exit, as env(1) and
# timeout(1) do; 126, 127 and 128+N stay the shell's.
_EXIT_RUNNING = 120
_EXIT_NOT_FOUND = 121
_EXIT_LOST = 122
_EXIT_KILLED = 123
_EXIT_TIMEOUT = 124
_EXIT_ERROR = 125

#: The exit statuses of wait, run and status --check that are not the job's.
_JOB_EXITS = [
    (_EXIT_RUNNING, "the job has not ended (status --check)"),
    (_EXIT_NOT_FOUND, "no such job"),
    (_EXIT_LOST, "the job was lost (its process vanished without an exit "
                 "code)"),
    (_EXIT_KILLED, "the job was killed"),
    (_EXIT_TIMEOUT, "timeout: the job goes on"),
    (_EXIT_ERROR, "error (in place of 1)"),
]


def _exit_codes(command=None):
    """The "exit status" part of the help of ``command`` (None: of tej):
    only the statuses it can end with.
    """
    job = {None: "wait, run and status --check exit with the job's own exit "
                 "code, or:",
           'status': "with --check: the job's own exit code, or:",
           'wait': "the job's own exit code (the first that failed), or:",
           'run': "the job's own exit code (it wins over a result that "
                  "did not come down), or:",
           'monitor': "with --until-done: 0 when every job whose end it "
                      "reported succeeded,\nelse the first failed job's own "
                      "exit code, or:"}
    lines = ["exit status:"]
    if command not in ('wait', 'run'):
        lines.append("  0    success%s" % {
            None: ' (status: whatever the job\'s state, "not found" too)',
            'status': ' (whatever the job\'s state, "not found" too)'}.get(
                command, ''))
        lines.append('  1    error: a message "tej: error: ..." says what')
    lines.append("  2    bad command line")
    lines.append("  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)")
    if command in job:
        lines.append(job[command])
        left_out = {'status': (_EXIT_TIMEOUT,), 'wait': (_EXIT_RUNNING,),
                    'run': (_EXIT_RUNNING,),
                    'monitor': (_EXIT_RUNNING, _EXIT_TIMEOUT)}.get(command, ())
        lines += ["  %d  %s" % (code, text) for code, text in _JOB_EXITS
                  if code not in left_out]
    return '\n'.join(lines) + '\n'


#: The commands that are about the connection, not a queue: no --queue.
_NO_QUEUE = ('login', 'logout')


class _Terminated(Exception):
    """SIGTERM, as an exception (like KeyboardInterrupt for SIGINT)."""


def _add_verbosity(parser, default=0):
    """-v and -q; a command's take ``default`` argparse.SUPPRESS: also
    accepted after the command, they keep the value given before it.
    """
    parser.add_argument('-v', '--verbose', action='count', default=default,
                        help="say what tej does (-vv: and the remote "
                             "commands)")
    parser.add_argument('-q', '--quiet', action='count', default=default,
                        help="errors only")


def _add_common(parser, with_id=False, with_queue=True):
    import argparse
    _add_verbosity(parser, argparse.SUPPRESS)
    parser.add_argument('destination', metavar='DESTINATION',
                        type=_destination_type,
                        help="[ssh://][user@]host[:port], an ssh_config "
                             "alias, or local:")
    if with_queue:
        parser.add_argument('--queue', default=DEFAULT_TEJ_DIR,
                            type=_queue_type,
                            help="the queue's directory on the server "
                                 "(default: %(default)s)")
    if with_id:
        parser.add_argument('--id', dest='job_id', required=True,
                            type=_job_id_type, help="the job's identifier")
    ssh = parser.add_argument_group('ssh options (passed to ssh)')
    ssh.add_argument('-F', dest='ssh_config', metavar='FILE',
                     help="ssh configuration file")
    ssh.add_argument('-i', dest='ssh_identity', action='append', default=[],
                     metavar='FILE', help="identity (private key) file")
    ssh.add_argument('-J', dest='ssh_jump', metavar='HOST',
                     help="jump host(s)")
    ssh.add_argument('-o', dest='ssh_option', action='append', default=[],
                     metavar='KEY=VALUE', help="an ssh_config option")
    ssh.add_argument('--no-multiplex', action='store_true',
                     help="one connection per call (no ControlMaster)")
    ssh.add_argument('--password', action='store_true',
                     help="log in with a password: TEJ_PASSWORD's, or else "
                          "asked for on the terminal (a password in "
                          "DESTINATION shows in the process list)")


def _arg_type(check):
    """An argparse ``type=`` that returns ``check(text)``; the ValueError
    or `Error` it raises becomes argparse's message (exit 2, under the
    subcommand's usage line).
    """
    def convert(text):
        try:
            return check(text)
        except (ValueError, Error) as e:
            import argparse
            raise argparse.ArgumentTypeError(str(e))
    return convert


def _checked(check):
    """A check that raises or not, as one that returns the text."""
    def checked(text):
        check(text)
        return text
    return checked


def _resource_type(key):
    """The argparse type of the resource ``key``: _job_options checks it."""
    return _arg_type(_checked(lambda text: _job_options(**{key: text})))


_destination_type = _arg_type(_checked(_parse_destination))
_queue_type = _arg_type(_checked(_check_queue_path))
_job_id_type = _arg_type(_checked(check_jobid))
_member_type = _arg_type(_checked(
    lambda text: _normalize_member(text, ValueError, top=True)))
_timeout_type = _arg_type(lambda text: _duration(text, 'timeout'))
_interval_type = _arg_type(lambda text: _duration(text, 'interval'))
_age_type = _arg_type(lambda text: int(_duration(text, 'duration')))


class _Unbuilt(object):
    """Stands for the parser of a command that is not being run: what is
    added to it is dropped.
    """

    def add_argument(self, *args, **kwargs):
        pass

    def add_argument_group(self, *args, **kwargs):
        return self

    add_mutually_exclusive_group = add_argument_group


def _parser(wanted=None):
    """The command line's parser. With ``wanted``, a command's name, only
    that command is built (start-up time); tej --help and a mistyped command
    build them all.
    """
    import argparse

    class Formatter(argparse.RawDescriptionHelpFormatter):
        pass

    parser = argparse.ArgumentParser(
        prog='tej', formatter_class=Formatter,
        description="Trivial Extensible Job-submission: send a directory "
                    "to a server over SSH, run it there, and get its "
                    "results back.",
        epilog=_exit_codes())
    parser.add_argument('--version', action='version',
                        version='tej version %s' % __version__)
    _add_verbosity(parser)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')

    def command(name, help, with_id=False, json=False):
        if wanted is not None and name != wanted:
            return _Unbuilt()
        sub = commands.add_parser(name, help=help, description=help,
                                  formatter_class=Formatter,
                                  epilog=_exit_codes(name))
        _add_common(sub, with_id, name not in _NO_QUEUE)
        if json:
            sub.add_argument('--json', action='store_true',
                             help="print JSON (see README.rst)")
        return sub

    sub = command('setup', "create the queue on the server and install the "
                           "runtime (submit does it when needed)")
    sub.add_argument('-r', '--runtime', choices=sorted(_RUNTIMES),
                     help="the runtime to install (default: default)")
    sub.add_argument('--make-link', action='append', dest='make_link',
                     metavar='PATH', help="also write a link file at PATH "
                     "pointing to the queue (repeatable)")
    sub.add_argument('--make-default-link', action='append_const',
                     dest='make_link', const=DEFAULT_TEJ_DIR,
                     help="write a link at %s pointing to the queue"
                          % DEFAULT_TEJ_DIR)
    sub.add_argument('--force', action='store_true',
                     help="replace an existing queue's runtime (its jobs "
                          "are kept) and existing links")
    sub.add_argument('--only-links', action='store_true',
                     help="only write the links")

    def job_options(sub):
        """The options of submit and run."""
        sub.add_argument('-r', '--runtime', choices=sorted(_RUNTIMES),
                         help="the runtime to install if the queue has none")
        sub.add_argument('--script', help="the file in the directory to run "
                         "(default: start.sh), or a shell command")
        sub.add_argument('directory', metavar='DIRECTORY')
        res = sub.add_argument_group(
            'resources (for the scheduler; the default runtime enforces '
            '--walltime, runs --prologue and refuses the others)')
        res.add_argument('--walltime', metavar='[D-]HH:MM:SS',
                         type=_arg_type(_walltime),
                         help="the time limit: [D-]HH:MM:SS, seconds, or "
                              "with a unit (90m, 2h, 1d)")
        res.add_argument('--cpus', metavar='N', type=_resource_type('cpus'),
                         help="CPUs for the job")
        res.add_argument('--mem', metavar='SIZE', type=_resource_type('mem'),
                         help="memory: MB, or with a unit (4000, 500M, 4G)")
        res.add_argument('--partition', metavar='NAME',
                         type=_resource_type('partition'),
                         help="the scheduler's partition or queue")
        res.add_argument('--account', metavar='NAME',
                         type=_resource_type('account'),
                         help="the account to charge")
        res.add_argument('--gpus', metavar='N', type=_resource_type('gpus'),
                         help="GPUs for the job")
        res.add_argument('--scheduler-arg', action='append', default=[],
                         type=_arg_type(_checked(
                             lambda text: _job_options(scheduler_args=[text]))),
                         metavar='ARG', dest='scheduler_args',
                         help="an argument for sbatch or qsub, as is "
                              "(repeatable)")
        res.add_argument('--prologue', metavar='CODE|FILE',
                         help="shell code run before the job, in its shell "
                              "(e.g. 'module load x'), or a file of it")
        up = sub.add_argument_group('what goes up')
        up.add_argument('--exclude', action='append', default=[],
                        metavar='PATTERN',
                        help="leave out what matches, as tar does (a glob "
                             "on paths in DIRECTORY: '*.o', 'build', "
                             "'data/*.tmp'; repeatable); DIRECTORY/"
                             ".tejignore holds more, one a line")
        up.add_argument('--dereference', action='store_true',
                        help="send the file that a link leading out of "
                             "DIRECTORY points to, not the link")
        up.add_argument('--compress', action='store_true',
                        help="gzip the upload (the server needs gzip)")
        progress_option(sub)

    def progress_option(sub):
        sub.add_argument('--progress', action='store_true',
                         help="show the transfer's progress as lines every "
                              "few seconds (shown by default, redrawn, when "
                              "stderr is a terminal; -q hides it)")

    sub = command('submit', "send a directory and start it as a job; "
                            "prints the job's id", json=True)
    job_options(sub)
    sub.add_argument('--id', dest='job_id', type=_job_id_type,
                     help="the job's id (default: <dirname>_<user>_<random>)")
    sub.add_argument('--content-id', action='store_true',
                     help="the id is <dirname>_<hash of the files, "
                          "script and options>: the same content is the "
                          "same job")
    sub.add_argument('--if-exists', choices=['fail', 'reuse'],
                     help="when a job has the id: fail (default), or reuse "
                          "it (default with --content-id)")

    sub = command('status', "print the job's status: running, finished "
                            "<exit code>, created, lost, or not found; for "
                            "several jobs, one line each: <id> <status>",
                  json=True)
    sub.add_argument('job_ids', nargs='*', metavar='ID', type=_job_id_type,
                     help="more jobs, asked about in the same call")
    sub.add_argument('--id', dest='job_id', action='append', default=[],
                     metavar='ID', type=_job_id_type,
                     help="the job's identifier (repeatable)")
    sub.add_argument('--check', action='store_true',
                     help="exit with the job's exit code, or 120 to 123 when "
                          "it has not finished (see below); for several, "
                          "with the first that did not succeed")
    sub = command('download', "fetch files or directories of a job; run "
                              "it again after an interruption to resume",
                  True)
    sub.add_argument('files', nargs='+', metavar='FILE', type=_member_type,
                     help="paths relative to the job's directory ('.': "
                          "all of it)")
    where = sub.add_mutually_exclusive_group()
    where.add_argument('--destination', dest='save_as', metavar='PATH',
                       help="save the one FILE under this name (in a "
                            "directory that is there)")
    where.add_argument('--directory', metavar='DIR',
                       help="save the files in DIR (default: here); DIR "
                            "is made if its parent is there")
    progress_option(sub)
    command('kill', "stop a running job (nothing happens if it ended)", True)
    sub = command('delete', "remove a job and its files from the server",
                  True)
    sub.add_argument('--kill', action='store_true',
                     help="kill the job first if it is running")
    sub = command('list', "print each job of the queue: <id> <status>, "
                          "the status as status prints it", json=True)
    sub.add_argument('-l', '--long', action='store_true',
                     help="also its exit code, age and runtime")
    sub.add_argument('--state', action='append', choices=_LIST_STATES,
                     dest='states', help="only the jobs in this state "
                     "(repeatable)")
    sub.add_argument('--since', type=_age_type, metavar='DURATION',
                     help="only the jobs submitted in the last DURATION "
                          "(seconds, or 90s, 15m, 2h, 7d, 2w, 1h30m)")
    sub = command('gc', "remove the jobs that ended (finished, killed, "
                        "lost) long enough ago, never one that has not; "
                        "prints each: <id> <state>", json=True)
    sub.add_argument('--older-than', type=_age_type, required=True,
                     metavar='DURATION', help="how long ago they ended (a "
                     "lost one: was first found lost) (seconds, or 90s, "
                     "15m, 2h, 7d, 2w, 1h30m)")
    sub.add_argument('--state', action='append', choices=_GC_STATES,
                     dest='states', help="only the jobs in this state "
                     "(repeatable; default: all three)")
    sub.add_argument('-n', '--dry-run', action='store_true',
                     help="remove nothing; print what would be removed")

    sub = command('wait', "wait until jobs have ended; exit with the exit "
                          "code of the first that failed", json=True)
    sub.add_argument('--id', dest='job_ids', action='append', required=True,
                     type=_job_id_type, metavar='ID',
                     help="a job's id (repeatable)")
    sub.add_argument('--timeout', type=_timeout_type, metavar='SECONDS',
                     help="give up after this long (exit 124; the jobs go "
                          "on): seconds, [D-]HH:MM:SS or with a unit (1h)")
    sub = command('logs', "print the job's _stdout (or _stderr)", True)
    sub.add_argument('--stderr', action='store_true',
                     help="print _stderr instead")
    sub.add_argument('-f', '--follow', action='store_true',
                     help="keep printing what the job writes, until it ends")
    sub = command('run', "submit with a content id, print the job's output "
                         "as it comes, wait, download results, delete the "
                         "job, and exit with its exit code; run the same "
                         "command again after an interruption to "
                         "re-attach", json=True)
    job_options(sub)
    sub.add_argument('--download', action='append', default=[], nargs='+',
                     type=_member_type, metavar='PATH',
                     help="results to fetch, relative to the job's "
                          "directory (one or more; repeatable)")
    sub.add_argument('--into', metavar='DIR', default='.',
                     help="where to put the results (default: here); DIR "
                          "is made if its parent is there")
    sub.add_argument('--keep', action='store_true',
                     help="do not delete the job at the end")
    sub.add_argument('--rerun-failed', action='store_true',
                     help="run the job again if it was there and failed "
                          "(a killed or lost one is always run again)")
    sub.add_argument('--timeout', type=_timeout_type, metavar='SECONDS',
                     help="give up after this long (exit 124; the job goes "
                          "on): seconds, [D-]HH:MM:SS or with a unit (1h)")
    command('login', "open the shared connection interactively (password, "
                     "two-factor and host key questions happen here)")
    command('logout', "close the shared connection")
    _registry_parsers(commands, Formatter, wanted)
    parser.commands = commands.choices
    return parser


def _parse_args(parser, argv):
    """The command line parsed. A mistake exits 2 under the usage line of
    the subcommand it concerns (argparse would give the top level's for an
    unknown argument).
    """
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        if extra:
            parser.error("unrecognized arguments: %s" % ' '.join(extra))
        return args
    sub = parser.commands[args.command]
    if extra:
        sub.error("unrecognized arguments: %s" % ' '.join(extra))
    if args.command == 'run':
        # --download a b --download c: one list
        args.download = [path for paths in args.download for path in paths]
    if args.command == 'status' and not args.job_id + args.job_ids:
        sub.error("status needs a job: --id ID, or IDs after the "
                  "destination")
    if getattr(args, 'save_as', None) is not None and len(args.files) != 1:
        sub.error("--destination is for one FILE; use --directory for "
                  "several")
    return args


def _ssh_options(args):
    options = []
    if args.ssh_config:
        options += ['-F', args.ssh_config]
    for identity in args.ssh_identity:
        options += ['-i', identity]
    if args.ssh_jump:
        options += ['-J', args.ssh_jump]
    for option in args.ssh_option:
        options += ['-o', option]
    return options


def _resources(args):
    """The submit resources given on the command line."""
    resources = {key: getattr(args, key) for key in (
        'walltime', 'cpus', 'mem', 'partition', 'account', 'gpus',
        'scheduler_args', 'prologue')}
    prologue = resources['prologue']
    if prologue is not None and os.path.isfile(prologue):
        with open(prologue) as fp:
            resources['prologue'] = fp.read()
    resources.update(label=args.label, record=not args.no_record)
    return resources


def _progress(args):
    """What --progress, -q and a terminal on stderr ask for (see
    _meter).
    """
    if args.progress:
        return 'lines'
    return args.quiet == 0 and _isatty(sys.stderr)


def _transfer_options(args):
    """The upload options given on the command line (submit, run)."""
    return {'exclude': args.exclude, 'dereference': args.dereference,
            'compress': args.compress, 'progress': _progress(args)}


def _job_exit(record):
    """The exit status that says how a job ended (see _JOB_EXITS)."""
    state = record['state']
    if state == _FINISHED:
        return record['exit']
    return {_NOTFOUND: _EXIT_NOT_FOUND, _LOST: _EXIT_LOST,
            _KILLED: _EXIT_KILLED}.get(state, _EXIT_RUNNING)


def _json_record(record):
    """A job's record as the JSON object documented in README.rst."""
    result = {'tej': 1, 'id': record['id'], 'state': record['state'],
              'exit_code': record.get('exit')}
    for key in ('submitted', 'started', 'finished'):
        epoch = record.get(key)
        result[key] = None if epoch is None else time.strftime(
            '%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))
        result[key + '_epoch'] = epoch
    result['directory'] = record.get('dir')
    result['runtime'] = record.get('runtime') or None
    result['runtime_id'] = record.get('runtime_id') or None
    result['scheduler_error'] = record.get('scheduler_error')
    return result


def _print_json(obj):
    import json
    sys.stdout.write(json.dumps(obj, sort_keys=True) + '\n')


class _TextWriter(object):
    """Bytes written to a text stream that has no binary buffer (a
    StringIO in place of sys.stdout)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        self.stream.write(data.decode('utf-8', 'replace'))

    def flush(self):
        self.stream.flush()


def _binary(stream):
    """The binary side of sys.stdout or sys.stderr."""
    stream.flush()
    if hasattr(stream, 'buffer'):
        return stream.buffer
    return _TextWriter(stream)


def _describe(record):
    """Say on stderr how long a job has been running, or took."""
    state, finished = record['state'], record['finished']
    started = record['started'] or record['submitted']
    now = record['now'] or time.time()
    if state == _RUNNING and started:
        logger.info("Job is still running (%s)",
                    _format_duration(now - started))
    elif state == _KILLED:
        logger.info("Job was killed")
    elif state == _LOST:
        logger.info("Job was lost: it ended without recording an exit code "
                    "(its process was killed, the server restarted, or its "
                    "submission died)")
    elif state == _FINISHED and started and finished:
        logger.info("Job ran for %s", _format_duration(finished - started))


def _cmd_setup(queue, args):
    queue.setup(links=args.make_link, force=args.force,
                only_links=args.only_links)


def _cmd_submit(queue, args):
    job_id, created = queue.submit_job(
        args.job_id, args.directory, args.script, args.content_id,
        args.if_exists, **dict(_resources(args), **_transfer_options(args)))
    if not created:
        logger.info("Job %s exists already: using it", job_id)
    if args.json:
        _print_json({'tej': 1, 'id': job_id, 'created': created})
    else:
        sys.stdout.write('%s\n' % job_id)


def _cmd_status(queue, args):
    job_ids = list(dict.fromkeys(args.job_id + args.job_ids))
    if len(job_ids) == 1:
        try:
            records = [queue.info(job_ids[0])]
        except JobNotFound:
            records = [{'id': job_ids[0], 'state': _NOTFOUND}]
    else:
        records = queue.infos(job_ids)  # one call for all
    for record in records:
        if args.json:
            _print_json(_json_record(record))
            continue
        if record['state'] == _NOTFOUND:
            line = 'not found'
        else:
            status, _, arg = _compat_status(record)
            line = '%s %s' % (status, arg) if arg else status
        if len(records) == 1:
            sys.stdout.write(line + '\n')
            if record['state'] != _NOTFOUND:
                _describe(record)
        else:
            sys.stdout.write('%s %s\n' % (record['id'], line))
    if args.check:
        for record in records:
            if _job_exit(record):
                return _job_exit(record)
        return 0


def _cmd_download(queue, args):
    if args.save_as is not None:
        queue.download(args.job_id, args.files, destination=args.save_as,
                       progress=_progress(args))
    else:
        queue.download(args.job_id, args.files,
                       directory=args.directory or '.',
                       progress=_progress(args))


def _cmd_kill(queue, args):
    queue.kill(args.job_id)


def _cmd_delete(queue, args):
    try:
        queue.delete(args.job_id, kill=args.kill)
    except JobStillRunning as e:
        raise JobStillRunning("%s: delete --kill kills it first" % e)


def _cmd_list(queue, args):
    for job_id, info in queue.list(args.states, args.since):
        if args.json:
            _print_json(_json_record(info))
        elif args.long:
            exit_code = info['exit']
            age = info['now'] - info['submitted'] if info['now'] and \
                info['submitted'] else None
            sys.stdout.write('%s %s %s %s %s\n' % (
                job_id, info['state'], '-' if exit_code is None
                else exit_code, '-' if age is None
                else _format_duration(age), info['runtime'] or '-'))
        else:
            sys.stdout.write('%s %s\n' % (job_id, info['status']))


def _cmd_gc(queue, args):
    records = queue.gc(args.older_than, args.states, args.dry_run)
    for record in records:
        if args.json:
            _print_json(_json_record(record))
        else:
            sys.stdout.write('%s %s\n' % (record['id'], record['state']))
    logger.info("%s %d job%s", "Would remove" if args.dry_run else "Removed",
                len(records), '' if len(records) == 1 else 's')


def _cmd_logs(queue, args):
    target = _binary(sys.stdout)
    queue.logs(args.job_id, stdout=None if args.stderr else target,
               stderr=target if args.stderr else None, follow=args.follow)


def _cmd_login(queue, args):
    queue.login()


def _cmd_logout(queue, args):
    queue.logout()


def _cmd_wait(queue, args):
    try:
        records = queue.wait_all(args.job_ids, timeout=args.timeout)
    except JobStillRunning as e:
        logger.warning("%s; it goes on", e)
        return _EXIT_TIMEOUT
    for record in records:
        if args.json:
            _print_json(_json_record(record))
        _say_how_it_ended(record)
    for record in records:
        if _job_exit(record):
            return _job_exit(record)
    return 0


def _cmd_run(queue, args):
    if args.download and not os.path.isdir(args.into):
        _need_parent(args.into, '--into')  # before the job, not after it
    try:
        job_id = queue.submit_once(
            args.directory, args.script, args.rerun_failed,
            **dict(_resources(args), **_transfer_options(args)))
    except (KeyboardInterrupt, _Terminated):
        # a job whose upload was cut is not made; one that was goes on
        logger.warning("Interrupted while submitting. Run the same command "
                       "again to re-attach to the job, or to submit it.")
        raise
    try:
        state, exit_code = queue.logs(
            job_id, stdout=_binary(sys.stderr if args.json else sys.stdout),
            stderr=_binary(sys.stderr), follow=True, timeout=args.timeout)
    except JobStillRunning as e:
        logger.warning("%s; it goes on. Run the same command again to "
                       "re-attach.", e)
        return _EXIT_TIMEOUT
    except (KeyboardInterrupt, _Terminated):
        logger.warning(
            "Job %s goes on, on %s. Run the same command again to "
            "re-attach, or stop it with: %s", job_id,
            queue.destination_string,
            _command_line(args, 'kill', '--id', job_id))
        raise
    record = {'id': job_id, 'state': state, 'exit': exit_code}
    if args.json and state != _NOTFOUND:
        # the whole record, while the job is there
        record = queue.info(job_id)
    status = _job_exit(record)
    downloaded, keep = [], args.keep
    for path in args.download:
        # each that is there comes, whatever the exit code
        try:
            downloaded += queue.download(job_id, [path],
                                         directory=args.into,
                                         progress=_progress(args))
        except _NoSuchFile as e:
            logger.warning("%s", e)
            if status == 0:
                status, keep = _EXIT_ERROR, True
        except (Error, OSError) as e:
            # on the server or here (a file in the way, a full disk): the
            # job's own failure wins over it
            logger.warning("Could not download %s: %s", path, e)
            status, keep = status or _EXIT_ERROR, True
    if keep and not args.keep:
        logger.warning("Job %s is kept, for its results. Delete it with: %s",
                       job_id, _command_line(args, 'delete', '--id', job_id))
    elif not keep:
        try:
            queue.delete(job_id)
        except JobNotFound:  # another run of the same job deleted it
            pass
    if args.json:
        _print_json(dict(_json_record(record), downloaded=downloaded))
    _say_how_it_ended(record)
    return status


def _say_how_it_ended(record):
    """A warning for a job that did not succeed (wait, run)."""
    state, job_id = record['state'], record['id']
    if state == _NOTFOUND:
        logger.warning("no job %s", job_id)
    elif state != _FINISHED:
        logger.warning("Job %s was %s", job_id, state)
    elif record['exit']:
        logger.warning("Job %s failed with exit code %d", job_id,
                       record['exit'])


def _command_line(args, command, *arguments):
    """A command line for ``command`` on the same queue, that works when
    pasted: this Python and this file, the destination (a password in it
    becomes --password), --queue and the ssh options given.
    """
    destination = _masked(args.destination)
    password = args.password or destination != args.destination
    argv = [sys.executable, os.path.abspath(__file__), command,
            destination.replace(':***@', '@', 1)] + list(arguments)
    queue = getattr(args, 'queue', DEFAULT_TEJ_DIR)
    if queue != DEFAULT_TEJ_DIR and command not in _NO_QUEUE:
        argv += ['--queue', queue]
    argv += _ssh_options(args)
    if args.no_multiplex:
        argv.append('--no-multiplex')
    if password:
        argv.append('--password')
    return _shell_command(argv)


# ---- the registry's commands: jobs, monitor, pause, unpause, forget ----------

_REGISTRY_HELP = {
    'jobs': "list the jobs submitted from this machine, on every server, "
            "with their states (one call per queue, 32 at once)",
    'monitor': "watch the jobs submitted from this machine and print a line "
               "when one changes state; each end is reported once",
    'pause': "stop checking jobs (jobs and monitor show their last state)",
    'unpause': "check paused jobs again",
    'forget': "drop jobs from this machine's registry (the jobs are left "
              "alone)",
}


def _registry_parsers(commands, formatter, wanted=None):
    """The registry's commands, and its options of submit and run (only
    ``wanted``'s, when it is given: see _parser).
    """
    import argparse
    for name in ('submit', 'run'):
        sub = commands.choices.get(name)
        if sub is None:
            continue  # not being run
        sub.add_argument('--label', type=_arg_type(_checked(_check_label)),
                         help="a label for the job in the registry (tej "
                         "jobs, tej monitor); no control characters")
        sub.add_argument('--no-record', action='store_true',
                         help="do not record the job in the registry")

    def command(name, selection):
        if wanted is not None and name != wanted:
            return _Unbuilt()
        sub = commands.add_parser(
            name, help=_REGISTRY_HELP[name], description=_REGISTRY_HELP[name],
            formatter_class=formatter, epilog=_REGISTRY_EPILOG + (
                _exit_codes(name)))
        _add_verbosity(sub, argparse.SUPPRESS)
        if selection:
            sub.add_argument('destination', metavar='DESTINATION', nargs='?',
                             help="the jobs' destination")
            sub.add_argument('--id', dest='job_id', help="the job's id")
            sub.add_argument('--queue', help="the jobs' queue (default: "
                             "any)")
            sub.add_argument('--label', help="the jobs with this label")
        return sub

    sub = command('jobs', False)
    sub.add_argument('--state', action='append', metavar='STATE',
                     choices=_JOBS_STATES,
                     help="only jobs in this state (repeatable): %s"
                          % ', '.join(_JOBS_STATES))
    sub.add_argument('--label', help="only jobs with this label")
    sub.add_argument('--dest', metavar='DESTINATION',
                     help="only jobs on this destination")
    sub.add_argument('--json', action='store_true',
                     help="print JSON, one object per job (see README.rst)")
    sub.add_argument('--cached', action='store_true',
                     help="the states last seen, without connecting")
    sub = command('monitor', False)
    sub.add_argument('--interval', type=_interval_type, metavar='SECONDS',
                     default=_WATCH_INTERVAL,
                     help="ask each queue again after this long at most "
                          "(default: %(default)s; an end is seen at once)")
    sub.add_argument('--until-done', action='store_true',
                     help="return when no job is left to watch, with exit "
                          "status 0 if all succeeded (see below)")
    sub.add_argument('--on-end', metavar='COMMAND',
                     help="a shell command run for each job that ends, with "
                          "TEJ_DEST, TEJ_QUEUE, TEJ_JOB_ID, TEJ_STATE, "
                          "TEJ_EXIT_CODE, TEJ_LABEL, TEJ_DIRECTORY set")
    sub.add_argument('--notify', action='store_true',
                     help="a desktop notification for each end (notify-send, "
                          "osascript, else the terminal bell)")
    for name in ('pause', 'unpause', 'forget'):
        command(name, True)


_REGISTRY_EPILOG = """\
the registry: $TEJ_REGISTRY, else $XDG_DATA_HOME/tej/jobs.sqlite3
(~/.local/share/tej/); TEJ_REGISTRY=off records nothing.

"""

def _selection(args):
    """pause, unpause, forget: the jobs named, as JobMonitor arguments."""
    if args.job_id is not None and args.destination is None:
        raise ValueError("--id needs a DESTINATION")
    if args.destination is None and args.label is None:
        raise ValueError("name the jobs: DESTINATION (and --id), or --label")
    return dict(destination=args.destination, job_id=args.job_id,
                label=args.label, queue=args.queue)


def _cmd_pause(queue, args):
    _changed(JobMonitor().pause(**_selection(args)), 'paused')


def _cmd_unpause(queue, args):
    _changed(JobMonitor().unpause(**_selection(args)), 'unpaused')


def _cmd_forget(queue, args):
    _changed(JobMonitor().forget(**_selection(args)), 'forgotten')


def _changed(count, what):
    if not count:
        raise Error("No such job in the registry")
    logger.info("%d job%s %s", count, '' if count == 1 else 's', what)


#: What tej jobs shows in its STATE column (_shown_state): a job's state,
#: or why it has none that is live.
_JOBS_STATES = _STATES + ('unreachable', 'paused', 'deleted')


def _shown_state(job):
    """The state that tej jobs shows: the live one, or why there is none."""
    if job.deleted is not None:
        return 'deleted'
    if job.error is not None:
        return 'unreachable'
    if job.paused:
        return 'paused'
    return job.state or '-'


def _json_job(job):
    return {'tej': 1, 'destination': job.destination, 'queue': job.queue,
            'id': job.id, 'state': _shown_state(job),
            'last_state': job.state, 'exit_code': job.exit_code,
            'checked_epoch': job.checked, 'submitted_epoch': job.submitted,
            'label': job.label, 'directory': job.directory,
            'paused': job.paused, 'error': job.error}


def _jobs_table(jobs, now, width=80, cached=False):
    """The lines of tej jobs' table, fitted into ``width`` columns:
    destination, id, state, exit code, age, label, local directory; and
    "seen", the last known state and its age, when some are not live.
    """
    home = os.path.expanduser('~')
    stale = cached or any(_shown_state(j) in ('unreachable', 'paused')
                          for j in jobs)
    head = ['DESTINATION', 'ID', 'STATE', 'EXIT', 'AGE'] + \
        (['SEEN'] if stale else []) + ['LABEL', 'DIRECTORY']
    rows = []
    for job in jobs:
        if cached:
            state = 'deleted' if job.deleted else (job.state or '-')
        else:
            state = _shown_state(job)
        seen = '-' if job.checked is None else _age(now - job.checked)
        if not cached and state in ('unreachable', 'paused'):
            seen = '%s %s' % (job.state or 'never', seen)
        directory = job.directory or '-'
        if directory == home or directory.startswith(home + os.sep):
            directory = '~' + directory[len(home):]
        # one line a job, whatever a directory's name holds (or a label
        # recorded by an older tej)
        rows.append([_harmless(text, '') for text in [
            job.destination, job.id, state,
            '-' if job.exit_code is None else str(job.exit_code),
            _age(now - job.submitted)] + ([seen] if stale else []) +
            [job.label or '', directory]])
    widths = [max(len(r[i]) for r in [head] + rows)
              for i in range(len(head))]
    # what does not fit is cut, a little at a time: the directory (its
    # start) down to ".../NAME", the destination, the label, the
    # directory again, then the id (which says which job it is) and the
    # others further
    label, last = len(head) - 2, len(head) - 1
    names = max([len('.../' + os.path.basename(r[last])) for r in rows] +
                [9])
    for column, least in ((last, names), (0, 12), (label, 5), (last, 9),
                          (1, 20), (0, 8), (1, 12)):
        excess = sum(widths) + len(widths) - 1 - width
        if excess <= 0:
            break
        widths[column] = max(min(least, widths[column]),
                             widths[column] - excess)

    def cut(text, size, column):
        if len(text) <= size:
            return text
        if column == last:
            return '...' + text[len(text) - size + 3:]
        return text[:size - 3] + '...'
    right = {3, 4}
    lines = []
    for row in [head] + rows:
        cells = [cut(text, widths[i], i) for i, text in enumerate(row)]
        lines.append(' '.join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i])
            for i, c in enumerate(cells)).rstrip())
    return lines


def _cmd_jobs(queue, args):
    import shutil
    monitor = JobMonitor()
    now = time.time()
    if args.cached:
        jobs = monitor.jobs(deleted=True)
    else:
        jobs = monitor.check() + [j for j in monitor.jobs(deleted=True)
                                  if j.deleted is not None]
    for destination, error in sorted({(j.destination, j.error)
                                      for j in jobs if j.error}):
        logger.warning("%s is unreachable: %s", destination, error)
    jobs.sort(key=lambda j: (j.submitted, j.key))
    if args.dest is not None:
        wanted = _short_destination(args.dest)
        jobs = [j for j in jobs if j.destination == wanted]
    if args.label is not None:
        jobs = [j for j in jobs if j.label == args.label]
    if args.state:
        jobs = [j for j in jobs if _shown_state(j) in args.state or
                (j.state in args.state and j.deleted is None)]
    else:
        jobs = [j for j in jobs if j.deleted is None]
    if args.json:
        for job in jobs:
            _print_json(_json_job(job))
    elif jobs:
        width = shutil.get_terminal_size((80, 24)).columns
        for line in _jobs_table(jobs, now, width, args.cached):
            sys.stdout.write(line + '\n')


def _notify(text):
    """A desktop notification, else the terminal bell."""
    import shutil
    for argv in (['notify-send', 'tej', text],
                 ['osascript', '-e', 'display notification %s with title '
                  '"tej"' % ('"%s"' % text.replace('\\', '\\\\')
                             .replace('"', '\\"'))]):
        if shutil.which(argv[0]):
            subprocess.call(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=30)
            return
    sys.stderr.write('\a')
    sys.stderr.flush()


def _on_end_command(command, job):
    """Run --on-end's shell command for a job that ended."""
    env = dict(os.environ, TEJ_DEST=job.destination, TEJ_QUEUE=job.queue,
               TEJ_JOB_ID=job.id, TEJ_STATE=job.state,
               TEJ_EXIT_CODE='' if job.exit_code is None
               else str(job.exit_code), TEJ_LABEL=job.label or '',
               TEJ_DIRECTORY=job.directory or '')
    argv = ['cmd', '/c', command] if os.name == 'nt' else \
        ['sh', '-c', command]
    sys.stdout.flush()
    code = subprocess.call(argv, env=env, stdin=subprocess.DEVNULL)
    if code:
        logger.warning("--on-end for job %s exited with %d", job.id, code)


def _cmd_monitor(queue, args):
    failed, unreachable = [], set()

    def line(job):
        text = '%s %s %s' % (job.destination, job.id, job.state)
        if job.exit_code is not None:
            text += ' %d' % job.exit_code
        return text

    def on_change(before, after):
        if after.error is not None:
            if after.destination not in unreachable:
                logger.warning("%s is unreachable (tried again every "
                               "interval): %s", after.destination,
                               after.error)
            unreachable.add(after.destination)
            return
        unreachable.discard(after.destination)
        if not after.ended:
            sys.stdout.write(line(after) + '\n')
            sys.stdout.flush()

    def on_end(job):
        sys.stdout.write(line(job) + '\n')
        sys.stdout.flush()
        record = {'state': job.state, 'exit': job.exit_code}
        if _job_exit(record) and not failed:
            failed.append(_job_exit(record))
        if args.notify:
            _notify(line(job))
        if args.on_end:
            _on_end_command(args.on_end, job)
    try:
        JobMonitor().watch(args.interval, on_change, None, on_end,
                           args.until_done)
    except Error as e:
        if not args.until_done:
            raise
        sys.stderr.write('tej: error: %s\n' % _harmless(str(e)))
        return _EXIT_ERROR
    return failed[0] if failed else 0


#: The registry's commands: _cmd_<name>(None, args), no queue of their own.
_REGISTRY_COMMANDS = {
    'jobs': _cmd_jobs, 'monitor': _cmd_monitor, 'pause': _cmd_pause,
    'unpause': _cmd_unpause, 'forget': _cmd_forget,
}


#: What each command does: _cmd_<name>(queue, args) -> exit status (None
#: for 0).
_COMMANDS = {
    'setup': _cmd_setup, 'submit': _cmd_submit, 'status': _cmd_status,
    'download': _cmd_download, 'kill': _cmd_kill, 'delete': _cmd_delete,
    'list': _cmd_list, 'gc': _cmd_gc, 'wait': _cmd_wait, 'logs': _cmd_logs, 'run': _cmd_run,
    'login': _cmd_login, 'logout': _cmd_logout,
}
_COMMANDS.update(_REGISTRY_COMMANDS)  # jobs, monitor...: no queue


class _CommandLineQueue(RemoteQueue):
    """The queue that the command line names (``args``): the commands its
    messages suggest are ones that work when pasted (_command_line).
    """

    def __init__(self, args):
        self.args = args
        super(_CommandLineQueue, self).__init__(
            _destination(args), getattr(args, 'queue', DEFAULT_TEJ_DIR),
            setup_runtime=getattr(args, 'runtime', None),
            ssh_options=_ssh_options(args), multiplex=not args.no_multiplex)

    def command_for(self, command):
        return _command_line(self.args, command)


def _destination(args):
    """The destination, with --password's password (TEJ_PASSWORD's, or
    asked for on the terminal).
    """
    destination = _parse_destination(args.destination)
    if 'password' in destination:
        logger.warning("The password in %s shows in the process list: use "
                       "--password (with TEJ_PASSWORD, or asked for)",
                       _masked(args.destination))
    elif args.password and not destination.get('local'):
        password = os.environ.get('TEJ_PASSWORD')
        if not password:
            if not sys.stdin.isatty():
                raise Error("--password: set TEJ_PASSWORD, or run tej in "
                            "a terminal to be asked")
            try:
                import getpass
                password = getpass.getpass("Password for %s: "
                                           % args.destination)
            except EOFError:
                raise Error("No password given")
        destination['password'] = password
    return destination


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None):
    """Run the command line; return the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word that is not an option (tej's own
    # options take no value)
    wanted = next((w for w in words if not w.startswith('-')), None)
    parser = _parser(wanted if wanted in _COMMANDS else None)
    args = _parse_args(parser, words)
    if args.command is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write("tej: error: a command is required\n")
        return 2
    level = [_ERROR, _INFO, _VERBOSE, _DEBUG][
        max(0, min(3, 1 + args.verbose - args.quiet))]
    # messages to stderr, without the logging module (start-up time)
    previous_cli, _Logger.cli = _Logger.cli, (level, sys.stderr)
    # wait, run and status --check exit with job codes: errors are 125
    error_code = _EXIT_ERROR if args.command in ('wait', 'run') or \
        getattr(args, 'check', False) else 1
    import signal
    previous = None
    if _in_main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _COMMANDS[args.command](
            None if args.command in _REGISTRY_COMMANDS else
            _CommandLineQueue(args),
            args) or 0
    except (Error, ValueError, OSError) as e:
        if isinstance(e, BrokenPipeError):  # tej logs | head
            return 141
        # it may quote the server's stderr: escapes shown, not obeyed
        sys.stderr.write('tej: error: %s\n' % _harmless(str(e)))
        return error_code
    except KeyboardInterrupt:
        sys.stderr.write('tej: interrupted\n')
        return 130
    except _Terminated:
        sys.stderr.write('tej: terminated\n')
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _Logger.cli = previous_cli


def _in_main_thread():
    """Signal handlers can only be set from the main thread."""
    import threading
    return threading.current_thread() is threading.main_thread()


# ===========================================================================
# Appendix: the embedded runtimes (make embed copies runtimes/*.sh here)
# ===========================================================================
#
# The server's side of the protocol, verbatim: 2,000 lines of sh that are
# data to this file, so they come last, as bottle.py keeps its data at the
# end; the chapters above refer forward to them, by name, only from inside
# functions (_runtime_version, _BOOTSTRAP, _FAST_START, _RUNTIMES). What is
# made of them at import time is made here, after them.

# BEGIN runtimes/probe.sh
_RUNTIME_PROBE = r'''# tej probes: does the server have a scheduler that answers? Whose home
# does "~NAME" name?
#
# tej.py puts this file ahead of bootstrap.sh (which detects the runtime of
# a new queue and resolves the queue path) and in every QUEUE/tej.sh
# (slurm.sh and pbs.sh check that their scheduler is usable, _install
# resolves the paths of links), so that both ask the same questions.
#
#   _probe_slurm          sbatch is on the PATH and sinfo answers
#   _probe_pbs            qsub is on the PATH and qstat -Q answers
#   _expand_user ~NAME    for queue.sh's _expand_path: NAME's home
#
# Each answers within 30 seconds where timeout(1) exists: a controller that
# slow is taken for none. Comments stand on lines of their own: tej.py
# folds this file into one line.

# _probe COMMAND [ARG ...]: does COMMAND succeed, in time?
_probe() {
    if command -v timeout > /dev/null 2>&1; then
        timeout 30 "$@" > /dev/null 2>&1
    else
        "$@" > /dev/null 2>&1
    fi
}

_probe_slurm() {
    command -v sbatch > /dev/null 2>&1 && _probe sinfo -h
}

_probe_pbs() {
    command -v qsub > /dev/null 2>&1 && _probe qstat -Q
}

# _expand_user ~NAME[/...]: for _expand_path. NAME reaches the shell's own
# "~NAME" (which asks the password database, NIS or LDAP too) only once it
# is known to be a user name: letters, digits, ".", "_", "-", not "-" first
# ("~-" is $OLDPWD to some shells); the "/" after it keeps a newline at its
# end from vanishing in $(...). Anything else, or an unknown user:
# RC_INVALID.
_expand_user() {
    _eu_name=${1#"~"}
    _eu_name=${_eu_name%%/*}
    case $_eu_name in
        -*) _eu_rest=- ;;
        *) _eu_rest=$(printf '%s/' "$_eu_name" | LC_ALL=C tr -d 'A-Za-z0-9._-') ;;
    esac
    _eu_home=
    if [ "$_eu_rest" = / ]; then
        eval "_eu_home=~$_eu_name"
    else
        printf 'tej: invalid user name in the path %s\n' "$1" >&2
        exit "$RC_INVALID"
    fi
    case $_eu_home in
        ""|"~"*) printf 'tej: no user %s on this server (path %s)\n' "$_eu_name" "$1" >&2; exit "$RC_INVALID" ;;
    esac
    _ep_path=$_eu_home${1#"~$_eu_name"}
}
'''
# END runtimes/probe.sh

# BEGIN runtimes/queue.sh
_RUNTIME_QUEUE = r'''# tej queue: where a queue path from the client leads, and whether the
# runtime installed there is one the client knows.
#
# tej.py puts this file in three places, so that each reads a queue the
# same way: the bootstrap (behind probe.sh and ahead of bootstrap.sh), the
# fast start (ahead of fast.sh) and every QUEUE/tej.sh (_install resolves
# the paths of links with it).
#
#   _expand_path PATH             the directory PATH names, in _ep_path
#   _version_ok VERSIONS VERSION  VERSION is not empty and is one of the
#                                 space-separated VERSIONS
#
# Comments stand on lines of their own, and there is no "!": tej.py folds
# this file into one line.

# _expand_path PATH: PATH as sh would expand it, in _ep_path: "~" and
# "~/..." in $HOME, "~NAME" and "~NAME/..." in user NAME's home (probe.sh's
# _expand_user; fast.sh's leaves _ep_path empty), a relative path in $HOME.
# The client never expands "~": this is where it is done.
# shellcheck disable=SC2088 # a literal "~" from the client
_expand_path() {
    case $1 in
        "~") _ep_path=$HOME ;;
        "~/"*) _ep_path=$HOME/${1#"~/"} ;;
        "~"*) _expand_user "$1" ;;
        /*) _ep_path=$1 ;;
        *) _ep_path=$HOME/$1 ;;
    esac
}

_version_ok() {
    case " $1 " in
        *" $2 "*) [ -n "$2" ] ;;
        *) return 1 ;;
    esac
}
'''
# END runtimes/queue.sh

# BEGIN runtimes/fast.sh
_RUNTIME_FAST = r'''# tej fast start: the first line of a call that has no input of its own.
#
# tej.py folds this file behind queue.sh into one line (_FAST_START), and
# sends it as the first line of the call's stdin, after "set -- QUEUE
# VERSIONS VERB [ARG ...]"; the second line is the whole bootstrap's. sh
# reads a line byte by byte (read may not take more than the line), and the
# whole bootstrap costs more than a warm status's own work: this is the
# common case in a few words.
#
# A queue path "~", "~/...", "/..." or relative to the home directory that
# is not a link file, with a runtime of VERSIONS installed, the queue and
# its tej.sh the user's and no one else's to write: tej.sh runs at
# once (it saves the caller's umask itself, when it needs it), read by this
# very sh with "." when it is TEJ_SH (sh's "$0" is the shell the transport
# ran: "sh" through ssh), else in TEJ_SH: an exec of another sh costs more
# than a warm status's own work. Anything else ("~NAME", a link, no queue,
# another version, a queue that others can write): sh reads the next line,
# the whole bootstrap, as every other call does.
#
# Comments stand on lines of their own, and there is no "!" (as in
# bootstrap.sh): tej.py folds this file into one line.

# "~NAME" is the bootstrap's to resolve (probe.sh's _expand_user, which
# replaces this one there and in tej.sh)
_expand_user() {
    _ep_path=
}

_expand_path "$1"
fast_version=
if [ -n "$_ep_path" ] && [ -d "$_ep_path" ]; then
    { IFS= read -r fast_version < "$_ep_path/version"; } 2>/dev/null
fi
# the queue and its tej.sh: the user's (-O; posh has none, and its calls
# take the bootstrap), and no one else's to write (a find: the one exec)
if _version_ok "$2" "$fast_version" && [ -O "$_ep_path" ] 2>/dev/null && [ -O "$_ep_path/tej.sh" ] && [ -z "$(find "$_ep_path/" "$_ep_path/tej.sh" -prune \( -perm -020 -o -perm -002 \) -print 2>/dev/null)" ]; then
    shift 2
    set -- "$_ep_path" "$@"
    unset _ep_path fast_version
    # shellcheck source=/dev/null # the queue's, installed by _install
    case ${TEJ_SH:-sh} in
        "$0") . "$1/tej.sh"; exit ;;
    esac
    exec "$TEJ_SH" "$1/tej.sh" "$@"
fi
IFS= read -r tej_call && eval "$tej_call"
'''
# END runtimes/fast.sh

# BEGIN runtimes/bootstrap.sh
_RUNTIME_BOOTSTRAP = r'''# tej bootstrap: what every call runs first on the server.
#
# tej.py folds this file into one line (_fold: whole-line comments and
# indentation dropped, lines joined with ";" or a space) behind the protocol
# prelude (TEJ_PROTOCOL and the RC_* exit codes, from tej.py's Protocol
# section), probe.sh and queue.sh, and runs it as
#
#     sh -c BOOTSTRAP tej QUEUE VERSIONS VERB [ARG ...]
#
# It resolves QUEUE ("~", "~NAME", a path relative to the home directory
# (queue.sh's _expand_path), "tejdir: PATH" link files, each remembered as
# TEJ_LINK_n for cleanup), then execs the installed runtime, QUEUE/tej.sh,
# if its version (the first line of QUEUE/version) is one of the
# space-separated VERSIONS (queue.sh's _version_ok).
#
# Otherwise it answers, after the sentinel line, "queue=missing" when there
# is no queue, "installed=VERSION" (empty for none), and for submit (which
# sets a queue up) "detected=NAME", and exits RC_NEED_RUNTIME: the client
# pushes a runtime and calls again.
#
# Verbs of its own:
#   _detect               answers "installed=VERSION" and "detected=NAME"
#   _install SIZE ARG ... takes a new runtime from the first SIZE bytes of
#                         stdin (dd bs=1 reads no further: the rest is for
#                         the verb run after the install) into a private
#                         new directory (mktemp -d, else beside the queue),
#                         and runs it as
#                         "tej.sh QUEUE _install ARG ..."
#
# "detected" is slurm when Slurm answers, pbs when PBS does, else default.
# The caller's umask is kept for the jobs (TEJ_UMASK).
#
# For the folding: comments on lines of their own only, each case item on
# one line, no "!" (a csh login shell reads the folded line too).

TEJ_UMASK=$(umask)
export TEJ_UMASK
umask 077
queue=$1
versions=$2
shift 2

_detected() {
    if _probe_slurm; then
        echo "detected=slurm"
    elif _probe_pbs; then
        echo "detected=pbs"
    else
        echo "detected=default"
    fi
}

_expand_path "$queue"
# shellcheck disable=SC2154 # set by queue.sh's _expand_path
queue=$_ep_path

# _strict PATH ...: true when each PATH (a directory named "DIR/") that is
# there is the user's, and its group and the others cannot write it; else
# false, with those that are not one a line in _st_bad. What others can
# write, they can make run as the user (a link file, the queue it leads to,
# the queue's tej.sh): tej uses none of it, as sshd's StrictModes uses no
# such home. (fast.sh checks the queue and its tej.sh itself.)
_strict() {
    _st_bad=$(find "$@" -prune \( -perm -020 -o -perm -002 \) -print -o -user "$(id -u)" -o -print 2>/dev/null)
    [ -z "$_st_bad" ]
}

_refuse() {
    echo "tej: refusing $_st_bad: it is not yours, or others can write it (its group, anyone), and could make their code run as you (sshd's StrictModes refuses such a home): make it yours, and chmod go-w it" >&2
    exit "$RC_FAILURE"
}

links=0
while [ -f "$queue" ]; do
    _strict "$queue" || _refuse
    line=
    IFS= read -r line < "$queue"
    case $line in
        "tejdir: "*) ;;
        *) echo "tej: $queue is neither a queue nor a link to one" >&2; exit "$RC_LINK_BROKEN" ;;
    esac
    links=$((links + 1))
    if [ "$links" -gt 10 ]; then
        echo "tej: too many links to follow" >&2
        exit "$RC_LINK_BROKEN"
    fi
    eval "TEJ_LINK_$links=\$queue"
    export "TEJ_LINK_$links"
    line=${line#"tejdir: "}
    case $line in
        /*) queue=$line ;;
        *) queue=${queue%/*}/$line ;;
    esac
done

_strict "$queue/" "$queue/tej.sh" || _refuse

# The pushed runtime's directory must be a new one of its own: another user
# could make a predictable name in /tmp first. mktemp -d's name cannot be
# guessed; without mktemp, a name beside the queue (in the user's own
# directory), which mkdir refuses if it is there already.
if [ "$1" = _install ]; then
    pushed=$(mktemp -d "${TMPDIR:-/tmp}/tej-install.XXXXXXXX" 2>/dev/null) || pushed=
    if [ -z "$pushed" ]; then
        pushed=${queue%/*}/.tej-install.$$
        mkdir -p "${queue%/*}/" 2>/dev/null
        mkdir -m 700 "$pushed" || { echo "tej: cannot make a private directory for the runtime: $pushed" >&2; exit "$RC_FAILURE"; }
    fi
    dd bs=1 count="$2" 2>/dev/null > "$pushed/tej.sh" || exit "$RC_FAILURE"
    shift 2
    exec "${TEJ_SH:-sh}" "$pushed/tej.sh" "$queue" _install "$@"
fi

installed=
if [ -f "$queue/version" ]; then
    IFS= read -r installed < "$queue/version"
fi
if [ "$1" = _detect ]; then
    echo "TEJ $TEJ_PROTOCOL"
    echo "installed=$installed"
    _detected
    exit "$RC_OK"
fi
if [ "$links" -gt 0 ]; then
    [ -d "$queue" ] || { echo "tej: broken queue link: $queue does not exist" >&2; exit "$RC_LINK_BROKEN"; }
fi
if _version_ok "$versions" "$installed"; then
    exec "${TEJ_SH:-sh}" "$queue/tej.sh" "$queue" "$@"
fi
echo "TEJ $TEJ_PROTOCOL"
[ -d "$queue" ] || echo "queue=missing"
echo "installed=$installed"
if [ "$1" = submit ]; then
    _detected
fi
exit "$RC_NEED_RUNTIME"
'''
# END runtimes/bootstrap.sh

# BEGIN runtimes/common.sh
_RUNTIME_COMMON = r'''#!/bin/sh
# tej runtime, common part: queue layout, job records, listing, transfers.
#
# The client installs the protocol's prelude, probe.sh, queue.sh, this file
# and one runtime's own file (default.sh, ...), in this order, as
# QUEUE/tej.sh,
# and runs it as
#
#     sh QUEUE/tej.sh QUEUE VERB [ARG ...]
#
# QUEUE is absolute: the client's bootstrap has resolved "~", relative
# paths and "tejdir: PATH" link files.
#
# Verbs:
#   _install VERSION MODE FORCE NLINKS [LINK ...] [VERB ARG ...]
#                         run from a temporary copy pushed by the client:
#                         MODE "auto" or "setup" puts this file in place as
#                         QUEUE/tej.sh (jobs are kept), MODE "links" only
#                         writes the NLINKS LINK files ("tejdir: QUEUE");
#                         then runs VERB, which reads the rest of stdin
#   submit ID MODE SCRIPT [KEY=VALUE ...]
#                         create job ID from a tar stream on stdin, start it;
#                         MODE "file" runs the file SCRIPT of the job, MODE
#                         "command" runs SCRIPT with sh -c. Options: walltime
#                         (seconds), cpus, mem (MB, or with a unit: 500M,
#                         4G), partition, account, gpus, arg
#                         (a scheduler argument, repeatable), prologue (sh
#                         code run before the job, in its shell); a runtime
#                         refuses those it cannot honour (RC_UNSUPPORTED)
#   status [-n] ID [ID ...]
#                         one record per job (-n: without "now"); jobs
#                         that have ended are answered at the top of this
#                         file, before the rest of it is read
#   list [state=STATE ...] [since=SECONDS]
#                         one record per job in the queue (in no order):
#                         those in one of the STATEs (any, without), and
#                         submitted in the last SECONDS (see _scan)
#   gc SECONDS [state=STATE ...] [dry]
#                         remove the jobs that ended (finished, killed,
#                         lost; or the STATEs of these) more than SECONDS
#                         ago (a lost one without an end: since it was
#                         found lost), and print their records ("dry":
#                         print them only); never a job that has not ended
#   wait SECONDS ID ...   as status, once every job has ended or after
#                         SECONDS
#   waitany SECONDS ID ...
#                         as status, once any of the jobs has ended (or is
#                         not there), or after SECONDS
#   download ID FLAGS NPARTS [SIZE OFFSET ./PART ...] ./PATH ...
#                         a tar stream of PATHs (relative to the job),
#                         after the rest of PARTs the client has (see
#                         _download)
#   _files ID ./PATH ...  for a download that resumes: the directories,
#                         files and links below PATHs, with mode, size and
#                         time
#   logs ID STREAMS MODE OFFSET_OUT OFFSET_ERR
#                         the job's _stdout and/or _stderr (STREAMS "out",
#                         "err" or "outerr") past the offsets: "stream=logs",
#                         frames "out N" or "err N" then N bytes; with MODE
#                         "follow", until the job has ended (with a line
#                         "tick" now and then); then a line "end STATE EXIT"
#   kill ID               stop a running job (TERM, then KILL after a grace)
#   delete ID [kill]      remove a job; refused while it runs, unless "kill"
#   cleanup [kill]        remove the whole queue and the links that led to it
#                         (a queue path that is a symbolic link: the
#                         directory it leads to, then the link)
#   _wrap ID, _batch ID   internal: the runtime's wrapper that runs the job
#
# Stdout: a sentinel line "TEJ 1", then for status, list and gc one line per
# job of tab-separated key=value fields, "dir=" last:
#   id=ID state=STATE exit=N submitted=T started=T finished=T now=T
#   runtime=NAME runtime_id=X dir=PATH
# with STATE one of created, queued, running, finished, killed, lost,
# notfound; times are epoch seconds, empty when unknown. download writes
# "stream=download" after the sentinel, then a tar archive.
#
# Job states (STATE; tej.py's Protocol section has the same table):
#   created     being submitted (its submitter holds the job's lock)
#   queued      the scheduler has it, not started yet
#   running     started, not ended
#   finished    ended with an exit code (exit=N)
#   killed      ended by tej kill, the scheduler or its time limit
#   lost        can no longer end: its process vanished without an exit
#               code, the server rebooted, or its submission died
#   notfound    (status, wait, logs) no job with that id
#
# Exit codes: RC_OK, RC_FAILURE (message on stderr), RC_RUNNING (job still
# running), RC_NO_JOB, RC_JOB_EXISTS, RC_LINK_BROKEN (bootstrap.sh),
# RC_QUEUE_EXISTS (queue or link already there), RC_INVALID (argument),
# RC_UNSUPPORTED, RC_NO_FILE (in the job), RC_NO_SPACE (the server's disk
# is full), RC_NEED_RUNTIME (bootstrap.sh).
# Their numbers, and TEJ_PROTOCOL, come from the prelude that tej.py puts
# ahead of this file (_prelude, from its Protocol section). Never 126,
# 127, 128+N or 255: those are the shell's and ssh's.
#
# Variables: each function's own start with its prefix (_lk_ in _lock...).
# Shared ones: Q (the queue) and TEJ_SELF (QUEUE/tej.sh), set by _main;
# st_* (the job record that _read_state or _load read); _locked, _tmp,
# _self, _creating, _beat_pid (what the EXIT trap removes or stops); _host
# (this host's name, once asked); _un_when, _un_said (the scheduler's last
# failure to answer in this call: _unasked).
#
# The runtime file appended to this one defines the hooks:
#   _rt_usable            exit RC_UNSUPPORTED with a message if the runtime
#                         cannot work
#   _rt_option KEY        exit RC_UNSUPPORTED if the runtime cannot honour
#                         submit option KEY
#   _rt_start JOBDIR ID   start the job (lock held); set st_state (queued or
#                         running), st_runtime_id
#   _rt_started JOBDIR    in the wrapper, as the job starts (lock held): set
#                         runtime fields (st_pid...)
#   _rt_refresh JOBDIR    bring the loaded record of an active job up to date
#                         with the runtime (lost, killed...)
#   _rt_listed            does the scheduler still list the loaded job?
#                         (scheduler runtimes, for _scheduler_end)
#   _rt_kill JOBDIR       stop the job; return when it has ended
#   _rt_wrap JOBDIR       verb _wrap: the wrapper that runs the job
# shellcheck disable=SC2034

set -eu
# the jobs get the caller's locale and umask back (_run_job), and their
# files the caller's umask (_submit); the queue's own files stay private
if [ -z "${TEJ_CALLER_SAVED:-}" ]; then
    TEJ_CALLER_SAVED=1 TEJ_LC_ALL=${LC_ALL-} TEJ_LC_ALL_SET=${LC_ALL+1}
    export TEJ_CALLER_SAVED TEJ_LC_ALL TEJ_LC_ALL_SET
fi
LC_ALL=C
export LC_ALL
# ---- the state file and the record line --------------------------------------
# (ahead of status's fast path, below, which uses them)

# the keys of a job's state file, as _save writes them (_read_state reads
# each of them)
_KEYS='state exit submitted started finished pid pgid boot killreq runtime runtime_id mode token'

_read_state() {  # _read_state JOBDIR: the job's state file (key=value
    # lines) in st_* variables, one for each of _KEYS (empty when the line
    # or the file is missing); _load adds what the lock says
    st_state='' st_exit='' st_submitted='' st_started='' st_finished=''
    st_pid='' st_pgid='' st_boot='' st_killreq='' st_runtime='' st_runtime_id=''
    st_mode='' st_token='' st_unasked='' st_lost=''
    [ -f "$1/state" ] || return 0
    while IFS= read -r _rd_line; do
        case $_rd_line in
            state=*) st_state=${_rd_line#*=} ;;
            exit=*) st_exit=${_rd_line#*=} ;;
            submitted=*) st_submitted=${_rd_line#*=} ;;
            started=*) st_started=${_rd_line#*=} ;;
            finished=*) st_finished=${_rd_line#*=} ;;
            pid=*) st_pid=${_rd_line#*=} ;;
            pgid=*) st_pgid=${_rd_line#*=} ;;
            boot=*) st_boot=${_rd_line#*=} ;;
            killreq=*) st_killreq=${_rd_line#*=} ;;
            runtime=*) st_runtime=${_rd_line#*=} ;;
            runtime_id=*) st_runtime_id=${_rd_line#*=} ;;
            mode=*) st_mode=${_rd_line#*=} ;;
            token=*) st_token=${_rd_line#*=} ;;
        esac
    done < "$1/state"
}

_TAB='	'

_format_record() {  # _format_record JOBDIR NOW: the line of the job's
    # record (tej.py's _parse_record reads it), from the st_* variables, in
    # _fr_line (without its newline); NOW is the time of the answer. With
    # st_state "notfound" (there is no such job), only id and state
    if [ "$st_state" = notfound ]; then
        _fr_line="id=${1##*/}${_TAB}state=notfound"
        return 0
    fi
    _fr_line="id=${1##*/}${_TAB}state=${st_state:-created}${_TAB}exit=$st_exit${_TAB}submitted=$st_submitted${_TAB}started=$st_started${_TAB}finished=$st_finished${_TAB}now=$2${_TAB}runtime=$st_runtime${_TAB}runtime_id=$st_runtime_id${st_unasked:+${_TAB}scheduler_error=$st_unasked}${_TAB}dir=$1/stage"
}

# status's fast path. sh runs a script's commands as it reads them: when
# every job asked about has ended (its record says finished, killed or
# lost, which never changes again) or is not there, status answers here and
# exits before the rest of this file is even read, with no lock, no runtime
# and no other process (not even for the umask; with -n, no "now" in the
# records: not even date);
# else the whole runtime answers (_status), as for any verb.
_fp_now=
if [ "${2:-}" = status ] && [ "$#" -ge 3 ]; then
    _fp_n=0 _fp_out='' _fp_rc=$RC_OK _fp_nl='
'
    if [ "$3" != -n ]; then
        _fp_now=$(date +%s)
    fi
    for _fp_id do
        _fp_n=$((_fp_n + 1))
        if [ "$_fp_n" -le 2 ] || { [ "$_fp_n" = 3 ] && [ "$_fp_id" = -n ]; }; then
            continue
        fi
        case $_fp_id in
            ''|-*|.*|*[!A-Za-z0-9_.,+=@%:-]*) _fp_n=0; break ;;
        esac
        [ "${#_fp_id}" -le 128 ] || { _fp_n=0; break; }
        if [ ! -d "$1/jobs/$_fp_id" ]; then
            st_state=notfound
            _fp_rc=$RC_NO_JOB
        else
            [ -f "$1/jobs/$_fp_id/state" ] || { _fp_n=0; break; }
            _read_state "$1/jobs/$_fp_id"
            case $st_state in
                finished|killed|lost) ;;
                *) _fp_n=0; break ;;
            esac
        fi
        _format_record "$1/jobs/$_fp_id" "$_fp_now"
        _fp_out=$_fp_out$_fr_line$_fp_nl
    done
    if [ "$_fp_n" -gt 0 ]; then
        printf 'TEJ %s\n%s' "$TEJ_PROTOCOL" "$_fp_out"
        exit "$_fp_rc"
    fi
fi

# (the bootstrap has saved the umask already, before its own umask 077;
# a call without input skips the bootstrap: tej.py's _FAST_START)
: "${TEJ_UMASK:=$(umask)}"
export TEJ_UMASK
umask 077

: "${TEJ_SH:=sh}"
export TEJ_SH
TEJ_GRACE=${TEJ_GRACE:-5}

_die() {  # _die CODE MESSAGE: exit with RC_<CODE>, the message on stderr
    _die_code=$1
    shift
    printf 'tej: %s\n' "$*" >&2
    exit "$_die_code"
}

_header() {  # the sentinel line that starts every answer
    printf 'TEJ %s\n' "$TEJ_PROTOCOL"
}

_nap() {  # _nap [TENTHS]: wait that many tenths of a second (1); where
    # sleep takes only whole seconds (POSIX), one second
    sleep "$((${1:-1} / 10)).$((${1:-1} % 10))" 2>/dev/null || sleep 1
}

_now() {
    date +%s
}

_check_id() {  # the server never trusts the client's validation
    case $1 in
        ''|-*|.*) _die "$RC_INVALID" "invalid job id: '$1'" ;;
        *[!A-Za-z0-9_.,+=@%:-]*) _die "$RC_INVALID" "invalid job id: '$1'" ;;
    esac
    [ "${#1}" -le 128 ] || _die "$RC_INVALID" "job id longer than 128 characters"
}

_check_mem() {  # _check_mem SIZE: a submit option mem: a number of MB, or
    # one with a unit, K, M, G or T, with or without a "b" (500M, 4G, 4gb)
    _cm_number=${1%[KMGTkmgt][Bb]}
    if [ "$_cm_number" = "$1" ]; then
        _cm_number=${1%[KMGTkmgt]}
    fi
    case $_cm_number in
        ''|*[!0-9]*) _die "$RC_INVALID" "invalid mem: '$1' (a number of MB, or with a unit: 500M, 4G)" ;;
    esac
}

_check_path() {  # a path inside a job: relative, no "..", not empty
    case /$1/ in
        //) _die "$RC_INVALID" "empty path" ;;
        *//*) _die "$RC_INVALID" "invalid path: '$1'" ;;
    esac
    case $1 in
        /*) _die "$RC_INVALID" "absolute path: '$1'" ;;
    esac
    case /$1/ in
        */../*) _die "$RC_INVALID" "path goes up with '..': '$1'" ;;
    esac
}

# ---- locking and job records -----------------------------------------------
#
# A job's lock is the directory JOBDIR/lock (mkdir is atomic), which holds
# its holder's claim: an empty file ".lock.HOST:PID:BEAT". HOST:PID is its
# owner; BEAT the epoch seconds (the holder's clock) at which it took the
# lock or last said that it still holds it (the claim renamed). A taker
# makes its claim beside the lock first, then the lock, then moves the
# claim into it: so a lock has an owner from the moment it exists, in it or
# for an instant beside it, and a holder killed at any moment leaves no
# lock, or one whose owner the next waiter can judge. It holds the lock
# once its claim is the only one in it: two takers that raced (a lock
# broken and made again between one's mkdir and mv) both see two, and try
# again. A lock is never broken while its holder may be alive, however
# long it holds it (a submission holds it through the upload). A waiter
# breaks it once the holder is known to be gone (_holder_gone):
#   - a holder of this host: no process has its pid, or the pid is now a
#     program other than a tej.sh (it was reused), or it is ours;
#   - a holder of another host (a cluster node, another login node on the
#     same file system), whose processes cannot be seen from here: its beat
#     is TEJ_LOCK_STALE seconds old (300) by this host's clock. A holder
#     that can hold for long (_submit) renews its beat every 30 s
#     (_keep_beating); the others hold for a few file operations. Hosts
#     that share a file system keep their clocks far closer than that.
#   - a lock without a claim: once no claim beside it has a live owner (its
#     maker died between the mkdir and the mv);
#   - an older runtime's lock ("owner" and "beat" files in it) of another
#     host without a beat, or without an owner: once the waiter has seen it
#     unchanged for TEJ_LOCK_STALE seconds.
# Breaking removes the gone holder's claim, then the lock with rmdir, which
# fails unless the lock is empty: a lock that another waiter broke and a
# taker made again meanwhile is never removed, but for the instant before
# its taker moved its claim in, and that taker, finding no lock to move it
# into, tries again. _unlock removes the lock only while its claim is the
# process's own.

_locked=
_tmp=
_tmp_removed=
_self=
_creating=
_beat_pid=

_cleanup() {
    _cl_rc=$? _cl_full=
    # a job whose submission failed (and, when a tool failed on a full
    # disk, RC_NO_SPACE: the upload, a lock or a record could not be
    # written): removed first, its lock with it, so that no reader sees it
    # unlocked and without a record (a submission gone: lost)
    if [ -n "$_creating" ]; then
        case $_cl_rc in  # a failure of a tool, not one the runtime says
            "$RC_OK"|"$RC_JOB_EXISTS"|"$RC_INVALID"|"$RC_UNSUPPORTED"|"$RC_NO_FILE"|"$RC_NO_SPACE") ;;
            *) if _full "$_creating"; then  # a full disk: say so, once
                   _cl_full=1               # the job is removed
               fi ;;
        esac
        _remove "$_creating"
        case $_locked in
            "$_creating"/*) _stop_beating; _locked= ;;
        esac
        _creating=
    fi
    if [ -n "$_locked" ]; then
        _unlock
    fi
    if [ -n "$_tmp" ]; then
        rm -f "$_tmp"
    fi
    if [ -n "$_tmp_removed" ]; then
        rm -f "$_tmp_removed"
    fi
    if [ -n "$_self" ]; then  # the pushed copy, in its private directory
        rm -rf "${_self%/*}"
    fi
    if [ -n "$_cl_full" ]; then
        _no_space_die "the job"
    fi
}
trap _cleanup EXIT

_remove() {  # _remove JOBDIR: out of the queue at once, renamed to a name
    # that no reader lists (a job half removed would read "lost"), then
    # deleted; one left half removed by a killed process goes with _sweep
    [ -n "$_host" ] || _host=$(uname -n)
    _rm_gone=${1%/*}/.gone.$_host.$$
    [ ! -e "$_rm_gone" ] || rm -rf "$_rm_gone"  # a process's that had our pid
    if mv "$1" "$_rm_gone" 2>/dev/null; then
        rm -rf "$_rm_gone"
    else
        rm -rf "$1"
    fi
}

_sweep() {  # _sweep JOBS: remove what killed processes left in the jobs
    # directory JOBS: half-made jobs (.new.HOST.PID, _submit) and half
    # removed ones (.gone.HOST.PID), once their owner is known to be gone
    for _sw_left in "$1"/.new.* "$1"/.gone.*; do
        [ -d "$_sw_left" ] || continue
        _sw_name=${_sw_left##*/.}
        _sw_name=${_sw_name#*.}
        # HOST.PID, HOST with dots of its own; not an older runtime's PID
        case $_sw_name in
            *.*) ;;
            *) continue ;;
        esac
        case ${_sw_name##*.} in
            ''|*[!0-9]*) continue ;;
        esac
        if _holder_gone "${_sw_name%.*}:${_sw_name##*.}" ''; then
            rm -rf "$_sw_left"
        fi
    done
}

_host=
TEJ_LOCK_STALE=${TEJ_LOCK_STALE:-300}

_cmdline() {  # _cmdline PID: the command line of process PID, its
    # arguments joined by spaces, in _cml_line; empty when there is no such
    # process, or it is a zombie or a kernel thread. A live process reads
    # empty for an instant in the middle of an exec (and of its exit): it
    # is read again, after a nap, three times at most
    _cml_n=0
    while :; do
        _cml_line=$({ tr '\000' ' ' < "/proc/$1/cmdline"; } 2>/dev/null)
        [ -z "$_cml_line" ] && [ "$_cml_n" -lt 3 ] || return 0
        { read -r _cml_stat < "/proc/$1/stat"; } 2>/dev/null || return 0
        case ${_cml_stat##*) } in
            Z*|X*) return 0 ;;
        esac
        _nap
        _cml_n=$((_cml_n + 1))
    done
}

_pid_gone() {  # _pid_gone PID: is there no tej.sh of this host with PID?
    if [ -d /proc/self ]; then
        # not a process that reused the pid (a zombie's cmdline is empty);
        # a call without input reads tej.sh into the sh that read its call
        # (tej.py's _FAST_START), "sh -c ...tej_call..."
        _cmdline "$1"
        case $_cml_line in
            *tej.sh*|*tej_call*) return 1 ;;
        esac
        return 0
    fi
    ! kill -s 0 "$1" 2>/dev/null
}

_holder_gone() {  # _holder_gone OWNER BEAT: is the holder of a lock (its
    # owner and beat, as _read_lock read them) known to be gone?
    [ -n "$1" ] || return 1
    [ -n "$_host" ] || _host=$(uname -n)
    case $1 in
        "$_host:$$") return 0 ;;  # the holder died, and we got its pid
        "$_host:"*) _pid_gone "${1#*:}"; return ;;
    esac
    case $2 in
        ''|*[!0-9]*) return 1 ;;
    esac
    # (whole seconds: more than TEJ_LOCK_STALE is at least that long)
    [ "$(($(_now) - $2))" -gt "$TEJ_LOCK_STALE" ]
}

_lock() {  # _lock JOBDIR [gone]: take the job's lock, waiting while
    # another process holds it; break it once its holder is gone (see
    # above). The job removed meanwhile: RC_NO_JOB, or with "gone", return 1
    _lk_n=0 _lk_seen=- _lk_since=
    [ -n "$_host" ] || _host=$(uname -n)
    while :; do
        if [ ! -d "$1/lock" ]; then
            _lk_claim=.lock.$_host:$$:$(_now)
            if ! { printf '' > "$1/$_lk_claim"; } 2>/dev/null; then
                [ -d "$1" ] || break
                ! _full "$1" || _no_space_die "the lock of job ${1##*/}"
                _die "$RC_FAILURE" "cannot lock job ${1##*/}"
            fi
            if mkdir "$1/lock" 2>/dev/null; then
                if mv "$1/$_lk_claim" "$1/lock/$_lk_claim" 2>/dev/null; then
                    _read_lock "$1/lock"
                    if [ "$_rl_claim" = "$1/lock/$_lk_claim" ] && \
                            [ -z "$_rl_more" ]; then
                        _locked=$1/lock
                        _sweep_claims "$1" || :
                        return 0
                    fi
                    # another taker raced ours in (see above)
                    rm -f "$1/lock/$_lk_claim"
                    rmdir "$1/lock" 2>/dev/null || :
                fi
            fi
            [ ! -f "$1/$_lk_claim" ] || rm -f "$1/$_lk_claim"
        fi
        [ -d "$1" ] || break
        _lk_n=$((_lk_n + 1))
        if [ "$((_lk_n % 20))" -eq 0 ]; then
            _judge_lock "$1"
        fi
        _nap
    done
    [ "${2:-}" = gone ] || _die "$RC_NO_JOB" "no job ${1##*/}"
    return 1
}

_judge_lock() {  # _judge_lock JOBDIR: for a waiter: break the job's lock
    # if its holder is gone; the claims beside it of owners gone go too
    _read_lock "$1/lock"
    if [ -z "$_rl_owner" ] && [ -z "$_rl_old" ]; then
        # a lock without a claim: its maker is about to move it in, or
        # died before it could (or its holder is between the two steps of
        # _unlock: nothing to say)
        ! _sweep_claims "$1" || rmdir "$1/lock" 2>/dev/null || :
        return 0
    fi
    if [ "$_rl_owner $_rl_beat" != "$_lk_seen" ]; then
        _lk_seen="$_rl_owner $_rl_beat" _lk_since=$(_now)
    fi
    if _holder_gone "$_rl_owner" "$_rl_beat"; then
        :
    elif [ -n "$_rl_owner" ] && { [ "${_rl_owner%%:*}" = "$_host" ] ||
            case $_rl_beat in ''|*[!0-9]*) false ;; esac; }; then
        return 0  # alive, as far as can be known
    elif [ "$(($(_now) - _lk_since))" -le "$TEJ_LOCK_STALE" ]; then
        return 0  # not to be judged from here: how long it stays as it is
    fi
    printf 'tej: breaking the lock of %s (%s): its holder is gone\n' \
        "${1##*/}" "${_rl_owner:-no owner}" >&2
    if [ -n "$_rl_claim" ]; then
        rm -f "$_rl_claim"
    else
        rm -f "$1/lock/owner" "$1/lock/beat"
    fi
    rmdir "$1/lock" 2>/dev/null || :
}

_sweep_claims() {  # _sweep_claims JOBDIR: remove the claims beside the
    # job's lock (left by takers killed before their mkdir or their mv)
    # whose owners are gone; false if one may be alive
    _swc_live=
    for _swc_claim in "$1"/.lock.*; do
        [ -f "$_swc_claim" ] || continue
        _claim_owner "$_swc_claim"
        if _holder_gone "$_co_owner" "$_co_beat"; then
            rm -f "$_swc_claim"
        else
            _swc_live=1
        fi
    done
    [ -z "$_swc_live" ]
}

_claim_owner() {  # _claim_owner CLAIM: its owner and beat, in _co_owner and
    # _co_beat
    _co_owner=${1##*/.lock.}
    _co_beat=${_co_owner##*:}
    _co_owner=${_co_owner%:*}
}

_read_lock() {  # _read_lock LOCKDIR: its holder's claim (_rl_claim: its
    # path), owner and beat (_rl_owner, _rl_beat), empty when it has none;
    # _rl_more is set when it holds more than one claim. An older runtime's
    # lock: its "owner" and "beat" files, and _rl_old set
    _rl_claim='' _rl_owner='' _rl_beat='' _rl_more='' _rl_old=''
    for _rl_c in "$1"/.lock.*; do
        [ -f "$_rl_c" ] || continue
        if [ -n "$_rl_claim" ]; then
            _rl_more=1
        else
            _rl_claim=$_rl_c
        fi
    done
    if [ -n "$_rl_claim" ]; then
        _claim_owner "$_rl_claim"
        _rl_owner=$_co_owner _rl_beat=$_co_beat
    elif [ -f "$1/owner" ] || [ -f "$1/beat" ]; then
        _rl_old=1
        { read -r _rl_owner < "$1/owner"; } 2>/dev/null || :
        { read -r _rl_beat < "$1/beat"; } 2>/dev/null || :
    fi
}

_own_claim() {  # _own_claim LOCKDIR: this process's claim in it, in
    # _oc_claim (empty when there is none)
    _oc_claim=
    for _oc_c in "$1/.lock.$_host:$$:"*; do
        [ ! -f "$_oc_c" ] || _oc_claim=$_oc_c
    done
}

_stop_beating() {  # end the loop of _keep_beating, if there is one
    if [ -n "$_beat_pid" ]; then
        kill "$_beat_pid" 2>/dev/null || :
        _beat_pid=
    fi
}

_unlock() {  # remove the lock if it is still this process's own: one
    # broken meanwhile (its holder taken for gone) is another's now
    _stop_beating
    _own_claim "$_locked"
    if [ -n "$_oc_claim" ]; then
        rm -f "$_oc_claim"
        if ! rmdir "$_locked" 2>/dev/null; then
            # the beat renewed as the loop was stopped
            _own_claim "$_locked"
            [ -z "$_oc_claim" ] || rm -f "$_oc_claim"
            rmdir "$_locked" 2>/dev/null || :
        fi
    else
        printf 'tej: the lock %s was broken while this process held it\n' \
            "$_locked" >&2
    fi
    _locked=
}

_keep_beating() {  # while this process holds its lock for long (a
    # submission), a loop in the background renews the beat of its claim
    # every 30 s, so that other hosts know its holder lives; it ends with
    # the lock, or with this process (_unlock stops it)
    _kb_lock=$_locked _kb_parent=$$
    (
        # nothing is this loop's to remove, and _stop_beating's TERM ends
        # it at once (mksh and posh keep the caller's traps in a subshell:
        # _submit's would wait for the nap)
        trap - EXIT HUP INT TERM PIPE
        # in here: mksh, posh and yash keep copies of the descriptors that
        # a redirection outside replaces, and the call's output (an ssh
        # session) would stay open as long as this loop
        exec < /dev/null > /dev/null 2>&1
        _kb_n=0
        while :; do
            _nap 10
            ! _pid_gone "$_kb_parent" || exit 0
            _kb_n=$((_kb_n + 1))
            if [ "$_kb_n" -ge 30 ]; then
                # ($$ is the parent's in this subshell, as in its claim)
                _own_claim "$_kb_lock"
                [ -n "$_oc_claim" ] || exit 0
                _kb_new=$_kb_lock/.lock.$_host:$$:$(_now)
                if [ "$_kb_new" != "$_oc_claim" ]; then
                    mv "$_oc_claim" "$_kb_new" || exit 0
                fi
                _kb_n=0
            fi
        done
    ) &
    _beat_pid=$!
}

_load() {  # _load JOBDIR: read the state file into st_* (_read_state).
    # The submitter holds the lock until the record is past "created": a
    # job still "created" whose lock is gone, or whose lock's holder is
    # gone (_holder_gone), was left by a submitter that died: lost.
    # So the lock, and whether its holder lives, are looked at first, then
    # the record: a submission that ended in between has left its record.
    _ld_submitter=1
    if [ "$_locked" = "$1/lock" ]; then
        [ "$_creating" = "$1" ] || _ld_submitter=
    elif [ -d "$1/lock" ]; then
        _read_lock "$1/lock"
        if _holder_gone "$_rl_owner" "$_rl_beat"; then
            _ld_submitter=
        fi
    else
        _ld_submitter=
    fi
    _read_state "$1"
    if [ "${st_state:-created}" = created ] && [ -z "$_ld_submitter" ]; then
        # (or the job was removed meanwhile: its lock and record went with
        # it, at once)
        if [ -d "$1" ]; then
            _seen_lost "$1"
        else
            st_state=notfound
        fi
    fi
}

_seen_lost() {  # _seen_lost JOBDIR: the loaded job is lost, with no record
    # of its end: st_state=lost, and st_lost the time tej first found it
    # so (the file "lost" beside its record, written then), from which gc
    # ages it; a month-long job whose process vanished yesterday ended
    # yesterday. A queue that cannot be written keeps no time: now
    st_state=lost st_lost=
    if [ ! -f "$1/lost" ]; then
        # (not in _tmp: _scan's own is there while it calls this)
        _sl_tmp=$1/lost.tmp.$$
        { _now > "$_sl_tmp" && mv -f "$_sl_tmp" "$1/lost"; } 2>/dev/null || \
            rm -f "$_sl_tmp" 2>/dev/null || :
    fi
    { read -r st_lost < "$1/lost"; } 2>/dev/null || :
    case $st_lost in
        ''|*[!0-9]*) st_lost=$(_now) ;;
    esac
}

_save() {  # _save JOBDIR: write st_* variables, atomically (temp file + mv)
    _tmp=$1/state.tmp.$$
    : > "$_tmp"
    for _sv_key in $_KEYS; do
        eval "printf '%s=%s\n' \"\$_sv_key\" \"\$st_$_sv_key\"" >> "$_tmp"
    done
    mv -f "$_tmp" "$1/state"
    _tmp=
}

_bootid() {  # this boot's id; TEJ_BOOT_ID_FILE, only for tests, names a
    # file that stands for the system's (a reboot is a change of its content)
    if [ -n "${TEJ_BOOT_ID_FILE:-}" ]; then
        cat "$TEJ_BOOT_ID_FILE"
    elif [ -r /proc/sys/kernel/random/boot_id ]; then
        cat /proc/sys/kernel/random/boot_id
    fi
}

_record() {  # _record ID NOW: print one job's record (_format_record),
    # NOW the time of the answer; RC_NO_JOB if there is no such job
    _rec_job=$Q/jobs/$1 _rec_rc=$RC_OK
    if [ -d "$_rec_job" ]; then
        _load "$_rec_job"
        _rt_refresh "$_rec_job"
        [ "$st_state" != notfound ] || _rec_rc=$RC_NO_JOB
    else
        st_state=notfound _rec_rc=$RC_NO_JOB
    fi
    _format_record "$_rec_job" "$2"
    printf '%s\n' "$_fr_line"
    return "$_rec_rc"
}

_ongoing() {  # is the loaded job (after _rt_refresh) still to end?
    case ${st_state:-created} in
        created|queued|running) return 0 ;;
    esac
    return 1
}

_finish() {  # _finish JOBDIR STATE EXIT: record how a job ended (unless
    # its wrapper did), and load the record; the job removed meanwhile (a
    # kill's wrapper recorded the end, and a delete came): notfound
    if ! _lock "$1" gone; then
        st_state=notfound
        return 0
    fi
    _load "$1"
    if _ongoing; then
        st_state=$2 st_exit=$3 st_finished=$(_now)
        _save "$1"
    fi
    _unlock
}

_option() {  # _option JOBDIR KEY: the value of a submit option, or nothing
    [ -f "$1/options" ] || return 0
    while IFS= read -r _op_line; do
        case $_op_line in
            "$2="*) printf '%s\n' "${_op_line#*=}" ;;
        esac
    done < "$1/options"
}

_quote() {  # _quote STRING: STRING quoted for sh
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\"'\"'/g")"
}

_run_job() {  # _run_job JOBDIR: in the runtime's wrapper, run the job in its
    # directory (stdin from /dev/null, output to _stdout and _stderr), with
    # the prologue first; record its start (with _rt_started's fields) and
    # its end. A TERM (tej kill, scancel, a time limit) ends the job; the
    # wrapper lives on to record it as killed (a trapped signal is reset to
    # default in the job).
    _rj_termed=
    trap '_rj_termed=1' TERM
    trap : INT
    _lock "$1"
    _load "$1"
    if [ -n "$st_killreq" ] || ! _ongoing; then
        # killed before it started: as a TERM would have ended it
        st_state=killed st_exit=143 st_finished=$(_now)
        _save "$1"
        _unlock
        return 0
    fi
    st_state=running st_started=$(_now)
    _rt_started "$1"
    # every process of the job has it in its environment, even one that
    # left the job's process group (setsid, a daemon): kill finds it there
    # (default.sh's _escaped)
    st_token=${1##*/}:$$:$st_started
    _save "$1"
    _unlock
    _rj_script=$(cat "$1/script")
    _rj_prologue=
    if [ -f "$1/prologue" ]; then
        _rj_prologue=$(cat "$1/prologue")
    fi
    _rj_umask=$TEJ_UMASK
    if [ -f "$1/umask" ]; then
        read -r _rj_umask < "$1/umask" || _rj_umask=$TEJ_UMASK
    fi
    cd "$1/stage" || exit "$RC_FAILURE"
    _rj_code=0
    (
        if [ -n "$TEJ_LC_ALL_SET" ]; then
            LC_ALL=$TEJ_LC_ALL
        else
            unset LC_ALL
        fi
        # _stdout and _stderr too: made here, after the umask; appended to,
        # so that what the runtime adds (default.sh's walltime) stays
        umask "$_rj_umask"
        TEJ_JOB_TOKEN=$st_token
        export TEJ_JOB_TOKEN
        : > _stdout && : > _stderr || exit "$RC_FAILURE"
        exec < /dev/null >> _stdout 2>> _stderr
        if [ -n "$_rj_prologue" ]; then
            eval "$_rj_prologue" || exit
        fi
        if [ "$st_mode" = command ]; then
            exec sh -c "$_rj_script"
        fi
        chmod u+x "./$_rj_script" 2>/dev/null || :
        exec "./$_rj_script"
    ) || _rj_code=$?
    if [ "$_rj_code" -gt 255 ]; then
        # killed by a signal: ksh says 256+N, yash 384+N; report 128+N
        _rj_code=$((128 + _rj_code % 128))
    fi
    _lock "$1"
    _load "$1"
    st_exit=$_rj_code st_finished=$(_now) st_state=finished
    if [ -n "$st_killreq" ] || [ -n "$_rj_termed" ] || [ -f "$1/timedout" ]; then
        st_state=killed
    fi
    _save "$1"
    _unlock
}

# ---- for the scheduler runtimes ----------------------------------------------

_write_batch() {  # _write_batch JOBDIR ID PREFIX [DIRECTIVE ...]: JOBDIR/batch.sh,
    # "#!/bin/sh", PREFIX DIRECTIVE lines, the user's own PREFIX lines from
    # the top of the job's script (those a scheduler reads: before the first
    # command), and the line that runs the job through tej.sh (_batch)
    _wb_job=$1 _wb_id=$2 _wb_prefix=$3
    shift 3
    {
        printf '#!/bin/sh\n'
        for _wb_directive do
            printf '%s %s\n' "$_wb_prefix" "$_wb_directive"
        done
        if [ "$st_mode" = file ]; then
            sed -n -e "/^$_wb_prefix/p" -e '/^[^#]/q' \
                "$_wb_job/stage/$(cat "$_wb_job/script")"
        fi
        printf 'exec %s %s %s _batch %s\n' "$(_quote "$TEJ_SH")" \
            "$(_quote "$TEJ_SELF")" "$(_quote "$Q")" "$(_quote "$_wb_id")"
    } > "$_wb_job/batch.sh"
}

# A scheduler that cannot be asked (its controller is down, or does not
# answer) is not an answer: the job keeps its last known state, never lost
# or killed for it, and its record says why (scheduler_error). Only a
# scheduler that answered and did not list the job leads to
# _lost_after_grace. Once it failed, it is not asked again for 10 seconds
# in the same call (a list of many jobs would wait for each).
_un_when='' _un_said=''

_unasked() {  # _unasked SCHEDULER COMMAND MESSAGE: COMMAND failed,
    # saying MESSAGE: the loaded job's record says so (st_unasked), and
    # stderr, once a call. Returns 1
    _un_said="$2:$(printf '%s' "$3" | tr -s '\t\r\n' '   ' | cut -c1-300)"
    if [ -z "$_un_when" ]; then
        printf 'tej: %s could not be asked (%s): its jobs keep their last known state\n' \
            "$1" "$_un_said" >&2
    fi
    _un_when=$(_now)
    st_unasked=$_un_said
    return 1
}

_scheduler_down() {  # did the scheduler fail to answer less than 10
    # seconds ago, in this call? Then the loaded job is not asked either
    [ -n "$_un_when" ] && [ "$(($(_now) - _un_when))" -lt 10 ] || return 1
    st_unasked=$_un_said
}

_sched_ask() {  # _sched_ask SCHEDULER COMMAND [ARG ...]: run a command of
    # the scheduler, its output in _sa_out. That the job is unknown (ended
    # and forgotten: "Invalid job id" from Slurm, exit 153 or "Unknown Job"
    # from Torque, exit 35 or "has finished" from PBS Pro) is an answer,
    # an empty one; any other failure is not (_unasked, status 1). Asked
    # once: a client that cannot reach its controller may take a while to
    # say so (Slurm's tries for about 10 seconds)
    _sa_name=$1
    shift
    _tmp=$Q/said.tmp.$$
    _sa_code=0
    _sa_out=$("$@" 2> "$_tmp") || _sa_code=$?
    _sa_said=
    while IFS= read -r _sa_line || [ -n "$_sa_line" ]; do
        _sa_said="$_sa_said $_sa_line"
    done 2>/dev/null < "$_tmp" || :
    rm -f "$_tmp"
    _tmp=
    [ "$_sa_code" -ne 0 ] || return 0
    _sa_out=
    case $_sa_code in
        153|35) return 0 ;;
    esac
    case $_sa_said in
        *"Invalid job id"*|*"Unknown Job"*|*"has finished"*|\
        *"already completing or completed"*) return 0 ;;
    esac
    _unasked "$_sa_name" "$1" "$_sa_said"
}

_unkilled() {  # _unkilled JOBDIR MESSAGE: the scheduler could not be
    # asked to stop the job: the kill's request is taken back (a job that
    # runs later is not one that was killed), and _die with MESSAGE
    _lock "$1"
    _load "$1"
    st_killreq=
    _save "$1"
    _unlock
    _die "$RC_FAILURE" "$2"
}

_lost_after_grace() {  # _lost_after_grace JOBDIR: the scheduler has no
    # more to say and there is no record: lost, once TEJ_LOST_GRACE seconds
    # (60: a shared file system may be late) have passed since it was seen so
    [ -f "$1/gone" ] || _now > "$1/gone"
    read -r _lg_gone < "$1/gone" || _lg_gone=0
    if [ "$(($(_now) - _lg_gone))" -ge "${TEJ_LOST_GRACE:-60}" ]; then
        _finish "$1" lost ""
    fi
}

_scheduler_end() {  # _scheduler_end JOBDIR: after scancel or qdel, wait
    # until the wrapper has recorded the end (it gets a TERM) or the
    # scheduler no longer lists the job (_rt_listed); then it is killed
    _se_n=0
    while [ "$_se_n" -lt 400 ]; do
        _load "$1"
        _ongoing || return 0
        _rt_listed || break
        _nap 2
        _se_n=$((_se_n + 1))
    done
    _finish "$1" killed ""
}

_hms() {  # _hms SECONDS: HH:MM:SS
    printf '%02d:%02d:%02d' "$(($1 / 3600))" "$(($1 / 60 % 60))" "$(($1 % 60))"
}

# ---- verbs -------------------------------------------------------------------

_install() {  # _install VERSION MODE FORCE NLINKS [LINK ...] [VERB ARG ...]
    _in_version=$1 _in_mode=$2 _in_force=$3 _in_nlinks=$4
    shift 4
    _self=$0
    if [ "$_in_mode" != links ]; then
        _rt_usable
        if [ "$_in_mode" = setup ] && [ "$_in_force" != 1 ] && [ -f "$Q/version" ]; then
            _die "$RC_QUEUE_EXISTS" "a queue already exists at $Q (setup --force replaces its runtime; jobs are kept)"
        fi
        if [ ! -f "$Q/version" ] && [ -d "$Q" ] && [ -n "$(ls -A "$Q")" ]; then
            _die "$RC_QUEUE_EXISTS" "$Q is a directory that is not a queue: not using it"
        fi
        mkdir -p "$Q/jobs"
        _tmp=$Q/tej.sh.tmp.$$
        cp "$_self" "$_tmp"
        mv -f "$_tmp" "$Q/tej.sh"
        _tmp=$Q/version.tmp.$$
        printf '%s\n' "$_in_version" > "$_tmp"
        mv -f "$_tmp" "$Q/version"
        _tmp=
    fi
    while [ "$_in_nlinks" -gt 0 ]; do
        _in_link=$1
        shift
        _in_nlinks=$((_in_nlinks - 1))
        _expand_path "$_in_link"
        # shellcheck disable=SC2154 # set by queue.sh's _expand_path
        _in_link=$_ep_path
        if [ -d "$_in_link" ]; then
            _die "$RC_QUEUE_EXISTS" "cannot make link $_in_link: a directory is there"
        fi
        if [ -e "$_in_link" ] && [ "$_in_force" != 1 ]; then
            IFS= read -r _in_line < "$_in_link" || :
            [ "$_in_line" = "tejdir: $Q" ] || \
                _die "$RC_QUEUE_EXISTS" "cannot make link $_in_link: it exists (setup --force replaces it)"
        fi
        _tmp=$_in_link.tmp.$$
        printf 'tejdir: %s\n' "$Q" > "$_tmp"
        chmod 644 "$_tmp"
        mv -f "$_tmp" "$_in_link"
        _tmp=
    done
    if [ "$#" -gt 0 ]; then  # the verb that found the runtime missing
        rm -rf "${_self%/*}"
        exec "$TEJ_SH" "$Q/tej.sh" "$Q" "$@"
    fi
    _header
    printf 'queue=%s\n' "$Q"
}

_submit() {  # _submit ID MODE SCRIPT [KEY=VALUE ...], tar stream on stdin
    _check_id "$1"
    case $2 in
        file) _check_path "$3" ;;
        command) ;;
        *) _die "$RC_INVALID" "invalid script mode: '$2'" ;;
    esac
    _sb_id=$1 _sb_mode=$2 _sb_script=$3 _sb_unzip=
    shift 3
    for _sb_option do
        case $_sb_option in
            transfer=gzip) command -v gzip > /dev/null 2>&1 || \
                    _die "$RC_UNSUPPORTED" "--compress: there is no gzip on the server"
                _sb_unzip=1
                continue ;;
            transfer=*) _die "$RC_INVALID" "unknown transfer: '${_sb_option#*=}'" ;;
            prologue=*) ;;
            *"
"*) _die "$RC_INVALID" "an option holds a newline" ;;
            walltime=*) case ${_sb_option#*=} in
                            ''|*[!0-9]*|??????????*) _die "$RC_INVALID" "invalid walltime: '${_sb_option#*=}'" ;;
                        esac ;;
            mem=*) _check_mem "${_sb_option#*=}" ;;
            cpus=*|partition=*|account=*|gpus=*|arg=*) ;;
            *) _die "$RC_INVALID" "unknown option: '$_sb_option'" ;;
        esac
        _rt_option "${_sb_option%%=*}"
    done
    mkdir -p "$Q/jobs"
    [ -n "$_host" ] || _host=$(uname -n)
    _sb_job=$Q/jobs/$_sb_id
    if [ -d "$_sb_job" ]; then
        _die "$RC_JOB_EXISTS" "job $_sb_id already exists"
    fi
    # The job appears with its lock: a job directory without a lock or a
    # record is one whose submission died (_load: lost, and deleted). So it
    # is made, locked, under a name no job has (ids never start with "."),
    # then renamed to its id. A directory of that id made meanwhile: mv
    # puts ours inside it, and the lock there is not ours.
    _sweep "$Q/jobs"
    _sb_name=.new.$_host.$$
    _sb_new=$Q/jobs/$_sb_name
    rm -rf "$_sb_new"  # left by a process of this host that had our pid
    mkdir "$_sb_new" || _die "$RC_FAILURE" "cannot create $_sb_new"
    _creating=$_sb_new
    # interrupted (the client's TERM, Ctrl-C, its connection gone): exit,
    # and the EXIT trap removes the half-made job
    trap 'exit "$RC_FAILURE"' HUP INT TERM PIPE
    _lock "$_sb_new"
    if ! mv "$_sb_new" "$_sb_job" 2>/dev/null && [ ! -d "$_sb_job" ]; then
        _die "$RC_FAILURE" "cannot create $_sb_job"
    fi
    _read_lock "$_sb_job/lock"
    if [ "$_rl_owner" != "$_host:$$" ]; then
        _locked=
        rm -rf "${_sb_job:?}/$_sb_name"
        _die "$RC_JOB_EXISTS" "job $_sb_id already exists"
    fi
    _creating=$_sb_job _locked=$_sb_job/lock
    _keep_beating  # through the upload and the scheduler's answer
    # the job's own files, as the user's would be: under the umask of the
    # session (as root, tar keeps the modes of the archive)
    if ! (umask "$TEJ_UMASK" && mkdir "$_sb_job/stage" &&
            cd "$_sb_job/stage" && if [ -n "$_sb_unzip" ]; then
                # a broken gzip stream ends in what tar takes for no archive
                { gzip -dc || printf '%01024d' 0; } | tar -xf -
            else
                tar -xf -
            fi); then
        _die "$RC_FAILURE" "could not unpack the job directory"
    fi
    # the upload's last member (tej.py's _WHOLE): a stream cut on a
    # member's boundary is a good archive to tar, which exits 0
    _sb_whole=
    { IFS= read -r _sb_whole < "$_sb_job/stage/.tej-whole"; } 2>/dev/null || :
    if [ "$_sb_whole" != whole ]; then
        _die "$RC_FAILURE" "the upload was cut short: the job is not made (submit it again)"
    fi
    rm -f "$_sb_job/stage/.tej-whole"
    if [ "$_sb_mode" = file ] && [ ! -f "$_sb_job/stage/$_sb_script" ]; then
        _die "$RC_NO_FILE" "no script '$_sb_script' in the job directory"
    fi
    printf '%s' "$_sb_script" > "$_sb_job/script"
    # for _run_job: a scheduler may not pass the environment on (qsub -V)
    printf '%s\n' "$TEJ_UMASK" > "$_sb_job/umask"
    : > "$_sb_job/options"
    for _sb_option do
        case $_sb_option in
            transfer=*) ;;
            prologue=*) printf '%s\n' "${_sb_option#*=}" > "$_sb_job/prologue" ;;
            *) printf '%s\n' "$_sb_option" >> "$_sb_job/options" ;;
        esac
    done
    _load "$_sb_job"
    st_state=created st_mode=$_sb_mode st_submitted=$(_now) st_runtime=$TEJ_RUNTIME
    _save "$_sb_job"
    _rt_start "$_sb_job" "$_sb_id"
    _save "$_sb_job"
    _creating=
    trap - HUP INT TERM PIPE
    _unlock
    _header
    printf 'id=%s\n' "$_sb_id"
}

_full() {  # _full DIR: is the file system of DIR full (less than 1 MiB
    # or 16 inodes left: what failed to write stopped short of it)? Sets
    # _ns_free (KiB), _ns_inodes, _ns_fs (its mount point), from df -P
    _ns_free=$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }') || _ns_free=
    _ns_inodes=$(df -Pi "$1" 2>/dev/null | awk 'NR == 2 { print $4 }') || _ns_inodes=
    _ns_fs=$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $6 }') || _ns_fs=
    case $_ns_free in
        ''|*[!0-9]*) _ns_free=999999 ;;
    esac
    case $_ns_inodes in
        ''|*[!0-9]*) _ns_inodes=999999 ;;  # df -i is not everywhere
    esac
    [ "$_ns_free" -lt 1024 ] || [ "$_ns_inodes" -lt 16 ]
}

_no_space_die() {  # _no_space_die WHAT: the error of a full disk (_full)
    _die "$RC_NO_SPACE" "no space left on the server (${_ns_free} KiB and ${_ns_inodes} inodes free on ${_ns_fs:-the file system of $Q}; $1 was not made)"
}

_status() {  # _status [-n] ID ...: one record per job; RC_NO_JOB if one
    # is not there. -n: without "now" (see the fast path, at the top)
    _header
    if [ "$1" = -n ]; then
        _ss_now=
        shift
    else
        _ss_now=${_fp_now:-$(_now)}
    fi
    _ss_rc=$RC_OK
    for _ss_id in "$@"; do
        _check_id "$_ss_id"
        _record "$_ss_id" "$_ss_now" || _ss_rc=$RC_NO_JOB
    done
    return "$_ss_rc"
}

_wait() {  # _wait all|any SECONDS ID ...: the records, once every job
    # ("all") or any job ("any") has ended (or is not there), or after
    # SECONDS
    _wt_any=
    if [ "$1" = any ]; then
        _wt_any=1
    fi
    case $2 in
        ''|*[!0-9]*) _die "$RC_INVALID" "invalid number of seconds: '$2'" ;;
    esac
    _wt_until=$(($(_now) + $2))
    shift 2
    for _wt_id do
        _check_id "$_wt_id"
    done
    while [ "$(_now)" -lt "$_wt_until" ]; do
        _wt_ended=1
        for _wt_id do
            if [ -d "$Q/jobs/$_wt_id" ]; then
                _load "$Q/jobs/$_wt_id"
                _rt_refresh "$Q/jobs/$_wt_id"
                if _ongoing; then
                    _wt_ended=0
                    [ -n "$_wt_any" ] || break
                    continue
                fi
            fi
            if [ -n "$_wt_any" ]; then
                _wt_ended=1
                break
            fi
        done
        [ "$_wt_ended" = 0 ] || break
        _nap 5
    done
    _status "$@"
}

# list and gc read the whole queue with one awk (_SCAN) rather than sh's
# reads of each record (_read_state): a queue of thousands of jobs is
# answered in a fraction of a second. For 5,000 ended jobs of the default
# runtime (list, on a loaded 2-CPU machine): 0.06 s with awk; 0.7 s (dash)
# and 0.95 s (bash) with sh's _load and _format_record for each. So awk
# reads the state files itself, as _read_state does (a key it does not
# know is skipped, the last line of a key wins), and prints the line of
# _format_record itself: a change to the one is made to the other.
# awk answers for the jobs that have ended, whose records no longer
# change; the others (created, queued, running, or without a record) go
# to sh (_scan's loop: _load and _rt_refresh), which knows their locks and
# asks the runtime. The time of a job, for the filters: when it was
# submitted (list since=), when it ended (gc): its finished, else (lost)
# when tej found it lost (_seen_lost; sh's the first time), else started,
# else submitted time; for a job without a record, when its submission
# took the lock (lock/beat); none at all: 0, of old.

# shellcheck disable=SC2016 # awk's own $
_SCAN='
BEGIN {
    now = ENVIRON["TEJ_SCAN_NOW"] + 0; gc = ENVIRON["TEJ_SCAN_GC"] != ""
    states = ENVIRON["TEJ_SCAN_STATES"]; cut = ENVIRON["TEJ_SCAN_CUT"]
    jobs = ENVIRON["TEJ_SCAN_JOBS"]; others = ENVIRON["TEJ_SCAN_OTHERS"]
    removed = ENVIRON["TEJ_SCAN_REMOVED"]
    nkeys = split("state exit submitted started finished runtime runtime_id", keys, " ")
    printf "" > others
}
length($0) <= 128 && /^[A-Za-z0-9_][A-Za-z0-9_.,+=@%:-]*$/ {
    id = $0
    for (i = 1; i <= nkeys; i++) r[keys[i]] = ""
    file = id "/state"  # as _read_state
    while ((getline line < file) > 0) {
        eq = index(line, "=")
        if (eq > 1 && (substr(line, 1, eq - 1) in r))
            r[substr(line, 1, eq - 1)] = substr(line, eq + 1)
    }
    close(file)
    st = r["state"]
    if (st != "finished" && st != "killed" && st != "lost") {
        print id > others
        next
    }
    if (states != "" && index(states, " " st " ") == 0) next
    if (cut != "") {
        t = gc ? r["finished"] : r["submitted"]
        if (gc && t == "" && st == "lost") {
            # since it was found lost (_seen_lost); found now: by sh
            file = id "/lost"
            if ((getline t < file) <= 0) t = ""
            close(file)
            if (t == "") { print id > others; next }
        }
        if (gc && t == "") t = r["started"]
        if (t == "") t = r["submitted"]
        if (t == "") {
            file = id "/lock/beat"
            if ((getline t < file) <= 0) t = ""
            close(file)
        }
        if (t !~ /^[0-9]+$/) t = 0
        if (gc) { if (t + 0 > cut + 0) next }
        else if (t + 0 < cut + 0) next
    }
    # as _format_record
    printf "id=%s\tstate=%s\texit=%s\tsubmitted=%s\tstarted=%s\tfinished=%s\tnow=%s\truntime=%s\truntime_id=%s\tdir=%s/%s/stage\n", id, st, r["exit"], r["submitted"], r["started"], r["finished"], now, r["runtime"], r["runtime_id"], jobs, id
    if (gc) print id > removed
}
'

_filter() {  # _filter MODE ARG ...: the filter of list (MODE "list": ARGs
    # state=STATE, since=SECONDS) or gc (MODE "gc": SECONDS, then ARGs
    # state=STATE, dry), in _fl_states (" STATE ... ", empty for any),
    # _fl_cut (the epoch seconds after which a job is listed, or up to
    # which it is removed; empty: no limit), _fl_dry
    _fl_mode=$1 _fl_states='' _fl_cut='' _fl_dry=''
    shift
    if [ "$_fl_mode" = gc ]; then
        case ${1:-} in
            ''|*[!0-9]*) _die "$RC_INVALID" "invalid number of seconds: '${1:-}'" ;;
        esac
        _fl_now=$(_now)
        _fl_cut=$((_fl_now - $1))
        shift
    fi
    for _fl_arg do
        case $_fl_mode:$_fl_arg in
            list:state=created|list:state=queued|list:state=running|\
            *:state=finished|*:state=killed|*:state=lost)
                _fl_states="${_fl_states:- }${_fl_arg#state=} " ;;
            gc:state=*) _die "$RC_INVALID" "gc removes ended jobs only (finished, killed, lost), not: '${_fl_arg#state=}'" ;;
            list:since=*)
                case ${_fl_arg#since=} in
                    ''|*[!0-9]*) _die "$RC_INVALID" "invalid number of seconds: '${_fl_arg#since=}'" ;;
                esac
                _fl_cut=$(($(_now) - ${_fl_arg#since=})) ;;
            gc:dry) _fl_dry=1 ;;
            *) _die "$RC_INVALID" "invalid argument of $_fl_mode: '$_fl_arg'" ;;
        esac
    done
}

_wanted() {  # _wanted JOBDIR: does the loaded job (after _rt_refresh) pass
    # _filter's filter? (as _SCAN's, for the jobs sh answers for)
    [ "$st_state" != notfound ] || return 1  # removed meanwhile
    if [ "$_fl_mode" = gc ]; then
        ! _ongoing || return 1
    fi
    case $_fl_states in
        ''|*" ${st_state:-created} "*) ;;
        *) return 1 ;;
    esac
    [ -n "$_fl_cut" ] || return 0
    if [ "$_fl_mode" = gc ] && [ "$st_state" = lost ] && \
            [ -z "$st_finished" ]; then
        [ -n "$st_lost" ] || _seen_lost "$1"
        # found lost by this call: as old as the call (gc 0 removes it)
        _wd_time=$st_lost
        [ "$_wd_time" -le "$_fl_now" ] || _wd_time=$_fl_now
    elif [ "$_fl_mode" = gc ]; then
        _wd_time=${st_finished:-${st_started:-$st_submitted}}
    else
        _wd_time=$st_submitted
    fi
    if [ -z "$_wd_time" ]; then
        _read_lock "$1/lock"
        _wd_time=$_rl_beat
    fi
    case $_wd_time in
        ''|*[!0-9]*) _wd_time=0 ;;
    esac
    if [ "$_fl_mode" = gc ]; then
        [ "$_wd_time" -le "$_fl_cut" ]
    else
        [ "$_wd_time" -ge "$_fl_cut" ]
    fi
}

_scan() {  # _scan MODE ARG ...: list or gc (see _filter): the records of
    # the jobs that pass the filter; gc removes them, unless "dry"
    _filter "$@"
    _header
    cd "$Q/jobs" 2>/dev/null || return 0
    _sc_now=$(_now)
    # the jobs that sh answers for, listed by awk: in TMPDIR (a queue on a
    # read-only file system still lists), else in the queue
    _tmp=$(mktemp "${TMPDIR:-/tmp}/tej-scan.XXXXXXXX" 2>/dev/null) || \
        _tmp=$Q/scan.tmp.$$
    _tmp_removed=
    if [ "$_fl_mode" = gc ] && [ -z "$_fl_dry" ]; then
        _tmp_removed=$Q/removed.tmp.$$
        _sweep "$Q/jobs"
    fi
    # the names, one a line (echo: a builtin in every shell, unlike
    # printf; a name that is not a job id is not written)
    for _sc_id in *; do
        case $_sc_id in
            *[!A-Za-z0-9_.,+=@%:-]*|-*|.*) ;;
            *) echo "$_sc_id" ;;
        esac
    done | TEJ_SCAN_NOW=$_sc_now TEJ_SCAN_GC=${_fl_mode#list} \
        TEJ_SCAN_STATES=$_fl_states TEJ_SCAN_CUT=$_fl_cut \
        TEJ_SCAN_JOBS=$Q/jobs TEJ_SCAN_OTHERS=$_tmp \
        TEJ_SCAN_REMOVED=${_tmp_removed:-/dev/null} awk "$_SCAN"
    if [ -n "$_tmp_removed" ] && [ -f "$_tmp_removed" ]; then
        # job ids hold nothing that xargs reads as quotes or blanks
        xargs rm -rf < "$_tmp_removed"
    fi
    while IFS= read -r _sc_id; do
        [ -d "$Q/jobs/$_sc_id" ] || continue
        _load "$Q/jobs/$_sc_id"
        _rt_refresh "$Q/jobs/$_sc_id"
        _wanted "$Q/jobs/$_sc_id" || continue
        _format_record "$Q/jobs/$_sc_id" "$_sc_now"
        printf '%s\n' "$_fr_line"
        if [ -n "$_tmp_removed" ]; then
            rm -rf "${Q:?}/jobs/$_sc_id"
        fi
    done < "$_tmp"
}

_download() {  # _download ID FLAGS NPARTS [SIZE OFFSET ./PART ...] ./PATH ...
    # "stream=download", then (FLAGS has "s") "size=BYTES" (about: du
    # -sk of the PATHs and what is left of the PARTs), then for each PART (a file the client has the first
    # OFFSET bytes of, out of SIZE): "part N LENGTH TOOL", the LENGTH bytes
    # past OFFSET and "sum VALUE" (what TOOL, cksum or md5sum, says of its
    # first SIZE bytes), or "part N changed" when its size is no longer
    # SIZE (or there is no TOOL); then "tar" and a
    # tar archive of the PATHs, or "end" when there are none. Each PART
    # and PATH starts with "./" (which keeps a name starting with "-" from
    # tar): the arguments are read as they are, in loops over "$@" (a
    # resume names every file missing, and rebuilding "$@" once per
    # argument would take time in the square of their number)
    _check_id "$1"
    _dl_job=$Q/jobs/$1
    [ -d "$_dl_job" ] || _die "$RC_NO_JOB" "no job $1"
    _dl_flags=$2 _dl_parts=$3
    shift 3
    case $_dl_parts in
        ''|*[!0-9]*) _die "$RC_INVALID" "invalid number of parts: '$_dl_parts'" ;;
    esac
    [ "$#" -ge $((_dl_parts * 3)) ] || _die "$RC_INVALID" "missing part arguments"
    _dl_i=0 _dl_rest=0 _dl_size=
    for _dl_arg; do
        if [ "$_dl_i" -lt $((_dl_parts * 3)) ]; then  # SIZE OFFSET PART
            case $((_dl_i % 3)) in
                0) _dl_size=$_dl_arg ;;
                1) case $_dl_size$_dl_arg in
                       ''|*[!0-9]*) _die "$RC_INVALID" "invalid part: '$_dl_size' '$_dl_arg'" ;;
                   esac
                   [ "$_dl_arg" -le "$_dl_size" ] || _die "$RC_INVALID" "invalid part: '$_dl_size' '$_dl_arg'"
                   _dl_rest=$((_dl_rest + _dl_size - _dl_arg)) ;;
                *) _download_path "$_dl_job" "$_dl_arg" part ;;
            esac
        else
            _download_path "$_dl_job" "$_dl_arg"
        fi
        _dl_i=$((_dl_i + 1))
    done
    cd "$_dl_job/stage"
    _header
    printf 'stream=download\n'
    case $_dl_flags in
        *s*) _dl_kib=0
             if [ "$#" -gt $((_dl_parts * 3)) ]; then
                 _dl_kib=$(shift $((_dl_parts * 3))
                           du -sk "$@" 2>/dev/null | awk '{ k += $1 } END { print k + 0 }')
             fi
             printf 'size=%s\n' $((_dl_kib * 1024 + _dl_rest)) ;;
    esac
    # the check of a part: POSIX cksum, else md5sum (busybox may lack
    # cksum), else none (the part is then fetched again, whole)
    _dl_sum=changed
    if command -v cksum > /dev/null 2>&1; then
        _dl_sum='cksum'
    elif command -v md5sum > /dev/null 2>&1; then
        _dl_sum='md5sum'
    fi
    _dl_i=0
    for _dl_arg; do
        [ "$_dl_i" -lt $((_dl_parts * 3)) ] || break
        case $((_dl_i % 3)) in
            0) _dl_size=$_dl_arg _dl_i=$((_dl_i + 1)); continue ;;
            1) _dl_offset=$_dl_arg _dl_i=$((_dl_i + 1)); continue ;;
        esac
        _dl_file=$_dl_arg
        if [ "$_dl_sum" != changed ] && [ -f "$_dl_file" ] && [ ! -L "$_dl_file" ] &&
                [ "$(($(wc -c < "$_dl_file")))" -eq "$_dl_size" ]; then
            printf 'part %d %d %s\n' $((_dl_i / 3)) $((_dl_size - _dl_offset)) "$_dl_sum"
            tail -c +$((_dl_offset + 1)) "$_dl_file" | head -c $((_dl_size - _dl_offset))
            printf 'sum %s\n' "$(head -c "$_dl_size" "$_dl_file" | "$_dl_sum" | awk '{ print $1 }')"
        else
            printf 'part %d changed\n' $((_dl_i / 3))
        fi
        _dl_i=$((_dl_i + 1))
    done
    shift $((_dl_parts * 3))  # once: the PATHs are left
    if [ "$#" -eq 0 ]; then
        printf 'end\n'
        return 0
    fi
    printf 'tar\n'
    # GNU tar says 1 when a file changed as it was read (a running job's
    # _stdout): what was read is sent
    _dl_rc=0
    # GNU tar reads escapes in the names it is given ("a\\b" would be
    # "a\b"): not in these
    _dl_gnu=
    case $(tar --version 2>/dev/null) in
        *GNU*) _dl_gnu=--no-unquote ;;
    esac
    tar ${_dl_gnu:+"$_dl_gnu"} -cf - "$@" || _dl_rc=$?
    [ "$_dl_rc" -le 1 ] || _die "$RC_FAILURE" "tar failed ($_dl_rc)"
}

_download_path() {  # _download_path JOBDIR ./PATH [part]: for _download
    # and _files, a path of the job that starts with "./" (for tar and
    # find), and is there unless it is a part's
    case $2 in
        ./*) _check_path "${2#./}" ;;
        *) _die "$RC_INVALID" "invalid path: '$2' (not './PATH')" ;;
    esac
    [ "$#" -eq 3 ] || [ -e "$1/stage/$2" ] || [ -L "$1/stage/$2" ] ||
        _die "$RC_NO_FILE" "no file '${2#./}' in job ${1##*/}"
}

_files() {  # _files ID ./PATH ...: what download would send, one line each
    # "MODE SIZE MTIME ./PATH" (MODE in hex, as stat's %f), for the
    # directories, files and links below the PATHs; or a line "none" when
    # the server's stat cannot say (then the client fetches it all)
    _check_id "$1"
    _fi_job=$Q/jobs/$1
    [ -d "$_fi_job" ] || _die "$RC_NO_JOB" "no job $1"
    shift
    for _fi_arg; do
        _download_path "$_fi_job" "$_fi_arg"
    done
    cd "$_fi_job/stage"
    _header
    if stat -c '%f' . > /dev/null 2>&1; then  # GNU, busybox
        find "$@" \( -type f -o -type d -o -type l \) -exec stat -c '%f %s %Y %n' {} +
    elif stat -f '%Xp' . > /dev/null 2>&1; then  # BSD
        find "$@" \( -type f -o -type d -o -type l \) -exec stat -f '%Xp %z %m %N' {} +
    else
        printf 'none\n'
    fi
}

_send() {  # _send NAME FILE OFFSET: a frame "NAME LENGTH" + the bytes past
    # OFFSET (tej.py's _parse_frame reads it). Result: _send_to, the new
    # offset
    _send_to=$3
    [ -f "$2" ] || return 0
    _sd_size=$(wc -c < "$2" | tr -d ' ')
    [ "$_sd_size" -gt "$3" ] || return 0
    printf '%s %s\n' "$1" "$((_sd_size - $3))"
    tail -c "+$(($3 + 1))" "$2" | head -c "$((_sd_size - $3))"
    _send_to=$_sd_size
}

_logs() {  # _logs ID STREAMS MODE OFFSET_OUT OFFSET_ERR
    _check_id "$1"
    _lo_job=$Q/jobs/$1
    [ -d "$_lo_job" ] || _die "$RC_NO_JOB" "no job $1"
    case $4$5 in
        ''|*[!0-9]*) _die "$RC_INVALID" "invalid offsets: '$4' '$5'" ;;
    esac
    _lo_out=$4 _lo_err=$5 _lo_idle=0
    # a "tick" every TEJ_TICK seconds of silence (4), in naps of 0.2 s
    case ${TEJ_TICK:-} in
        ''|*[!0-9]*|0*) _lo_naps=20 ;;
        *) _lo_naps=$((TEJ_TICK * 5)) ;;
    esac
    _header
    printf 'stream=logs\n'
    while :; do
        # the state is read before the files: once the job has ended, one
        # more pass sends all it wrote
        if [ ! -d "$_lo_job" ]; then
            printf 'end notfound \n'
            return 0
        fi
        _load "$_lo_job"
        _rt_refresh "$_lo_job"
        case $2 in
            *out*) _send out "$_lo_job/stage/_stdout" "$_lo_out"
                   _lo_out=$_send_to ;;
        esac
        case $2 in
            *err*) _send err "$_lo_job/stage/_stderr" "$_lo_err"
                   _lo_err=$_send_to ;;
        esac
        if [ "$3" != follow ] || ! _ongoing; then
            break
        fi
        _lo_idle=$((_lo_idle + 1))
        if [ "$_lo_idle" -ge "$_lo_naps" ]; then
            # a reader that went away ends this loop (SIGPIPE)
            printf 'tick\n'
            _lo_idle=0
        fi
        _nap 2
    done
    printf 'end %s %s\n' "${st_state:-created}" "$st_exit"
}

_kill() {  # _kill ID: no-op unless the job is running
    _check_id "$1"
    _kl_job=$Q/jobs/$1
    [ -d "$_kl_job" ] || _die "$RC_NO_JOB" "no job $1"
    _load "$_kl_job"
    _rt_refresh "$_kl_job"
    [ "$st_state" != notfound ] || _die "$RC_NO_JOB" "no job $1"
    if _ongoing; then
        _lock "$_kl_job"
        _load "$_kl_job"
        st_killreq=$(_now)
        _save "$_kl_job"
        _unlock
        _rt_kill "$_kl_job"
    else
        printf 'tej: job %s is not running\n' "$1" >&2
    fi
    _header
}

_stop() {  # _stop ID [kill]: before removing a job: RC_RUNNING if it is
    # still running, unless "kill": then kill it
    _load "$Q/jobs/$1"
    _rt_refresh "$Q/jobs/$1"
    if _ongoing; then
        [ "${2:-}" = kill ] || _die "$RC_RUNNING" "job $1 is still running"
        _kill "$1" > /dev/null
    fi
}

_delete() {  # _delete ID [kill]
    _check_id "$1"
    [ -d "$Q/jobs/$1" ] || _die "$RC_NO_JOB" "no job $1"
    _stop "$@"
    _remove "$Q/jobs/$1"
    _header
}

_cleanup_queue() {  # remove the queue, then the links the bootstrap followed
    for _cq_job in "$Q"/jobs/*; do
        [ -d "$_cq_job" ] || continue
        _stop "${_cq_job##*/}" ${1+"$1"}
    done
    if [ -L "$Q" ]; then
        # a symbolic link to the queue: rm -rf would remove the link only.
        # The directory it leads to goes first ("x": pwd's newline and any
        # the name ends with are kept), then the link
        _cq_real=$(cd -P "$Q" && pwd -P && printf x) || \
            _die "$RC_FAILURE" "cannot find the directory that $Q leads to"
        _cq_real=${_cq_real%?x}
        [ "$_cq_real" != / ] || _die "$RC_FAILURE" "$Q leads to /: not removing it"
        rm -rf "$_cq_real"
        rm -f "$Q"
    else
        rm -rf "$Q"
    fi
    _cq_n=1
    while [ "$_cq_n" -le 10 ]; do
        eval "_cq_link=\${TEJ_LINK_$_cq_n:-}"
        [ -n "$_cq_link" ] && rm -f "$_cq_link"
        _cq_n=$((_cq_n + 1))
    done
    _header
}

_main() {
    [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: tej.sh QUEUE VERB [ARG ...]"
    Q=$1
    _mn_verb=$2
    shift 2
    TEJ_SELF=$Q/tej.sh
    case $_mn_verb in
        _install) _install "$@" ;;
        submit) [ "$#" -ge 3 ] || _die "$RC_INVALID" "usage: submit ID MODE SCRIPT [KEY=VALUE ...]"
                _submit "$@" ;;
        status) [ "$#" -ge 1 ] || _die "$RC_INVALID" "usage: status ID ..."
                _status "$@" ;;
        list) _scan list ${1+"$@"} ;;
        gc) _scan gc ${1+"$@"} ;;
        wait) [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: wait SECONDS ID ..."
              _wait all "$@" ;;
        waitany) [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: waitany SECONDS ID ..."
                 _wait any "$@" ;;
        download) [ "$#" -ge 3 ] || _die "$RC_INVALID" "usage: download ID FLAGS NPARTS [SIZE OFFSET ./PART ...] ./PATH ..."
                  _download "$@" ;;
        _files) [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: _files ID ./PATH ..."
                _files "$@" ;;
        logs) [ "$#" -eq 5 ] || _die "$RC_INVALID" "usage: logs ID out|err|outerr follow|once OFFSET OFFSET"
              _logs "$@" ;;
        kill) [ "$#" -eq 1 ] || _die "$RC_INVALID" "usage: kill ID"
              _kill "$1" ;;
        delete) [ "$#" -ge 1 ] || _die "$RC_INVALID" "usage: delete ID [kill]"
                _delete "$@" ;;
        cleanup) _cleanup_queue ${1+"$@"} ;;  # posh: "$@" is unset if empty
        _wrap) _check_id "$1"
               _rt_wrap "$Q/jobs/$1" ;;
        _batch) _check_id "$1"
                _run_job "$Q/jobs/$1" ;;
        *) _die "$RC_INVALID" "unknown verb: '$_mn_verb'" ;;
    esac
}
'''
# END runtimes/common.sh

# BEGIN runtimes/default.sh
_RUNTIME_DEFAULT = r'''# tej runtime "default": starts each job at once, detached from the session.
#
# Appended to common.sh to make QUEUE/tej.sh; provides its _rt_* hooks. The
# wrapper (verb _wrap) is started with setsid, so that the job has a process
# group of its own, and with HUP ignored; it records its pid, process group
# and the boot id, runs the job (common.sh's _run_job) and records its exit
# code. A job whose wrapper is gone without a record (SIGKILL, a reboot) is
# lost. kill sends TERM to the process group, and to the job's processes
# that left it (their environment has the job's token: where /proc is), KILL
# after TEJ_GRACE seconds, and returns when no process of it is left. Of the
# submit options, only walltime (enforced here: TERM when it is over) and
# prologue are honoured.

# The st_* variables are common.sh's.
# shellcheck disable=SC2034,SC2154

TEJ_RUNTIME=default

_rt_usable() {
    :
}

_rt_option() {
    case $1 in
        walltime|prologue) ;;
        *) _die "$RC_UNSUPPORTED" "the default runtime starts jobs at once, without a scheduler: it cannot honour the option $1" ;;
    esac
}

_rt_start() {
    set -- "$TEJ_SH" "$TEJ_SELF" "$Q" _wrap "$2"
    # setsid gives the job a process group of its own, so that kill reaches
    # all of its processes and nothing else
    if command -v setsid > /dev/null 2>&1; then
        set -- setsid "$@"
    fi
    # nohup is missing on some systems (busybox); ignoring HUP is what it
    # does. The redirections go on exec: yash keeps copies of the original
    # descriptors in a subshell whose redirections are outside, and the ssh
    # session would then wait for the job.
    ( trap '' HUP; exec "$@" < /dev/null > /dev/null 2>&1 ) &
    st_state=running st_pid=$! st_boot=$(_bootid)
}

_rt_started() {
    st_pid=$$ st_boot=$(_bootid)
    if [ -r "/proc/$$/stat" ]; then
        read -r _rsd_stat < "/proc/$$/stat"
        # shellcheck disable=SC2086 # split the fields after "(comm) "
        set -- ${_rsd_stat##*) }
        st_pgid=$3
    else
        st_pgid=$(ps -o pgid= -p "$$" 2>/dev/null | tr -d ' ') || st_pgid=
    fi
    # without setsid, the group is the caller's: not the job's to kill
    [ "$st_pgid" = "$$" ] || st_pgid=
}

_alive() {  # _alive PID STARTED: is PID a live process of this queue's
    # wrapper? Not just any process that reused the pid: the wrapper, or
    # before it has recorded its start (STARTED empty), a tej.sh: the
    # submission's child (_rt_start), which has not made its exec yet
    if [ -r "/proc/$1/cmdline" ]; then
        _cmdline "$1"
        case $_cml_line in
            *" _wrap "*) return 0 ;;
            *"/tej.sh "*) [ -z "$2" ]; return ;;
        esac
        return 1
    fi
    kill -s 0 "$1" 2>/dev/null
}

_rt_refresh() {
    [ "$st_state" = running ] || return 0
    if [ -n "$st_boot" ] && [ "$st_boot" != "$(_bootid)" ]; then
        _seen_lost "$1"  # the machine rebooted since
        return 0
    fi
    [ -n "$st_pid" ] && _alive "$st_pid" "$st_started" && return 0
    _load "$1"  # the wrapper may have written its record just now
    if [ "$st_state" = running ]; then
        _seen_lost "$1"
    fi
}

_group_alive() {  # _group_alive PGID: has the group a process, not a zombie?
    _ga_group=$1
    if [ -r /proc/self/stat ]; then
        # zombies answer kill -0 until their parent (init) reaps them
        for _ga_file in /proc/[0-9]*/stat; do
            { read -r _ga_stat < "$_ga_file"; } 2>/dev/null || continue
            # shellcheck disable=SC2086 # the fields after "(comm) "
            set -- ${_ga_stat##*) }
            [ "$3" = "$_ga_group" ] && [ "$1" != Z ] && return 0
        done
        return 1
    fi
    { kill -s 0 -- "-$_ga_group" || kill -s 0 "-$_ga_group"; } 2>/dev/null
}

_signal_group() {  # _signal_group SIGNAL PGID
    # dash wants "--" before a negative pid, busybox refuses "--"
    { kill -s "$1" -- "-$2" || kill -s "$1" "-$2"; } 2>/dev/null || :
}

_tree() {  # _tree PID: PID and its descendants
    ps -A -o pid= -o ppid= 2>/dev/null | awk -v top="$1" '
        { parent[$1] = $2 }
        END {
            found[top] = 1; print top
            do {
                more = 0
                for (p in parent)
                    if ((parent[p] in found) && !(p in found)) {
                        found[p] = 1; print p; more = 1
                    }
            } while (more)
        }'
}

_procs_alive() {  # _procs_alive PIDS: is the job's group (st_pgid) alive,
    # or without one, one of PIDS (a space-separated list)?
    if [ -n "$st_pgid" ]; then
        _group_alive "$st_pgid"
        return
    fi
    for _pa_pid in $1; do
        if [ -r "/proc/$_pa_pid/stat" ]; then
            { read -r _pa_stat < "/proc/$_pa_pid/stat"; } 2>/dev/null || continue
            # shellcheck disable=SC2086 # the fields after "(comm) "
            set -- ${_pa_stat##*) }
            [ "$1" != Z ] && return 0
        elif kill -s 0 "$_pa_pid" 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

_procs_signal() {  # _procs_signal SIGNAL PIDS: to the job's group
    # (st_pgid), or without one, to PIDS
    if [ -n "$st_pgid" ]; then
        _signal_group "$1" "$st_pgid"
    else
        # shellcheck disable=SC2086 # a list of pids
        kill -s "$1" $2 2>/dev/null || :
    fi
}

_escaped() {  # _escaped: the pids of the job's processes, as far as
    # they can be found outside its process group (setsid, a daemon's
    # double fork): those with its token (st_token, of _run_job) in their
    # environment. Only where /proc is; not one that emptied it
    [ -d /proc/self ] && [ -n "$st_token" ] || return 0
    # (-z: the entries end with NUL, which ends a line for busybox grep)
    { grep -l -z -x -F -e "TEJ_JOB_TOKEN=$st_token" /proc/[0-9]*/environ \
        2>/dev/null || :; } |
        while IFS=/ read -r _es_root _es_proc _es_pid _es_file; do
            [ "$_es_pid" = "$$" ] || printf '%s\n' "$_es_pid"
        done
}

_job_alive() {  # _job_alive: has the job a process left (its group,
    # or _rk_procs, or one of _escaped)?
    _procs_alive "$_rk_procs" || [ -n "$(_escaped)" ]
}

_job_signal() {  # _job_signal SIGNAL: to every process of the job
    # (the group first: with KILL, the wrapper dies with its job, not
    # while it records the end under the lock)
    _procs_signal "$1" "$_rk_procs"
    _js_pids=$(_escaped)
    if [ -n "$_js_pids" ]; then
        # shellcheck disable=SC2086 # a list of pids
        kill -s "$1" $_js_pids 2>/dev/null || :
    fi
}

_rt_kill() {
    # the job's process group; without setsid, the wrapper and its
    # descendants (as they are now); and those that escaped either
    _rk_procs=
    if [ -z "$st_pgid" ] && [ -n "$st_pid" ]; then
        _rk_procs=$(_tree "$st_pid")
    fi
    _job_signal TERM
    _rk_n=0
    while _job_alive && [ "$_rk_n" -lt $((TEJ_GRACE * 10)) ]; do
        _nap
        _rk_n=$((_rk_n + 1))
    done
    if _job_alive; then
        printf 'tej: the job did not stop on TERM within %s s (TEJ_GRACE): KILL\n' \
            "$TEJ_GRACE" >&2
        _job_signal KILL
        _rk_n=0
        while _job_alive && [ "$_rk_n" -lt 100 ]; do
            _nap  # a process in uninterruptible sleep takes its time
            _rk_n=$((_rk_n + 1))
        done
    fi
    # the wrapper records the exit code when it survives; if it was killed
    # too, the record is written here
    _finish "$1" killed 137
}

_rt_wrap() {
    _rw_walltime=$(_option "$1" walltime)
    if [ -n "$_rw_walltime" ]; then
        # the watchdog: TERM to the job's processes (the wrapper survives
        # it) when the time is over; stopped when the job ends
        _rw_wrapper=$$
        (
            _rw_n=0
            while [ "$_rw_n" -lt "$_rw_walltime" ]; do
                _nap 10
                _rw_n=$((_rw_n + 1))
            done
            : > "$1/timedout"
            printf 'tej: the time limit (walltime %s s) is reached: the job is stopped\n' \
                "$_rw_walltime" >> "$1/stage/_stderr"
            _load "$1"
            _rk_procs=$(_tree "$_rw_wrapper")
            # (this loop is in the group too: it lives on to reach the
            # processes outside it)
            trap '' TERM
            _job_signal TERM
            trap - TERM
        ) &
        _rw_dog=$!
    fi
    _run_job "$1"
    if [ -n "$_rw_walltime" ]; then
        kill "$_rw_dog" 2>/dev/null || :
    fi
}

_main "$@"
'''
# END runtimes/default.sh

# BEGIN runtimes/slurm.sh
_RUNTIME_SLURM = r'''# tej runtime "slurm": hands jobs to Slurm (sbatch, squeue, scancel).
#
# Appended to common.sh to make QUEUE/tej.sh; provides its _rt_* hooks.
# submit writes JOBDIR/batch.sh: "#!/bin/sh", "#SBATCH --job-name=ID", the
# user's own "#SBATCH" lines from the top of the job's script, and a line
# that runs the job through tej.sh (verb _batch: common.sh's _run_job, which
# records the start and the exit code itself). It is given to
# "sbatch --parsable" with the job's directory as working directory, and
# the submit options mapped to sbatch's (they override the user's lines).
# The Slurm id is the record's runtime_id.
#
# States: squeue tells queued (PENDING...) and running; once Slurm no longer
# lists the job, the wrapper's record tells finished or killed (TERM from
# scancel or the time limit). Without a record, "scontrol show job" tells
# CANCELLED or TIMEOUT (killed: it never ran, or was KILLed), FAILED,
# NODE_FAIL... (lost); a job Slurm has forgotten, or that COMPLETED without
# a record, is lost after TEJ_LOST_GRACE seconds (60: a shared file system
# may be late). sacct is not used: many clusters have no accounting.
#
# A Slurm that cannot be asked (squeue, scontrol or scancel fails, and not
# for an unknown job id: its controller is down or unreachable) is not an
# answer: the job keeps its last known state (common.sh's _sched_ask), and
# kill fails.

# The st_* variables are common.sh's.
# shellcheck disable=SC2034,SC2154

TEJ_RUNTIME=slurm

_rt_usable() {  # probe.sh's _probe_slurm, in two steps for the message
    command -v sbatch > /dev/null 2>&1 || \
        _die "$RC_UNSUPPORTED" "the slurm runtime needs sbatch, which is not on the PATH"
    _probe_slurm || _die "$RC_UNSUPPORTED" "Slurm's controller does not answer (sinfo fails)"
}

_rt_option() {
    :
}

_rt_start() {
    _write_batch "$1" "$2" '#SBATCH' "--job-name=$2"
    _rs_job=$1
    set -- --parsable --chdir="$_rs_job/stage" --output="$_rs_job/scheduler.out" \
        --error="$_rs_job/scheduler.out"
    while IFS= read -r _rs_option; do
        _rs_value=${_rs_option#*=}
        case $_rs_option in
            walltime=*) set -- "$@" --time="$(_hms "$_rs_value")" ;;
            cpus=*) set -- "$@" --cpus-per-task="$_rs_value" ;;
            mem=*) set -- "$@" --mem="$_rs_value" ;;
            partition=*) set -- "$@" --partition="$_rs_value" ;;
            account=*) set -- "$@" --account="$_rs_value" ;;
            gpus=*) set -- "$@" --gpus="$_rs_value" ;;
            arg=*) set -- "$@" "$_rs_value" ;;
        esac
    done < "$_rs_job/options"
    if ! _rs_out=$(sbatch "$@" "$_rs_job/batch.sh" 2> "$_rs_job/sbatch.err"); then
        _die "$RC_FAILURE" "sbatch failed: $(cat "$_rs_job/sbatch.err")"
    fi
    st_state=queued st_runtime_id=${_rs_out%%;*}
}

_rt_started() {
    st_pid=$$
}

_squeue_state() {  # the job's state in squeue, empty when it is not
    # listed, in _sq_state; fails when Slurm could not be asked
    _scheduler_down && return 1
    _sched_ask Slurm squeue -h -j "$st_runtime_id" -o %T || return 1
    _sq_state=$_sa_out
}

_rt_refresh() {
    _ongoing || return 0
    [ -n "$st_runtime_id" ] || return 0
    _squeue_state || return 0  # not an answer: the last known state
    case $_sq_state in
        PENDING|CONFIGURING|REQUEUE*|RESV_DEL_HOLD|SUSPENDED)
            [ "$st_state" = running ] || st_state=queued
            return 0 ;;
        RUNNING|COMPLETING|SIGNALING|STAGE_OUT|RESIZING)
            st_state=running
            return 0 ;;
    esac
    _load "$1"  # the wrapper may have written its record just now
    _ongoing || return 0
    _sched_ask Slurm scontrol show job -o "$st_runtime_id" || return 0
    case $_sa_out in
        *" JobState=CANCELLED"*|*" JobState=TIMEOUT"*|*" JobState=DEADLINE"*)
            _finish "$1" killed "" ;;
        *" JobState=FAILED"*|*" JobState=NODE_FAIL"*|*" JobState=BOOT_FAIL"*|\
        *" JobState=OUT_OF_MEMORY"*|*" JobState=PREEMPTED"*)
            _finish "$1" lost "" ;;
        *)
            # completed without a record yet, or forgotten by Slurm
            _lost_after_grace "$1" ;;
    esac
}

_rt_listed() {  # does Slurm still list the job? (yes, as far as it is
    # known, when Slurm cannot be asked)
    _squeue_state || return 0
    [ -n "$_sq_state" ]
}

_rt_kill() {
    _sched_ask Slurm scancel "$st_runtime_id" || \
        _unkilled "$1" "Slurm could not be asked to cancel its job $st_runtime_id, which goes on if it runs ($_un_said)"
    _scheduler_end "$1"
}

_main "$@"
'''
# END runtimes/slurm.sh

# BEGIN runtimes/pbs.sh
_RUNTIME_PBS = r'''# tej runtime "pbs": hands jobs to PBS or Torque (qsub, qstat, qdel).
#
# Appended to common.sh to make QUEUE/tej.sh; provides its _rt_* hooks.
# submit writes JOBDIR/batch.sh ("#!/bin/sh", the user's own "#PBS" lines
# from the top of the job's script, and a line that runs the job through
# tej.sh: verb _batch, common.sh's _run_job, which goes to the job's
# directory and records the start and the exit code itself) and gives it to
# qsub with the submit options mapped to qsub's. The PBS id (123.server, or
# a bare number) is the record's runtime_id.
#
# States: qstat's S column tells queued (Q, H, W, T) and running (R, E);
# once the job has left (C, F, or unknown to qstat: exit 153), the
# wrapper's record tells finished or killed (TERM from qdel or the
# walltime). The exit code is always the record's: qstat's Exit_status is
# not everywhere. Without a record, a job tej killed is killed; any other is
# lost after TEJ_LOST_GRACE seconds (a job deleted with qdel before it
# started is among them). A PBS server that cannot be asked (qstat or qdel
# fails, and not for an unknown job) is not an answer: the job keeps its
# last known state (common.sh's _sched_ask), and kill fails.

# The st_* variables are common.sh's.
# shellcheck disable=SC2034,SC2154

TEJ_RUNTIME=pbs

_rt_usable() {  # probe.sh's _probe_pbs, in two steps for the message
    command -v qsub > /dev/null 2>&1 || \
        _die "$RC_UNSUPPORTED" "the pbs runtime needs qsub, which is not on the PATH"
    _probe_pbs || _die "$RC_UNSUPPORTED" "the PBS server does not answer (qstat fails)"
}

_rt_option() {
    :
}

_pbs_size() {  # _pbs_size SIZE: a size of tej's (a number of MB, or one
    # with a unit: 500M, 4G, 4gb) as PBS writes it: 4000mb, 500mb, 4gb (a
    # bare number would be bytes)
    case $1 in
        *[0-9]) printf '%smb' "$1" ;;
        *) printf '%sb' "$(printf '%s' "${1%[Bb]}" | tr 'KMGT' 'kmgt')" ;;
    esac
}

_rt_start() {
    _write_batch "$1" "$2" '#PBS'
    _rs_job=$1 _rs_nodes='' _rs_res=''
    set -- -o "$_rs_job/scheduler.out" -e "$_rs_job/scheduler.err"
    while IFS= read -r _rs_option; do
        _rs_value=${_rs_option#*=}
        case $_rs_option in
            walltime=*) _rs_res=$_rs_res,walltime=$(_hms "$_rs_value") ;;
            cpus=*) _rs_nodes=$_rs_nodes:ppn=$_rs_value ;;
            gpus=*) _rs_nodes=$_rs_nodes:gpus=$_rs_value ;;
            mem=*) _rs_res=$_rs_res,mem=$(_pbs_size "$_rs_value") ;;
            partition=*) set -- "$@" -q "$_rs_value" ;;
            account=*) set -- "$@" -A "$_rs_value" ;;
            arg=*) set -- "$@" "$_rs_value" ;;
        esac
    done < "$_rs_job/options"
    if [ -n "$_rs_nodes" ]; then
        _rs_res=$_rs_res,nodes=1$_rs_nodes
    fi
    if [ -n "$_rs_res" ]; then
        # one -l: some qsub keep only the last
        set -- "$@" -l "${_rs_res#,}"
    fi
    if ! _rs_out=$(cd "$_rs_job/stage" && qsub "$@" "$_rs_job/batch.sh" \
            2> "$_rs_job/qsub.err"); then
        _die "$RC_FAILURE" "qsub failed: $(cat "$_rs_job/qsub.err")"
    fi
    st_state=queued st_runtime_id=$_rs_out
}

_rt_started() {
    st_pid=$$
}

_qstat_state() {  # the job's S column in qstat, empty when it is
    # unknown, in _qs_state; fails when PBS could not be asked
    _scheduler_down && return 1
    _sched_ask PBS qstat "$st_runtime_id" || return 1
    _qs_state=$(printf '%s\n' "$_sa_out" | awk -v id="$st_runtime_id" '
        NR > 2 && (id == $1 || index(id, $1) == 1 ||
                   index($1, id ".") == 1) { s = $5 }
        END { print s }')
}

_rt_refresh() {
    _ongoing || return 0
    [ -n "$st_runtime_id" ] || return 0
    _qstat_state || return 0  # not an answer: the last known state
    case $_qs_state in
        Q|H|W|T|S)
            [ "$st_state" = running ] || st_state=queued
            return 0 ;;
        R|E)
            st_state=running
            return 0 ;;
    esac
    _load "$1"  # the wrapper may have written its record just now
    _ongoing || return 0
    if [ -n "$st_killreq" ]; then
        _finish "$1" killed ""
    else
        _lost_after_grace "$1"
    fi
}

_rt_listed() {  # does PBS still list the job, not ended? (yes, as far as
    # it is known, when PBS cannot be asked)
    _qstat_state || return 0
    case $_qs_state in
        ''|C|F) return 1 ;;
    esac
}

_rt_kill() {
    _sched_ask PBS qdel "$st_runtime_id" || \
        _unkilled "$1" "PBS could not be asked to delete its job $st_runtime_id, which goes on if it runs ($_un_said)"
    _scheduler_end "$1"
}

_main "$@"
'''
# END runtimes/pbs.sh


#: The runtimes this client can install: name -> its own script.
_RUNTIMES = {'default': _RUNTIME_DEFAULT, 'slurm': _RUNTIME_SLURM,
             'pbs': _RUNTIME_PBS}


def _runtime_script(name):
    """The QUEUE/tej.sh of a runtime: the protocol's prelude, probe.sh,
    queue.sh, common.sh, then the runtime's own file.
    """
    return _prelude() + _RUNTIME_PROBE + _RUNTIME_QUEUE + _RUNTIME_COMMON + \
        _RUNTIMES[name]


#: _runtime_version's answers, made once: every call says them.
_VERSIONS = {}


def _runtime_version(name):
    """The content of QUEUE/version for a runtime: protocol, name, hash."""
    if name not in _VERSIONS:
        digest = _sha256(_runtime_script(name).encode('utf-8'))
        _VERSIONS[name] = '%d/%s/%s' % (PROTOCOL, name,
                                        digest.hexdigest()[:16])
    return _VERSIONS[name]


#: What every call runs first: bootstrap.sh (which says what it does)
#: behind the prelude, probe.sh and queue.sh, folded into one line
#: (_call_line).
_BOOTSTRAP = _fold(_prelude() + _RUNTIME_PROBE + _RUNTIME_QUEUE +
                   _RUNTIME_BOOTSTRAP)


#: The first line of a call that has no input of its own (_call_line):
#: fast.sh (which says what it does) behind queue.sh, folded into one line.
_FAST_START = _fold(_RUNTIME_QUEUE + _RUNTIME_FAST)


# ===========================================================================
# The original's module paths: tej.submission, tej.errors, tej.utils
# ===========================================================================

#: Characters that _shell_escape leaves unquoted.
_SHELL_SAFE = frozenset('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                        '0123456789-+=/:.,%_')


def _shell_escape(text):
    """tej.utils.shell_escape, as the original did it: ``text`` (str, bytes
    or a path) as is when it is made of safe characters, else in double
    quotes, with backslash, double quote, backquote and dollar escaped.
    tej itself quotes with `shlex.quote`.
    """
    if isinstance(text, bytes):
        text = text.decode('utf-8')
    text = str(os.fspath(text)) if hasattr(text, '__fspath__') else text
    if text and all(c in _SHELL_SAFE for c in text):
        return text
    for char in '\\"`$':
        text = text.replace(char, '\\' + char)
    return '"%s"' % text


def _original_modules():
    """Make the original package's modules importable from this one file:
    ``<name>.submission`` and ``<name>.errors`` are this module, and
    ``<name>.utils`` the original's compatibility names, where <name> is
    this module's name (tej, or mypkg.tej when vendored: a real package
    named tej is never shadowed). Run as a script, nothing is made.
    """
    import types
    me = sys.modules.get(__name__)
    if me is None or __name__ == '__main__':
        return
    utils = types.ModuleType(__name__ + '.utils',
                             "The original tej's Python 2/3 names.")
    utils.__dict__.update(
        PY3=True, unicode_=str, string_types=(str,), izip=zip, irange=range,
        iteritems=dict.items, itervalues=dict.values,
        listvalues=lambda d: list(d.values()), shell_escape=_shell_escape)
    for name, module in (('submission', me), ('errors', me),
                         ('utils', utils)):
        sys.modules[__name__ + '.' + name] = module
        setattr(me, name, module)


_original_modules()


if __name__ == '__main__':
    sys.exit(main())

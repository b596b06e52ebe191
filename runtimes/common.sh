#!/bin/sh
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

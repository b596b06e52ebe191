#!/bin/sh
# tej runtime, common part: queue layout, job records, listing, transfers.
#
# The client installs this file, followed by one runtime's own file
# (default.sh, ...), as QUEUE/tej.sh, and runs it as
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
#                         (seconds), cpus, mem, partition, account, gpus, arg
#                         (a scheduler argument, repeatable), prologue (sh
#                         code run before the job, in its shell); a runtime
#                         refuses those it cannot honour (exit 9)
#   status ID [ID ...]    one record per job
#   list                  one record per job in the queue
#   wait SECONDS ID ...   as status, once every job has ended or after
#                         SECONDS
#   download ID PATH ...  a tar stream of PATHs (relative to the job)
#   logs ID STREAMS MODE OFFSET_OUT OFFSET_ERR
#                         the job's _stdout and/or _stderr (STREAMS "out",
#                         "err" or "outerr") past the offsets: "stream=logs",
#                         frames "out N" or "err N" then N bytes; with MODE
#                         "follow", until the job has ended (with a line
#                         "tick" now and then); then a line "end STATE EXIT"
#   kill ID               stop a running job (TERM, then KILL after a grace)
#   delete ID [kill]      remove a job; refused while it runs, unless "kill"
#   cleanup [kill]        remove the whole queue and the links that led to it
#   _wrap ID, _batch ID   internal: the runtime's wrapper that runs the job
#
# Stdout: a sentinel line "TEJ 1", then for status and list one line per job
# of tab-separated key=value fields, "dir=" last:
#   id=ID state=STATE exit=N submitted=T started=T finished=T now=T
#   runtime=NAME runtime_id=X dir=PATH
# with STATE one of created, queued, running, finished, killed, lost,
# notfound; times are epoch seconds, empty when unknown. download writes
# "stream=download" after the sentinel, then a tar archive.
#
# Exit codes: 0 ok, 1 failure (message on stderr), 2 job still running,
# 3 no such job, 4 job already exists, 5 no queue, 6 broken queue link,
# 7 queue or link already exists, 8 invalid argument, 9 unsupported,
# 10 no such file in the job. 90 is the bootstrap's "runtime missing or
# outdated". Never 126, 127, 128+N or 255: those are the shell's and ssh's.

# The st_* variables are shared with the runtime file appended to this one,
# which defines the hooks:
#   _rt_usable            exit 9 with a message if the runtime cannot work
#   _rt_option KEY        exit 9 if the runtime cannot honour submit option KEY
#   _rt_start JOBDIR ID   start the job (lock held); set st_state (queued or
#                         running), st_runtime_id
#   _rt_started JOBDIR    in the wrapper, as the job starts (lock held): set
#                         runtime fields (st_pid...)
#   _rt_refresh JOBDIR    bring the loaded record of an active job up to date
#                         with the runtime (lost, killed...)
#   _rt_kill JOBDIR       stop the job; return when it has ended
# shellcheck disable=SC2034

set -eu
# the jobs get the caller's locale and umask back (_run_job)
if [ -z "${TEJ_CALLER_SAVED:-}" ]; then
    TEJ_CALLER_SAVED=1 TEJ_LC_ALL=${LC_ALL-} TEJ_LC_ALL_SET=${LC_ALL+1}
    export TEJ_CALLER_SAVED TEJ_LC_ALL TEJ_LC_ALL_SET
fi
LC_ALL=C
export LC_ALL
umask 077

TEJ_PROTOCOL=1
: "${TEJ_SH:=sh}"
export TEJ_SH
TEJ_GRACE=${TEJ_GRACE:-5}

_die() {  # _die CODE MESSAGE
    _code=$1
    shift
    printf 'tej: %s\n' "$*" >&2
    exit "$_code"
}

_header() {
    printf 'TEJ %s\n' "$TEJ_PROTOCOL"
}

_nap() {  # a short sleep; POSIX sleep only takes whole seconds
    sleep 0.1 2>/dev/null || sleep 1
}

_now() {
    date +%s
}

_check_id() {  # the server never trusts the client's validation
    case $1 in
        ''|-*|.*) _die 8 "invalid job id: '$1'" ;;
        *[!A-Za-z0-9_.,+=@%:-]*) _die 8 "invalid job id: '$1'" ;;
    esac
    [ "${#1}" -le 128 ] || _die 8 "job id longer than 128 characters"
}

_check_path() {  # a path inside a job: relative, no "..", not empty
    case /$1/ in
        //) _die 8 "empty path" ;;
        *//*) _die 8 "invalid path: '$1'" ;;
    esac
    case $1 in
        /*) _die 8 "absolute path: '$1'" ;;
    esac
    case /$1/ in
        */../*) _die 8 "path goes up with '..': '$1'" ;;
    esac
}

# ---- locking and job records -----------------------------------------------

_locked=
_tmp=
_self=
_creating=

_cleanup() {
    if [ -n "$_locked" ]; then
        rm -rf "$_locked"
    fi
    if [ -n "$_tmp" ]; then
        rm -f "$_tmp"
    fi
    if [ -n "$_self" ]; then  # the pushed copy, in its private directory
        rm -rf "${_self%/*}"
    fi
    if [ -n "$_creating" ]; then  # a job whose submission failed
        rm -rf "$_creating"
    fi
}
trap _cleanup EXIT

_host=

_dead() {  # _dead OWNER: is the owner (host:pid) of a lock a process of
    # this host that is gone? (Not one of another host, a cluster node.)
    [ -n "$_host" ] || _host=$(uname -n)
    case $1 in
        "$_host:"*) ! kill -s 0 "${1#*:}" 2>/dev/null ;;
        *) return 1 ;;
    esac
}

_lock() {  # _lock JOBDIR: mkdir is atomic. The owner (host:pid) is in the
    # lock: a lock whose owner is dead is broken; one of another host (a
    # cluster node), or without an owner, after a minute.
    _n=0
    [ -n "$_host" ] || _host=$(uname -n)
    while ! mkdir "$1/lock" 2>/dev/null; do
        [ -d "$1" ] || _die 3 "no such job"
        _n=$((_n + 1))
        if [ "$((_n % 20))" -eq 0 ]; then
            _owner=
            { read -r _owner < "$1/lock/owner"; } 2>/dev/null || :
            if _dead "$_owner" || [ "$_n" -ge 600 ]; then
                rm -rf "$1/lock"
            fi
        fi
        _nap
    done
    _locked=$1/lock
    printf '%s:%s\n' "$_host" "$$" > "$1/lock/owner"
}

_unlock() {
    rm -rf "$_locked"
    _locked=
}

_KEYS='state exit submitted started finished pid pgid boot killreq runtime runtime_id mode'

_load() {  # _load JOBDIR: read the state file into st_* variables.
    # The submitter holds the lock until the record is past "created": a
    # job still "created" whose lock is gone, or whose lock's owner is dead
    # (or is now ours, broken), was left by a submitter that died: lost.
    # So the lock is looked at first, then the record.
    _owner='' _submitter=1
    if [ "$_locked" = "$1/lock" ]; then
        [ "$_creating" = "$1" ] || _submitter=
    elif [ -d "$1/lock" ]; then
        { read -r _owner < "$1/lock/owner"; } 2>/dev/null || :
    else
        _submitter=
    fi
    st_state='' st_exit='' st_submitted='' st_started='' st_finished=''
    st_pid='' st_pgid='' st_boot='' st_killreq='' st_runtime='' st_runtime_id=''
    st_mode=''
    if [ -f "$1/state" ]; then
        while IFS= read -r _line; do
            _k=${_line%%=*}
            case " $_KEYS " in
                *" $_k "*) eval "st_$_k=\${_line#*=}" ;;
            esac
        done < "$1/state"
    fi
    if [ "${st_state:-created}" = created ]; then
        if [ -z "$_submitter" ] || _dead "$_owner"; then
            st_state=lost
        fi
    fi
}

_save() {  # _save JOBDIR: write st_* variables, atomically (temp file + mv)
    _tmp=$1/state.tmp.$$
    : > "$_tmp"
    for _k in $_KEYS; do
        eval "printf '%s=%s\n' \"\$_k\" \"\$st_$_k\"" >> "$_tmp"
    done
    mv -f "$_tmp" "$1/state"
    _tmp=
}

_bootid() {
    if [ -r /proc/sys/kernel/random/boot_id ]; then
        cat /proc/sys/kernel/random/boot_id
    fi
}

_record() {  # _record ID: print one job's record; 3 if there is no such job
    _j=$Q/jobs/$1
    if [ ! -d "$_j" ]; then
        printf 'id=%s\tstate=notfound\n' "$1"
        return 3
    fi
    _load "$_j"
    _rt_refresh "$_j"
    printf 'id=%s\tstate=%s\texit=%s\tsubmitted=%s\tstarted=%s\tfinished=%s\tnow=%s\truntime=%s\truntime_id=%s\tdir=%s\n' \
        "$1" "${st_state:-created}" "$st_exit" "$st_submitted" "$st_started" \
        "$st_finished" "$_nowt" "$st_runtime" "$st_runtime_id" "$_j/stage"
}

_active() {  # is the loaded job (after _rt_refresh) still to end?
    case ${st_state:-created} in
        created|queued|running) return 0 ;;
    esac
    return 1
}

_finish() {  # _finish JOBDIR STATE EXIT: record how a job ended (unless
    # its wrapper did), and load the record
    _lock "$1"
    _load "$1"
    if _active; then
        st_state=$2 st_exit=$3 st_finished=$(_now)
        _save "$1"
    fi
    _unlock
}

_option() {  # _option JOBDIR KEY: the value of a submit option, or nothing
    [ -f "$1/options" ] || return 0
    while IFS= read -r _line; do
        case $_line in
            "$2="*) printf '%s\n' "${_line#*=}" ;;
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
    _termed=
    trap '_termed=1' TERM
    trap : INT
    _lock "$1"
    _load "$1"
    if [ -n "$st_killreq" ] || ! _active; then
        # killed before it started
        st_state=killed st_finished=$(_now)
        _save "$1"
        _unlock
        return 0
    fi
    st_state=running st_started=$(_now)
    _rt_started "$1"
    _save "$1"
    _unlock
    _script=$(cat "$1/script")
    _prologue=
    if [ -f "$1/prologue" ]; then
        _prologue=$(cat "$1/prologue")
    fi
    cd "$1/stage" || exit 1
    _code=0
    (
        if [ -n "$TEJ_LC_ALL_SET" ]; then
            LC_ALL=$TEJ_LC_ALL
        else
            unset LC_ALL
        fi
        umask "${TEJ_UMASK:-022}"
        if [ -n "$_prologue" ]; then
            eval "$_prologue" || exit
        fi
        if [ "$st_mode" = command ]; then
            exec sh -c "$_script"
        fi
        chmod u+x "./$_script" 2>/dev/null || :
        exec "./$_script"
    ) < /dev/null > _stdout 2> _stderr || _code=$?
    if [ "$_code" -gt 255 ]; then
        # killed by a signal: ksh says 256+N, yash 384+N; report 128+N
        _code=$((128 + _code % 128))
    fi
    _lock "$1"
    _load "$1"
    st_exit=$_code st_finished=$(_now) st_state=finished
    if [ -n "$st_killreq" ] || [ -n "$_termed" ] || [ -f "$1/timedout" ]; then
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
    _bj=$1 _bid=$2 _bp=$3
    shift 3
    {
        printf '#!/bin/sh\n'
        for _d do
            printf '%s %s\n' "$_bp" "$_d"
        done
        if [ "$st_mode" = file ]; then
            sed -n -e "/^$_bp/p" -e '/^[^#]/q' "$_bj/stage/$(cat "$_bj/script")"
        fi
        printf 'exec %s %s %s _batch %s\n' "$(_quote "$TEJ_SH")" \
            "$(_quote "$TEJ_SELF")" "$(_quote "$Q")" "$(_quote "$_bid")"
    } > "$_bj/batch.sh"
}

_lost_after_grace() {  # _lost_after_grace JOBDIR: the scheduler has no
    # more to say and there is no record: lost, once TEJ_LOST_GRACE seconds
    # (60: a shared file system may be late) have passed since it was seen so
    [ -f "$1/gone" ] || _now > "$1/gone"
    read -r _gone < "$1/gone" || _gone=0
    if [ "$(($(_now) - _gone))" -ge "${TEJ_LOST_GRACE:-60}" ]; then
        _finish "$1" lost ""
    fi
}

_scheduler_end() {  # _scheduler_end JOBDIR: after scancel or qdel, wait
    # until the wrapper has recorded the end (it gets a TERM) or the
    # scheduler no longer lists the job (_rt_listed); then it is killed
    _n=0
    while [ "$_n" -lt 400 ]; do
        _load "$1"
        _active || return 0
        _rt_listed || break
        sleep 0.25 2>/dev/null || sleep 1
        _n=$((_n + 1))
    done
    _finish "$1" killed ""
}

_hms() {  # _hms SECONDS: HH:MM:SS
    printf '%02d:%02d:%02d' "$(($1 / 3600))" "$(($1 / 60 % 60))" "$(($1 % 60))"
}

# ---- verbs -------------------------------------------------------------------

_install() {  # _install VERSION MODE FORCE NLINKS [LINK ...] [VERB ARG ...]
    _version=$1 _mode=$2 _force=$3 _nlinks=$4
    shift 4
    _self=$0
    if [ "$_mode" != links ]; then
        _rt_usable
        if [ "$_mode" = setup ] && [ "$_force" != 1 ] && [ -f "$Q/version" ]; then
            _die 7 "a queue already exists at $Q (use force to replace its runtime; jobs are kept)"
        fi
        if [ ! -f "$Q/version" ] && [ -d "$Q" ] && [ -n "$(ls -A "$Q")" ]; then
            _die 7 "$Q is a directory that is not a queue: not using it"
        fi
        mkdir -p "$Q/jobs"
        _tmp=$Q/tej.sh.tmp.$$
        cp "$_self" "$_tmp"
        mv -f "$_tmp" "$Q/tej.sh"
        _tmp=$Q/version.tmp.$$
        printf '%s\n' "$_version" > "$_tmp"
        mv -f "$_tmp" "$Q/version"
        _tmp=
    fi
    while [ "$_nlinks" -gt 0 ]; do
        _link=$1
        shift
        _nlinks=$((_nlinks - 1))
        # shellcheck disable=SC2088 # a literal "~" from the client
        case $_link in
            "~") _link=$HOME ;;
            "~/"*) _link=$HOME/${_link#"~/"} ;;
            /*) ;;
            *) _link=$HOME/$_link ;;
        esac
        if [ -d "$_link" ]; then
            _die 7 "cannot make link $_link: a directory is there"
        fi
        if [ -e "$_link" ] && [ "$_force" != 1 ]; then
            IFS= read -r _line < "$_link" || :
            [ "$_line" = "tejdir: $Q" ] || \
                _die 7 "cannot make link $_link: it exists (use force)"
        fi
        _tmp=$_link.tmp.$$
        printf 'tejdir: %s\n' "$Q" > "$_tmp"
        chmod 644 "$_tmp"
        mv -f "$_tmp" "$_link"
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
        *) _die 8 "invalid script mode: '$2'" ;;
    esac
    _id=$1 _mode=$2 _script=$3
    shift 3
    for _o do
        case $_o in
            prologue=*) ;;
            *"
"*) _die 8 "an option holds a newline" ;;
            walltime=*) case ${_o#*=} in
                            ''|*[!0-9]*) _die 8 "invalid walltime: '${_o#*=}'" ;;
                        esac ;;
            cpus=*|mem=*|partition=*|account=*|gpus=*|arg=*) ;;
            *) _die 8 "unknown option: '$_o'" ;;
        esac
        _rt_option "${_o%%=*}"
    done
    mkdir -p "$Q/jobs"
    [ -n "$_host" ] || _host=$(uname -n)  # now: the lock follows the mkdir
    _j=$Q/jobs/$_id
    if ! mkdir "$_j" 2>/dev/null; then
        [ -d "$_j" ] && _die 4 "job $_id already exists"
        _die 1 "cannot create $_j"
    fi
    _creating=$_j
    _lock "$_j"
    if ! mkdir "$_j/stage" || ! (cd "$_j/stage" && tar -xf -); then
        _die 1 "could not unpack the job directory"
    fi
    if [ "$_mode" = file ] && [ ! -f "$_j/stage/$_script" ]; then
        _die 10 "no script '$_script' in the job directory"
    fi
    printf '%s' "$_script" > "$_j/script"
    : > "$_j/options"
    for _o do
        case $_o in
            prologue=*) printf '%s\n' "${_o#*=}" > "$_j/prologue" ;;
            *) printf '%s\n' "$_o" >> "$_j/options" ;;
        esac
    done
    _load "$_j"
    st_state=created st_mode=$_mode st_submitted=$(_now) st_runtime=$TEJ_RUNTIME
    _save "$_j"
    _rt_start "$_j" "$_id"
    _save "$_j"
    _creating=
    _unlock
    _header
    printf 'id=%s\n' "$_id"
}

_status() {
    _header
    _nowt=$(_now)
    _rc=0
    for _id in "$@"; do
        _check_id "$_id"
        _record "$_id" || _rc=3
    done
    return "$_rc"
}

_wait() {  # _wait SECONDS ID ...: the records, once every job has ended
    # (or is not there), or after SECONDS
    case $1 in
        ''|*[!0-9]*) _die 8 "invalid number of seconds: '$1'" ;;
    esac
    _until=$(($(_now) + $1))
    shift
    for _id do
        _check_id "$_id"
    done
    while [ "$(_now)" -lt "$_until" ]; do
        _ended=1
        for _id do
            [ -d "$Q/jobs/$_id" ] || continue
            _load "$Q/jobs/$_id"
            _rt_refresh "$Q/jobs/$_id"
            if _active; then
                _ended=0
                break
            fi
        done
        [ "$_ended" = 0 ] || break
        sleep 0.5 2>/dev/null || sleep 1
    done
    _status "$@"
}

_list() {
    _header
    _nowt=$(_now)
    for _j in "$Q"/jobs/*; do
        [ -d "$_j" ] || continue
        _record "${_j##*/}" || :
    done
}

_download() {  # _download ID PATH ...
    _check_id "$1"
    _j=$Q/jobs/$1
    [ -d "$_j" ] || _die 3 "no job $1"
    shift
    [ "$#" -gt 0 ] || _die 8 "no file to download"
    _n=$#
    while [ "$_n" -gt 0 ]; do
        _check_path "$1"
        if [ ! -e "$_j/stage/$1" ] && [ ! -L "$_j/stage/$1" ]; then
            _die 10 "no file '$1' in job"
        fi
        set -- "$@" "./$1"  # "./" keeps names starting with "-" from tar
        shift
        _n=$((_n - 1))
    done
    cd "$_j/stage"
    _header
    printf 'stream=download\n'
    # GNU tar says 1 when a file changed as it was read (a running job's
    # _stdout): what was read is sent
    _rc=0
    tar -cf - "$@" || _rc=$?
    [ "$_rc" -le 1 ] || _die 1 "tar failed ($_rc)"
}

_send() {  # _send NAME FILE OFFSET: a frame "NAME LENGTH" + the bytes past
    # OFFSET; _to is the new offset
    _to=$3
    [ -f "$2" ] || return 0
    _size=$(wc -c < "$2" | tr -d ' ')
    [ "$_size" -gt "$3" ] || return 0
    printf '%s %s\n' "$1" "$((_size - $3))"
    tail -c "+$(($3 + 1))" "$2" | head -c "$((_size - $3))"
    _to=$_size
}

_logs() {  # _logs ID STREAMS MODE OFFSET_OUT OFFSET_ERR
    _check_id "$1"
    _j=$Q/jobs/$1
    [ -d "$_j" ] || _die 3 "no job $1"
    case $4$5 in
        ''|*[!0-9]*) _die 8 "invalid offsets: '$4' '$5'" ;;
    esac
    _out=$4 _err=$5 _idle=0
    _header
    printf 'stream=logs\n'
    while :; do
        # the state is read before the files: once the job has ended, one
        # more pass sends all it wrote
        if [ ! -d "$_j" ]; then
            printf 'end notfound \n'
            return 0
        fi
        _load "$_j"
        _rt_refresh "$_j"
        case $2 in
            *out*) _send out "$_j/stage/_stdout" "$_out"
                   _out=$_to ;;
        esac
        case $2 in
            *err*) _send err "$_j/stage/_stderr" "$_err"
                   _err=$_to ;;
        esac
        if [ "$3" != follow ] || ! _active; then
            break
        fi
        _idle=$((_idle + 1))
        if [ "$_idle" -ge 20 ]; then
            # a reader that went away ends this loop (SIGPIPE)
            printf 'tick\n'
            _idle=0
        fi
        sleep 0.25 2>/dev/null || sleep 1
    done
    printf 'end %s %s\n' "${st_state:-created}" "$st_exit"
}

_kill() {  # _kill ID: no-op unless the job is running
    _check_id "$1"
    _j=$Q/jobs/$1
    [ -d "$_j" ] || _die 3 "no job $1"
    _load "$_j"
    _rt_refresh "$_j"
    if _active; then
        _lock "$_j"
        _load "$_j"
        st_killreq=$(_now)
        _save "$_j"
        _unlock
        _rt_kill "$_j"
    else
        printf 'tej: job %s is not running\n' "$1" >&2
    fi
    _header
}

_stop() {  # _stop ID [kill]: before removing a job: 2 if it is still
    # running, unless "kill": then kill it
    _load "$Q/jobs/$1"
    _rt_refresh "$Q/jobs/$1"
    if _active; then
        [ "${2:-}" = kill ] || _die 2 "job $1 is still running"
        _kill "$1" > /dev/null
    fi
}

_delete() {  # _delete ID [kill]
    _check_id "$1"
    _j=$Q/jobs/$1
    [ -d "$_j" ] || _die 3 "no job $1"
    _stop "$@"
    rm -rf "$_j"
    _header
}

_cleanup_queue() {  # remove the queue, then the links the bootstrap followed
    for _j in "$Q"/jobs/*; do
        [ -d "$_j" ] || continue
        _stop "${_j##*/}" ${1+"$1"}
    done
    rm -rf "$Q"
    _n=1
    while [ "$_n" -le 10 ]; do
        eval "_link=\${TEJ_LINK_$_n:-}"
        [ -n "$_link" ] && rm -f "$_link"
        _n=$((_n + 1))
    done
    _header
}

_main() {
    [ "$#" -ge 2 ] || _die 8 "usage: tej.sh QUEUE VERB [ARG ...]"
    Q=$1
    _verb=$2
    shift 2
    TEJ_SELF=$Q/tej.sh
    case $_verb in
        _install) _install "$@" ;;
        submit) [ "$#" -ge 3 ] || _die 8 "usage: submit ID MODE SCRIPT [KEY=VALUE ...]"
                _submit "$@" ;;
        status) [ "$#" -ge 1 ] || _die 8 "usage: status ID ..."
                _status "$@" ;;
        list) _list ;;
        wait) [ "$#" -ge 2 ] || _die 8 "usage: wait SECONDS ID ..."
              _wait "$@" ;;
        download) [ "$#" -ge 1 ] || _die 8 "usage: download ID PATH ..."
                  _download "$@" ;;
        logs) [ "$#" -eq 5 ] || _die 8 "usage: logs ID out|err|outerr follow|once OFFSET OFFSET"
              _logs "$@" ;;
        kill) [ "$#" -eq 1 ] || _die 8 "usage: kill ID"
              _kill "$1" ;;
        delete) [ "$#" -ge 1 ] || _die 8 "usage: delete ID [kill]"
                _delete "$@" ;;
        cleanup) _cleanup_queue ${1+"$@"} ;;  # posh: "$@" is unset if empty
        _wrap) _check_id "$1"
               _rt_wrap "$Q/jobs/$1" ;;
        _batch) _check_id "$1"
                _run_job "$Q/jobs/$1" ;;
        *) _die 8 "unknown verb: '$_verb'" ;;
    esac
}

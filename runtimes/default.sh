# tej runtime "default": starts each job at once, detached from the session.
#
# Appended to common.sh to make QUEUE/tej.sh. Provides the runtime hooks
# common.sh calls, with the job's record loaded in st_* variables:
#   _rt_start JOBDIR ID   start the job (lock held); sets st_state, st_pid
#   _rt_refresh JOBDIR    for a job recorded as running: "lost" when its
#                         wrapper is gone without writing an exit code
#   _rt_kill JOBDIR       TERM to the job's process group, KILL after
#                         TEJ_GRACE seconds; returns when no process is left
#   _rt_wrap JOBDIR       the detached wrapper: records pid, process group,
#                         boot id and start time, runs the job with stdin
#                         from /dev/null and output to _stdout and _stderr,
#                         then records the exit code
# The job's script runs in JOBDIR/stage: a file of the job is made
# executable and run (a "#!" line is honoured, else sh runs it); a command
# runs with sh -c.

# The st_* variables are common.sh's.
# shellcheck disable=SC2034,SC2154

TEJ_RUNTIME=default

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

_alive() {  # _alive PID: is PID a live process of this queue's wrapper?
    if [ -r "/proc/$1/cmdline" ]; then
        # not just any process that reused the pid
        case $(tr '\000' ' ' < "/proc/$1/cmdline" 2>/dev/null) in
            *" _wrap "*) return 0 ;;
        esac
        return 1
    fi
    kill -s 0 "$1" 2>/dev/null
}

_rt_refresh() {
    [ "$st_state" = running ] || return 0
    if [ -n "$st_boot" ] && [ "$st_boot" != "$(_bootid)" ]; then
        st_state=lost  # the machine rebooted since
        return 0
    fi
    [ -n "$st_pid" ] && _alive "$st_pid" && return 0
    _load "$1"  # the wrapper may have written its record just now
    if [ "$st_state" = running ]; then
        st_state=lost
    fi
}

_group_alive() {  # _group_alive PGID: has the group a process, not a zombie?
    _g=$1
    if [ -r /proc/self/stat ]; then
        # zombies answer kill -0 until their parent (init) reaps them
        for _p in /proc/[0-9]*/stat; do
            { read -r _stat < "$_p"; } 2>/dev/null || continue
            # shellcheck disable=SC2086 # the fields after "(comm) "
            set -- ${_stat##*) }
            [ "$3" = "$_g" ] && [ "$1" != Z ] && return 0
        done
        return 1
    fi
    { kill -s 0 -- "-$_g" || kill -s 0 "-$_g"; } 2>/dev/null
}

_signal_group() {  # _signal_group SIGNAL PGID
    # dash wants "--" before a negative pid, busybox refuses "--"
    { kill -s "$1" -- "-$2" || kill -s "$1" "-$2"; } 2>/dev/null || :
}

_rt_kill() {
    _pgid=$st_pgid
    if [ -z "$_pgid" ]; then
        # started without setsid: the wrapper leads no group of its own
        _pgid=$st_pid
    fi
    _signal_group TERM "$_pgid"
    [ "$_pgid" = "$st_pid" ] || kill -s TERM "$st_pid" 2>/dev/null || :
    _n=0
    while _group_alive "$_pgid" && [ "$_n" -lt $((TEJ_GRACE * 10)) ]; do
        _nap
        _n=$((_n + 1))
    done
    if _group_alive "$_pgid"; then
        _signal_group KILL "$_pgid"
        while _group_alive "$_pgid"; do
            _nap
        done
    fi
    # the wrapper records the exit code when it survives; if it was killed
    # too, the record is written here
    _lock "$1"
    _load "$1"
    if [ "$st_state" = running ]; then
        st_state=killed st_exit=137 st_finished=$(_now)
        _save "$1"
    fi
    _unlock
}

_rt_wrap() {
    # a TERM sent to the group ends the job; the wrapper lives on to record
    # the exit code (a trapped signal is reset to default in the job)
    trap : TERM INT
    _lock "$1"
    _load "$1"
    st_pid=$$ st_started=$(_now)
    if [ -r "/proc/$$/stat" ]; then
        read -r _stat < "/proc/$$/stat"
        # shellcheck disable=SC2086 # split the fields after "(comm) "
        set -- "$1" ${_stat##*) }
        st_pgid=$4
    else
        st_pgid=$(ps -o pgid= -p "$$" 2>/dev/null | tr -d ' ') || st_pgid=
    fi
    _save "$1"
    _unlock
    _script=$(cat "$1/script")
    _code=0
    cd "$1/stage" || exit 1
    if [ "$st_mode" = command ]; then
        sh -c "$_script" < /dev/null > _stdout 2> _stderr || _code=$?
    else
        chmod u+x "./$_script" 2>/dev/null || :
        "./$_script" < /dev/null > _stdout 2> _stderr || _code=$?
    fi
    if [ "$_code" -gt 255 ]; then
        # killed by a signal: ksh says 256+N, yash 384+N; report 128+N
        _code=$((128 + _code % 128))
    fi
    _lock "$1"
    _load "$1"
    st_exit=$_code st_finished=$(_now) st_state=finished
    if [ -n "$st_killreq" ]; then
        st_state=killed
    fi
    _save "$1"
    _unlock
}

_main "$@"

# tej runtime "default": starts each job at once, detached from the session.
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

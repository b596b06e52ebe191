# tej runtime "pbs": hands jobs to PBS or Torque (qsub, qstat, qdel).
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
# started is among them).

# The st_* variables are common.sh's.
# shellcheck disable=SC2034,SC2154

TEJ_RUNTIME=pbs

_rt_usable() {
    command -v qsub > /dev/null 2>&1 || \
        _die 9 "the pbs runtime needs qsub, which is not on the PATH"
    qstat -Q > /dev/null 2>&1 || \
        _die 9 "the PBS server does not answer (qstat fails)"
}

_rt_option() {
    :
}

_rt_start() {
    _write_batch "$1" "$2" '#PBS'
    _jd=$1 _nodes='' _res=''
    set -- -o "$_jd/scheduler.out" -e "$_jd/scheduler.err"
    while IFS= read -r _o; do
        _v=${_o#*=}
        case $_o in
            walltime=*) _res=$_res,walltime=$(_hms "$_v") ;;
            cpus=*) _nodes=$_nodes:ppn=$_v ;;
            gpus=*) _nodes=$_nodes:gpus=$_v ;;
            # PBS sizes: 4gb, 500mb
            mem=*) _res=$_res,mem=$(printf '%s' "${_v%[Bb]}" |
                                    tr 'KMGT' 'kmgt')b ;;
            partition=*) set -- "$@" -q "$_v" ;;
            account=*) set -- "$@" -A "$_v" ;;
            arg=*) set -- "$@" "$_v" ;;
        esac
    done < "$_jd/options"
    if [ -n "$_nodes" ]; then
        _res=$_res,nodes=1$_nodes
    fi
    if [ -n "$_res" ]; then
        # one -l: some qsub keep only the last
        set -- "$@" -l "${_res#,}"
    fi
    if ! _out=$(cd "$_jd/stage" && qsub "$@" "$_jd/batch.sh" \
            2> "$_jd/qsub.err"); then
        _die 1 "qsub failed: $(cat "$_jd/qsub.err")"
    fi
    st_state=queued st_runtime_id=$_out
}

_rt_started() {
    st_pid=$$
}

_qstat_state() {  # the job's S column in qstat, empty when it is unknown
    qstat "$st_runtime_id" 2>/dev/null | awk -v id="$st_runtime_id" '
        NR > 2 && (id == $1 || index(id, $1) == 1 ||
                   index($1, id ".") == 1) { s = $5 }
        END { print s }' || :
}

_rt_refresh() {
    _active || return 0
    [ -n "$st_runtime_id" ] || return 0
    case $(_qstat_state) in
        Q|H|W|T|S)
            [ "$st_state" = running ] || st_state=queued
            return 0 ;;
        R|E)
            st_state=running
            return 0 ;;
    esac
    _load "$1"  # the wrapper may have written its record just now
    _active || return 0
    if [ -n "$st_killreq" ]; then
        _finish "$1" killed ""
    else
        _lost_after_grace "$1"
    fi
}

_rt_listed() {  # does PBS still list the job, not ended?
    case $(_qstat_state) in
        ''|C|F) return 1 ;;
    esac
}

_rt_kill() {
    qdel "$st_runtime_id" 2>/dev/null || :
    _scheduler_end "$1"
}

_main "$@"

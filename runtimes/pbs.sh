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

_qstat_state() {  # the job's S column in qstat, empty when it is unknown
    qstat "$st_runtime_id" 2>/dev/null | awk -v id="$st_runtime_id" '
        NR > 2 && (id == $1 || index(id, $1) == 1 ||
                   index($1, id ".") == 1) { s = $5 }
        END { print s }' || :
}

_rt_refresh() {
    _ongoing || return 0
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
    _ongoing || return 0
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

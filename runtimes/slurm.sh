# tej runtime "slurm": hands jobs to Slurm (sbatch, squeue, scancel).
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

_squeue_state() {  # the job's state in squeue, empty when it is not listed
    squeue -h -j "$st_runtime_id" -o %T 2>/dev/null || :
}

_rt_refresh() {
    _ongoing || return 0
    [ -n "$st_runtime_id" ] || return 0
    case $(_squeue_state) in
        PENDING|CONFIGURING|REQUEUE*|RESV_DEL_HOLD|SUSPENDED)
            [ "$st_state" = running ] || st_state=queued
            return 0 ;;
        RUNNING|COMPLETING|SIGNALING|STAGE_OUT|RESIZING)
            st_state=running
            return 0 ;;
    esac
    _load "$1"  # the wrapper may have written its record just now
    _ongoing || return 0
    case $(scontrol show job -o "$st_runtime_id" 2>/dev/null) in
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

_rt_listed() {  # does Slurm still list the job?
    [ -n "$(_squeue_state)" ]
}

_rt_kill() {
    scancel "$st_runtime_id" 2>/dev/null || :
    _scheduler_end "$1"
}

_main "$@"

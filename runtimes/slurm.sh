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

_rt_usable() {
    command -v sbatch > /dev/null 2>&1 || \
        _die 9 "the slurm runtime needs sbatch, which is not on the PATH"
    sinfo -h -o %P > /dev/null 2>&1 || \
        _die 9 "Slurm's controller does not answer (sinfo fails)"
}

_rt_option() {
    :
}

_rt_start() {
    _write_batch "$1" "$2" '#SBATCH' "--job-name=$2"
    _jd=$1
    set -- --parsable --chdir="$_jd/stage" --output="$_jd/scheduler.out" \
        --error="$_jd/scheduler.out"
    while IFS= read -r _o; do
        _v=${_o#*=}
        case $_o in
            walltime=*) set -- "$@" --time="$(_hms "$_v")" ;;
            cpus=*) set -- "$@" --cpus-per-task="$_v" ;;
            mem=*) set -- "$@" --mem="$_v" ;;
            partition=*) set -- "$@" --partition="$_v" ;;
            account=*) set -- "$@" --account="$_v" ;;
            gpus=*) set -- "$@" --gpus="$_v" ;;
            arg=*) set -- "$@" "$_v" ;;
        esac
    done < "$_jd/options"
    if ! _out=$(sbatch "$@" "$_jd/batch.sh" 2> "$_jd/sbatch.err"); then
        _die 1 "sbatch failed: $(cat "$_jd/sbatch.err")"
    fi
    st_state=queued st_runtime_id=${_out%%;*}
}

_rt_started() {
    st_pid=$$
}

_squeue_state() {  # the job's state in squeue, empty when it is not listed
    squeue -h -j "$st_runtime_id" -o %T 2>/dev/null || :
}

_rt_refresh() {
    _active || return 0
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
    _active || return 0
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

# tej probes: does the server have a scheduler that answers?
#
# tej.py puts this file ahead of bootstrap.sh (which detects the runtime of
# a new queue) and in every QUEUE/tej.sh (slurm.sh and pbs.sh check that
# their scheduler is usable), so that both ask the same questions.
#
#   _probe_slurm          sbatch is on the PATH and sinfo answers
#   _probe_pbs            qsub is on the PATH and qstat -Q answers
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

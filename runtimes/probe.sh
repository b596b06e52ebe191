# tej probes: does the server have a scheduler that answers? Whose home
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

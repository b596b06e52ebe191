# tej bootstrap: what every call runs first on the server.
#
# tej.py folds this file into one line (_fold: whole-line comments and
# indentation dropped, lines joined with ";" or a space) behind the protocol
# prelude (TEJ_PROTOCOL and the RC_* exit codes, from tej.py's Protocol
# section), probe.sh and queue.sh, and runs it as
#
#     sh -c BOOTSTRAP tej QUEUE VERSIONS VERB [ARG ...]
#
# It resolves QUEUE ("~", "~NAME", a path relative to the home directory
# (queue.sh's _expand_path), "tejdir: PATH" link files, each remembered as
# TEJ_LINK_n for cleanup), then execs the installed runtime, QUEUE/tej.sh,
# if its version (the first line of QUEUE/version) is one of the
# space-separated VERSIONS (queue.sh's _version_ok).
#
# Otherwise it answers, after the sentinel line, "queue=missing" when there
# is no queue, "installed=VERSION" (empty for none), and for submit (which
# sets a queue up) "detected=NAME", and exits RC_NEED_RUNTIME: the client
# pushes a runtime and calls again.
#
# Verbs of its own:
#   _detect               answers "installed=VERSION" and "detected=NAME"
#   _install SIZE ARG ... takes a new runtime from the first SIZE bytes of
#                         stdin (dd bs=1 reads no further: the rest is for
#                         the verb run after the install) into a private
#                         new directory (mktemp -d, else beside the queue),
#                         and runs it as
#                         "tej.sh QUEUE _install ARG ..."
#
# "detected" is slurm when Slurm answers, pbs when PBS does, else default.
# The caller's umask is kept for the jobs (TEJ_UMASK).
#
# For the folding: comments on lines of their own only, each case item on
# one line, no "!" (a csh login shell reads the folded line too).

TEJ_UMASK=$(umask)
export TEJ_UMASK
umask 077
queue=$1
versions=$2
shift 2

_detected() {
    if _probe_slurm; then
        echo "detected=slurm"
    elif _probe_pbs; then
        echo "detected=pbs"
    else
        echo "detected=default"
    fi
}

_expand_path "$queue"
# shellcheck disable=SC2154 # set by queue.sh's _expand_path
queue=$_ep_path

# _strict PATH ...: true when each PATH (a directory named "DIR/") that is
# there is the user's, and its group and the others cannot write it; else
# false, with those that are not one a line in _st_bad. What others can
# write, they can make run as the user (a link file, the queue it leads to,
# the queue's tej.sh): tej uses none of it, as sshd's StrictModes uses no
# such home. (fast.sh checks the queue and its tej.sh itself.)
_strict() {
    _st_bad=$(find "$@" -prune \( -perm -020 -o -perm -002 \) -print -o -user "$(id -u)" -o -print 2>/dev/null)
    [ -z "$_st_bad" ]
}

_refuse() {
    echo "tej: refusing $_st_bad: it is not yours, or others can write it (its group, anyone), and could make their code run as you (sshd's StrictModes refuses such a home): make it yours, and chmod go-w it" >&2
    exit "$RC_FAILURE"
}

links=0
while [ -f "$queue" ]; do
    _strict "$queue" || _refuse
    line=
    IFS= read -r line < "$queue"
    case $line in
        "tejdir: "*) ;;
        *) echo "tej: $queue is neither a queue nor a link to one" >&2; exit "$RC_LINK_BROKEN" ;;
    esac
    links=$((links + 1))
    if [ "$links" -gt 10 ]; then
        echo "tej: too many links to follow" >&2
        exit "$RC_LINK_BROKEN"
    fi
    eval "TEJ_LINK_$links=\$queue"
    export "TEJ_LINK_$links"
    line=${line#"tejdir: "}
    case $line in
        /*) queue=$line ;;
        *) queue=${queue%/*}/$line ;;
    esac
done

_strict "$queue/" "$queue/tej.sh" || _refuse

# The pushed runtime's directory must be a new one of its own: another user
# could make a predictable name in /tmp first. mktemp -d's name cannot be
# guessed; without mktemp, a name beside the queue (in the user's own
# directory), which mkdir refuses if it is there already.
if [ "$1" = _install ]; then
    pushed=$(mktemp -d "${TMPDIR:-/tmp}/tej-install.XXXXXXXX" 2>/dev/null) || pushed=
    if [ -z "$pushed" ]; then
        pushed=${queue%/*}/.tej-install.$$
        mkdir -p "${queue%/*}/" 2>/dev/null
        mkdir -m 700 "$pushed" || { echo "tej: cannot make a private directory for the runtime: $pushed" >&2; exit "$RC_FAILURE"; }
    fi
    dd bs=1 count="$2" 2>/dev/null > "$pushed/tej.sh" || exit "$RC_FAILURE"
    shift 2
    exec "${TEJ_SH:-sh}" "$pushed/tej.sh" "$queue" _install "$@"
fi

installed=
if [ -f "$queue/version" ]; then
    IFS= read -r installed < "$queue/version"
fi
if [ "$1" = _detect ]; then
    echo "TEJ $TEJ_PROTOCOL"
    echo "installed=$installed"
    _detected
    exit "$RC_OK"
fi
if [ "$links" -gt 0 ]; then
    [ -d "$queue" ] || { echo "tej: broken queue link: $queue does not exist" >&2; exit "$RC_LINK_BROKEN"; }
fi
if _version_ok "$versions" "$installed"; then
    exec "${TEJ_SH:-sh}" "$queue/tej.sh" "$queue" "$@"
fi
echo "TEJ $TEJ_PROTOCOL"
[ -d "$queue" ] || echo "queue=missing"
echo "installed=$installed"
if [ "$1" = submit ]; then
    _detected
fi
exit "$RC_NEED_RUNTIME"

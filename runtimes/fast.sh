# tej fast start: the first line of a call that has no input of its own.
#
# tej.py folds this file behind queue.sh into one line (_FAST_START), and
# sends it as the first line of the call's stdin, after "set -- QUEUE
# VERSIONS VERB [ARG ...]"; the second line is the whole bootstrap's. sh
# reads a line byte by byte (read may not take more than the line), and the
# whole bootstrap costs more than a warm status's own work: this is the
# common case in a few words.
#
# A queue path "~", "~/...", "/..." or relative to the home directory that
# is not a link file, with a runtime of VERSIONS installed, the queue and
# its tej.sh the user's and no one else's to write: tej.sh runs at
# once (it saves the caller's umask itself, when it needs it), read by this
# very sh with "." when it is TEJ_SH (sh's "$0" is the shell the transport
# ran: "sh" through ssh), else in TEJ_SH: an exec of another sh costs more
# than a warm status's own work. Anything else ("~NAME", a link, no queue,
# another version, a queue that others can write): sh reads the next line,
# the whole bootstrap, as every other call does.
#
# Comments stand on lines of their own, and there is no "!" (as in
# bootstrap.sh): tej.py folds this file into one line.

# "~NAME" is the bootstrap's to resolve (probe.sh's _expand_user, which
# replaces this one there and in tej.sh)
_expand_user() {
    _ep_path=
}

_expand_path "$1"
fast_version=
if [ -n "$_ep_path" ] && [ -d "$_ep_path" ]; then
    { IFS= read -r fast_version < "$_ep_path/version"; } 2>/dev/null
fi
# the queue and its tej.sh: the user's (-O; posh has none, and its calls
# take the bootstrap), and no one else's to write (a find: the one exec)
if _version_ok "$2" "$fast_version" && [ -O "$_ep_path" ] 2>/dev/null && [ -O "$_ep_path/tej.sh" ] && [ -z "$(find "$_ep_path/" "$_ep_path/tej.sh" -prune \( -perm -020 -o -perm -002 \) -print 2>/dev/null)" ]; then
    shift 2
    set -- "$_ep_path" "$@"
    unset _ep_path fast_version
    # shellcheck source=/dev/null # the queue's, installed by _install
    case ${TEJ_SH:-sh} in
        "$0") . "$1/tej.sh"; exit ;;
    esac
    exec "$TEJ_SH" "$1/tej.sh" "$@"
fi
IFS= read -r tej_call && eval "$tej_call"

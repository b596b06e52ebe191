# tej queue: where a queue path from the client leads, and whether the
# runtime installed there is one the client knows.
#
# tej.py puts this file in three places, so that each reads a queue the
# same way: the bootstrap (behind probe.sh and ahead of bootstrap.sh), the
# fast start (ahead of fast.sh) and every QUEUE/tej.sh (_install resolves
# the paths of links with it).
#
#   _expand_path PATH             the directory PATH names, in _ep_path
#   _version_ok VERSIONS VERSION  VERSION is not empty and is one of the
#                                 space-separated VERSIONS
#
# Comments stand on lines of their own, and there is no "!": tej.py folds
# this file into one line.

# _expand_path PATH: PATH as sh would expand it, in _ep_path: "~" and
# "~/..." in $HOME, "~NAME" and "~NAME/..." in user NAME's home (probe.sh's
# _expand_user; fast.sh's leaves _ep_path empty), a relative path in $HOME.
# The client never expands "~": this is where it is done.
# shellcheck disable=SC2088 # a literal "~" from the client
_expand_path() {
    case $1 in
        "~") _ep_path=$HOME ;;
        "~/"*) _ep_path=$HOME/${1#"~/"} ;;
        "~"*) _expand_user "$1" ;;
        /*) _ep_path=$1 ;;
        *) _ep_path=$HOME/$1 ;;
    esac
}

_version_ok() {
    case " $1 " in
        *" $2 "*) [ -n "$2" ] ;;
        *) return 1 ;;
    esac
}

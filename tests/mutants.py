"""The curated mutants that tests/mutate.py applies, one at a time.

Each is a small, realistic bug: ``file`` (relative to the top of the
repository), ``original`` (text that must occur exactly once in it),
``replacement``, a short ``description`` of the bug, and ``tests``, the
names (as ``python3 -m tests`` takes them) that must fail with it.
Runtime mutants are made in runtimes/*.sh; the runner re-embeds them.

Keep ``tests`` narrow: the names that are meant to catch the bug, not the
whole suite (Slurm tests share /etc/slurm and cannot run two at a time).
"""

MUTANTS = [
    # ---- the six that once survived the whole suite -------------------------
    dict(
        name='alive-any-pid',
        file='runtimes/default.sh',
        original=r'''        _cmdline "$1"
        case $_cml_line in
            *" _wrap "*) return 0 ;;
            *"/tej.sh "*) [ -z "$2" ]; return ;;
        esac
        return 1''',
        replacement='''        kill -s 0 "$1" 2>/dev/null
        return''',
        description="a live pid counts as the job's wrapper, whatever "
                    "process reused it",
        tests=['test_runtime.TestReusedPid'],
    ),
    dict(
        name='stream-sentinel-prefix',
        file='tej.py',
        original="        if line.endswith(b'\\n') and "
                 "_ends_in_sentinel(carried + line):",
        replacement="        if line.startswith(_SENTINEL):",
        description="a streaming answer's sentinel is any line starting "
                    "with 'TEJ 1' ('TEJ 12' too)",
        tests=['test_pure.TestParsers'],
    ),
    dict(
        name='extract-link-prefix',
        file='tej.py',
        original="    return path == top or "
                 "path.startswith(top.rstrip('/') + '/')",
        replacement="    return path.startswith(top)",
        description="a downloaded link is 'within' its target by a plain "
                    "string prefix: out/esc -> ../out2 is made",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='logs-tick-not-skipped',
        file='tej.py',
        original='''    if name == 'tick' and not rest:
        return name, None
''',
        replacement='',
        description="logs reads the server's keep-alive line 'tick' as a "
                    "frame: a job quiet for 5 s crashes logs -f and run",
        tests=['test_ci.TestQuietJob'],
    ),
    dict(
        name='retry-after-master-failed',
        file='tej.py',
        original="    if re.search(r'kex_exchange_identification|"
                 "ssh_exchange_identification',",
        replacement="    if re.search(r'kex_exchange_identification|"
                     "ssh_exchange_identification|read from master failed',",
        description="a session that broke (read from master failed) is "
                    "tried again: a submit or delete may be sent twice",
        tests=['test_transport.TestNoSecondSend'],
    ),
    dict(
        name='content-id-without-options',
        file='tej.py',
        original="    add('tej-content-1', mode, script, *options)",
        replacement="    add('tej-content-1', mode, script)",
        description="the content id leaves the submit options out: run "
                    "--walltime 100 reuses the job of --walltime 10",
        tests=['test_ci.TestContentIdOptions'],
    ),
    # ---- caught by the suite before -----------------------------------------
    dict(
        name='job-id-server',
        file='runtimes/common.sh',
        original='''        *[!A-Za-z0-9_.,+=@%:-]*) _die "$RC_INVALID" "invalid job id: '$1'" ;;
''',
        replacement='',
        description="the server takes any job id not starting with '-' "
                    "or '.' (a/b, $(id))",
        tests=['test_runtime.TestRuntimeDirectly.'
               'test_ids_checked_on_the_server'],
    ),
    dict(
        name='job-id-client',
        file='tej.py',
        original="_JOB_ID = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.,+=@%:-]"
                 "{0,127}\\Z')",
        replacement="_JOB_ID = re.compile(r'[A-Za-z0-9_.,+=@%:-]{1,128}\\Z')",
        description="the client takes job ids starting with '-' or '.' "
                    "('..', '-rf')",
        tests=['test_pure.TestIds'],
    ),
    dict(
        name='kill-leader-only',
        file='runtimes/default.sh',
        original='''    { kill -s "$1" -- "-$2" || kill -s "$1" "-$2"; } 2>/dev/null || :''',
        replacement='''    kill -s "$1" "$2" 2>/dev/null || :''',
        description="kill signals the group's leader, not the process "
                    "group: the job's children live on",
        tests=['test_runtime.Test_dash.test_kill_leaves_no_process'],
    ),
    dict(
        name='save-in-place',
        file='runtimes/common.sh',
        original='''    _tmp=$1/state.tmp.$$
    : > "$_tmp"
    for _sv_key in $_KEYS; do
        eval "printf '%s=%s\\n' \\"\\$_sv_key\\" \\"\\$st_$_sv_key\\"" >> "$_tmp"
    done
    mv -f "$_tmp" "$1/state"
    _tmp=
''',
        replacement='''    : > "$1/state"
    for _sv_key in $_KEYS; do
        eval "printf '%s=%s\\n' \\"\\$_sv_key\\" \\"\\$st_$_sv_key\\"" >> "$1/state"
    done
''',
        description="a job record is written in place, line by line: "
                    "readers see half records",
        tests=['test_runtime.TestAtomicRecords'],
    ),
    dict(
        name='unlock-forgotten',
        file='runtimes/common.sh',
        original='''        rm -f "$_oc_claim"
        if ! rmdir "$_locked" 2>/dev/null; then
''',
        replacement='''        if false; then
''',
        description="_unlock leaves the lock directory: every later "
                    "locker waits for it to be broken",
        tests=['test_runtime.TestAtomicRecords',
               'test_runtime.TestLocks.test_unlock_removes_its_own_lock_only'],
    ),
    dict(
        name='logs-offset-kept',
        file='runtimes/common.sh',
        original='''    _send_to=$_sd_size
''',
        replacement='''    _send_to=$3
''',
        description="logs -f does not move past what it sent: output "
                    "repeats",
        tests=['test_ci.TestLogs'],
    ),
    dict(
        name='download-without-dot-slash',
        file='tej.py',
        original="        args += ['./' + (name or '.') for name in plan.paths]",
        replacement="        args += [name or '.' for name in plan.paths]",
        description="download names the paths as they are, which the "
                    "server refuses: to tar, '-n' would be an option",
        tests=['test_transfer.TestWhereDownloadsGo.test_dot_is_the_whole_job'],
    ),
    dict(
        name='answer-sentinel-prefix',
        file='tej.py',
        original="        if _ends_in_sentinel(line):",
        replacement="        if line.startswith(_SENTINEL):",
        description="an answer's sentinel is any line starting with "
                    "'TEJ 1'",
        tests=['test_pure.TestParsers'],
    ),
    dict(
        name='auth-failure-retried',
        file='tej.py',
        original="    if 'Permission denied' in log or "
                 "'Too many authentication' in log:",
        replacement="    if 'Too many authentication' in log:",
        description="'Permission denied' is not taken for an "
                    "authentication failure",
        tests=['test_transport.TestSSHFailures.test_authentication_failure'],
    ),
    dict(
        name='json-exit-code-null',
        file='tej.py',
        original="              'exit_code': record.get('exit')}",
        replacement="              'exit_code': record.get('exit_code')}",
        description="JSON's exit_code is always null",
        tests=['test_ci.TestJSON', 'test_ci.TestExitCodes'],
    ),
    dict(
        name='json-no-exit-is-zero',
        file='tej.py',
        original="              'exit_code': record.get('exit')}",
        replacement="              'exit_code': record.get('exit') or 0}",
        description="JSON says exit_code 0 for a job without one (lost, "
                    "running)",
        tests=['test_pure.TestHelpers'],
    ),
    dict(
        name='download-directory-ignored',
        file='tej.py',
        original="        queue.download(args.job_id, args.files,\n"
                 "                       directory=args.directory or '.',\n",
        replacement="        queue.download(args.job_id, args.files,\n",
        description="download --directory DIR saves in the current "
                    "directory",
        tests=['test_runtime.TestCommandLineLocal.test_scenario'],
    ),
    dict(
        name='lost-is-success',
        file='tej.py',
        original="    return {_NOTFOUND: _EXIT_NOT_FOUND, _LOST: _EXIT_LOST,",
        replacement="    return {_NOTFOUND: _EXIT_NOT_FOUND, _LOST: 0,",
        description="wait and run exit 0 for a lost job",
        tests=['test_ci.TestExitCodes'],
    ),
    dict(
        name='bootstrap-link-unquoted',
        file='runtimes/bootstrap.sh',
        original='''    eval "TEJ_LINK_$links=\\$queue"''',
        replacement='''    eval "TEJ_LINK_$links=$queue"''',
        description="the bootstrap evals a link's path unquoted: a space "
                    "or a '$' in it breaks cleanup",
        tests=['test_runtime.Test_dash.test_links_and_cleanup'],
    ),
    # ---- the ssh transport ---------------------------------------------------
    dict(
        name='login-own-command-line',
        file='tej.py',
        original="        code = self._popen(self._argv(log, _MASTER, ['-N', '-f'],\n"
                 "                                      prompt=True)).wait()",
        replacement="        code = self._popen([self.ssh] + self.options + [\n"
                    "            '-o', 'ControlMaster=yes', '-o', "
                    "'ControlPath=%s' % self.master.path,\n"
                    "            '-N', '-f', '--', self.hostname]).wait()",
        description="tej login builds its own ssh command line: no log, "
                    "no time-out, no keep-alives on the shared connection",
        tests=['test_transport.TestRetryLoop'],
    ),
    dict(
        name='refused-never-own-connection',
        file='tej.py',
        original="        if outcome == _SSH_REFUSED and "
                 "count >= _SHARED_REFUSALS:",
        replacement="        if False:",
        description="a call refused by a full shared connection never "
                    "takes one of its own",
        tests=['test_transport.TestRetryLoop'],
    ),
    dict(
        name='mux-failure-retried-on-master',
        file='tej.py',
        original="            return _OWN\n"
                 "        time.sleep(random.uniform(",
        replacement="            return connection\n"
                    "        time.sleep(random.uniform(",
        description="a shared connection that keeps failing is used "
                    "again and again",
        tests=['test_transport.TestRetryLoop'],
    ),
    # ---- security: where downloads and paths may go -------------------------
    dict(
        name='member-dotdot',
        file='tej.py',
        original="    if name.startswith('/') or '..' in parts or "
                 "not parts:",
        replacement="    if name.startswith('/') or not parts:",
        description="a member or download path may go up with '..'",
        tests=['test_transfer.TestExtract', 'test_transfer.TestMembers'],
    ),
    dict(
        name='member-absolute',
        file='tej.py',
        original="    if name.startswith('/') or '..' in parts or "
                 "not parts:",
        replacement="    if '..' in parts or not parts:",
        description="an absolute member or download path is taken as "
                    "relative",
        tests=['test_transfer.TestMembers'],
    ),
    dict(
        name='member-prefix',
        file='tej.py',
        original='''            if name == top or name.startswith(top + '/'):
                return top, top_local + name[len(top):]''',
        replacement='''            if name.startswith(top):
                return top, top_local + name[len(top):]''',
        description="a member belongs to a target by a plain string "
                    "prefix: outside/evil is written next to out",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='extract-special-bits',
        file='tej.py',
        original="                          (member.mode & 0o777 & ~mask) "
                 "| 0o600, meter)",
        replacement="                          (member.mode & ~mask) | 0o600, "
                    "meter)",
        description="a downloaded file keeps its setuid and setgid bits",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='extract-through-local-link',
        file='tej.py',
        original='''            if path != top_local and os.path.islink(path):
                raise Error("Not writing %s: %s is a link" % (local, path))
''',
        replacement='',
        description="a member is written through a link that is on the "
                    "local disk",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='check-path-dotdot',
        file='runtimes/common.sh',
        original='''        */../*) _die "$RC_INVALID" "path goes up with '..': '$1'" ;;
''',
        replacement='',
        description="the server sends files above the job's directory",
        tests=['test_runtime.TestRuntimeDirectly.'
               'test_paths_checked_on_the_server'],
    ),
    dict(
        name='check-path-leading-dotdot',
        file='runtimes/common.sh',
        original='''        */../*) _die "$RC_INVALID" "path goes up with '..': '$1'" ;;''',
        replacement='''        /../*) _die "$RC_INVALID" "path goes up with '..': '$1'" ;;''',
        description="the server refuses a leading '..' only (a/../../x "
                    "goes up)",
        tests=['test_runtime.TestRuntimeDirectly.'
               'test_paths_checked_on_the_server'],
    ),
    dict(
        name='queue-umask',
        file='runtimes/common.sh',
        original='''export TEJ_UMASK
umask 077
''',
        replacement='''export TEJ_UMASK
umask 022
''',
        description="the queue's files are readable by other users",
        tests=['test_runtime.TestRuntimeDirectly.'
               'test_files_are_private'],
    ),
    dict(
        name='link-checked-as-text',
        file='tej.py',
        original="        return not _within(os.path.realpath(path),\n"
                 "                           os.path.realpath(top_local))",
        replacement="        return not _within(os.path.normpath(path),\n"
                    "                           os.path.normpath(top_local))",
        description="a downloaded link is checked as text, not on disk: "
                    "x -> ., y -> x/.. leads out",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='download-umask-ignored',
        file='tej.py',
        original="                          (member.mode & 0o777 & ~mask) "
                 "| 0o600, meter)",
        replacement="                          (member.mode & 0o777) | 0o600, "
                    "meter)",
        description="a downloaded file keeps the server's mode: 0777 is "
                    "world-writable here",
        tests=['test_transfer.TestExtract'],
    ),
    dict(
        name='askpass-answers-any-prompt',
        file='tej.py',
        original="    *) exit 1 ;;\nesac\n\"\"\"",
        replacement="    *) printf '%s\\n' \"$TEJ_PASSWORD\" ;;\nesac\n\"\"\"",
        description="the password goes to any prompt: a ProxyJump host's "
                    "gets it",
        tests=['test_pure.TestPasswords', 'test_transport.TestProxyJump'],
    ),
    dict(
        name='control-path-unquoted',
        file='tej.py',
        original="                '-o', 'ControlPath=%s' % "
                 "_ssh_config_word(self.master.path),",
        replacement="                '-o', 'ControlPath=%s' % "
                    "self.master.path,",
        description="the control path goes to ssh as it is: a space or a "
                    "% in HOME breaks every shared call",
        tests=['test_transport.TestControlPath'],
    ),
    dict(
        name='arguments-in-the-login-shell',
        file='tej.py',
        original="                    ' '.join(\"'%s'\" % word for word in "
                 "_shown(argv)))],",
        replacement="                    _shell_command(argv))],",
        description="the call's arguments, as sh quotes them, go on the "
                    "command line that the login shell reads, for ps: "
                    "tcsh and fish run them",
        tests=['test_shells.TestTcshLogin', 'test_shells.TestFishLogin'],
    ),
    dict(
        name='shown-words-unchecked',
        file='tej.py',
        original="    words = [word if _SHOWN_WORD.match(word) else '...'",
        replacement="    words = [word if True else '...'",
        description="every word of a call is shown in the server's process "
                    "list, in single quotes: a quote in a queue path ends "
                    "them, and the login shell runs the rest",
        tests=['test_shells.TestDashLogin', 'test_shells.TestBashLogin'],
    ),
    dict(
        name='pid-gone-read-call',
        file='runtimes/common.sh',
        original="            *tej.sh*|*tej_call*) return 1 ;;",
        replacement="            *tej.sh*) return 1 ;;",
        description="a call without input, read into the sh that read its "
                    "call, counts as gone: another breaks the lock it holds",
        tests=['test_runtime.TestLocks'],
    ),
    # ---- transfers ----------------------------------------------------------
    dict(
        name='download-same-name',
        file='tej.py',
        original="    if len(set(targets.values())) != len(targets):",
        replacement="    if False:",
        description="two downloads of one name (a/x, b/x) overwrite each "
                    "other",
        tests=['test_transfer.TestMembers'],
    ),
    dict(
        name='logs-resume-from-zero',
        file='tej.py',
        original="                    str(offsets['out']), "
                 "str(offsets['err'])],",
        replacement="                    '0', '0'],",
        description="logs starts over after a broken connection: output "
                    "repeats",
        tests=['test_ci.TestLogs.test_api_resumes_without_loss'],
    ),
    dict(
        name='logs-tail-off-by-one',
        file='runtimes/common.sh',
        original='''    tail -c "+$(($3 + 1))" "$2"''',
        replacement='''    tail -c "+$3" "$2"''',
        description="each logs frame after the first starts one byte "
                    "early",
        tests=['test_ci.TestLogs.test_follow_every_line_once_in_order',
               'test_ci.TestLogs.test_api_resumes_without_loss'],
    ),
    dict(
        name='prepend-without-rewind',
        file='tej.py',
        original='''            stdin.seek(0)
            shutil.copyfileobj(stdin, pipe)''',
        replacement='''            shutil.copyfileobj(stdin, pipe)''',
        description="the job's archive behind a pushed runtime is copied "
                    "from where the first try left it",
        tests=['test_pure.TestHelpers'],
    ),
    # ---- scale: big queues, many callers, a cheap status (issue 12) ----------
    dict(
        name='gc-removes-active',
        file='runtimes/common.sh',
        original='''    if [ "$_fl_mode" = gc ]; then
        ! _ongoing || return 1
    fi
''',
        replacement='',
        description="gc removes old jobs that have not ended (queued, "
                    "running), when sh answers for them",
        tests=['test_runtime.TestScan.test_every_shell',
               'test_scale.TestGC.test_removes_exactly_what_it_says'],
    ),
    dict(
        name='list-since-ignored',
        file='runtimes/common.sh',
        original='''        if (gc) { if (t + 0 > cut + 0) next }
        else if (t + 0 < cut + 0) next''',
        replacement='''        if (gc) { if (t + 0 > cut + 0) next }''',
        description="list --since lists the ended jobs of any age",
        tests=['test_runtime.TestScan.test_every_shell'],
    ),
    dict(
        name='scan-gc-keeps-the-removed',
        file='runtimes/common.sh',
        original='''        xargs rm -rf < "$_tmp_removed"''',
        replacement='''        :''',
        description="gc says it removed the ended jobs that awk found, "
                    "and leaves them there",
        tests=['test_scale.TestGC.test_removes_exactly_what_it_says'],
    ),
    dict(
        name='master-race',
        file='tej.py',
        original='''        path = self.path
        if os.path.exists(path):
            return
        try:
            import fcntl''',
        replacement='''        path = self.path
        if True:
            return
        try:
            import fcntl''',
        description="tej processes that find no shared connection each "
                    "start one, at the same moment",
        tests=['test_scale.TestColdCallers'],
    ),
    dict(
        name='refused-session-connects',
        file='tej.py',
        original='''            if mux_only:
                # the shared connection is there''',
        replacement='''            if False:
                # the shared connection is there''',
        description="a session the shared connection refuses makes a "
                    "whole connection of its own (ssh's silent fallback)",
        tests=['test_scale.TestColdCallers.test_fifty_at_once',
               'test_transport.TestRetryLoop'],
    ),
    dict(
        name='fast-status-any-state',
        file='runtimes/common.sh',
        original='''            case $st_state in
                finished|killed|lost) ;;''',
        replacement='''            case $st_state in
                finished|killed|lost|running) ;;''',
        description="status's fast path answers for a job recorded "
                    "running, whose process may be gone (lost)",
        tests=['test_runtime.TestStatusFastPath'],
    ),
    dict(
        name='status-many-in-many-calls',
        file='tej.py',
        original='''        records = queue.infos(job_ids)  # one call for all''',
        replacement='''        records = [queue.infos([i])[0] for i in job_ids]''',
        description="status ID ID... makes one ssh exec per job",
        tests=['test_scale.TestStatusOfMany'],
    ),
    # ---- the data path: streamed uploads, atomic and resumed downloads -----
    dict(
        name='extract-end-not-checked',
        file='tej.py',
        original="    if not info.ended[0]:",
        replacement="    if False:",
        description="a download cut between two files, or followed by "
                    "garbage, passes for a whole one",
        tests=['test_transfer.TestStreamEnd',
               'test_transfer.TestBrokenDownloads.test_cut_between_files'],
    ),
    dict(
        name='part-removed-on-error',
        file='tej.py',
        original="        if held.fd is not None and (member.sparse or",
        replacement="        if held.fd is not None and (True or",
        description="a file cut short by a broken download is removed: "
                    "the download cannot resume it",
        tests=['test_transfer.TestStreamEnd.'
               'test_cut_in_a_member_leaves_its_part'],
    ),
    dict(
        name='links-out-of-this-run-only',
        file='tej.py',
        original="        out = [link for link in made + _links_under(targets.values())",
        replacement="        out = [link for link in made",
        description="a link that an earlier download made, led out by "
                    "this one, stays",
        tests=['test_transfer.TestExtract.'
               'test_links_of_earlier_downloads_led_out'],
    ),
    dict(
        name='part-not-locked',
        file='tej.py',
        original="                    fcntl.flock(fd, fcntl.LOCK_EX)  # another's: wait",
        replacement="                    pass",
        description="two downloads of one file into one place mix",
        tests=['test_transfer.TestParts.'
               'test_two_downloads_of_one_file_never_mix'],
    ),
    dict(
        name='resumed-part-not-checked',
        file='tej.py',
        original="                    if (st.st_dev, st.st_ino) != seen or not _ours(st) or \\",
        replacement="                    if False or \\",
        description="a resumed part swapped for a hard link or another "
                    "file is written",
        tests=['test_transfer.TestParts.'
               'test_a_resumed_part_swapped_for_a_link'],
    ),
    dict(
        name='resume-size-only',
        file='tej.py',
        original="                        st.st_size == size and "
                 "int(st.st_mtime) == mtime:",
        replacement="                        st.st_size == size:",
        description="a resumed download keeps a local file of the "
                    "server's size that changed",
        tests=['test_transfer.TestResume.'
               'test_directory_resumes_file_by_file'],
    ),
    dict(
        name='resume-sum-not-checked',
        file='tej.py',
        original="            elif value == str(crc):",
        replacement="            elif True:",
        description="a part whose beginning is not the server's file is "
                    "completed and kept",
        tests=['test_transfer.TestResume.'
               'test_changed_on_the_server_is_fetched_whole'],
    ),
    dict(
        name='resume-offset-off-by-one',
        file='runtimes/common.sh',
        original='            tail -c +$((_dl_offset + 1)) "$_dl_file"',
        replacement='            tail -c +"$_dl_offset" "$_dl_file"',
        description="the rest of a part starts one byte early: the check "
                    "fails, and the file comes whole again",
        tests=['test_transfer.TestResume.'
               'test_directory_resumes_file_by_file'],
    ),
    dict(
        name='resume-empty-directory-lost',
        file='tej.py',
        original="                if name not in parents:  # empty: "
                 "nothing makes it\n                    whole.append(name)\n",
        replacement="",
        description="a resumed download leaves out an empty directory",
        tests=['test_transfer.TestResume.'
               'test_directory_resumes_file_by_file'],
    ),
    dict(
        name='content-id-ignores-excludes',
        file='tej.py',
        original="    for relative, path, st, link in _job_files(directory, "
                 "excludes,",
        replacement="    for relative, path, st, link in _job_files(directory, "
                    "(),",
        description="the content id counts the files that --exclude "
                    "leaves out",
        tests=['test_transfer.TestUpload.test_exclude_and_tejignore'],
    ),
    dict(
        name='links-out-only-absolute',
        file='tej.py',
        original="            if link is not None and (os.path.isabs(link) "
                 "or not _within(",
        replacement="            if link is not None and (os.path.isabs(link) "
                    "or False and not _within(",
        description="a link that climbs out of the job with '..' is sent "
                    "without a warning",
        tests=['test_transfer.TestUpload.test_links_that_lead_out'],
    ),
    dict(
        name='special-files-read',
        file='tej.py',
        original="            if link is None and not (stat.S_ISREG(st.st_mode) "
                 "or",
        replacement="            if False and not (stat.S_ISREG(st.st_mode) or",
        description="a fifo in the job is opened for its content id: tej "
                    "hangs",
        tests=['test_transfer.TestUpload.test_fifo_and_socket_are_refused'],
    ),
    dict(
        name='download-makes-parents',
        file='tej.py',
        original="    if not os.path.isdir(parent):\n"
                 "        raise ValueError(\"No such directory: %s (the %s "
                 "%s is made only in \"",
        replacement="    if False:\n"
                    "        raise ValueError(\"No such directory: %s (the "
                    "%s %s is made only in \"",
        description="download --directory a/b/c makes a/b as well",
        tests=['test_transfer.TestWhereDownloadsGo.'
               'test_only_the_last_component_is_made'],
    ),
    dict(
        name='disk-full-cleanup-silent',
        file='runtimes/common.sh',
        original='            *) if _full "$_creating"; then  # a full disk',
        replacement='            *) if false; then  # a full disk',
        description="a submission that a full disk stopped before the "
                    "upload (its lock, its record) says 'I/O error'",
        tests=['test_transfer.TestServerDiskFull'],
    ),
    dict(
        name='compress-without-gzip',
        file='runtimes/common.sh',
        original='            transfer=gzip) command -v gzip > /dev/null '
                 '2>&1 || \\\n',
        replacement='            transfer=gzip) true || \\\n',
        description="--compress to a server without gzip fails with "
                    "tar's message, not one that says why",
        tests=['test_transfer.TestCompress'],
    ),
    # ---- the server side's own defects ----------------------------------------
    dict(
        name='install-dir-predictable',
        file='runtimes/bootstrap.sh',
        original='''    pushed=$(mktemp -d "${TMPDIR:-/tmp}/tej-install.XXXXXXXX" 2>/dev/null) || pushed=
''',
        replacement='''    pushed=${TMPDIR:-/tmp}/tej-install.$$
    mkdir -m 700 "$pushed" || exit "$RC_FAILURE"
''',
        description="the pushed runtime goes to /tmp/tej-install.PID, a "
                    "name another user can take first",
        tests=['test_runtime.TestInstallDirectory'],
    ),
    dict(
        name='cleanup-link-only',
        file='runtimes/common.sh',
        original='''        rm -rf "$_cq_real"
        rm -f "$Q"
''',
        replacement='''        rm -rf "$Q"
''',
        description="cleanup of a queue reached through a symbolic link "
                    "removes the link and leaves the queue",
        tests=['test_runtime.Test_dash.test_cleanup_through_a_symbolic_link'],
    ),
    dict(
        name='tilde-user-in-home',
        file='runtimes/queue.sh',
        original='''        "~"*) _expand_user "$1" ;;
''',
        replacement='',
        description="--queue ~NAME/q is taken as a path relative to the "
                    "home directory: $HOME/~NAME/q",
        tests=['test_runtime.TestUserHome'],
    ),
    dict(
        name='tilde-user-unchecked',
        file='runtimes/probe.sh',
        original='''    if [ "$_eu_rest" = / ]; then
''',
        replacement='''    if :; then
''',
        description="the name after ~ goes to eval unchecked: ~$(cmd) "
                    "runs cmd",
        tests=['test_runtime.TestUserHome'],
    ),
    dict(
        name='lock-broken-after-a-minute',
        file='runtimes/common.sh',
        original='''    if _holder_gone "$_rl_owner" "$_rl_beat"; then
        :
''',
        replacement='''    if _holder_gone "$_rl_owner" "$_rl_beat" || [ "$_lk_n" -ge 600 ]; then
        :
''',
        description="any lock is broken after a minute of waiting, its "
                    "holder alive or not",
        tests=['test_runtime.TestLocks.test_a_live_submitter_keeps_its_lock'],
    ),
    dict(
        name='lock-foreign-never-stale',
        file='runtimes/common.sh',
        original='''    [ "$(($(_now) - $2))" -gt "$TEJ_LOCK_STALE" ]
''',
        replacement='''    return 1
''',
        description="a lock of another host is never broken: a dead "
                    "node's lock blocks its job for ever",
        tests=['test_runtime.TestLocks.test_a_lock_of_another_host',
               'test_runtime.TestLocks.test_a_submission_of_another_host'],
    ),
    dict(
        name='lock-no-beat',
        file='runtimes/common.sh',
        original='''    _keep_beating  # through the upload and the scheduler's answer
''',
        replacement='',
        description="a long submission does not say it lives: other "
                    "hosts break its lock after TEJ_LOCK_STALE",
        tests=['test_runtime.TestLocks.test_a_live_submitter_keeps_its_lock'],
    ),
    dict(
        name='unlock-anyones',
        file='runtimes/common.sh',
        original='''    _own_claim "$_locked"
    if [ -n "$_oc_claim" ]; then
''',
        replacement='''    _own_claim "$_locked"
    if :; then
        rm -f "$_locked"/.lock.*
''',
        description="_unlock removes the lock whoever holds it now",
        tests=['test_runtime.TestLocks.test_unlock_removes_its_own_lock_only'],
    ),
    dict(
        name='lock-without-claim-waited-out',
        file='runtimes/common.sh',
        original='''        ! _sweep_claims "$1" || rmdir "$1/lock" 2>/dev/null || :
''',
        replacement='''        ! _sweep_claims "$1" || [ "$(($(_now) - ${_lk_t0:=$(_now)}))" -le "$TEJ_LOCK_STALE" ] || rmdir "$1/lock" 2>/dev/null || :
''',
        description="a lock whose maker died before it moved its claim in "
                    "is waited out for TEJ_LOCK_STALE (300 s)",
        tests=['test_runtime.TestLocks.test_a_lock_without_claim'],
    ),
    dict(
        name='lock-maker-not-waited-for',
        file='runtimes/common.sh',
        original='''            _swc_live=1
''',
        replacement='''            rm -f "$_swc_claim"
''',
        description="a lock without a claim is broken while its maker, "
                    "alive, is about to move its claim in",
        tests=['test_runtime.TestLocks.test_a_lock_being_made'],
    ),
    dict(
        name='leftovers-kept',
        file='runtimes/common.sh',
        original='''    _sweep "$Q/jobs"
    _sb_name=.new.$_host.$$
''',
        replacement='''    _sb_name=.new.$_host.$$
''',
        description="the half-made and half-removed jobs of killed "
                    "processes stay in the queue for ever",
        tests=['test_runtime.TestLocks.test_leftovers_of_killed_processes'],
    ),
    dict(
        name='finish-of-a-removed-job-fails',
        file='runtimes/common.sh',
        original='''    if ! _lock "$1" gone; then
''',
        replacement='''    if ! _lock "$1"; then
''',
        description="a kill whose job was deleted as it recorded the end "
                    "fails with 'no job'",
        tests=['test_runtime.TestLocks.'
               'test_a_job_removed_while_its_end_is_recorded'],
    ),
    dict(
        name='vanished-job-lost',
        file='runtimes/common.sh',
        original='''        if [ -d "$1" ]; then
            _seen_lost "$1"
        else
            st_state=notfound
        fi
''',
        replacement='''        _seen_lost "$1"
''',
        description="a job removed (its submission failed) as a status "
                    "reads it is lost, and tej wait ends on it",
        tests=['test_runtime.TestStartingJob.'
               'test_submission_removed_while_status_looks'],
    ),
    dict(
        name='list-of-a-removed-job',
        file='runtimes/common.sh',
        original='''    [ "$st_state" != notfound ] || return 1  # removed meanwhile
''',
        replacement='',
        description="list shows a job removed as it read it, as notfound",
        tests=['test_runtime.TestStartingJob.'
               'test_submission_removed_while_status_looks'],
    ),
    dict(
        name='cmdline-read-once',
        file='runtimes/common.sh',
        original='''        [ -z "$_cml_line" ] && [ "$_cml_n" -lt 3 ] || return 0
''',
        replacement='''        return 0
''',
        description="a wrapper or a lock's holder in the middle of an exec "
                    "(an empty command line) is taken for gone: lost",
        tests=['test_runtime.TestStartingJob.'
               'test_wrapper_in_the_middle_of_an_exec'],
    ),
    dict(
        name='beat-loop-holds-the-output',
        file='runtimes/common.sh',
        original='''        exec < /dev/null > /dev/null 2>&1
        _kb_n=0
''',
        replacement='''        _kb_n=0
''',
        description="a submission's beat loop keeps the call's output open "
                    "after the call (ssh waits for it)",
        tests=['test_runtime.TestCallOutput'],
    ),
    dict(
        name='strict-fast-start',
        file='runtimes/fast.sh',
        original='''if _version_ok "$2" "$fast_version" && [ -O "$_ep_path" ] 2>/dev/null && [ -O "$_ep_path/tej.sh" ] && [ -z "$(find "$_ep_path/" "$_ep_path/tej.sh" -prune \\( -perm -020 -o -perm -002 \\) -print 2>/dev/null)" ]; then
''',
        replacement='''if _version_ok "$2" "$fast_version"; then
''',
        description="a call without input runs the tej.sh of a queue that "
                    "others can write",
        tests=['test_runtime.TestStrictModes'],
    ),
    dict(
        name='strict-queue',
        file='runtimes/bootstrap.sh',
        original='''_strict "$queue/" "$queue/tej.sh" || _refuse
''',
        replacement='',
        description="a submit uses a queue that others can write",
        tests=['test_runtime.TestStrictModes'],
    ),
    dict(
        name='strict-links',
        file='runtimes/bootstrap.sh',
        original='''    _strict "$queue" || _refuse
''',
        replacement='',
        description="a link file that others can write is followed",
        tests=['test_runtime.TestStrictModes'],
    ),
    dict(
        name='lock-of-this-very-process',
        file='runtimes/common.sh',
        original='''        "$_host:$$") return 0 ;;  # the holder died, and we got its pid
''',
        replacement='',
        description="a lock whose recorded holder is the waiter's own pid "
                    "(reused after a crash) is waited for, for ever",
        tests=['test_runtime.TestLocks.test_a_lock_of_this_very_process'],
    ),
    dict(
        name='breaking-removes-a-new-lock',
        file='runtimes/common.sh',
        original='''        rm -f "$1/lock/owner" "$1/lock/beat"
    fi
    rmdir "$1/lock" 2>/dev/null || :
''',
        replacement='''        rm -f "$1/lock/owner" "$1/lock/beat"
    fi
    rm -rf "$1/lock"
''',
        description="a waiter that judged a lock's holder gone removes the "
                    "lock that another waiter has made since",
        tests=['test_runtime.TestLocks.test_two_waiters_break_one_lock'],
    ),
    dict(
        name='ended-job-not-read-again',
        file='runtimes/default.sh',
        original='''    _load "$1"  # the wrapper may have written its record just now
''',
        replacement='',
        description="a job that ends between a status's read of its record "
                    "and its look for the wrapper reads as lost",
        tests=['test_runtime.TestStartingJob.'
               'test_job_ends_while_status_looks'],
    ),
    dict(
        name='read-only-registry-opened-to-write',
        file='tej.py',
        original='''        read_only = not (os.access(self.path, os.W_OK) and
                         os.access(directory or '.', os.W_OK))
''',
        replacement='''        read_only = False
''',
        description="a registry on a read-only file system cannot be read "
                    "(jobs --cached fails)",
        tests=['test_monitor.TestRecorded.test_a_read_only_registry'],
    ),
    dict(
        name='read-only-registry-fails-jobs',
        file='tej.py',
        original='''            if 'readonly' not in str(e):
                raise
            logger.warning("The job registry %s cannot be written: what "
''',
        replacement='''            raise
            logger.warning("The job registry %s cannot be written: what "
''',
        description="tej jobs fails on a registry it cannot write, instead "
                    "of showing what the servers said",
        tests=['test_monitor.TestRecorded.test_a_read_only_registry'],
    ),
    dict(
        name='users-own-link-refused',
        file='tej.py',
        original='''            if path != top_local and os.path.islink(path):
''',
        replacement='''            if os.path.islink(path):
''',
        description="a download into a directory that is the user's own "
                    "link (to a scratch disk) is refused",
        tests=['test_transfer.TestExtract.'
               'test_the_users_own_link_as_the_target'],
    ),
    dict(
        name='kill-group-only',
        file='runtimes/default.sh',
        original='''    _js_pids=$(_escaped)
''',
        replacement='''    _js_pids=
''',
        description="kill reaches the job's process group only: what left "
                    "it (setsid, a daemon) runs on",
        tests=['test_runtime.Test_dash.test_kill_reaches_escaped_processes'],
    ),
    dict(
        name='ask-every-queue-at-once',
        file='tej.py',
        original='''            with self._asking:
''',
        replacement='''            if True:
''',
        description="tej jobs asks every queue at once: hundreds of "
                    "destinations run out of file descriptors",
        tests=['test_monitor.TestManyQueues'],
    ),
    dict(
        name='feeder-joined-for-ever',
        file='tej.py',
        original='''    proc.feeder.join(_FEEDER_WAIT)
''',
        replacement='''    proc.feeder.join()
''',
        description="a call waits for its input's producer however long "
                    "it is stuck, through its timeout and TERM",
        tests=['test_transport.TestFeeder'],
    ),
    dict(
        name='ssh-logs-of-the-dead-kept',
        file='tej.py',
        original='''        _sweep_logs(directory)
''',
        replacement='',
        description="ssh logs that killed tej processes left stay for ever",
        tests=['test_transport.TestSSHLogs'],
    ),
    dict(
        name='job-visible-before-its-lock',
        file='runtimes/common.sh',
        original='''    _sb_name=.new.$_host.$$
''',
        replacement='''    _sb_name=$_sb_id
''',
        description="a new job's directory is made under its id, then "
                    "locked: a status meanwhile says lost, a delete removes it",
        tests=['test_runtime.TestSubmitWindow'],
    ),
    dict(
        name='stage-under-077',
        file='runtimes/common.sh',
        original='''    if ! (umask "$TEJ_UMASK" && mkdir "$_sb_job/stage" &&''',
        replacement='''    if ! (mkdir "$_sb_job/stage" &&''',
        description="the uploaded files are unpacked under the runtime's "
                    "umask 077, whatever the session's",
        tests=['test_transport.TestFileModes'],
    ),
    dict(
        name='output-under-077',
        file='runtimes/common.sh',
        original='''        exec < /dev/null >> _stdout 2>> _stderr
''',
        replacement='''        exec < /dev/null >> _stdout 2>> _stderr
        chmod 600 _stdout _stderr
''',
        description="_stdout and _stderr are private whatever the umask",
        tests=['test_runtime.TestCallerEnvironment'],
    ),
    dict(
        name='umask-from-the-environment-only',
        file='runtimes/common.sh',
        original='''        read -r _rj_umask < "$1/umask" || _rj_umask=$TEJ_UMASK
''',
        replacement='''        :
''',
        description="the job's umask comes from the environment only, "
                    "which qsub without -V does not pass on",
        tests=['test_slurm.TestPBS.test_umask_without_the_environment'],
    ),
    dict(
        name='wrapper-starting-lost',
        file='runtimes/default.sh',
        original='''            *"/tej.sh "*) [ -z "$2" ]; return ;;
''',
        replacement='',
        description="a job whose wrapper is forked but not exec'ed yet is "
                    "lost to a status at that moment",
        tests=['test_runtime.TestStartingJob.'
               'test_wrapper_before_its_exec_is_the_job'],
    ),
    dict(
        name='pbs-mem-bytes',
        file='runtimes/pbs.sh',
        original='''        *[0-9]) printf '%smb' "$1" ;;
''',
        replacement='''        *[0-9]) printf '%sb' "$1" ;;
''',
        description="--mem 4000 reaches qsub as mem=4000b: bytes, not MB",
        tests=['test_slurm.TestPBS.test_memory_sizes'],
    ),
    dict(
        name='mem-unchecked',
        file='runtimes/common.sh',
        original='''            mem=*) _check_mem "${_sb_option#*=}" ;;
''',
        replacement='''            mem=*) ;;
''',
        description="the server takes any mem, 4000b or lots, and hands "
                    "it to the scheduler",
        tests=['test_runtime.TestRuntimeDirectly.'
               'test_memory_sizes_checked_on_the_server'],
    ),
    # ---- what a new user trips over ---------------------------------------
    dict(
        name='login-batch-mode-kept',
        file='tej.py',
        original="""            argv += ['-o', 'BatchMode=%s' % ('no' if prompt else 'yes')]""",
        replacement="""            if not prompt:
                argv += ['-o', 'BatchMode=yes']""",
        description="tej login leaves BatchMode to ssh_config: 'BatchMode "
                    "yes' there and it cannot prompt",
        tests=['test_transport.TestPassword.'
               'test_login_prompts_at_a_terminal_despite_batch_mode'],
    ),
    dict(
        name='run-missing-result-of-success-is-fine',
        file='tej.py',
        original="""            if status == 0:
                status, keep = _EXIT_ERROR, True""",
        replacement="""            if status == 0:
                keep = True""",
        description="run of a job that succeeded with a result missing "
                    "exits 0",
        tests=['test_ci.TestRun.'
               'test_a_missing_result_of_a_job_that_succeeded'],
    ),
    dict(
        name='run-reattaches-to-a-killed-job',
        file='tej.py',
        original="    if state in (_KILLED, _LOST, _NOTFOUND) or (",
        replacement="    if state in (_NOTFOUND,) or (",
        description="re-running a run whose job was killed replays it and "
                    "exits 123 instead of running it again",
        tests=['test_ci.TestRun.test_a_killed_job_is_run_again'],
    ),
    dict(
        name='output-overwrites-the-walltime-message',
        file='runtimes/common.sh',
        original="""        exec < /dev/null >> _stdout 2>> _stderr
""",
        replacement="""        exec < /dev/null > _stdout 2> _stderr
""",
        description="the job's later writes to _stderr overwrite the "
                    "runtime's walltime message",
        tests=['test_runtime.TestWalltime'],
    ),

    # ---- the job registry and monitor ----------------------------------------
    dict(
        name='registry-ends-seen-meanwhile-lost',
        file='tej.py',
        original="""                report(db, [j for j in self._select(
                    db, 'WHERE paused=0 AND deleted IS NULL AND reported '
                    'IS NULL') if j.ended])""",
        replacement="""                report(db, [])""",
        description="a job that ended while no monitor ran, or that tej "
                    "jobs saw end, is never reported",
        tests=['test_monitor.TestMonitor.'
               'test_a_restarted_monitor_reports_each_end_once'],
    ),
    dict(
        name='registry-end-reported-twice',
        file='tej.py',
        original="""                'UPDATE jobs SET reported=? WHERE rowid=? AND submitted=? '
                'AND reported IS NULL', (time.time(), job.key,""",
        replacement="""                'UPDATE jobs SET reported=? WHERE rowid=? AND submitted=?',
                (time.time(), job.key,""",
        description="two monitors that see the same end both report it",
        tests=['test_monitor.TestClaim'],
    ),
    dict(
        name='registry-paused-checked',
        file='tej.py',
        original="""            db, 'WHERE paused=0 AND deleted IS NULL') if not j.ended]""",
        replacement="""            db, 'WHERE deleted IS NULL') if not j.ended]""",
        description="paused jobs are checked and watched all the same",
        tests=['test_monitor.TestMonitor.test_paused_job_is_not_checked'],
    ),
    dict(
        name='registry-password-stored',
        file='tej.py',
        original="""    text = destination_as_string(dict(destination, password=None))
    return text[len('ssh://'):]""",
        replacement="""    text = destination_as_string(dict(destination))
    return text[len('ssh://'):]""",
        description="a password in the destination is written to the "
                    "registry",
        tests=['test_monitor.TestJobs.'
               'test_password_never_reaches_the_database'],
    ),
    dict(
        name='registry-not-migrated',
        file='tej.py',
        original="""                for step in _REGISTRY_SCHEMA[version:]:""",
        replacement="""                for step in _REGISTRY_SCHEMA[:not version]:""",
        description="an older registry gets the new version number but "
                    "not the new columns",
        tests=['test_monitor.TestRegistry.test_older_schema_is_migrated'],
    ),
    dict(
        name='registry-one-exec-per-job',
        file='tej.py',
        original="""                               job.multiplex, job.queue), []).append(job)""",
        replacement="""                               job.multiplex, job.queue, job.id),
                              []).append(job)""",
        description="tej jobs asks each job in an exec of its own",
        tests=['test_monitor.TestJobs.'
               'test_every_destination_one_exec_per_queue'],
    ),
    dict(
        name='registry-no-busy-timeout',
        file='tej.py',
        original="""            db = sqlite3.connect(self.path, timeout=_REGISTRY_BUSY,""",
        replacement="""            db = sqlite3.connect(self.path, timeout=0,""",
        description="concurrent submits fail to record: no busy timeout",
        tests=['test_monitor.TestRegistry.'
               'test_concurrent_writers_lose_no_rows'],
    ),
    dict(
        name='registry-removed-queue-unreachable',
        file='tej.py',
        original="""        except QueueDoesntExist:
            records = [{'id': i, 'state': _NOTFOUND} for i in ids]""",
        replacement="""        except QueueDoesntExist:
            raise""",
        description="the jobs of a queue removed under them are "
                    "unreachable, not found: monitor --until-done tries "
                    "them again for ever",
        tests=['test_monitor.TestMonitor.'
               'test_a_queue_removed_under_its_jobs'],
    ),
    dict(
        name='registry-answer-to-reused-row',
        file='tej.py',
        original="""            before = self._select(db, 'WHERE rowid=? AND submitted=?',
                                  (key, submitted))""",
        replacement="""            before = self._select(db, 'WHERE rowid=?', (key,))""",
        description="an answer about a job forgotten (or deleted and "
                    "submitted again) while the monitor waited is stored "
                    "in the row of the next job submitted, whose end it "
                    "reports",
        tests=['test_monitor.TestMonitor.test_forget_while_a_monitor_waits',
               'test_monitor.TestMonitor.'
               'test_an_id_deleted_and_submitted_again'],
    ),
    dict(
        name='registry-forgotten-row-crashes',
        file='tej.py',
        original="""            if before:  # (not forgotten, or submitted again, meanwhile)
                pairs.append((before[0], before[0]._replace(""",
        replacement="""            if True:
                pairs.append((before[0], before[0]._replace(""",
        description="the monitor (or tej jobs) crashes on the answer about "
                    "a job forgotten while it waited",
        tests=['test_monitor.TestMonitor.test_forget_while_a_monitor_waits'],
    ),
    dict(
        name='registry-resubmit-keeps-old-end',
        file='tej.py',
        original="""                if new:
                    db.execute('DELETE FROM jobs WHERE destination=? AND '
                               'queue=? AND job_id=?', where)
""",
        replacement="",
        description="a job submitted again under the id of a deleted one "
                    "keeps the old row's end: the monitor reports it at "
                    "once, or (reported before) never the new job's",
        tests=['test_monitor.TestMonitor.'
               'test_an_id_deleted_and_submitted_again'],
    ),
    dict(
        name='waitany-waits-for-all',
        file='runtimes/common.sh',
        original="""        waitany) [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: waitany SECONDS ID ..."
                 _wait any "$@" ;;""",
        replacement="""        waitany) [ "$#" -ge 2 ] || _die "$RC_INVALID" "usage: waitany SECONDS ID ..."
                 _wait all "$@" ;;""",
        description="waitany waits for every job, not the first to end",
        tests=['test_runtime.TestWaitAny'],
    ),
    # ---- reliability: faults and bad input (tests/test_faults.py) ---------
    dict(
        name='submit-interrupt-no-cleanup',
        file='runtimes/common.sh',
        original='''    trap 'exit "$RC_FAILURE"' HUP INT TERM PIPE
''',
        replacement='',
        description="a submission interrupted by Ctrl-C leaves a half-made "
                    "job that reads lost and blocks its id",
        tests=['test_faults.TestInterruptedSubmit.test_local_sigint',
               'test_faults.TestTerminatedSubmission'],
    ),
    dict(
        name='unresolved-name-retried',
        file='tej.py',
        original='''    if 'Could not resolve hostname' in log:
        return _SSH_NO_HOST
''',
        replacement='',
        description="wait on a mistyped host retries for TEJ_RETRY_FOR",
        tests=['test_faults.TestNotTransient.'
               'test_name_that_does_not_resolve'],
    ),
    dict(
        name='unresolved-name-never-retried',
        file='tej.py',
        original='''        self.delay = 1.0
        self.worked = True
''',
        replacement='''        self.delay = 1.0
''',
        description="a call that connected before gives up at once when "
                    "the name stops resolving (the VPN dropped)",
        tests=['test_faults.TestNotTransient.'
               'test_name_lost_after_a_connection_is_retried'],
    ),
    dict(
        name='keepalive-fixed',
        file='tej.py',
        original="'-o', 'ServerAliveInterval=%d' % self.keepalive,",
        replacement="'-o', 'ServerAliveInterval=15',",
        description="TEJ_KEEPALIVE is ignored: a dead link is noticed "
                    "after a minute",
        tests=['test_network.TestLongCut'],
    ),
    dict(
        name='boot-id-file-ignored',
        file='runtimes/common.sh',
        original='''    if [ -n "${TEJ_BOOT_ID_FILE:-}" ]; then
        cat "$TEJ_BOOT_ID_FILE"
    elif [ -r /proc/sys/kernel/random/boot_id ]; then''',
        replacement='''    if [ -r /proc/sys/kernel/random/boot_id ]; then''',
        description="the boot id that tests control is not read: a "
                    "reboot cannot be simulated",
        tests=['test_faults.TestReboot'],
    ),
    dict(
        name='record-cut-taken-as-whole',
        file='tej.py',
        original='''            record['state'] != _NOTFOUND and
            not all(key in record for key in _RECORD_KEYS)):''',
        replacement='''            False):''',
        description="a record cut short is read as a whole one",
        tests=['test_faults.TestBadInput.test_command_line'],
    ),
    dict(
        name='timeout-nan-taken',
        file='tej.py',
        original="_timeout_type = _arg_type(lambda text: "
                 "_duration(text, 'timeout'))",
        replacement="_timeout_type = float",
        description="--timeout nan, inf or -1 is taken",
        tests=['test_faults.TestBadInput.test_command_line'],
    ),
    dict(
        name='error-of-many-lines',
        file='tej.py',
        original="                msg += \": \" + _last_line(stderr)",
        replacement="                msg += \": \" + stderr",
        description="a server failure with several lines of stderr makes "
                    "an error of several lines",
        tests=['test_faults.TestBrokenQueue.test_read_only'],
    ),
    dict(
        name='scheduler-outage-is-an-answer',
        file='runtimes/common.sh',
        original='''    _unasked "$_sa_name" "$1" "$_sa_said"
''',
        replacement='''    return 0
''',
        description="a scheduler that cannot be reached reads as one that "
                    "no longer lists the job: lost after the grace",
        tests=['test_slurm.TestSlurm.test_a_controller_down_is_not_an_answer'],
    ),
    dict(
        name='failed-kill-request-kept',
        file='runtimes/common.sh',
        original='''    _load "$1"
    st_killreq=
    _save "$1"
''',
        replacement='''    _load "$1"
    _save "$1"
''',
        description="a kill that did not reach the scheduler still marks "
                    "the job: it reads as killed when it runs later",
        tests=['test_slurm.TestPBS.test_a_server_down_is_not_an_answer'],
    ),
    dict(
        name='cut-upload-runs',
        file='runtimes/common.sh',
        original='''    if [ "$_sb_whole" != whole ]; then
''',
        replacement='''    if false; then
''',
        description="an upload cut on a member's boundary makes a job of "
                    "part of the directory, which runs",
        tests=['test_runtime.TestCutUpload'],
    ),
    # ---- downloads: what users rely on --------------------------------------
    dict(
        name='resumed-part-mode',
        file='tej.py',
        original="                        (mode & 0o777 & ~mask) | 0o600,\n",
        replacement="                        0o600,\n",
        description="a file whose download was cut and resumed keeps its "
                    "part's mode, 0600: an executable output loses its x bits",
        tests=['test_transfer.TestResumeAfterCut.'
               'test_resumed_file_has_the_mode_of_a_whole_download'],
    ),
    dict(
        name='changed-part-forgotten',
        file='tej.py',
        original='''                held.remove()
                held.close()
            again.append(part.name)
''',
        replacement='''                held.remove()
                held.close()
''',
        description="a part the server cannot check (no cksum, no md5sum: "
                    "'part changed') is removed and not fetched again: the "
                    "file is silently missing",
        tests=['test_transfer.TestResumeAfterCut.'
               'test_resumed_without_cksum_or_md5sum'],
    ),
    dict(
        name='writer-error-dropped',
        file='tej.py',
        original='''                    self._put(*item)
                except OSError as e:
                    self.error.append(e)
''',
        replacement='''                    self._put(*item)
                except OSError:
                    pass
''',
        description="the writer thread drops a write that failed (disk "
                    "full): a big file with holes for data takes its name",
        tests=['test_transfer.TestLocalDiskFull'],
    ),
    dict(
        name='write-error-unnamed',
        file='tej.py',
        original='''            raise Error("Cannot write %s: %s" % (self.local, e.strerror or e))
''',
        replacement='''            raise e
''',
        description="a download into a full disk raises the bare OSError: "
                    "not a tej Error, and the message names no file",
        tests=['test_transfer.TestLocalDiskFull'],
    ),
    dict(
        name='zeros-by-their-edges',
        file='tej.py',
        original='''                        data[len(data) // 2] == 0 and
                        data.count(0) == len(data))
''',
        replacement='''                        data[len(data) // 2] == 0)
''',
        description="a piece whose first, middle and last bytes are zeros "
                    "is taken for zeros: a hole is made in real data",
        tests=['test_transfer.TestZerosAtChunkEdges'],
    ),
    # ---- the client and gc: what users rely on ----------------------------
    dict(
        name='run-local-download-failure-hides-the-code',
        file='tej.py',
        original="        except (Error, OSError) as e:\n"
                 "            # on the server or here",
        replacement="        except Error as e:\n"
                    "            # on the server or here",
        description="a result that cannot be written here (a file in its "
                    "way) ends run with 125: the job's exit code 3 is lost",
        tests=['test_ci.TestRun.'
               'test_a_broken_download_does_not_hide_the_jobs_code'],
    ),
    dict(
        name='content-id-without-link-targets',
        file='tej.py',
        original="            add('link', relative, link)",
        replacement="            add('link', relative)",
        description="the content id hashes a link's name, not where it "
                    "leads: run re-attaches to the job of the old target",
        tests=['test_ci.TestContentIds.test_a_retargeted_link_is_another_job'],
    ),
    dict(
        name='tejignore-unreadable-ignored',
        file='tej.py',
        original="    except (FileNotFoundError, NotADirectoryError):\n"
                 "        lines = []",
        replacement="    except (FileNotFoundError, NotADirectoryError, "
                    "PermissionError):\n"
                    "        lines = []",
        description="a .tejignore its user cannot read counts as none: "
                    "what it leaves out (a secret) is uploaded",
        tests=['test_transfer.TestUpload.'
               'test_an_unreadable_tejignore_stops_the_upload'],
    ),
    dict(
        name='tejignore-not-a-file-ignored',
        file='tej.py',
        original="    def refuse(mode):\n"
                 "        if not stat.S_ISREG(mode):\n"
                 "            raise Error(",
        replacement="    def refuse(mode):\n"
                    "        if not stat.S_ISREG(mode):\n"
                    "            raise FileNotFoundError\n"
                    "            raise Error(",
        description="a .tejignore that is a directory (or a fifo, a "
                    "device) counts as none: nothing is left out",
        tests=['test_transfer.TestUpload.'
               'test_an_unreadable_tejignore_stops_the_upload'],
    ),
    dict(
        name='ssh-bad-value-is-a-lost-connection',
        file='tej.py',
        original='''    if re.search(r"^command-line:? line \\d+: |: terminating, \\d+ bad "
                 r"configuration option|Bad configuration option|"''',
        replacement='''    if re.search(r"^command-line: line|Bad configuration option|"''',
        description="ssh refusing a value (-o ConnectTimeout=soon, a bad "
                    "line of a -F file) reads as a lost connection: wait, "
                    "logs and run try again for 300 s",
        tests=['test_transport.TestClassifySSH.test_outcomes',
               'test_transport.TestSSHFailures.test_bad_options_fail_at_once'],
    ),
    dict(
        name='gc-ages-lost-from-its-start',
        file='runtimes/common.sh',
        original='''    if [ "$_fl_mode" = gc ] && [ "$st_state" = lost ] && \\
            [ -z "$st_finished" ]; then''',
        replacement='''    if false; then''',
        description="gc ages a lost job without an end from its start: a "
                    "month-long job whose process vanished is removed by "
                    "--older-than 1d the moment it is found lost",
        tests=['test_runtime.TestScan.'
               'test_a_lost_job_ages_from_when_it_was_found_lost'],
    ),
    dict(
        name='gc-lost-time-written-again',
        file='runtimes/common.sh',
        original='''    if [ ! -f "$1/lost" ]; then
        # (not in _tmp''',
        replacement='''    if :; then
        # (not in _tmp''',
        description="each read of a lost job writes the time it was found "
                    "lost again: gc never ages a job that list or status "
                    "reads now and then",
        tests=['test_runtime.TestScan.'
               'test_a_lost_job_ages_from_when_it_was_found_lost'],
    ),
    dict(
        name='gc-awk-ages-lost-from-its-start',
        file='runtimes/common.sh',
        original='''            if (t == "") { print id > others; next }''',
        replacement='''            if (t == "") t = r["started"]''',
        description="gc's awk ages a lost record without an end from its "
                    "start, when no call has found it lost before",
        tests=['test_runtime.TestScan.'
               'test_a_lost_job_ages_from_when_it_was_found_lost'],
    ),
]

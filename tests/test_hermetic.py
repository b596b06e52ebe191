"""The suite's own promise (tests/support.py's Hermetic): no test reaches a
batch scheduler that the suite did not start. With recording stand-ins of
every scheduler command first on the PATH, and a site's scheduler
variables set, a process that starts the hermetic environment finds no
scheduler command and no such variable: not here, not for local:, not in
a session of the test sshd; tej's auto-detection picks the default
runtime on both, and no stand-in is ever called.

tests/hermetic.py runs whole modules (make test-quick's, and the others
but the scheduler's) that way.
"""

import json
import os
import subprocess
import sys
import unittest

from . import support

setUpModule = support.ssh_module

#: Run in a process of its own (the PATH it starts with has the
#: stand-ins): what local: and the test sshd see; printed as JSON.
PROBE = r'''
import json, os, shutil, sys
sys.path.insert(0, sys.argv[1])
from tests import support
support.Hermetic.start()
tej = support.tej
found = {'here': [n for n in support.SCHEDULER_COMMANDS if shutil.which(n)],
         'variables': sorted(k for k in os.environ
                             if support.SCHEDULER_VARIABLES.match(k))}
job = support.make_tree(os.path.join(sys.argv[2], 'job'), {
    'start.sh': 'for c in %s; do command -v "$c"; done\n'
                'env | grep -E "^(%s)_" || true\n' % (
                    ' '.join(sorted(support.SCHEDULER_COMMANDS)),
                    support.SCHEDULER_VARIABLES.pattern[1:-2])})
server = support.ssh_server()
try:
    for where, queue in (
            ('local', tej.RemoteQueue('local:',
                                      os.path.join(sys.argv[2], 'q'))),
            ('sshd', server.queue(os.path.join(server.remote_dir(), 'q')))):
        try:
            queue.setup()
            queue.submit('probe', job)
            queue.wait('probe', timeout=20)
            out, err = queue.logs('probe')
            found[where] = {'runtime': queue.info('probe')['runtime'],
                            'saw': (out + err).decode().split()}
        except tej.Error as e:
            found[where] = str(e)
finally:
    support.stop_all()
print(json.dumps(found))
'''


class TestNoScheduler(unittest.TestCase):
    def test_stand_ins_first_on_the_path_are_never_called(self):
        support.need('sshd', support.which('sshd') or
                     os.path.exists('/usr/sbin/sshd'), "no sshd")
        tmp = support.temporary(self)
        os.chmod(tmp, 0o755)
        stand_ins = support.recording_schedulers(os.path.join(tmp, 'bin'))
        record = os.path.join(tmp, 'record')
        open(record, 'w').close()
        env = dict(os.environ, PATH=stand_ins + os.pathsep +
                   support.CALLER_PATH, TEJ_RECORD=record,
                   **support.SCHEDULER_SETTINGS)
        env.pop('TEJ_TEST_BIN', None)  # its own, from that PATH
        # the stand-ins answer, as a scheduler that is up would
        self.assertEqual(subprocess.run(
            ['sinfo', '-h'], env=env, stdout=subprocess.PIPE).stdout,
            b'idle\n')
        open(record, 'w').close()
        proc = subprocess.run(
            [sys.executable, '-c', PROBE, support.TOP, tmp], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        found = json.loads(proc.stdout.decode().splitlines()[-1])
        with open(record) as fp:
            found['called'] = fp.read().splitlines()
        clean = {'runtime': 'default', 'saw': []}
        self.assertEqual(found, {'here': [], 'variables': [], 'local': clean,
                                 'sshd': clean, 'called': []})

# tej: the project's checks. Everything runs from a fresh clone.
PYTHON ?= python3
# test processes at a time, one more than the cores: a test mostly waits
# (for sshd, a job, a timeout), the suite's CPU is busy half of the time
# (the serial lane runs alone, after); the quick tests are local: jobs that
# mostly sleep, twice as many as the cores (more, and the jobs' own timing
# suffers)
CORES := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
JOBS ?= $(shell expr $(CORES) + 1)
QUICK_JOBS ?= $(shell expr 2 \* $(CORES))

.PHONY: test test-quick test-hermetic bench embed check-embed lint mutate

# the whole suite: pure, runtime under every shell, end to end through sshd,
# a Slurm of its own; JOBS processes at a time, then the serial lane alone.
# As root it changes the machine: see README.rst's Testing
test:
	$(PYTHON) -m tests -j $(JOBS)

# no server, nothing outside temporary directories: pure tests and the
# runtime under the installed shells
test-quick:
	$(PYTHON) -m tests -q -j $(QUICK_JOBS) test_pure test_runtime test_transport.TestClassifySSH test_transport.TestRetryLoop test_transport.TestNoSecondSend test_transfer.TestTarHeaders test_transfer.TestStreamEnd test_transfer.TestMembers test_transfer.TestExtract

# the suite, with recording stand-ins of every scheduler command first on
# the PATH: fails if a test but the scheduler's calls one
test-hermetic:
	$(PYTHON) tests/hermetic.py

# speed against baselines measured in the same run, as ratios
bench:
	$(PYTHON) tests/bench.py

# do the tests catch the bugs they claim to? tests/mutants.py's small bugs,
# one at a time, in a scratch copy (not part of make test: it takes a while)
mutate:
	$(PYTHON) tests/mutate.py

# copy runtimes/*.sh into tej.py
embed:
	$(PYTHON) tests/embed.py

# fail when tej.py's copies differ from runtimes/*.sh
check-embed:
	$(PYTHON) tests/embed.py --check

lint: check-embed
	shellcheck -s sh runtimes/*.sh
	$(PYTHON) -m py_compile tej.py

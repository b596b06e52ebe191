# tej: the project's checks. Everything runs from a fresh clone.
PYTHON ?= python3

.PHONY: test test-quick bench embed check-embed lint mutate

# the whole suite: pure, runtime under every shell, end to end through sshd
test:
	$(PYTHON) -m tests

# no server: pure tests and the runtime under the installed shells
test-quick:
	$(PYTHON) -m tests test_pure test_runtime

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

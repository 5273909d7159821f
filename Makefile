# The two commands a newcomer needs (see README.md):
#   make demo   install into .venv and run the main job on the embedded defaults
#   make test   install, start Kafka, PostgreSQL and anvil, lint, run every test
.PHONY: demo test lint services stop

demo:
	@scripts/setup
	.venv/bin/parsec demo $(ARGS)

test:
	scripts/test $(ARGS)

lint:
	@scripts/setup
	.venv/bin/ruff check domain infrastructure projections tests
	.venv/bin/lint-imports

services:
	scripts/kafka start
	scripts/postgres start
	scripts/anvil start

stop:
	-scripts/mirrormaker stop
	-scripts/kafka stop
	-scripts/postgres stop
	-scripts/anvil stop

"""Sessions: `nox -s lint` runs ruff and mypy, `nox -s tests` the test suite; `bench_*` run one benchmark each."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


def install_project(session: nox.Session, *extra: str, extras: str = "test,otel,postgres") -> None:
    """Install plba and the mail order bot plugin (editable, so coverage and tracebacks point here)."""
    session.install("-e", f".[{extras}]", "-e", "./plugins/mail_order_bot", *extra)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the tree, then mypy over plba and the bot (as `[tool.mypy]` in pyproject.toml sets it)."""
    install_project(session, extras="test,otel,postgres,lint")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Install the test servers and the project, then run every test in four processes (`-- -n 0` for one)."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session)
    # Most tests wait on a server or a subprocess: four processes keep two cores busy. A later
    # `-n` among the arguments wins.
    session.run("pytest", "-n", "4", *session.posargs)


@nox.session(python=PYTHON)
def bench_pipeline(session: nox.Session) -> None:
    """In-memory pipeline throughput against bare queue.Queue + 4 threads (with and without tracing)."""
    install_project(session)
    session.run("python", "benchmarks/pipeline.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_cli(session: nox.Session) -> None:
    """`plba plugins list` wall time against `python -c "import typer"`."""
    install_project(session)
    session.run("python", "benchmarks/cli_startup.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_control(session: nox.Session) -> None:
    """GET /health requests per second under load against bare Flask on waitress."""
    install_project(session)
    session.run("python", "benchmarks/health_rps.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_control_load(session: nox.Session) -> None:
    """Probe latency with idle, slow and flooding clients and a hanging health check, against the quiet server."""
    install_project(session)
    session.run("python", "benchmarks/control_load.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_redis(session: nox.Session) -> None:
    """Redis queue throughput against Dramatiq, RQ and a bare redis-py loop."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session, "dramatiq[redis]", "rq")
    session.run("python", "benchmarks/redis_throughput.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_mail(session: nox.Session) -> None:
    """The mail order bot on Dovecot against the previous generation's single loop."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session)
    session.run("python", "benchmarks/mail_bot_throughput.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_requeue(session: nox.Session) -> None:
    """Requeue of 10,000 dead tasks on Redis as a ratio to publishing 10,000 fresh tasks."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session)
    session.run("python", "benchmarks/queue_requeue.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_mail_memory(session: nox.Session) -> None:
    """Peak memory of `plba run` while the mail order bot rejects a 50 MB attachment and an xlsx bomb."""
    install_project(session)
    session.run("python", "benchmarks/mail_bot_memory.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_action_requeue(session: nox.Session) -> None:
    """Requeue of 10,000 dead tasks through POST /actions/queues/<name>/requeue, as a ratio to publishing them."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session)
    session.run("python", "benchmarks/action_requeue.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_postgres(session: nox.Session) -> None:
    """PostgreSQL queue throughput against a bare psycopg SKIP LOCKED loop, procrastinate and PgQueuer."""
    session.run("bash", "scripts/install-test-servers.sh", external=True)
    install_project(session, "procrastinate", "pgqueuer")
    session.run("python", "benchmarks/postgres_throughput.py", *session.posargs)


@nox.session(python=PYTHON)
def bench_admin(session: nox.Session) -> None:
    """Console render time: the overview with 4 busy workers, 10,000 dead letters, against `/status` JSON."""
    install_project(session)
    session.run("python", "benchmarks/admin_render.py", *session.posargs)

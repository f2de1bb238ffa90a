"""Fixtures for the platform database and accounts tests: each on SQLite and on PostgreSQL, a quick hasher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from plba.db import Database, open_database
from plba.users import Accounts, Passwords


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        """The current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def quick_passwords() -> Passwords:
    """argon2id with the smallest cost, so tests hash in a millisecond (the parameters are not under test)."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's platform database lives (not created yet)."""
    return tmp_path / "var" / "plba.sqlite"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, db_path: Path) -> str:
    """`platform.database` for the test: a SQLite file not created yet, or an empty PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("database_url")
    return str(db_path)


@pytest.fixture
def db(location: str) -> Iterator[Database]:
    """The test's platform database, closed afterwards."""
    database = open_database(location)
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock."""
    return Clock()


@pytest.fixture
def accounts(db: Database, clock: Clock) -> Accounts:
    """Accounts on the test database with a quick hasher and the hand-moved clock."""
    return Accounts(db, passwords=quick_passwords(), clock=clock)

"""Console sessions in the platform database: hashed ids the server ends at logout, removal and password change."""

from __future__ import annotations

import pytest

from plba.users import Accounts, Role, SessionLimits
from tests.users.conftest import quick_passwords

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(accounts: Accounts) -> Accounts:
    """Accounts with one operator, alice."""
    accounts.users.add("alice", "operator", PASSWORD)
    return accounts


def session_rows(accounts: Accounts) -> list[dict]:
    """Every row of the sessions table."""
    with accounts.db.transaction() as tx:
        return tx.all("SELECT hash, user_id, created_at, seen_at FROM plba_sessions")


def test_a_session_stands_for_its_user_and_only_its_hash_is_stored(alice: Accounts) -> None:
    # When alice logs in twice
    first = alice.sessions.start(alice.users.require("alice"))
    second = alice.sessions.start(alice.users.require("alice"))
    # Then each login has its own long random id, resolving to alice
    assert first != second and len(first) >= 40
    assert alice.sessions.resolve(first).name == alice.sessions.resolve(second).name == "alice"
    # And the database holds hashes, never the ids
    stored = str(session_rows(alice))
    assert first not in stored and second not in stored and len(session_rows(alice)) == 2


def test_ending_a_session_ends_that_one_only(alice: Accounts) -> None:
    # Given two sessions of alice
    first = alice.sessions.start(alice.users.require("alice"))
    second = alice.sessions.start(alice.users.require("alice"))
    # When the first is ended (logout), then it finds nobody, for good; the other still works
    alice.sessions.end(first)
    assert alice.sessions.resolve(first) is None
    assert alice.sessions.resolve(second).name == "alice"
    alice.sessions.end(first)
    # And nonsense finds nobody
    for nonsense in ("", "x", "y" * 10_000):
        assert alice.sessions.resolve(nonsense) is None


def test_a_password_change_or_a_removal_ends_the_users_sessions(alice: Accounts) -> None:
    # Given sessions of alice and of bob
    bob = alice.users.add("bob", "viewer", PASSWORD)
    hers = alice.sessions.start(alice.users.require("alice"))
    his = alice.sessions.start(bob)
    # When alice's password changes, then her session ends and bob's does not
    alice.users.set_password("alice", "a new and longer passphrase")
    assert alice.sessions.resolve(hers) is None and alice.sessions.resolve(his).name == "bob"
    # When bob is removed and added again, then his old session finds nobody
    alice.users.remove("bob")
    alice.users.add("bob", "viewer", PASSWORD)
    assert alice.sessions.resolve(his) is None
    assert len(session_rows(alice)) == 0


def test_a_role_change_applies_to_the_next_request_of_the_session(alice: Accounts) -> None:
    # Given alice's session
    session = alice.sessions.start(alice.users.require("alice"))
    # When her role changes, then the session carries the new role
    alice.users.set_role("alice", "viewer")
    assert alice.sessions.resolve(session).role is Role.VIEWER


def test_the_idle_and_absolute_lifetimes_end_a_session(db, clock) -> None:
    # Given sessions ending after 10 minutes idle or 1 hour after login
    accounts = Accounts(db, passwords=quick_passwords(), clock=clock, limits=SessionLimits(idle=600, max_age=3600))
    alice = accounts.users.add("alice", "viewer", PASSWORD)
    busy, idle = accounts.sessions.start(alice), accounts.sessions.start(alice)
    # When one is used every 5 minutes and the other left alone
    for _ in range(3):
        clock.advance(300)
        assert accounts.sessions.resolve(busy) is not None
    # Then the idle one has ended, and the busy one lives on until its hour is up
    assert accounts.sessions.resolve(idle) is None
    for _ in range(8):
        clock.advance(300)
        assert accounts.sessions.resolve(busy) is not None
    clock.advance(301)
    assert accounts.sessions.resolve(busy) is None
    # And the next login prunes what has ended
    accounts.sessions.start(alice)
    assert len(session_rows(accounts)) == 1

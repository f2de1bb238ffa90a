"""Per-user bearer tokens: shown once, stored hashed, expiring, revocable, carrying the user's current role."""

from __future__ import annotations

import hashlib

import pytest

from plba.db import Database, open_database
from plba.users import AccountError, Accounts, InvalidToken, Role
from tests.users.conftest import quick_passwords

PASSWORD = "correct horse battery"
DAY = 86_400.0


@pytest.fixture
def alice(accounts: Accounts) -> Accounts:
    """Accounts with one operator, alice."""
    accounts.users.add("alice", "operator", PASSWORD)
    return accounts


def test_a_token_stands_for_its_user_and_only_its_hash_is_stored(alice: Accounts) -> None:
    # When a token is created
    new = alice.tokens.create("alice")
    # Then it is a long random string that resolves to alice with her role
    assert new.secret.startswith("plba_") and len(new.secret) >= 40
    principal = alice.tokens.resolve(new.secret)
    assert (principal.actor, principal.role, principal.via, principal.token_id) == ("alice", Role.OPERATOR, "token",
                                                                                    new.info.id)
    # And the database holds its SHA-256, never the token itself; the listing neither
    stored = stored_text(alice.db)
    assert new.secret not in stored
    assert hashlib.sha256(new.secret.encode()).hexdigest() in stored
    assert new.secret not in repr(new) and new.secret not in str(alice.tokens.list())


def test_on_sqlite_no_byte_of_the_file_holds_a_token(db_path) -> None:
    # Given a token made in a SQLite database
    accounts = Accounts(open_database(str(db_path)), passwords=quick_passwords())
    accounts.users.add("alice", "operator", PASSWORD)
    new = accounts.tokens.create("alice")
    accounts.db.close()
    # Then the file and its journal hold the token's hash, never the token
    stored = b"".join(path.read_bytes() for path in db_path.parent.iterdir())
    assert new.secret.encode() not in stored
    assert hashlib.sha256(new.secret.encode()).hexdigest().encode() in stored


def stored_text(db: Database) -> str:
    """Every value of the users' tables, as one text."""
    with db.transaction() as tx:
        rows = [*tx.all("SELECT * FROM plba_tokens"), *tx.all("SELECT * FROM plba_users")]
    return " ".join(str(value) for row in rows for value in row.values())


def test_tokens_are_listed_with_their_state_and_last_use(alice: Accounts, clock) -> None:
    # Given two tokens, one used
    used = alice.tokens.create("alice", expires_in=30 * DAY)
    clock.advance(1)
    alice.tokens.create("alice")
    clock.advance(5)
    alice.tokens.resolve(used.secret)
    # Then both are listed, oldest first, with expiry, state and the last use
    first, second = alice.tokens.list()
    assert first.id == used.info.id and first.state == "active"
    assert first.last_used_at == clock.now and first.expires_at == used.info.created_at + 30 * DAY
    assert second.last_used_at is None and second.expires_at is None
    assert set(first.to_dict()) == {"id", "user", "role", "state", "created_at", "expires_at", "last_used_at",
                                    "revoked_at"}


def test_an_expired_token_is_refused(alice: Accounts, clock) -> None:
    # Given a token valid for one day
    new = alice.tokens.create("alice", expires_in=DAY)
    assert alice.tokens.resolve(new.secret).actor == "alice"
    # When the day has passed, then it is refused as expired and listed so
    clock.advance(DAY)
    with pytest.raises(InvalidToken, match="the bearer token has expired"):
        alice.tokens.resolve(new.secret)
    assert alice.tokens.list()[0].state == "expired"


def test_a_revoked_token_is_refused_and_revoking_again_keeps_the_first_time(alice: Accounts, clock) -> None:
    # Given a token, revoked
    new = alice.tokens.create("alice")
    revoked = alice.tokens.revoke(new.info.id)
    # Then it is refused as revoked
    with pytest.raises(InvalidToken, match="the bearer token has been revoked"):
        alice.tokens.resolve(new.secret)
    # And a second revoke changes nothing
    clock.advance(60)
    assert alice.tokens.revoke(new.info.id).revoked_at == revoked.revoked_at
    with pytest.raises(AccountError, match="no token with id 'nope'"):
        alice.tokens.revoke("nope")


def test_a_token_has_its_users_role_at_the_time_of_use(alice: Accounts) -> None:
    # Given alice's token
    new = alice.tokens.create("alice")
    # When her role changes, then the next use carries the new role
    alice.users.set_role("alice", "viewer")
    assert alice.tokens.resolve(new.secret).role is Role.VIEWER


def test_removing_a_user_revokes_their_tokens_for_good(alice: Accounts) -> None:
    # Given alice's token, then alice removed and a new alice added
    new = alice.tokens.create("alice")
    alice.users.remove("alice")
    alice.users.add("alice", "admin", PASSWORD)
    # Then the old token stands for nobody
    with pytest.raises(InvalidToken, match="not known"):
        alice.tokens.resolve(new.secret)
    assert alice.tokens.list() == []


@pytest.mark.parametrize("secret", ["", "plba_wrong", "not-even-ours", "plba_" + "x" * 5000])
def test_unknown_tokens_are_refused(alice: Accounts, secret: str) -> None:
    # Given a token that was never issued, then it is not known
    alice.tokens.create("alice")
    with pytest.raises(InvalidToken, match="not known"):
        alice.tokens.resolve(secret)


def test_tokens_need_an_existing_user_and_a_positive_lifetime(alice: Accounts) -> None:
    # Given bad requests, then each is refused with one line and nothing is created
    with pytest.raises(AccountError, match="no user named 'ghost'"):
        alice.tokens.create("ghost")
    with pytest.raises(AccountError, match="positive"):
        alice.tokens.create("alice", expires_in=0)
    assert alice.tokens.list() == []

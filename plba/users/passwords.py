"""Password rules and argon2id hashing, with a dummy hash so an unknown user costs one verification too."""

from __future__ import annotations

import functools
import logging
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from plba.users.errors import AccountError

logger = logging.getLogger("plba.users")

# NIST SP 800-63B asks for at least 8 and prefers 15 for a password used alone; 12 is a middle
# ground for an operator console. The upper bound keeps a single login cheap.
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def check_password(password: str) -> None:
    """AccountError when `password` is empty, too short, too long or not a single line."""
    if not password:
        raise AccountError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in password):
        raise AccountError("the password must be one line without control characters")


class Passwords:
    """Hashes and verifies passwords with argon2-cffi's `PasswordHasher` (argon2id, RFC 9106 parameters)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()

    def hash(self, password: str) -> str:
        """The encoded hash of `password` (salt and parameters included)."""
        return self.hasher.hash(password)

    def verify(self, encoded: str | None, password: str) -> bool:
        """Whether `password` matches `encoded`; with None (no such user) a dummy hash is verified instead."""
        try:
            return self.hasher.verify(encoded or self._dummy, password)
        except InvalidHashError:
            logger.error("a stored password hash cannot be read; that user cannot log in until given a new password")
            return False
        except VerificationError:
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """Whether `encoded` was made with other parameters than the hasher's current ones."""
        return self.hasher.check_needs_rehash(encoded)

    @functools.cached_property
    def _dummy(self) -> str:
        return self.hasher.hash(secrets.token_urlsafe(16))

    def prepare(self) -> None:
        """Compute the dummy hash now, so the first login of an unknown user takes no longer than others."""
        _ = self._dummy

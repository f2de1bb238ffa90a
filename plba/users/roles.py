"""Roles, each including the one before, and the principal a request acts as."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from plba.users.errors import AccountError


class Role(enum.StrEnum):
    """`viewer` reads; `operator` also acts (stop, start, reload, requeue, ...); `admin` also purges, manages users."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        """Whether this role may do what `other` may."""
        return self.rank >= other.rank

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """The role named `value`; AccountError naming the choices otherwise."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise AccountError(f"unknown role {str(value)!r}: choose viewer, operator or admin") from None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: `actor` is a user name or `service`; `via` is `service`, `token` or `session`."""

    actor: str
    role: Role
    via: str
    token_id: str | None = None


# The holder of `platform.control.token`: a service credential with the admin role.
SERVICE = Principal("service", Role.ADMIN, "service")

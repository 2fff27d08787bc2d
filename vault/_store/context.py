"""``Context``: who acts and where, for audit records and the rotation lock.

Built from the environment by ``vault.config.current_context()`` (the only place that reads
it) and passed down; nothing in the store looks up a user or a host name itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Context"]


@dataclass(frozen=True)
class Context:
    """The acting user, the user behind ``sudo`` (if any) and the host name.

    Advisory only: these strings come from the environment and the operating system and are
    recorded as given, never used for a security decision.
    """

    user: str
    sudo_user: str | None
    host: str

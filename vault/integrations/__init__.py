"""Integrations with the tools around credseal: ``vault.integrations.baileys`` (migration of a
Baileys credential store, and export back)."""

__all__: list[str] = []

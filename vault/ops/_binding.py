"""One vault, one ring: every command checks that its key source serves this directory's vault.

The vault id is in the directory's sealed ``vault.state`` and, for the keyring and keyfile
sources, in the key source's binding (``vault.keysources.Binding``). A command refuses a key
source bound to another vault; a directory without a state joins the source's vault; a
source made before bindings adopts the directory's id once, with a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from vault._store.state import StateFile, VaultState
from vault._store.store import Vault, entries_of
from vault.keysources import Binding, BoundKeySource, KeySource, OSKeyringSource

__all__ = ["bind_directory", "source_name"]

logger = logging.getLogger("vault.ops")


def source_name(source: KeySource) -> str:
    """How a key source is named in messages: the keyring service, the keyfile, ..."""
    if isinstance(source, OSKeyringSource):
        return f"the OS keyring service {source.service!r}"
    path = getattr(source, "path", None)
    return f"the keyfile {path}" if path is not None else f"the {source.kind} key source"


def bind_directory(vault: Vault, source: KeySource, *, write: bool = True) -> VaultState | None:
    """Check that ``source`` serves the vault of ``vault``'s directory; with ``write``, also
    give the directory a vault id (the source's) and list it in the source's binding.

    A directory whose state opens with the ring is the ring's vault whatever id it names: a
    state made before the key source recorded a vault (0.2.0 gave each directory its own id)
    takes the source's id, with a warning, and is listed, so ``retire`` sees it.

    Returns the directory's state (None when ``write`` is False and it has none yet).

    Raises:
        ConfigurationError: the directory belongs to another vault than the key source: its
            state does not open with the ring (the message names the source's vault id).
    """
    state_file = StateFile(entries_of(vault))
    state = state_file.read()  # raises for a state another ring sealed, naming the bound id
    if not write:
        return state
    binding = source.binding() if isinstance(source, BoundKeySource) else None
    if state is None:
        state = state_file.ensure()  # adopts the source's id, and lists the directory
        binding = source.binding() if isinstance(source, BoundKeySource) else None
    elif binding is not None and state.vault_id != binding.vault_id:
        logger.warning("%s named vault %s, from before %s recorded its vault; the ring opens "
                       "it, so it is a directory of vault %s: it takes that id now",
                       vault.directory, state.vault_id, source_name(source), binding.vault_id)
        bound = binding.vault_id
        state = state_file.update(lambda s: replace(s, vault_id=bound))
    here = os.path.realpath(vault.directory)
    if isinstance(source, BoundKeySource):
        if binding is None:
            logger.warning("%s records no vault yet (made before credseal 0.2): it is bound "
                           "to vault %s of %s now", source_name(source), state.vault_id,
                           vault.directory)
            source.bind(Binding(state.vault_id).with_dir(here, state.audit_head))
        elif not binding.lists(here):
            source.bind(binding.with_dir(here, state.audit_head))
    return state

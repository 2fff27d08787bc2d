"""Tests of vault.kdf: KdfParams, profiles, caps and the Argon2id derivation."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault._crypto import kdf
from vault.errors import ConfigurationError, KeySourceError

SALT = bytes(range(16))
PASSPHRASE = "correct horse battery staple"
# Frozen: a keyfile written today must open forever, so the derivation must never change.
VECTOR_TEST = "d17ea6341ca93da6079ea2f64dc4aa31dd1aaf9caa67fb42ac4afd0714706f26"
VECTOR_DEFAULT = "853b272a44db1421c02962669a55eb0994f3cab385ed1c4c79253eee19bab49e"


def params(**overrides: Any) -> dict[str, Any]:
    """The test profile as a dict, with some fields replaced."""
    return {**kdf.TEST_PARAMS.to_dict(), **overrides}


def test_default_profile_is_rfc9106_low_memory() -> None:
    """The default is RFC 9106's second recommended option: t=3, m=64 MiB, p=4; and it derives
    the frozen vector."""
    default = kdf.profile(kdf.DEFAULT_PROFILE)
    assert kdf.DEFAULT_PROFILE == "rfc9106-low-memory"
    assert default == kdf.KdfParams(time_cost=3, memory_cost_kib=65536, parallelism=4)
    assert kdf.derive(PASSPHRASE, SALT, default).hex() == VECTOR_DEFAULT


def test_test_profile_is_cheap_and_frozen() -> None:
    """The test profile is Argon2's minimum and derives the frozen vector in well under 10 ms."""
    assert kdf.KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1) == kdf.TEST_PARAMS
    start = time.perf_counter()
    assert kdf.derive(PASSPHRASE, SALT, kdf.TEST_PARAMS).hex() == VECTOR_TEST
    assert time.perf_counter() - start < 0.05


def test_derive_depends_on_passphrase_salt_and_params() -> None:
    """Changing any input changes the 32-byte key."""
    base = kdf.derive(PASSPHRASE, SALT, kdf.TEST_PARAMS)
    assert len(base) == kdf.KEK_SIZE == 32
    others = {
        kdf.derive(PASSPHRASE + "!", SALT, kdf.TEST_PARAMS),
        kdf.derive(PASSPHRASE, bytes(16), kdf.TEST_PARAMS),
        kdf.derive(PASSPHRASE, SALT, kdf.KdfParams(2, 8, 1)),
        kdf.derive(PASSPHRASE, SALT, kdf.KdfParams(1, 16, 1)),
        kdf.derive(PASSPHRASE, SALT, kdf.KdfParams(1, 16, 2)),
    }
    assert base not in others and len(others) == 5


def test_str_passphrase_is_nfc_utf8() -> None:
    """An NFD-typed passphrase gives the same key as its NFC form and its UTF-8 bytes."""
    nfc = "pässwörd"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    keys = {kdf.derive(p, SALT, kdf.TEST_PARAMS) for p in (nfc, nfd, nfc.encode("utf-8"))}
    assert len(keys) == 1


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=64))
def test_any_text_passphrase_matches_its_nfc_bytes(text: str) -> None:
    """For any text, str and NFC UTF-8 bytes derive the same key."""
    raw = unicodedata.normalize("NFC", text).encode("utf-8")
    assert kdf.derive(text, SALT, kdf.TEST_PARAMS) == kdf.derive(raw, SALT, kdf.TEST_PARAMS)


@pytest.mark.parametrize("passphrase", ["", b"", "x" * 4097])
def test_empty_or_huge_passphrase_is_refused(passphrase: str | bytes) -> None:
    """An empty passphrase, or one over 4096 bytes, is a KeySourceError."""
    with pytest.raises(KeySourceError, match="passphrase"):
        kdf.derive(passphrase, SALT, kdf.TEST_PARAMS)


@pytest.mark.parametrize("salt", [b"", bytes(15), bytes(17), "0" * 16])
def test_salt_must_be_16_bytes(salt: Any) -> None:
    """Salts of any other size (or type) are refused."""
    with pytest.raises(ConfigurationError, match="salt"):
        kdf.derive(PASSPHRASE, salt, kdf.TEST_PARAMS)


@pytest.mark.parametrize(("field", "value"), [
    ("time_cost", 0), ("time_cost", 11), ("time_cost", True), ("time_cost", 1.0),
    ("memory_cost_kib", 7), ("memory_cost_kib", 1024 * 1024 + 1), ("memory_cost_kib", 2**62),
    ("memory_cost_kib", "64"), ("parallelism", 0), ("parallelism", 17), ("parallelism", None),
])
def test_out_of_range_or_mistyped_params_name_the_field(field: str, value: Any) -> None:
    """Each cap and type rule is enforced, and the error names the field."""
    with pytest.raises(ConfigurationError, match=field):
        kdf.KdfParams.from_dict(params(**{field: value}))


def test_memory_must_cover_the_lanes() -> None:
    """Argon2 needs 8 KiB per lane: 4 lanes with 16 KiB is refused."""
    with pytest.raises(ConfigurationError, match="memory_cost_kib"):
        kdf.KdfParams(time_cost=1, memory_cost_kib=16, parallelism=4)


def test_total_work_is_capped() -> None:
    """Each field within its cap, but t=10 at 1 GiB exceeds the work cap."""
    with pytest.raises(ConfigurationError, match="time_cost \\* memory_cost_kib"):
        kdf.KdfParams(time_cost=10, memory_cost_kib=1024 * 1024, parallelism=4)
    assert kdf.KdfParams(time_cost=4, memory_cost_kib=1024 * 1024, parallelism=4)


def test_hostile_params_are_refused_before_hashing() -> None:
    """A hostile 2^62 KiB request is refused at once (no allocation), without echoing it."""
    start = time.perf_counter()
    with pytest.raises(ConfigurationError, match="memory_cost_kib") as caught:
        kdf.KdfParams.from_dict(params(memory_cost_kib=2**62, time_cost=10))
    assert time.perf_counter() - start < 0.01
    assert str(2**62) not in caught.value.message


@pytest.mark.parametrize("data", [
    None, [], "t=1", {"time_cost": 1, "memory_cost_kib": 8},
    {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1, "version": 19},
])
def test_from_dict_needs_exactly_the_three_keys(data: Any) -> None:
    """Missing keys, extra keys and non-objects are refused."""
    with pytest.raises(ConfigurationError, match="KDF parameters"):
        kdf.KdfParams.from_dict(data)


def test_params_round_trip_through_dict() -> None:
    """to_dict and from_dict are inverse, and the params are frozen."""
    p = kdf.profile("rfc9106-low-memory")
    assert kdf.KdfParams.from_dict(p.to_dict()) == p
    with pytest.raises(AttributeError):
        p.time_cost = 1  # type: ignore[misc]


def test_profiles_by_name() -> None:
    """Known names resolve, unknown ones list the choices, and params map back to names."""
    assert kdf.profile("test") is kdf.TEST_PARAMS
    assert kdf.profile_name(kdf.TEST_PARAMS) == "test"
    assert kdf.profile_name(kdf.KdfParams(2, 64, 1)) is None
    with pytest.raises(ConfigurationError, match="rfc9106-low-memory, test"):
        kdf.profile("fast")

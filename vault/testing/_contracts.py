"""The contract suites every source must pass (keyring's ``testing/backend.py`` style).

Imports pytest: ``vault.testing`` loads this module only when a suite is asked for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from vault.sources._base import (
    ABSENT,
    AsyncConditionalSource,
    AsyncSource,
    AsyncVersionedSource,
    ConditionalSource,
    Source,
    VersionedSource,
    supports_versions,
    value_digest,
)

__all__ = ["CONTRACT_VALUES", "LARGE_VALUE", "AsyncSourceContract",
           "AsyncVersionedSourceContract", "SharedTierContract", "SourceContract",
           "VersionedSourceContract", "same"]


#: Values every source must round-trip with their types: bytes stay bytes, ints stay ints.
CONTRACT_VALUES: tuple[Any, ...] = (
    "a string", 42, -1.5, True, b"\x00\xffbytes", [], {},
    {"noiseKey": {"private": bytes(range(32)), "public": b"\x05" * 33}, "registrationId": 4711,
     "me": {"id": "4915100000000:7@s.whatsapp.net", "name": "Gr\u00fc\u00dfe \U0001f510"},
     "nested": [1, [2, [3, {"$b": "not bytes", "deep": None}]]], "big": 2**70},
)


LARGE_VALUE = {"blob": bytes(range(256)) * 1024, "text": "x" * 100_000}  # ~360 KiB stored


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (``1 == 1.0 == True`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class SourceContract:
    """The behaviour every :class:`~vault.sources.Source` must have.

    Subclass it in a test module and define a ``source`` fixture that returns a source on an
    empty store (and closes it afterwards).
    """

    def test_is_a_source(self, source: Source) -> None:
        """The source has load, save and delete."""
        assert isinstance(source, Source)

    def test_missing_name_loads_none(self, source: Source) -> None:
        """A name that was never saved loads as None."""
        assert source.load("contract-missing") is None

    @pytest.mark.parametrize("value", CONTRACT_VALUES, ids=lambda v: type(v).__name__)
    def test_save_then_load_round_trips(self, source: Source, value: Any) -> None:
        """A saved value loads back equal, with the same types (bytes stay bytes)."""
        source.save("contract-value", value)
        assert same(source.load("contract-value"), value)

    def test_save_overwrites(self, source: Source) -> None:
        """A second save replaces the first value."""
        source.save("contract-over", {"v": 1})
        source.save("contract-over", {"v": 2})
        assert source.load("contract-over") == {"v": 2}

    def test_delete_removes(self, source: Source) -> None:
        """A deleted name loads as None."""
        source.save("contract-del", "x")
        source.delete("contract-del")
        assert source.load("contract-del") is None

    def test_delete_missing_is_not_an_error(self, source: Source) -> None:
        """Deleting a name that does not exist does nothing."""
        source.delete("contract-never-there")
        assert source.load("contract-never-there") is None

    def test_save_if_writes_only_over_its_base(self, source: Source) -> None:
        """save_if (where the source has it) writes only while the name holds the value of
        the base digest; ABSENT means no value; a None value deletes; keys' order does not
        change a digest."""
        if not isinstance(source, ConditionalSource):
            pytest.skip("this source has no save_if: the cache compares and saves itself")
        assert source.save_if("contract-cas", {"v": 1}, value_digest({"other": 0})) is False
        assert source.load("contract-cas") is None
        assert source.save_if("contract-cas", {"a": 1, "b": 2}, ABSENT) is True
        assert source.save_if("contract-cas", {"v": 2}, ABSENT) is False
        assert source.save_if("contract-cas", {"v": 2}, value_digest({"b": 2, "a": 1})) is True
        assert source.save_if("contract-cas", {"v": 3}, value_digest({"a": 1, "b": 2})) is False
        assert source.load("contract-cas") == {"v": 2}
        assert source.save_if("contract-cas", None, value_digest({"v": 1})) is False
        assert source.save_if("contract-cas", None, value_digest({"v": 2})) is True
        assert source.load("contract-cas") is None
        assert source.save_if("contract-cas", None, ABSENT) is True  # nothing to delete: ok

    def test_names_are_independent(self, source: Source) -> None:
        """Saving or deleting one name leaves the others alone."""
        source.save("contract-a", "a")
        source.save("contract-b", "b")
        source.delete("contract-a")
        assert source.load("contract-a") is None and source.load("contract-b") == "b"

    def test_values_are_copies(self, source: Source) -> None:
        """Mutating a saved or loaded object does not change what is stored."""
        value = {"list": [1, 2]}
        source.save("contract-copy", value)
        value["list"].append(3)
        loaded = source.load("contract-copy")
        loaded["list"].append(4)
        assert source.load("contract-copy") == {"list": [1, 2]}

    def test_unicode_and_long_names(self, source: Source) -> None:
        """Names are any Unicode text up to 1024 bytes of UTF-8, kept distinct."""
        names = ["gr\u00fc\u00dfe/\U0001f510 company 42", "n" * 1024, "N" * 1024]
        for i, name in enumerate(names):
            source.save(name, i)
        assert [source.load(name) for name in names] == [0, 1, 2]

    def test_large_value(self, source: Source) -> None:
        """A value of a few hundred KiB round-trips."""
        source.save("contract-large", LARGE_VALUE)
        assert same(source.load("contract-large"), LARGE_VALUE)


class AsyncSourceContract:
    """The behaviour every :class:`~vault.sources.AsyncSource` must have.

    Define a ``source`` fixture returning a fresh source on an empty store. Each test runs in
    its own event loop (``asyncio.run``) and awaits ``source.aclose()`` at its end if the
    source has one, inside that loop (connections belong to the loop that opened them).
    """

    @staticmethod
    def run(source: AsyncSource, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body()`` in a new event loop, then close ``source`` in the same loop."""
        async def main() -> None:
            try:
                await body()
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()

        asyncio.run(main())

    def test_is_an_async_source(self, source: AsyncSource) -> None:
        """The source has coroutine methods load, save and delete."""
        assert isinstance(source, AsyncSource)
        assert inspect.iscoroutinefunction(source.load)
        self.run(source, _noop)

    @pytest.mark.parametrize("value", CONTRACT_VALUES, ids=lambda v: type(v).__name__)
    def test_round_trip_overwrite_delete(self, source: AsyncSource, value: Any) -> None:
        """Missing is None; saved values round-trip with their types; saves overwrite;
        deletes remove, and deleting a missing name is not an error."""
        async def body() -> None:
            assert await source.load("contract-value") is None
            await source.save("contract-value", "first")
            await source.save("contract-value", value)
            assert same(await source.load("contract-value"), value)
            await source.delete("contract-value")
            await source.delete("contract-value")
            assert await source.load("contract-value") is None

        self.run(source, body)

    def test_save_if_writes_only_over_its_base(self, source: AsyncSource) -> None:
        """As the sync contract's save_if test, awaited."""
        if not isinstance(source, AsyncConditionalSource):
            pytest.skip("this source has no save_if: the cache compares and saves itself")

        async def body() -> None:
            assert await source.save_if("contract-cas", {"v": 1}, value_digest(0)) is False
            assert await source.save_if("contract-cas", {"a": 1, "b": 2}, ABSENT) is True
            assert await source.save_if("contract-cas", {"v": 2}, ABSENT) is False
            assert await source.save_if("contract-cas", {"v": 2},
                                        value_digest({"b": 2, "a": 1})) is True
            assert await source.load("contract-cas") == {"v": 2}
            assert await source.save_if("contract-cas", None, value_digest({"v": 2})) is True
            assert await source.load("contract-cas") is None

        self.run(source, body)

    def test_names_and_copies(self, source: AsyncSource) -> None:
        """Names are independent and long; stored values are copies; large values work."""
        async def body() -> None:
            value = {"list": [1]}
            await source.save("n" * 1024, value)
            await source.save("gr\u00fc\u00dfe \U0001f510", LARGE_VALUE)
            value["list"].append(2)
            assert await source.load("n" * 1024) == {"list": [1]}
            assert same(await source.load("gr\u00fc\u00dfe \U0001f510"), LARGE_VALUE)
            await source.delete("n" * 1024)
            assert await source.load("gr\u00fc\u00dfe \U0001f510") is not None

        self.run(source, body)


def _check_version(version: object) -> int:
    """Assert ``version`` is an int of microseconds since the epoch (within a day of this
    host's clock: seconds or nanoseconds would be off by a factor of a thousand)."""
    assert type(version) is int, f"a version is an int, not {type(version).__name__}"
    assert abs(version - time.time_ns() // 1000) < 86_400_000_000, "not microseconds"
    return version


class VersionedSourceContract(SourceContract):
    """The behaviour every :class:`~vault.sources.VersionedSource` must have, on top of
    :class:`SourceContract`; the same ``source`` fixture."""

    def test_is_a_versioned_source(self, source: VersionedSource) -> None:
        """The source has load_versioned, save_versioned and delete_versioned."""
        assert isinstance(source, VersionedSource) and supports_versions(source)

    def test_versions_increase_over_saves(self, source: VersionedSource) -> None:
        """Ten saves of one name in a tight loop get strictly increasing versions, each the
        version load_versioned then returns, in microseconds."""
        versions = []
        for i in range(10):
            versions.append(_check_version(source.save_versioned("contract-ver", {"i": i})))
            assert source.load_versioned("contract-ver") == ({"i": i}, versions[-1])
        assert versions == sorted(set(versions)), versions

    def test_load_returns_the_saved_version(self, source: VersionedSource) -> None:
        """load_versioned returns the value (types kept) and the version save_versioned
        returned; a missing name loads as (None, a version of now)."""
        version = source.save_versioned("contract-ver", CONTRACT_VALUES[-1])
        value, loaded = source.load_versioned("contract-ver")
        assert same(value, CONTRACT_VALUES[-1]) and loaded == version
        missing, now = source.load_versioned("contract-ver-missing")
        assert missing is None
        _check_version(now)

    def test_delete_then_recreate(self, source: VersionedSource) -> None:
        """A delete's tombstone is greater than the last save's version; the name then loads
        as absent with a version >= the tombstone; re-created, it gets a greater one."""
        saved = source.save_versioned("contract-ver", "x")
        tombstone = _check_version(source.delete_versioned("contract-ver"))
        assert tombstone > saved
        value, absent = source.load_versioned("contract-ver")
        assert value is None and absent >= tombstone
        assert source.save_versioned("contract-ver", "y") > tombstone
        assert source.load("contract-ver") == "y"

    def test_delete_of_a_missing_name(self, source: VersionedSource) -> None:
        """Deleting a missing name is not an error and returns a version of now."""
        version = _check_version(source.delete_versioned("contract-ver-never"))
        assert source.load_versioned("contract-ver-never")[1] >= version
        assert source.save_versioned("contract-ver-never", 1) > version

    def test_plain_save_and_save_if_bump_the_version(self, source: VersionedSource) -> None:
        """save bumps the version; save_if (if the source has it) bumps it when it writes and
        leaves it alone when it does not."""
        first = source.save_versioned("contract-ver", 1)
        source.save("contract-ver", 2)
        second = source.load_versioned("contract-ver")[1]
        assert second > first
        if not isinstance(source, ConditionalSource):
            return
        assert source.save_if("contract-ver", 3, value_digest(1)) is False
        assert source.load_versioned("contract-ver") == (2, second)
        assert source.save_if("contract-ver", 3, value_digest(2)) is True
        third = source.load_versioned("contract-ver")[1]
        assert third > second
        tombstone = source.delete_versioned("contract-ver")
        assert source.save_if("contract-ver", 4, ABSENT) is True
        assert source.load_versioned("contract-ver")[1] > tombstone > third

    def test_versions_of_names_are_independent(self, source: VersionedSource) -> None:
        """Saving or deleting one name leaves another's value and version alone."""
        version_b = source.save_versioned("contract-b", "b")
        source.save_versioned("contract-a", "a")
        source.save("contract-a", "a2")
        source.delete_versioned("contract-a")
        assert source.load_versioned("contract-b") == ("b", version_b)


class AsyncVersionedSourceContract(AsyncSourceContract):
    """The behaviour every :class:`~vault.sources.AsyncVersionedSource` must have, on top of
    :class:`AsyncSourceContract`; the same ``source`` fixture."""

    def test_is_an_async_versioned_source(self, source: AsyncVersionedSource) -> None:
        """The source has coroutine methods load_versioned, save_versioned, delete_versioned."""
        assert isinstance(source, AsyncVersionedSource) and supports_versions(source)
        assert inspect.iscoroutinefunction(source.load_versioned)
        self.run(source, _noop)

    def test_versions_increase_over_saves(self, source: AsyncVersionedSource) -> None:
        """As the sync contract's: ten saves get strictly increasing versions, each loaded
        back."""
        async def body() -> None:
            versions = []
            for i in range(10):
                versions.append(_check_version(await source.save_versioned("contract-ver", i)))
                assert await source.load_versioned("contract-ver") == (i, versions[-1])
            assert versions == sorted(set(versions)), versions

        self.run(source, body)

    def test_delete_then_recreate(self, source: AsyncVersionedSource) -> None:
        """As the sync contract's: tombstone > last save, absent >= tombstone, re-created >
        tombstone; deleting a missing name returns a version of now."""
        async def body() -> None:
            saved = await source.save_versioned("contract-ver", {"b": b"\x00"})
            assert await source.load_versioned("contract-ver") == ({"b": b"\x00"}, saved)
            tombstone = _check_version(await source.delete_versioned("contract-ver"))
            assert tombstone > saved
            value, absent = await source.load_versioned("contract-ver")
            assert value is None and absent >= tombstone
            assert await source.save_versioned("contract-ver", "y") > tombstone
            never = _check_version(await source.delete_versioned("contract-ver-never"))
            assert (await source.load_versioned("contract-ver-never"))[1] >= never

        self.run(source, body)

    def test_plain_save_and_save_if_bump_the_version(self, source: AsyncVersionedSource) -> None:
        """As the sync contract's: save and a writing save_if bump the version, a refused
        save_if does not."""
        async def body() -> None:
            first = await source.save_versioned("contract-ver", 1)
            await source.save("contract-ver", 2)
            second = (await source.load_versioned("contract-ver"))[1]
            assert second > first
            if not isinstance(source, AsyncConditionalSource):
                return
            assert await source.save_if("contract-ver", 3, value_digest(1)) is False
            assert await source.load_versioned("contract-ver") == (2, second)
            assert await source.save_if("contract-ver", 3, value_digest(2)) is True
            third = (await source.load_versioned("contract-ver"))[1]
            assert third > second
            tombstone = await source.delete_versioned("contract-ver")
            assert await source.save_if("contract-ver", 4, ABSENT) is True
            assert (await source.load_versioned("contract-ver"))[1] > tombstone > third

        self.run(source, body)

    def test_versions_of_names_are_independent(self, source: AsyncVersionedSource) -> None:
        """As the sync contract's: one name's writes leave another's version alone."""
        async def body() -> None:
            version_b = await source.save_versioned("contract-b", "b")
            await source.save_versioned("contract-a", "a")
            await source.save("contract-a", "a2")
            await source.delete_versioned("contract-a")
            assert await source.load_versioned("contract-b") == ("b", version_b)

        self.run(source, body)


async def _noop() -> None:
    return None


def _record(version: int, body: bytes = b"envelope bytes") -> bytes:
    from vault.cache._shared import pack_record

    return pack_record(version, body)


class SharedTierContract:
    """The behaviour every shared tier (``vault.cache.SharedTier``) must have.

    Subclass it and define a ``tier`` fixture returning a tier on an empty store. The suite
    stores records with made-up envelopes: a tier never looks inside one.
    """

    @staticmethod
    def later(ms: int = 60_000) -> int:
        """A ``PXAT`` ``ms`` from now."""
        return time.time_ns() // 1_000_000 + ms

    def test_missing_stem_is_none(self, tier: Any) -> None:
        assert tier.get("0" * 64) is None
        assert tier.mget(["0" * 64, "1" * 64]) == [None, None]

    def test_put_then_get_returns_the_same_bytes(self, tier: Any) -> None:
        record = _record(7, bytes(range(256)) * 40)
        assert tier.put("a" * 64, record, self.later()) is True
        assert tier.get("a" * 64) == record

    def test_a_lower_version_never_replaces_a_higher(self, tier: Any) -> None:
        stem = "b" * 64
        assert tier.put(stem, _record(10, b"ten"), self.later())
        assert tier.put(stem, _record(9, b"nine"), self.later()) is False
        assert tier.get(stem) == _record(10, b"ten")
        assert tier.put(stem, _record(10, b"ten again"), self.later()) is True  # a refresh
        assert tier.put(stem, _record(10**18, b"much later"), self.later()) is True
        assert tier.get(stem) == _record(10**18, b"much later")

    def test_what_is_not_a_record_is_replaced(self, tier: Any) -> None:
        stem = "c" * 64
        assert tier.put(stem, b"junk", self.later())
        assert tier.put(stem, _record(1), self.later()) is True
        assert tier.get(stem) == _record(1)

    def test_delete_if_removes_only_the_same_bytes(self, tier: Any) -> None:
        stem = "d" * 64
        tier.put(stem, _record(3), self.later())
        assert tier.delete_if(stem, _record(3, b"other")) is False
        assert tier.get(stem) == _record(3)
        assert tier.delete_if(stem, _record(3)) is True
        assert tier.get(stem) is None
        assert tier.delete_if(stem, _record(3)) is False

    def test_replace_if_replaces_only_the_same_bytes(self, tier: Any) -> None:
        stem = "9" * 64
        assert tier.replace_if(stem, _record(1), _record(2), self.later()) is False
        assert tier.get(stem) is None
        tier.put(stem, _record(1), self.later())
        assert tier.replace_if(stem, _record(1, b"other"), _record(2), self.later()) is False
        assert tier.replace_if(stem, _record(1), _record(1, b"rewrapped"), self.later())
        assert tier.get(stem) == _record(1, b"rewrapped")

    def test_mget_answers_in_order(self, tier: Any) -> None:
        stems = [f"{i:064x}" for i in range(50)]
        for i, stem in enumerate(stems):
            if i % 3:
                tier.put(stem, _record(i), self.later())
        assert tier.mget(stems) == [_record(i) if i % 3 else None for i in range(50)]
        assert tier.mget([]) == []

    def test_records_expire_at_their_time(self, tier: Any) -> None:
        tier.put("e" * 64, _record(1), self.later(300))
        assert tier.put("f" * 64, _record(1), self.later(-1000)) is True  # at once gone
        assert tier.get("f" * 64) is None
        assert tier.get("e" * 64) == _record(1)
        deadline = time.monotonic() + 5
        while tier.get("e" * 64) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tier.get("e" * 64) is None

    def test_stems_lists_what_is_stored(self, tier: Any) -> None:
        stems = {f"{i:064x}" for i in range(30)}
        for stem in stems:
            tier.put(stem, _record(1), self.later())
        assert set(tier.stems()) == stems

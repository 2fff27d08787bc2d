"""The contract suites every source must pass (keyring's ``testing/backend.py`` style).

Imports pytest: ``vault.testing`` loads this module only when a suite is asked for.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from vault.sources._base import (
    ABSENT,
    AsyncConditionalSource,
    AsyncSource,
    ConditionalSource,
    Source,
    value_digest,
)

__all__ = ["CONTRACT_VALUES", "LARGE_VALUE", "AsyncSourceContract", "SourceContract", "same"]


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


async def _noop() -> None:
    return None

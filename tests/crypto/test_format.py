"""Tests of vault.format: the v1 header layout, parsed strictly before any cryptography."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault._crypto import format as fmt
from vault.errors import FormatError


def make_header(**overrides: object) -> fmt.Header:
    """Return a valid header with fixed field values, optionally overridden."""
    fields: dict[str, object] = dict(
        kind=fmt.KIND_ENTRY, key_id=b"K" * 8, salt=b"S" * 32, nonce=b"N" * 12,
        commitment=b"C" * 32, created_at=1_700_000_000_000, expires_at=1_700_000_300_000,
        payload_length=20, name="company-42")
    fields.update(overrides)
    return fmt.Header(**fields)  # type: ignore[arg-type]


def envelope(header: fmt.Header | None = None) -> bytes:
    """Return header bytes followed by a payload of the declared length."""
    header = header or make_header()
    return fmt.pack_header(header) + b"P" * header.payload_length


def test_layout_matches_the_spec() -> None:
    """Field offsets and sizes are those of docs/format.md section 2."""
    data = envelope()
    assert fmt.FIXED_HEADER_SIZE == 112
    assert data[0:4] == b"CVLT" and data[4] == 1 and data[5] == fmt.KIND_ENTRY
    assert data[6:14] == b"K" * 8 and data[14:46] == b"S" * 32 and data[46:58] == b"N" * 12
    assert data[58:90] == b"C" * 32
    assert struct.unpack(">QQIH", data[90:112]) == (1_700_000_000_000, 1_700_000_300_000, 20,
                                                     len("company-42"))
    assert data[112:122] == b"company-42" and data[122:] == b"P" * 20


def test_parse_inverts_pack() -> None:
    """parse returns the header, the exact header bytes and the payload."""
    header = make_header(name="é ü 名前")
    data = envelope(header)
    parsed, header_bytes, payload = fmt.parse(data)
    assert parsed == header
    assert header_bytes == fmt.pack_header(header) and payload == b"P" * 20


@pytest.mark.parametrize("data, message", [
    (b"", "bad magic"),
    (b"PK\x03\x04" + bytes(200), "bad magic"),
    (b'{"json": true}' + bytes(200), "bad magic"),
    (b"CVLT", "size"),
    (b"CVLT" + bytes(100), "size"),
])
def test_foreign_and_short_files(data: bytes, message: str) -> None:
    """Non-vault and short files are format errors naming the problem."""
    with pytest.raises(FormatError, match=message):
        fmt.parse(data)


def test_unknown_version_is_named() -> None:
    """A future version is refused with its number."""
    data = bytearray(envelope())
    data[4] = 2
    with pytest.raises(FormatError, match="unsupported format version 2"):
        fmt.parse(bytes(data))


@pytest.mark.parametrize("kind", [0, 3, 255])
def test_unknown_kind(kind: int) -> None:
    """Only the defined kinds parse."""
    data = bytearray(envelope())
    data[5] = kind
    with pytest.raises(FormatError, match="kind"):
        fmt.parse(bytes(data))


def test_truncated_and_extended_files() -> None:
    """Any length other than the declared one fails before cryptography."""
    data = envelope()
    for bad in (data[:-1], data + b"x", data[:-20], data[: fmt.FIXED_HEADER_SIZE + 5]):
        with pytest.raises(FormatError):
            fmt.parse(bad)


def test_name_rules() -> None:
    """Names must be 1..1024 bytes of UTF-8 without control characters."""
    fmt.check_name("a" * 1024)
    for bad in ("", "a" * 1025, "é" * 513, "tab\there", "nl\n", "nul\0", "del\x7f", "c1\x85",
                "\ud800"):
        with pytest.raises(FormatError):
            fmt.check_name(bad)
    with pytest.raises(FormatError):
        fmt.check_name(b"bytes")  # type: ignore[arg-type]


def test_name_in_file_is_checked() -> None:
    """A parsed name with invalid UTF-8 or a control character is a format error."""
    good = envelope(make_header(name="abcd"))
    for replacement in (b"\xff\xfe\xfd\xfc", b"ab\nd"):
        bad = good[:112] + replacement + good[116:]
        with pytest.raises(FormatError, match="name"):
            fmt.parse(bad)


def test_name_length_bounds_in_file() -> None:
    """NAME_LENGTH of 0 or over 1024 is refused."""
    data = bytearray(envelope())
    for length in (0, 1025, 65535):
        data[110:112] = struct.pack(">H", length)
        with pytest.raises(FormatError):
            fmt.parse(bytes(data))


def test_payload_length_bounds() -> None:
    """A payload shorter than a tag, or over the maximum, is refused."""
    with pytest.raises(FormatError):
        fmt.pack_header(make_header(payload_length=15))
    with pytest.raises(FormatError):
        fmt.pack_header(make_header(payload_length=fmt.MAX_PAYLOAD_LENGTH + 1))
    data = bytearray(envelope())
    data[106:110] = struct.pack(">I", 2**32 - 1)
    with pytest.raises(FormatError):
        fmt.parse(bytes(data))


def test_timestamps_must_be_ordered_and_bounded() -> None:
    """created_at <= expires_at < 2^63, at packing and at parsing."""
    for created, expires in ((5, 4), (0, 2**63), (2**63, 2**63)):
        with pytest.raises(FormatError, match="timestamps"):
            fmt.pack_header(make_header(created_at=created, expires_at=expires))
    data = bytearray(envelope())
    data[90:98] = struct.pack(">Q", 2**64 - 1)
    with pytest.raises(FormatError, match="timestamps"):
        fmt.parse(bytes(data))


def test_fixed_fields_must_have_their_size() -> None:
    """pack_header refuses a salt, nonce, id or commitment of the wrong size."""
    for field in ("key_id", "salt", "nonce", "commitment"):
        with pytest.raises(FormatError):
            fmt.pack_header(make_header(**{field: b"x"}))


def test_header_prefix_parse_needs_no_payload() -> None:
    """parse_header reads a header from a prefix and the file size (for listings)."""
    data = envelope()
    header = fmt.parse_header(data[:200], len(data))
    assert header == make_header()
    with pytest.raises(FormatError):
        fmt.parse_header(data[:200], len(data) + 1)
    with pytest.raises(FormatError):
        fmt.parse_header(data[:50], len(data))


@given(st.binary(max_size=400))
def test_parse_of_arbitrary_bytes_only_raises_format_error(data: bytes) -> None:
    """Any input either parses or raises FormatError."""
    with contextlib.suppress(FormatError):
        fmt.parse(data)


@given(st.integers(0, 200), st.integers(0, 255))
def test_parse_of_mutated_envelope(position: int, value: int) -> None:
    """A valid envelope with one byte changed parses or raises FormatError, nothing else."""
    data = bytearray(envelope())
    data[position % len(data)] = value
    with contextlib.suppress(FormatError):
        fmt.parse(bytes(data))


def _long_way(data: bytes) -> tuple[fmt.Header, bytes, bytes] | str:
    """parse by parse_header alone (the rule-by-rule path), or the error it raises."""
    try:
        header = fmt.parse_header(data, len(data))
    except FormatError as exc:
        return str(exc)
    end = len(data) - header.payload_length
    return header, data[:end], data[end:]


@given(st.lists(st.tuples(st.integers(0, 140), st.integers(0, 255)), max_size=3),
       st.integers(-3, 3), st.sampled_from(["company-42", "é", "a\u2028b", "x" * 1024, "\x7f"]))
def test_parse_fast_path_agrees_with_the_rules(edits: list[tuple[int, int]], resize: int,
                                               name: str) -> None:
    """parse's one-test fast path gives what parse_header's rule-by-rule checks give, for
    valid envelopes and for envelopes with bytes changed, cut or added anywhere in the header."""
    try:
        data = bytearray(envelope(make_header(name=name)))
    except FormatError:  # a name pack refuses: plant it by hand
        raw = name.encode()
        data = bytearray(envelope(make_header(name="n" * len(raw))))
        data[112:112 + len(raw)] = raw
    for offset, value in edits:
        if offset < len(data):
            data[offset] = value
    data = data[:len(data) + resize] if resize < 0 else data + b"P" * resize
    expected = _long_way(bytes(data))
    if isinstance(expected, str):
        with pytest.raises(FormatError) as info:
            fmt.parse(bytes(data))
        assert str(info.value) == expected
    else:
        assert fmt.parse(bytes(data)) == expected


@given(st.sampled_from([0, 1, 2, 3]), st.sampled_from([8, 7]), st.sampled_from([32, 31, 33]),
       st.sampled_from([0, -1, 5, 2**63 - 1, 2**63]), st.sampled_from([0, 5, 2**63 - 1, 2**63]),
       st.sampled_from([15, 16, fmt.MAX_PAYLOAD_LENGTH, fmt.MAX_PAYLOAD_LENGTH + 1]),
       st.sampled_from(["company-42", "", "é", "a\u2028b", "x" * 1024, "x" * 1025, "\x7f",
                        "a\nb", "\ud800", "\u00a0"]))
def test_pack_fast_path_agrees_with_the_rules(kind: int, id_size: int, salt_size: int,
                                              created: int, expires: int, payload: int,
                                              name: str) -> None:
    """pack's one-test fast path gives the bytes, or the error, of the rule-by-rule checks."""
    fields = (kind, b"K" * id_size, b"S" * salt_size, b"N" * 12, b"C" * 32, created, expires,
              payload, name, fmt.VERSION)
    try:
        expected: bytes | str = fmt._pack_rule_by_rule(*fields)
    except (FormatError, struct.error) as exc:
        expected = f"{type(exc).__name__}: {exc}"
    try:
        got: bytes | str = fmt.pack_fields(*fields)
    except (FormatError, struct.error) as exc:
        got = f"{type(exc).__name__}: {exc}"
    assert got == expected


_PACK_BASE = {"kind": fmt.KIND_ENTRY, "key_id": b"K" * 8, "salt": b"S" * 32, "nonce": b"N" * 12,
              "commitment": b"C" * 32, "created_at": 5, "expires_at": 5, "payload_length": 16,
              "name": "company-42"}


@pytest.mark.parametrize(("field", "value"), [
    ("kind", 0), ("kind", fmt.KIND_JOURNAL), ("kind", 3), ("key_id", b"K" * 7),
    ("salt", b"S" * 31), ("nonce", b"N" * 13), ("commitment", b""), ("created_at", -1),
    ("created_at", 6), ("expires_at", 2**63), ("expires_at", 2**63 - 1),
    ("payload_length", 15), ("payload_length", fmt.MAX_PAYLOAD_LENGTH),
    ("payload_length", fmt.MAX_PAYLOAD_LENGTH + 1), ("name", ""), ("name", "x" * 1024),
    ("name", "x" * 1025), ("name", "é" * 513), ("name", "a\nb"), ("name", "\x7f"),
    ("name", "a\u2028b"), ("name", "\u00a0"), ("name", "\ud800"), ("name", b"company"),
])
def test_pack_fast_path_agrees_with_the_rules_field_by_field(field: str, value: object) -> None:
    """Each field changed alone: pack gives the bytes, or the error, of the rule-by-rule path."""
    fields = {**_PACK_BASE, field: value}
    args = (*fields.values(), fmt.VERSION)
    try:
        expected: bytes | str = fmt._pack_rule_by_rule(*args)  # type: ignore[arg-type]
    except FormatError as exc:
        expected = str(exc)
    try:
        got: bytes | str = fmt.pack_fields(*args)  # type: ignore[arg-type]
    except FormatError as exc:
        got = str(exc)
    assert got == expected

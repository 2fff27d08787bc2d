"""The v1 envelope byte layout, as specified in ``docs/format.md``.

Constants and steps are named as in the spec. This module does no cryptography and no I/O:
it packs a header and parses a file into its unverified fields (spec section 6, steps 1-6).
Everything it returns from :func:`parse` is unverified until ``aead`` has authenticated it.
"""

from __future__ import annotations

import struct
import unicodedata
from typing import NamedTuple

from vault.errors import FormatError

MAGIC = b"CVLT"
VERSION = 1
KIND_ENTRY = 1
KIND_JOURNAL = 2
# 3 stays undefined: a frozen vector (format-kind-3) pins it as a format error.
KIND_STATE = 4
KIND_ROW = 5  # a sealed row of a primary table (docs/format.md section 15)
KINDS = frozenset({KIND_ENTRY, KIND_JOURNAL, KIND_STATE, KIND_ROW})

KEY_ID_SIZE = 8
SALT_SIZE = 32
NONCE_SIZE = 12
COMMITMENT_SIZE = 32
TAG_SIZE = 16

MAX_NAME_LENGTH = 1024
MAX_PLAINTEXT_LENGTH = 16 * 1024 * 1024
MAX_PAYLOAD_LENGTH = MAX_PLAINTEXT_LENGTH + TAG_SIZE
MAX_TIMESTAMP = 2**63 - 1

# magic, version, kind, key id, salt, nonce, commitment, created_at, expires_at,
# payload length, name length
_FIXED = struct.Struct(">4sBB8s32s12s32sQQIH")
_pack_fixed, _unpack_fixed = _FIXED.pack, _FIXED.unpack_from
FIXED_HEADER_SIZE = _FIXED.size
MIN_ENVELOPE_SIZE = FIXED_HEADER_SIZE + 1 + TAG_SIZE
MAX_ENVELOPE_SIZE = FIXED_HEADER_SIZE + MAX_NAME_LENGTH + MAX_PAYLOAD_LENGTH

_FIELD_SIZES = (KEY_ID_SIZE, SALT_SIZE, NONCE_SIZE, COMMITMENT_SIZE)

assert FIXED_HEADER_SIZE == 112  # docs/format.md section 2


class Header(NamedTuple):
    """The header fields of one envelope (unverified when they come from :func:`parse`)."""

    kind: int
    key_id: bytes
    salt: bytes
    nonce: bytes
    commitment: bytes
    created_at: int
    expires_at: int
    payload_length: int
    name: str
    version: int = VERSION


_new_header = tuple.__new__


def check_name(name: str) -> bytes:
    """Return the UTF-8 bytes of an entry name, or raise ``FormatError`` (spec 5, step 1).

    The message names the rule that was broken; a name is not secret, but it is not echoed
    either, because it may be long or contain terminal control characters.
    """
    if not isinstance(name, str):
        raise FormatError(f"entry name must be a str, not {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("entry name is not valid Unicode (lone surrogate)") from None
    _check_name_bytes(raw, name)
    return raw


def _check_name_bytes(raw: bytes, name: str) -> None:
    if not 1 <= len(raw) <= MAX_NAME_LENGTH:
        raise FormatError(f"entry name must be 1 to {MAX_NAME_LENGTH} bytes of UTF-8, "
                          f"got {len(raw)}")
    if not name.isprintable() and any(unicodedata.category(c) == "Cc" for c in name):
        raise FormatError("entry name contains a control character")


def check_timestamps(created_at: int, expires_at: int) -> None:
    """Raise ``FormatError`` unless ``0 <= created_at <= expires_at <= MAX_TIMESTAMP``."""
    if not 0 <= created_at <= expires_at <= MAX_TIMESTAMP:
        raise FormatError("timestamps out of range: need 0 <= created_at <= expires_at < 2^63 ms")


def pack_header(header: Header) -> bytes:
    """Return the header bytes (the associated data) for ``header``; validates every field."""
    return pack_fields(header.kind, header.key_id, header.salt, header.nonce, header.commitment,
                       header.created_at, header.expires_at, header.payload_length, header.name,
                       header.version)


def pack_fields(kind: int, key_id: bytes, salt: bytes, nonce: bytes, commitment: bytes,
                created_at: int, expires_at: int, payload_length: int, name: str,
                version: int = VERSION) -> bytes:
    """Return the header bytes for the given fields, in header order (spec section 5, step 5).

    Raises:
        FormatError: a field breaks the spec's rules (kind, name, timestamps, lengths).
    """
    # The common case, every rule in one test (a printable str has no lone surrogate, so it
    # encodes); anything unusual goes the long way below, which names the rule broken.
    if (type(name) is str and name.isprintable() and kind in KINDS
            and 0 <= created_at <= expires_at <= MAX_TIMESTAMP
            and TAG_SIZE <= payload_length <= MAX_PAYLOAD_LENGTH
            and (len(key_id), len(salt), len(nonce), len(commitment)) == _FIELD_SIZES):
        raw_name = name.encode("utf-8")
        if 1 <= len(raw_name) <= MAX_NAME_LENGTH:
            return _pack_fixed(MAGIC, version, kind, key_id, salt, nonce, commitment,
                               created_at, expires_at, payload_length, len(raw_name)) + raw_name
    return _pack_rule_by_rule(kind, key_id, salt, nonce, commitment, created_at, expires_at,
                              payload_length, name, version)


def _pack_rule_by_rule(kind: int, key_id: bytes, salt: bytes, nonce: bytes, commitment: bytes,
                       created_at: int, expires_at: int, payload_length: int, name: str,
                       version: int) -> bytes:
    if kind not in KINDS:
        raise FormatError(f"unknown envelope kind {kind}")
    raw_name = check_name(name)
    check_timestamps(created_at, expires_at)
    if not TAG_SIZE <= payload_length <= MAX_PAYLOAD_LENGTH:
        raise FormatError("payload length out of range")
    if (len(key_id), len(salt), len(nonce), len(commitment)) != _FIELD_SIZES:
        raise FormatError("a fixed-size header field has the wrong length")
    return _pack_fixed(MAGIC, version, kind, key_id, salt, nonce, commitment, created_at,
                       expires_at, payload_length, len(raw_name)) + raw_name


def parse_header(prefix: bytes, file_size: int) -> Header:
    """Parse the unverified header from the first bytes of a file of ``file_size`` bytes.

    Implements steps 1-6 of spec section 6; nothing cryptographic happens here. ``prefix``
    must hold at least the whole header (``FIXED_HEADER_SIZE + MAX_NAME_LENGTH`` bytes, or
    the whole file if shorter), so listings need not read whole files.

    Raises:
        FormatError: not a vault file, an unsupported version, or malformed fields or lengths.
    """
    if prefix[:4] != MAGIC:
        raise FormatError("not a vault file (bad magic)")
    if file_size < MIN_ENVELOPE_SIZE or file_size > MAX_ENVELOPE_SIZE:
        raise FormatError(f"envelope size {file_size} is outside {MIN_ENVELOPE_SIZE}.."
                          f"{MAX_ENVELOPE_SIZE} bytes")
    if len(prefix) < FIXED_HEADER_SIZE:
        raise FormatError("header truncated")
    (_magic, version, kind, key_id, salt, nonce, commitment, created_at, expires_at,
     payload_length, name_length) = _FIXED.unpack_from(prefix)
    if version != VERSION:
        raise FormatError(f"unsupported format version {version} (this release reads {VERSION})")
    if kind not in KINDS:
        raise FormatError(f"unknown envelope kind {kind}")
    if not 1 <= name_length <= MAX_NAME_LENGTH:
        raise FormatError(f"name length {name_length} is outside 1..{MAX_NAME_LENGTH}")
    if not TAG_SIZE <= payload_length <= MAX_PAYLOAD_LENGTH:
        raise FormatError(f"payload length {payload_length} is outside "
                          f"{TAG_SIZE}..{MAX_PAYLOAD_LENGTH}")
    end_of_header = FIXED_HEADER_SIZE + name_length
    if file_size != end_of_header + payload_length:
        raise FormatError(f"envelope is {file_size} bytes but its header says "
                          f"{end_of_header + payload_length} (truncated or extended)")
    if len(prefix) < end_of_header:
        raise FormatError("header truncated")
    try:
        name = str(prefix[FIXED_HEADER_SIZE:end_of_header], "utf-8", "strict")
    except UnicodeDecodeError:
        raise FormatError("entry name is not valid UTF-8") from None
    if not name.isprintable() and any(unicodedata.category(c) == "Cc" for c in name):
        raise FormatError("entry name contains a control character")
    if not created_at <= expires_at <= MAX_TIMESTAMP:
        check_timestamps(created_at, expires_at)  # raises, with the message
    # tuple.__new__ skips NamedTuple's Python-level __new__: this runs on every read.
    return _new_header(Header, (kind, key_id, salt, nonce, commitment, created_at, expires_at,
                                payload_length, name, version))


def parse(data: bytes) -> tuple[Header, bytes, bytes]:
    """Split a whole envelope into its unverified header, the header bytes and the payload.

    Raises:
        FormatError: as :func:`parse_header`.
    """
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size >= FIXED_HEADER_SIZE:
        # The common case, every rule of parse_header in one test; anything unusual goes the
        # long way below, which names the rule that was broken (or accepts an unusual name).
        (magic, version, kind, key_id, salt, nonce, commitment, created_at, expires_at,
         payload_length, name_length) = _unpack_fixed(data)
        end = FIXED_HEADER_SIZE + name_length
        if (magic == MAGIC and version == VERSION and kind in KINDS
                and 1 <= name_length <= MAX_NAME_LENGTH
                and TAG_SIZE <= payload_length <= MAX_PAYLOAD_LENGTH
                and size == end + payload_length and created_at <= expires_at <= MAX_TIMESTAMP):
            try:
                name = str(data[FIXED_HEADER_SIZE:end], "utf-8", "strict")
            except UnicodeDecodeError:
                name = ""
            if name.isprintable() and name:
                return (_new_header(Header, (kind, key_id, salt, nonce, commitment, created_at,
                                             expires_at, payload_length, name, version)),
                        data[:end], data[end:])
    header = parse_header(data, size)
    end_of_header = size - header.payload_length  # parse_header checked the sum
    return header, data[:end_of_header], data[end_of_header:]

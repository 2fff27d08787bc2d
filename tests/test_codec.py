"""Tests for vault.codec: exact round trips, Node/Baileys interop, errors and hostile input."""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import math
import re
from collections import OrderedDict, namedtuple
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault import codec
from vault.errors import SerializationError, VaultError

SECRET = "sk_live_9f8e7d6c5b4a3210SECRET"


def same(a: Any, b: Any) -> bool:
    """True if a and b are equal with identical types, dict order and float signs (iterative)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


def depth_of(value: Any) -> int:
    """The depth of a value as the codec counts it (a scalar or bytes is 0)."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def nest(depth: int, leaf: Any = 1) -> Any:
    """A value of exactly ``depth`` (lists and dicts alternating around ``leaf``)."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def raw(label: str, size: int = 32) -> bytes:
    """Deterministic pseudo-random bytes for a label."""
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:size]


def b64(data: bytes) -> str:
    """Standard padded base64, as Node's Buffer.toString('base64') writes it."""
    return base64.b64encode(data).decode()


def assert_clean(exc: BaseException) -> None:
    """The secret appears nowhere in the error, its repr or its chain."""
    assert SECRET not in str(exc) and SECRET not in repr(exc)
    assert exc.__cause__ is None and exc.__context__ is None


def test_same_helper_is_strict() -> None:
    """The comparison helper tells apart what == does not (types, signs, dict order)."""
    assert same({"a": [1, b"x", -0.0]}, {"a": [1, b"x", -0.0]})
    for a, b in [(b"x", bytearray(b"x")), (True, 1), (1, 1.0), (0.0, -0.0), ([1], (1,)),
                 ({"a": 1, "b": 2}, {"b": 2, "a": 1}), ([[0.0]], [[-0.0]])]:
        assert not same(a, b)


# --- strategies ---------------------------------------------------------------------------

TRICKY_KEYS = ["$b", "$$b", "$", "$$", "$$$", "$i", "$x", "type", "data", "buffer", "value",
               "0", "1", "2", "a\u00e9", "\U0001f30d"]
keys = st.text(max_size=6) | st.sampled_from(TRICKY_KEYS) | st.text(max_size=4).map("$".__add__)
scalars = (st.none() | st.booleans() | st.integers()
           | st.sampled_from([2**63, -(2**63) - 1, 2**2048 - 1, 2**2048, -(2**2048)])
           | st.sampled_from([4301, 5000]).map(lambda e: -(10**e))
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 1e-300, 1e22])
           | st.text() | st.sampled_from(["$b", "$$x", "pa$$word", "QUJD", "{\"$b\":\"QQ==\"}"])
           | st.binary())
octets = st.lists(st.integers(0, 255), max_size=6)
tricky_dicts = (st.text().map(lambda s: {"$b": s})
                | st.binary().map(lambda b: {"$b": b64(b)})
                | st.text().map(lambda s: {"$i": s})
                | (st.text() | octets).map(lambda d: {"type": "Buffer", "data": d})
                | st.text().map(lambda s: {"buffer": True, "value": s})
                | octets.filter(bool).map(lambda o: {str(i): v for i, v in enumerate(o)}))
tagged_values = st.recursive(
    scalars | tricky_dicts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=24)


def buffer_shaped(value: Any) -> bool:
    """True if value holds a dict that the node dialect reads as bytes (or refuses)."""
    if isinstance(value, list):
        return any(buffer_shaped(v) for v in value)
    if not isinstance(value, dict):
        return False
    node_buffer = value.get("type") == "Buffer" and "data" in value
    legacy_buffer = value.get("buffer") is True and "value" in value
    return ("0" in value or (len(value) == 2 and (node_buffer or legacy_buffer))
            or any(buffer_shaped(v) for v in value.values()))


node_scalars = scalars.filter(lambda x: not (isinstance(x, int) and abs(x) >= 2**53))
node_values = st.recursive(
    node_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=24).filter(lambda v: not buffer_shaped(v))
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from(["QQ==", "QQ", "-_8", "!!", "", "AAE=", "\ud800"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(TRICKY_KEYS) | st.text(max_size=3), inner, max_size=3),
    max_leaves=16)


# --- tagged dialect: exact round trips ----------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(tagged_values)
def test_tagged_round_trip_is_exact(value: Any) -> None:
    """Every value, including tag-like and Buffer-like dicts, round-trips with exact types."""
    assert same(codec.loads(codec.dumps(value)), value)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, codec.MAX_DEPTH), st.booleans(), scalars | tricky_dicts)
def test_tagged_round_trip_deep(depth: int, as_str: bool, leaf: Any) -> None:
    """Values nested up to MAX_DEPTH round-trip, from bytes or str input."""
    value = nest(min(depth, codec.MAX_DEPTH - depth_of(leaf)), leaf)
    data = codec.dumps(value)
    assert same(codec.loads(data.decode() if as_str else data), value)


def reference_tree(value: Any, tagged: bool) -> Any:
    """The tree that codec.dumps writes, built the slow obvious way (for the oracle below)."""
    if isinstance(value, bytes | bytearray):
        text = b64(bytes(value))
        return {"$b": text} if tagged else {"type": "Buffer", "data": text}
    if isinstance(value, dict):
        return {("$" + k if tagged and k.startswith("$") else k): reference_tree(v, tagged)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reference_tree(v, tagged) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        if not tagged and abs(value) >= 2**53:
            raise OverflowError("the node dialect refuses it: JavaScript would round it")
        if abs(value) >= 2**2048:
            return {"$i": hex(value)}
    return value


@settings(max_examples=400, deadline=None)
@given(tagged_values, st.sampled_from(codec.DIALECTS))
def test_dumps_writes_what_the_standard_encoder_writes(value: Any, dialect: str) -> None:
    """dumps writes JSON text directly; it is byte for byte json.dumps of the tagged tree."""
    try:
        tree = reference_tree(value, dialect == "tagged")
    except OverflowError:
        with pytest.raises(SerializationError, match="JavaScript Number rounds"):
            codec.dumps(value, dialect)
        return
    try:
        expected = json.dumps(tree, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(SerializationError, match="lone surrogate"):
            codec.dumps(value, dialect)
        return
    assert codec.dumps(value, dialect) == expected


def test_tagged_format_is_as_documented() -> None:
    """Bytes, huge ints and '$' keys are written exactly as the module docstring says."""
    value = {"k": b"\x00\x01", "$b": "x", "$$": [2**2048], "f": -0.0, "t": True, "é": None}
    expected = ('{"k":{"$b":"AAE="},"$$b":"x","$$$":[{"$i":"0x1' + "0" * 512
                + '"}],"f":-0.0,"t":true,"é":null}')
    assert codec.dumps(value) == expected.encode()


def test_tagged_reads_escaped_dollar_like_a_literal_one() -> None:
    """A key written as \\u0024 means the same as a literal '$' (no fast path shortcut)."""
    assert codec.loads('{"\\u0024b":"AAE="}') == b"\x00\x01"
    assert codec.loads('{"\\u0024\\u0024b":"AAE="}') == {"$b": "AAE="}
    with pytest.raises(SerializationError):
        codec.loads('{"a":{"\\u0024x":1}}')


def test_tagged_dollar_values_do_not_disturb_tags() -> None:
    """Strings containing '$' next to bytes tags still decode exactly (slow path)."""
    value = {"password": "pa$$word", "k": b"key", "price": "$5", "$": "$b"}
    assert same(codec.loads(codec.dumps(value)), value)


@pytest.mark.parametrize("doc", [
    '{"$x":1}', '{"a":{"$b":5}}', '{"$b":"AAE=","a":1}', '{"a":1,"$b":"AAE="}',
    '{"$b":"AAE"}', '{"$b":"A-E="}', '{"$b":" AAE="}', '{"$i":"zz"}', '{"$i":5}', '[{"$":1}]',
])
def test_tagged_rejects_malformed_tags(doc: str) -> None:
    """Unknown tags, tags sharing an object, non-str or non-canonical payloads are refused."""
    with pytest.raises(SerializationError):
        codec.loads(doc)


def test_tagged_error_names_tag_path() -> None:
    """A malformed tag deep in a document is reported with its JSON path."""
    with pytest.raises(SerializationError, match=r"at \$\.creds\.keys\[3\]$"):
        codec.loads('{"creds":{"keys":[1,2,3,{"$b":"!!"}]}}')


# --- accepted stand-ins and normalisation --------------------------------------------------

def test_bytes_like_and_tuples_are_normalised() -> None:
    """bytearray and memoryview come back as bytes, tuples as lists."""
    value = {"a": bytearray(b"ab"), "m": memoryview(b"cd"), "t": (1, (2, b"e")),
             "s": memoryview(b"abcdef")[::2]}
    for dialect in codec.DIALECTS:
        out = codec.loads(codec.dumps(value, dialect), dialect)
        assert same(out, {"a": b"ab", "m": b"cd", "t": [1, [2, b"e"]], "s": b"ace"})


def test_subclasses_become_base_types_and_bool_stays_bool() -> None:
    """IntEnum, str enums, OrderedDict and namedtuple are written as their base type."""
    class Color(enum.IntEnum):
        RED = 1

    class Mode(str, enum.Enum):  # noqa: UP042 - the mixin whose str() is "Mode.FAST"
        FAST = "fast"

    class Level(enum.StrEnum):
        LOW = "low"

    class Shouty(str):
        def __str__(self) -> str:
            return "OVERRIDDEN"

    pair = namedtuple("pair", "x y")
    value = {"c": Color.RED, "m": Mode.FAST, "l": Level.LOW, "s": Shouty("quiet"),
             "o": OrderedDict(b=1), "p": pair(1, 2), "b": True, "f": False, Mode.FAST: 0}
    out = codec.loads(codec.dumps(value))
    assert same(out, {"c": 1, "m": "fast", "l": "low", "s": "quiet", "o": {"b": 1}, "p": [1, 2],
                      "b": True, "f": False, "fast": 0})


def test_scalars_at_top_level() -> None:
    """Any type is allowed at the top level in both dialects."""
    for value in [None, True, 0, -1.5, "text", b"", b"\xff", [], {}]:
        for dialect in codec.DIALECTS:
            assert same(codec.loads(codec.dumps(value, dialect), dialect), value)


def test_huge_ints_round_trip_in_tagged_and_are_refused_by_node() -> None:
    """Ints beyond int_max_str_digits round-trip (as $i) but are refused by the node dialect."""
    big = -(10**5000)
    assert same(codec.loads(codec.dumps({"n": big})), {"n": big})
    with pytest.raises(SerializationError, match=r"at \$\.n$"):
        codec.dumps({"n": big}, "node")


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("bad", "path"), [
    ({"creds": {"keys": [1, 2, 3, {SECRET}]}}, "$.creds.keys[3]"),
    ({"x": [object()]}, "$.x[0]"),
    ({"x": complex(1, 2)}, "$.x"),
    ({"x": float("nan")}, "$.x"),
    ({"x": [float("-inf")]}, "$.x[0]"),
    ({"x": {SECRET.encode(): 1}}, "$.x"),
    ({"x": {1: SECRET}}, "$.x"),
    ({"odd key": [SECRET + "\ud800"]}, '$["odd key"][0]'),
    ({"x": {SECRET + "\udfff": 1}}, "$.x"),
])
def test_dumps_errors_name_the_path_never_the_value(bad: Any, path: str) -> None:
    """Unsupported values fail with the JSON path in the message and no trace of the value."""
    for dialect in codec.DIALECTS:
        with pytest.raises(SerializationError) as info:
            codec.dumps(bad, dialect)
        assert str(info.value).endswith(" at " + path)
        assert_clean(info.value)


def test_serialization_error_is_a_type_error() -> None:
    """SerializationError is both a VaultError and a TypeError."""
    with pytest.raises(TypeError):
        codec.dumps({1, 2})


def test_depth_boundary_is_exact() -> None:
    """Depth MAX_DEPTH is accepted and MAX_DEPTH + 1 refused, by dumps and by loads."""
    assert codec.dumps(5) == b"5"  # a scalar has depth 0
    ok, too_deep = nest(codec.MAX_DEPTH, b"leaf"), nest(codec.MAX_DEPTH + 1)
    assert same(codec.loads(codec.dumps(ok)), ok)
    assert same(codec.loads(codec.dumps(ok, "node"), "node"), ok)
    for dialect in codec.DIALECTS:
        with pytest.raises(SerializationError, match="deeper than 512"):
            codec.dumps(too_deep, dialect)
        with pytest.raises(SerializationError, match="deeper than 512"):
            codec.loads(json.dumps(too_deep), dialect)


def test_depth_is_counted_in_containers_not_json_objects() -> None:
    """Bytes at depth 512 are fine although their tag object is the 513th JSON level."""
    doc = "[" * 512 + '{"$b":"AAE="}' + "]" * 512
    value: Any = codec.loads(doc)
    for _ in range(512):
        assert isinstance(value, list)
        value = value[0]
    assert value == b"\x00\x01"


def test_very_deep_values_and_documents_raise_serialization_error() -> None:
    """100,000 levels fail cleanly, never with RecursionError."""
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for dialect in codec.DIALECTS:
        for value in (deep, cyclic):
            with pytest.raises(SerializationError, match="deeper than 512"):
                codec.dumps(value, dialect)
        for doc in ("[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000):
            with pytest.raises(SerializationError, match="deeper than 512"):
                codec.loads(doc, dialect)


def test_unknown_dialect_names_the_allowed_ones() -> None:
    """An unknown dialect is a SerializationError that lists the dialects."""
    for call in (lambda: codec.dumps(1, "json"), lambda: codec.loads(b"1", "json")):
        with pytest.raises(SerializationError, match="'tagged' or 'node'"):
            call()


def test_max_size_limits_output_and_input() -> None:
    """max_size refuses larger output and input, counted in UTF-8 bytes."""
    assert codec.dumps("é", max_size=4) == '"é"'.encode()
    with pytest.raises(SerializationError, match="too large"):
        codec.dumps("é", max_size=3)
    assert codec.loads('"é"', max_size=4) == "é"
    for data in ('"é"', '"é"'.encode()):
        with pytest.raises(SerializationError, match="too large"):
            codec.loads(data, max_size=3)


@pytest.mark.parametrize("data", [
    b"", b"\xff", b'"\xed\xa0\x80"', b"\xef\xbb\xbf1", "NaN", "[Infinity]", "-Infinity", "1e999",
    '{"a":1} x', "{'a': 1}", "[1,]", "1" * 5000, bytearray(b"\xc3"), 12, None, ["1"],
])
def test_loads_rejects_invalid_input(data: Any) -> None:
    """Invalid UTF-8, invalid JSON, NaN/Infinity, huge literals and wrong types are refused."""
    for dialect in codec.DIALECTS:
        with pytest.raises(SerializationError):
            codec.loads(data, dialect)


def test_loads_errors_never_echo_the_document() -> None:
    """Decoding errors mention neither the secret nor any part of it."""
    docs = [f'{{"k":"{SECRET}"', f'{{"k":{{"$b":"{SECRET}"}}}}', f'["{SECRET}",NaN]',
            f'{{"k":{{"type":"Buffer","data":"{SECRET}!"}}}}', SECRET.encode() + b"\xff"]
    for doc in docs:
        for dialect in codec.DIALECTS:
            try:
                codec.loads(doc, dialect)
            except SerializationError as exc:
                assert_clean(exc)


@settings(max_examples=300, deadline=None)
@given(st.binary() | st.text() | json_like.map(json.dumps) | tagged_values.map(codec.dumps))
def test_loads_fuzz_raises_only_serialization_error(data: bytes | str) -> None:
    """Arbitrary bytes, text and JSON documents either decode or raise SerializationError."""
    for dialect in codec.DIALECTS:
        try:
            codec.loads(data, dialect)
        except VaultError as exc:
            assert isinstance(exc, SerializationError)


# --- node dialect ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(node_values)
def test_node_round_trip_without_buffer_shaped_dicts(value: Any) -> None:
    """Values without Buffer-shaped dicts round-trip exactly through the node dialect."""
    assert same(codec.loads(codec.dumps(value, "node"), "node"), value)


@pytest.mark.parametrize(("doc", "expected"), [
    ('{"type":"Buffer","data":"AAH/"}', b"\x00\x01\xff"),  # Baileys BufferJSON.replacer
    ('{"type":"Buffer","data":[0,1,255]}', b"\x00\x01\xff"),  # plain JSON.stringify(Buffer)
    ('{"0":0,"1":1,"2":255}', b"\x00\x01\xff"),  # plain JSON of a Uint8Array
    ('{"2":255,"0":0,"1":1}', b"\x00\x01\xff"),  # JS orders index keys; any order is read
    ('{"buffer":true,"value":"AAH/"}', b"\x00\x01\xff"),  # legacy Baileys form
    ('{"buffer":true,"value":[0,1,255]}', b"\x00\x01\xff"),
    ('{"data":"AAH/","type":"Buffer"}', b"\x00\x01\xff"),
    ('{"type":"Buffer","data":""}', b""),
    ('{"type":"Buffer","data":[]}', b""),
    ('{"buffer":true,"value":""}', b""),
    ('{"type":"Buffer","data":"AAH_"}', b"\x00\x01\xff"),  # url-safe alphabet
    ('{"type":"Buffer","data":"AAE"}', b"\x00\x01"),  # missing padding
    ('{"type":"Buffer","data":"AA\\nE= "}', b"\x00\x01"),  # whitespace, as Node skips it
])
def test_node_reads_every_buffer_form(doc: str, expected: bytes) -> None:
    """Each Node/Baileys Buffer form is read as exactly the right bytes."""
    assert codec.loads(doc, "node") == expected
    assert codec.loads(f'{{"k":[{doc}]}}'.encode(), "node") == {"k": [expected]}


@pytest.mark.parametrize("doc", [
    '{"type":"Buffer","data":"AAE=","extra":1}', '{"type":"buffer","data":"AAE="}',
    '{"type":"Buffer","data":5}', '{"buffer":1,"value":"AAE="}', '{"buffer":"true","value":"x"}',
    '{"0":1,"2":3}', '{"0":256}', '{"0":-1}', '{"0":true}', '{"0":1.0}', '{"00":1}', "{}",
    '{"0":1,"x":2}', '{"advSecretKey":"hHrK3yqDn0r4hHrK3yqDn0r4hHrK3yqDn0r4hHrK3yo="}',
])
def test_node_leaves_other_objects_alone(doc: str) -> None:
    """Objects that are not exactly a Buffer shape, and base64-looking strings, stay as they are."""
    assert same(codec.loads(doc, "node"), json.loads(doc))


@pytest.mark.parametrize(("doc", "path"), [
    ('{"k":{"type":"Buffer","data":"not base64!"}}', "$.k.data"),
    ('{"k":[{"buffer":true,"value":"A"}]}', "$.k[0].value"),
    ('{"k":{"type":"Buffer","data":"AA==AA=="}}', "$.k.data"),
    ('{"k":{"type":"Buffer","data":"Zm9v\u00e9"}}', "$.k.data"),
    ('{"k":{"type":"Buffer","data":[1,2,256]}}', "$.k.data[2]"),
    ('{"k":{"type":"Buffer","data":[1,-1]}}', "$.k.data[1]"),
    ('{"k":{"type":"Buffer","data":[1,true]}}', "$.k.data[1]"),
    ('{"k":{"type":"Buffer","data":[1.5]}}', "$.k.data[0]"),
    ('{"k":{"type":"Buffer","data":[[1]]}}', "$.k.data[0]"),
])
def test_node_rejects_bad_buffers_naming_the_path(doc: str, path: str) -> None:
    """Garbage base64 and out-of-range or non-int bytes fail with the JSON path."""
    with pytest.raises(SerializationError) as info:
        codec.loads(doc, "node")
    assert str(info.value).endswith(" at " + path)


def test_node_output_is_compact_unescaped_and_rereads_identically() -> None:
    """Node output has no spaces, keeps non-ASCII as UTF-8, and re-reads to the same bytes."""
    value = {"name": "Zoë 🌍 \u2028", "ctl": "\x01\n\t\x7f", "key": raw("k"), "n": [1, None]}
    out = codec.dumps(value, "node")
    expected = ('{"name":"Zoë 🌍 \u2028","ctl":"\\u0001\\n\\t\x7f","key":{"type":"Buffer",'
                f'"data":"{b64(raw("k"))}"}},"n":[1,null]}}')
    assert out == expected.encode("utf-8")
    assert same(codec.loads(out, "node"), value)
    assert codec.dumps(codec.loads(out, "node"), "node") == out


def key_pair(label: str) -> str:
    """A Baileys KeyPair as BufferJSON.replacer writes it."""
    return (f'{{"private":{{"type":"Buffer","data":"{b64(raw(label + ".priv"))}"}},'
            f'"public":{{"type":"Buffer","data":"{b64(raw(label + ".pub"))}"}}}}')


def buf(label: str, size: int = 32) -> str:
    """A Buffer as BufferJSON.replacer writes it."""
    return f'{{"type":"Buffer","data":"{b64(raw(label, size))}"}}'


ADV_SECRET = b64(raw("adv"))
BAILEYS_CREDS = (
    f'{{"noiseKey":{key_pair("noise")},"pairingEphemeralKeyPair":{key_pair("pair")},'
    f'"signedIdentityKey":{key_pair("ident")},'
    f'"signedPreKey":{{"keyPair":{key_pair("spk")},"signature":{buf("sig", 64)},"keyId":1}},'
    f'"registrationId":11723,"advSecretKey":"{ADV_SECRET}",'
    '"processedHistoryMessages":[{"key":{"remoteJid":"15550001111@s.whatsapp.net",'
    '"fromMe":true,"id":"3EB0C431D5A3B1F2E9"},"messageTimestamp":1716200000}],'
    '"nextPreKeyId":813,"firstUnuploadedPreKeyId":813,"accountSyncCounter":1,'
    '"accountSettings":{"unarchiveChats":false},"registered":true,"pairingCode":"ABCD1234",'
    f'"lastPropHash":"2V77qU","routingInfo":{buf("route", 8)},'
    '"me":{"id":"15551234567:12@s.whatsapp.net","name":"Zoë 🌍","lid":"1234567890:12@lid"},'
    f'"account":{{"details":{buf("details", 120)},"accountSignatureKey":{buf("ask")},'
    f'"accountSignature":{buf("as", 64)},"deviceSignature":{buf("ds", 64)}}},'
    '"signalIdentities":[{"identifier":{"name":"15551234567:12@s.whatsapp.net","deviceId":0},'
    f'"identifierKey":{buf("ik", 33)}}}],'
    '"platform":"android","myAppStateKeyId":"AAAAAFxR","lastAccountSyncTimestamp":1716200000}'
)


def test_baileys_creds_read_and_written_back_byte_identical() -> None:
    """A Baileys creds.json is read with Buffers as bytes and written back byte for byte."""
    creds: Any = codec.loads(BAILEYS_CREDS.encode(), "node")
    assert creds["noiseKey"] == {"private": raw("noise.priv"), "public": raw("noise.pub")}
    assert creds["signedPreKey"]["signature"] == raw("sig", 64)
    assert creds["account"]["details"] == raw("details", 120)
    assert creds["signalIdentities"][0]["identifierKey"] == raw("ik", 33)
    assert creds["advSecretKey"] == ADV_SECRET  # base64-looking strings stay strings
    assert creds["me"] == {"id": "15551234567:12@s.whatsapp.net", "name": "Zoë 🌍",
                           "lid": "1234567890:12@lid"}
    assert codec.dumps(creds, "node") == BAILEYS_CREDS.encode()
    assert same(codec.loads(codec.dumps(creds)), creds)  # and it is stored exactly


# --- parser differentials: one document, one value ----------------------------------------

@pytest.mark.parametrize("dialect", codec.DIALECTS)
@pytest.mark.parametrize(("doc", "where"), [
    ('{"a":1,"a":2}', "at $"),
    ('{"creds":{"noiseKey":{"private":1,"private":2}}}', "at $.creds.noiseKey"),
    ('[{"x":1},{"k":[],"k":[]}]', "at $[1]"),
    ('{"$b":"AA==","$b":"AQ=="}', "at $"),
])
def test_duplicate_keys_are_refused(doc: str, where: str, dialect: str) -> None:
    """A duplicate key is refused with its path: readers differ on which one wins, so one
    document could mean two values (it used to keep the last one)."""
    with pytest.raises(SerializationError, match=f"same key twice {re.escape(where)}"):
        codec.loads(doc, dialect)


@pytest.mark.parametrize("dialect", codec.DIALECTS)
def test_lone_surrogates_are_refused_on_read(dialect: str) -> None:
    """Escaped lone surrogates (which dumps would refuse) are refused by loads, in values and
    keys; an escaped pair is one character; a str holding a raw surrogate is not text."""
    for doc, where in (('["\\ud800"]', "$[0]"), ('{"k":"a\\udfffb"}', "$.k"),
                       ('{"\\udc00":1}', "$")):
        with pytest.raises(SerializationError, match=re.escape(where)):
            codec.loads(doc, dialect)
    assert codec.loads('"\\ud83d\\ude00"', dialect) == "\U0001f600"
    with pytest.raises(SerializationError, match="lone surrogate"):
        codec.loads('"\ud800"', dialect)


def test_node_dialect_refuses_ints_javascript_would_round() -> None:
    """The node dialect writes only safe integers (|x| < 2**53); tagged keeps any int."""
    assert codec.dumps({"n": 2**53 - 1}, "node") == b'{"n":9007199254740991}'
    for big in (2**53, -(2**53), 2**64):
        with pytest.raises(SerializationError, match=r"2\*\*53 - 1 .* at \$\.n"):
            codec.dumps({"n": big}, "node")
        assert codec.loads(codec.dumps({"n": big})) == {"n": big}

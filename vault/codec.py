"""Values <-> JSON bytes, keeping bytes as bytes (the vault's storage and Node.js interop).

Values: ``dict`` (str keys), ``list``, ``str``, ``int``, ``float`` (finite), ``bool``, ``None``,
``bytes``, at any top level. :func:`dumps` also takes ``tuple`` (written as a list), ``bytearray``
and ``memoryview`` (read back as ``bytes``) and subclasses of dict, list, str, int and float,
written as their base type (an ``IntEnum`` as its int, a ``str`` enum as its string, a namedtuple
as a list); ``bool`` stays ``bool``. Strings must be valid Unicode (no lone surrogates).
**Depth:** a scalar or bytes has depth 0, a dict or list one more than its deepest item (``[]``
is 1, ``{"a": [1]}`` is 2); at most :data:`MAX_DEPTH` (512). Output is compact UTF-8 JSON (no
spaces, non-ASCII not escaped) in dict order, so a value always gives the same bytes.

Dialect ``"tagged"``, the vault's own storage: every value round-trips exactly, types included.
    Writing: bytes -> ``{"$b": "<standard padded base64>"}``; an int of magnitude >= 2**2048 ->
    ``{"$i": "<hex(x)>"}`` (Python refuses decimal ints longer than
    ``sys.get_int_max_str_digits()``; hex has no limit); a dict key starting with ``$`` gets one
    more ``$`` (``"$b"`` -> ``"$$b"``); floats by ``repr`` (exact, ``-0.0`` kept).
    Reading, bottom-up: an object whose only key is ``$b`` or ``$i`` is a tag and must hold a
    str (strict base64 / hex); keys starting with ``$$`` lose one ``$``; any other key starting
    with a single ``$`` is an error.

Dialect ``"node"``, for Node.js / Baileys: bytes -> ``{"type":"Buffer","data":"<base64>"}``, as
Baileys' ``BufferJSON.replacer`` writes them (byte-identical to its ``JSON.stringify`` output for
documents without floats: JS writes ``1.0`` as ``1``). Read as bytes: an object with exactly the
keys ``type`` = ``"Buffer"`` and ``data``, or ``buffer`` = ``true`` and ``value`` (legacy),
holding base64 (as lenient as Node: url-safe alphabet, no padding, whitespace) or a list of
ints 0-255; and an object whose keys are exactly ``"0"``..``"n-1"`` (n >= 1, any order) with
int 0-255 values (a Uint8Array's plain JSON). Base64-looking strings stay strings; keys are
not escaped; :func:`dumps` refuses ints of magnitude 2**53 or more (a JavaScript Number would
silently round them).

**One document, one value**: :func:`loads` refuses an object with a duplicate key and a string
or key holding a lone surrogate (escaped as ``\\ud800``), in both dialects: JSON readers
disagree on such documents, and two readers of one value must never see two values.
**Ambiguity:** a dict of one of those shapes comes back as bytes (or, holding bad base64 or
bytes, is an error) in this dialect; store arbitrary data with ``"tagged"``.

Errors are :class:`~vault.errors.SerializationError` naming the JSON path (``$.creds.keys[3]``),
never a value; :func:`loads` raises nothing else, whatever the input.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable
from json.encoder import encode_basestring as _escape
from typing import Any, TypeAlias

from vault.errors import SerializationError

__all__ = ["DIALECTS", "MAX_DEPTH", "Value", "dumps", "loads"]

MAX_DEPTH = 512
DIALECTS = ("tagged", "node")
Value: TypeAlias = dict[str, "Value"] | list["Value"] | str | int | float | bool | bytes | None

_b2a = binascii.b2a_base64
_BIG_INT = 1 << 2048  # decimal below this is readable whatever int_max_str_digits (>= 640) is
_JS_SAFE = 1 << 53  # Number.MAX_SAFE_INTEGER + 1
_DUPLICATE = "an object has the same key twice"
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Node's Buffer.from(s, "base64") also takes the url-safe alphabet and skips whitespace
# (nodejs/node doc/api/buffer.md, "'base64'"); padding is optional.
_NODE_B64 = str.maketrans("-_", "+/", " \t\n\r\f\v")


class _Fail(Exception):
    """Internal: why a value or document is refused; ``parts`` is its path, innermost first."""

    def __init__(self, reason: str, parts: list[str | int] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.parts = reason, parts or []

    def error(self, verb: str) -> SerializationError:
        steps = [f"[{p}]" if isinstance(p, int) else "." + p if _IDENT.match(p)
                 else f"[{json.dumps(p[:40])}]" for p in reversed(self.parts)]
        if len(steps) > 24:
            steps[12:-12] = ["..."]
        return SerializationError(f"cannot {verb}: {self.reason} at ${''.join(steps)}")


def _revisit(x: Any, fn: Callable[[Any], object]) -> object:
    """Apply ``fn`` post-order to every node of a plain tree, so that a _Fail learns its path."""
    if type(x) is dict or type(x) is list:
        for k, v in x.items() if type(x) is dict else enumerate(x):
            try:
                x[k] = _revisit(v, fn)
            except _Fail as e:
                e.parts.append(k)
                raise
    return fn(x)


# A subclass instance becomes its base type, copied by the base's own method (str.__str__ of
# a str enum is its value; str() would give "Cls.NAME"), so an override cannot change it.
_BASES: tuple[tuple[Any, Callable[[Any], object]], ...] = (
    (str, str.__str__), (int, int.__int__), (float, float.__float__), (dict, dict),
    (list | tuple, list), (bytes | bytearray, bytes))

_Writer: TypeAlias = Callable[[Any, int, list[str], dict[str, str]], None]


def _escape_checked(s: str) -> str:
    """``_escape`` that first refuses a lone surrogate (the slow pass that finds its path)."""
    if _SURROGATE.search(s):
        raise _Fail("a string holds a lone surrogate, which UTF-8 cannot encode")
    return _escape(s)


def _make_writer(tagged: bool, escape: Callable[[str], str]) -> _Writer:
    """The dumps writer: check and tag ``x`` and append its JSON text to ``out``.

    ``depth`` counts the containers above ``x``; ``keys`` caches escaped keys for one call.
    It writes text directly, as ``json.JSONEncoder`` with ``separators=(",", ":")`` and
    ``ensure_ascii=False`` would write the tagged tree (a test checks this byte for byte),
    without building that tree first: a credential is mostly small dicts of bytes.
    """
    bytes_open = '{"$b":"' if tagged else '{"type":"Buffer","data":"'
    # Tagged: any int (hex tag from 2**2048). Node: JavaScript's safe integers only, since a
    # Number silently rounds anything beyond 2**53 - 1.
    limit = _BIG_INT if tagged else _JS_SAFE

    def write(x: Any, depth: int, out: list[str], keys: dict[str, str]) -> None:
        t = type(x)
        if t is dict:
            if depth >= MAX_DEPTH:
                raise _Fail(_TOO_DEEP)
            sep = "{"
            for k, v in x.items():
                if type(k) is str and (key := keys.get(k)) is not None:
                    pass
                elif isinstance(k, str):
                    k = str.__str__(k)
                    key = escape("$" + k if tagged and k[:1] == "$" else k) + ":"
                    if type(k) is str and len(keys) < 256:
                        keys[k] = key
                else:
                    raise _Fail(f"dict key of type {type(k).__qualname__}; keys must be str")
                tv = type(v)
                # The common leaves inline: a call per leaf would double the cost.
                try:
                    if tv is bytes:
                        out.append(f'{sep}{key}{bytes_open}{_b2a(v, newline=False).decode()}"}}')
                    elif tv is str:
                        out.append(f"{sep}{key}{escape(v)}")
                    elif tv is int and -limit < v < limit:
                        out.append(f"{sep}{key}{int.__repr__(v)}")
                    else:
                        out.append(sep + key)
                        write(v, depth + 1, out, keys)
                except _Fail as e:
                    e.parts.append(k)
                    raise
                sep = ","
            out.append("}" if sep == "," else "{}")
        elif t is bytes or t is bytearray or t is memoryview:
            data = _b2a(x.tobytes() if t is memoryview else x, newline=False).decode()
            out.append(f'{bytes_open}{data}"}}')
        elif t is str:
            out.append(escape(x))
        elif x is None:
            out.append("null")
        elif t is bool:
            out.append("true" if x else "false")
        elif t is int:
            if -limit < x < limit:
                out.append(int.__repr__(x))
            elif tagged:
                out.append(f'{{"$i":"{hex(x)}"}}')
            else:
                raise _Fail("int beyond 2**53 - 1 in magnitude, which a JavaScript Number "
                            "rounds (store it as a string)")
        elif t is list or t is tuple:
            if depth >= MAX_DEPTH:
                raise _Fail(_TOO_DEEP)
            sep = "["
            for i, v in enumerate(x):
                try:
                    if type(v) is str:
                        out.append(sep + escape(v))
                    else:
                        out.append(sep)
                        write(v, depth + 1, out, keys)
                except _Fail as e:
                    e.parts.append(i)
                    raise
                sep = ","
            out.append("]" if sep == "," else "[]")
        elif t is float:
            if not math.isfinite(x):
                raise _Fail("float is NaN or infinite")
            out.append(float.__repr__(x))
        else:
            for base, copy in _BASES:
                if isinstance(x, base):
                    return write(copy(x), depth, out, keys)
            raise _Fail(f"unsupported type {type(x).__qualname__}")

    return write


_WRITERS = {(dialect, checked): _make_writer(dialect == "tagged",
                                             _escape_checked if checked else _escape)
            for dialect in DIALECTS for checked in (False, True)}


def _check_dialect(dialect: object) -> None:
    if dialect not in DIALECTS:
        raise SerializationError(f"unknown codec dialect {dialect!r:.40}; "
                                 "expected 'tagged' or 'node'")


def dumps(value: object, dialect: str = "tagged", *, max_size: int | None = None) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON in ``dialect`` (see the module docstring).

    Args: ``value`` (JSON types, bytes, and the stand-ins listed above); ``dialect``, "tagged"
    or "node"; ``max_size``, the most bytes to return (``None``: no limit).
    Returns: the document. Raises: SerializationError for an unsupported type, a non-str key,
    a NaN or infinite float, a lone surrogate, nesting deeper than MAX_DEPTH, output over
    ``max_size`` or an unknown dialect, naming the JSON path, never the value.
    """
    _check_dialect(dialect)
    out: list[str] = []
    try:
        _WRITERS[dialect, False](value, 0, out, {})
        data = "".join(out).encode("utf-8")
    except _Fail as e:
        fail = e
    except RecursionError:
        fail = _Fail(f"{_TOO_DEEP} for the interpreter's recursion limit")
    except UnicodeEncodeError:  # a lone surrogate: write again, checking each string, to find it
        try:
            fail = _Fail("a string holds a lone surrogate")
            _WRITERS[dialect, True](value, 0, [], {})
        except _Fail as located:
            fail = located
    else:
        if max_size is not None and len(data) > max_size:
            raise SerializationError(f"encoded value too large: {len(data)} bytes, "
                                     f"limit {max_size}")
        return data
    raise fail.error("encode")  # outside the except: no chained context


def _b64(s: str, what: str, parts: list[str | int] | None = None) -> bytes:
    try:
        return binascii.a2b_base64(s, strict_mode=True)
    except ValueError:
        raise _Fail(f"invalid base64 in {what}", parts) from None


def _untag(d: dict[str, Any]) -> object:
    """A tagged-dialect object that has a key starting with ``$``, decoded."""
    if len(d) == 1 and ("$b" in d or "$i" in d):
        k, v = next(iter(d.items()))
        if type(v) is not str:
            raise _Fail(f"a '{k}' tag must hold a string")
        if k == "$b":
            return _b64(v, "a '$b' tag")
        try:
            return int(v, 16)
        except ValueError:
            raise _Fail("invalid hex in a '$i' tag") from None
    out: dict[str, object] = {}
    for k, v in d.items():
        if k[:1] == "$":
            if k[1:2] != "$":
                raise _Fail("a key starts with a single '$' but is not a tag alone in its object")
            k = k[1:]
        out[k] = v
    return out


def _tagged_hook(d: dict[str, Any]) -> object:
    for k in d:
        if k[:1] == "$":
            return _untag(d)
    return d


def _bytes_hook(d: dict[str, Any]) -> object:
    """_tagged_hook for documents whose only '$' characters start '$b' tags (loads checks)."""
    if "$b" in d:
        if len(d) == 1 and type(v := d["$b"]) is str:
            try:
                return binascii.a2b_base64(v, strict_mode=True)
            except ValueError:
                pass
        return _untag(d)  # raises the precise error
    return d


def _node_bytes(d: dict[str, Any], key: str) -> object:
    """Buffer ``data`` (legacy: ``value``) as bytes: base64, or a list of ints 0-255."""
    data = d[key]
    if type(data) is str:
        try:
            return binascii.a2b_base64(data, strict_mode=True)  # what Baileys writes
        except ValueError:
            data = data.translate(_NODE_B64).rstrip("=")
        return _b64(data + "=" * (-len(data) % 4), "a Buffer", [key])
    if type(data) is list:
        bad = [i for i, b in enumerate(data) if type(b) is not int or not 0 <= b <= 255]
        if bad:
            raise _Fail("a Buffer byte is not an int 0-255", [bad[0], key])
        return bytes(data)
    return d


def _node_hook(d: dict[str, Any]) -> object:
    # Baileys 7's BufferJSON.reviver (WhiskeySockets/Baileys src/Utils/generics.ts) revives
    # {type: 'Buffer', data: <string>} and non-empty objects of numeric keys and number values
    # (Uint8Array JSON, tested in src/__tests__/Utils/generics.test.ts), not {type, data: [..]};
    # Baileys 4-6 revived buffer === true || type === 'Buffer' from data || value (base64/array).
    if len(d) == 2:
        if d.get("type") == "Buffer" and "data" in d:
            return _node_bytes(d, "data")
        if d.get("buffer") is True and "value" in d:
            return _node_bytes(d, "value")
    if "0" in d:
        octets = [d.get(str(i), -1) for i in range(len(d))]
        if all(type(b) is int and 0 <= b <= 255 for b in octets):
            return bytes(octets)
    return d


def _finite(s: str) -> float:
    """parse_float and parse_constant: refuse NaN, Infinity and numbers beyond float range."""
    if math.isfinite(f := float(s)):
        return f
    raise SerializationError("invalid JSON: NaN, Infinity or a number out of float range")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: refuse a duplicate key (two readers of one document must never
    disagree on its value, and JSON parsers differ on which duplicate wins)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Fail(_DUPLICATE)
    return d


def _tagged_pairs(pairs: list[tuple[str, Any]]) -> object:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Fail(_DUPLICATE)
    for k in d:
        if k[:1] == "$":
            return _untag(d)
    return d


def _bytes_pairs(pairs: list[tuple[str, Any]]) -> object:
    """_bytes_hook with the duplicate check, in one call (the hot path of ``get``)."""
    if len(pairs) == 1:
        k, v = pairs[0]
        if k == "$b" and type(v) is str:
            try:
                return binascii.a2b_base64(v, strict_mode=True)
            except ValueError:
                pass
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Fail(_DUPLICATE)
    return _untag(d) if "$b" in d else d


def _node_pairs(pairs: list[tuple[str, Any]]) -> object:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Fail(_DUPLICATE)
    return _node_hook(d)


_PLAIN, _TAGGED, _TAGGED_BYTES, _NODE = (
    json.JSONDecoder(object_pairs_hook=hook, parse_float=_finite, parse_constant=_finite)
    for hook in (_unique, _tagged_pairs, _bytes_pairs, _node_pairs))
_PAIRS = json.JSONDecoder(object_pairs_hook=lambda pairs: _Pairs(pairs), parse_float=_finite,
                          parse_constant=_finite)


class _Pairs(list):  # type: ignore[type-arg]
    """An object as decoded for locating an error: its (key, value) pairs, duplicates kept."""


def _locate_duplicate(x: Any, parts: list[str | int]) -> bool:
    """Find the first object with a duplicate key in a ``_PAIRS`` tree; its path in ``parts``
    (innermost first)."""
    if isinstance(x, _Pairs):
        keys = [k for k, _ in x]
        if len(set(keys)) != len(keys):
            return True
        items: Any = x
    elif type(x) is list:
        items = enumerate(x)
    else:
        return False
    for k, v in items:
        if _locate_duplicate(v, parts):
            parts.append(k)
            return True
    return False


def _check_surrogates(x: Any) -> None:
    """Raise _Fail for a lone surrogate in a decoded key or string (JSON's ``\\ud800``
    escapes decode to them; UTF-8 cannot hold them, so ``dumps`` would refuse the value)."""
    if type(x) is str:
        if _SURROGATE.search(x):
            raise _Fail("a string holds a lone surrogate")
        return
    for k, v in x.items() if type(x) is dict else enumerate(x) if type(x) is list else ():
        try:
            if type(k) is str and _SURROGATE.search(k):
                raise _Fail("a key holds a lone surrogate")
            _check_surrogates(v)
        except _Fail as e:
            e.parts.append(k)
            raise


def _as_text(data: object, max_size: int | None) -> str:
    if not isinstance(data, str | bytes | bytearray | memoryview):
        raise SerializationError(f"loads() takes bytes or str, not {type(data).__qualname__}")
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if max_size is not None and len(raw) > max_size:
        raise SerializationError(f"input too large: {len(raw)} bytes, limit {max_size}")
    if isinstance(data, str):
        if _SURROGATE.search(data):
            raise SerializationError("invalid text: a lone surrogate (not Unicode text)")
        return data
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start
    raise SerializationError(f"invalid UTF-8 at byte {bad}")  # outside the except: no context


def _check_depth(x: Any, above: int) -> None:
    """Raise _Fail if container ``x``, under ``above`` others, holds any beyond MAX_DEPTH."""
    if above >= MAX_DEPTH:
        raise _Fail(_TOO_DEEP)
    for k, v in x.items() if type(x) is dict else enumerate(x):
        if type(v) is dict or type(v) is list:
            try:
                _check_depth(v, above + 1)
            except _Fail as e:
                e.parts.append(k)
                raise


def loads(data: bytes | str, dialect: str = "tagged", *, max_size: int | None = None) -> Value:
    """Decode a document written by :func:`dumps` (or, for ``"node"``, by Node.js / Baileys).

    Args: ``data``, UTF-8 JSON as bytes or str; ``dialect``, "tagged" or "node"; ``max_size``,
    the most bytes accepted (``None``: no limit). Returns: the value, bytes as ``bytes``.
    Raises: SerializationError (and nothing else, whatever the input) for invalid UTF-8 or
    JSON, NaN or Infinity, a malformed tag or Buffer (naming its path), nesting deeper than
    MAX_DEPTH, input over ``max_size`` or an unknown dialect.
    """
    _check_dialect(dialect)
    text = _as_text(data, max_size)
    hook, decoder = _node_hook, _NODE
    if dialect == "tagged":
        hook, decoder = _tagged_hook, _TAGGED
        if "\\" not in text:  # else a "$" may be written "\u0024"
            dollars = text.count("$")
            if dollars == 0:
                decoder = _PLAIN  # no key starts with "$": nothing to revive
            elif dollars == text.count('{"$b":"'):
                decoder = _TAGGED_BYTES  # every "$" starts a bytes tag
    try:
        value: Value = decoder.decode(text)
        if text.count("{") + text.count("[") > MAX_DEPTH and type(value) in (dict, list):
            _check_depth(value, 0)  # with fewer brackets it cannot be too deep
        if "\\u" in text and _ESCAPED_SURROGATE.search(text):
            _check_surrogates(value)  # escaped pairs decode whole: what is left is lone
        return value
    except _Fail as e:
        fail, message = e, ""
        if e.reason == _DUPLICATE:
            parts: list[str | int] = []
            try:
                _locate_duplicate(_PAIRS.decode(text), parts)
                fail = _Fail(_DUPLICATE, parts)
            except (RecursionError, ValueError, SerializationError):
                message = f"cannot decode: {_DUPLICATE}"
        elif e.reason != _TOO_DEEP and "surrogate" not in e.reason:
            # a bad tag or Buffer: redo the revival to learn its path
            try:
                _revisit(_PLAIN.decode(text), lambda x: hook(x) if type(x) is dict else x)
            except _Fail as located:
                fail = located
            except (RecursionError, ValueError, SerializationError):
                message = f"cannot decode: {e.reason}"
    except RecursionError:
        message = f"cannot decode: {_TOO_DEEP}"
    except ValueError as e:  # JSONDecodeError, or an int literal over int_max_str_digits
        message = (f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                   if isinstance(e, json.JSONDecodeError) else "invalid JSON: an int is too long")
    raise SerializationError(message) if message else fail.error("decode")

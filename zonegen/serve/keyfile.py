"""TSIG keys from the command line and from BIND-syntax key files (``tsig-keygen``).

Only parsing: a key here is a ``dns.tsig.Key``; what signs and verifies is
:mod:`zonegen.tsig` and dnspython.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.name
import dns.tsig

from zonegen.errors import InvalidInput

ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
"""TSIG algorithms by their BIND names (RFC 8945 §6)."""


def make_key(name: str, algorithm: str, secret: str, where: str) -> dns.tsig.Key:
    """A TSIG key from its three parts, with errors naming ``where`` it came from.

    :raises InvalidInput: unknown algorithm, bad name, or a secret that is not base64.
    """
    alg = ALGORITHMS.get(algorithm.strip().lower().rstrip("."))
    if alg is None:
        raise InvalidInput(f"{where}: unknown TSIG algorithm {algorithm!r} (one of "
                           f"{', '.join(ALGORITHMS)})")
    try:
        key_name = dns.name.from_text(name.strip())
    except dns.exception.DNSException as e:
        raise InvalidInput(f"{where}: key name {name!r} is not a domain name: {e}") from None
    try:
        raw = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: secret of key {name!r} is not base64") from None
    if not raw:
        raise InvalidInput(f"{where}: secret of key {name!r} is empty")
    return dns.tsig.Key(key_name, raw, alg)


def parse_tsig_key(text: str) -> dns.tsig.Key:
    """``NAME:ALGORITHM:BASE64SECRET`` (``--tsig-key``).

    :raises InvalidInput: wrong shape, unknown algorithm or bad secret.
    """
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise InvalidInput(f"--tsig-key {parts[0]!r}...: expected NAME:ALGORITHM:BASE64SECRET")
    return make_key(parts[0], parts[1], parts[2], f"--tsig-key {parts[0]}")


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<punct>[{};])
  | (?P<word>[^\s{};"\#/]+(?:/(?![/*])[^\s{};"\#/]*)*)
""", re.VERBOSE | re.DOTALL)


def _tokens(text: str, path: str) -> Iterator[tuple[str, int, bool]]:
    """``(token, line, quoted)`` for BIND's configuration grammar: words, quoted strings,
    braces and semicolons; ``#``, ``//`` and ``/* */`` comments skipped."""
    pos = 0
    line = 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            snippet = text[pos:pos + 20].split("\n")[0]
            raise InvalidInput(f"{path}:{line}: unexpected {snippet!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "string":
            yield re.sub(r"\\(.)", r"\1", value[1:-1]), line, True
        elif kind in ("punct", "word"):
            yield value, line, False
        line += value.count("\n")
        pos = m.end()


def parse_keyfile(path: str | Path) -> list[dns.tsig.Key]:
    """The ``key`` clauses of a BIND-syntax file (``tsig-keygen`` output, rndc.key)::

        key "xfr-key" { algorithm hmac-sha256; secret "c2VjcmV0"; };

    Other top-level statements are skipped (a named.conf fragment may hold more).

    :raises InvalidInput: the file cannot be read, or a ``key`` clause is malformed; the
        message names the file and line.
    """
    name = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{name}: cannot read TSIG key file: "
                           f"{getattr(e, 'strerror', None) or e}") from None
    toks = list(_tokens(text, name))
    keys: list[dns.tsig.Key] = []
    i = 0

    def want(what: str) -> tuple[str, int, bool]:
        nonlocal i
        if i >= len(toks):
            last = toks[-1][1] if toks else 1
            raise InvalidInput(f"{name}:{last}: unexpected end of file, expected {what}")
        tok = toks[i]
        i += 1
        return tok

    def skip_statement() -> None:
        depth = 0
        while True:
            tok, _, quoted = want("';'")
            if not quoted and tok == "{":
                depth += 1
            elif not quoted and tok == "}":
                depth -= 1
            elif not quoted and tok == ";" and depth <= 0:
                return

    while i < len(toks):
        tok, line, quoted = want("a statement")
        if quoted or tok != "key":
            if not quoted and tok == ";":
                continue
            skip_statement()
            continue
        key_name, line, _ = want("a key name")
        if key_name in "{};":
            raise InvalidInput(f"{name}:{line}: key without a name")
        brace, bline, bquoted = want("'{'")
        if bquoted or brace != "{":
            raise InvalidInput(f"{name}:{bline}: expected '{{' after key {key_name!r}")
        fields: dict[str, str] = {}
        while True:
            field_name, fline, fquoted = want("'}'")
            if not fquoted and field_name == "}":
                break
            value, vline, _ = want(f"a value for {field_name!r}")
            end, eline, equoted = want("';'")
            if equoted or end != ";":
                raise InvalidInput(f"{name}:{eline}: expected ';' after {field_name} "
                                   f"{value!r} in key {key_name!r}")
            if field_name not in ("algorithm", "secret"):
                raise InvalidInput(f"{name}:{fline}: unknown field {field_name!r} in key "
                                   f"{key_name!r} (expected algorithm and secret)")
            if field_name in fields:
                raise InvalidInput(f"{name}:{fline}: {field_name} given twice in key "
                                   f"{key_name!r}")
            fields[field_name] = value
        end, eline, equoted = want("';'")
        if equoted or end != ";":
            raise InvalidInput(f"{name}:{eline}: expected ';' after the '}}' of key "
                               f"{key_name!r}")
        for needed in ("algorithm", "secret"):
            if needed not in fields:
                raise InvalidInput(f"{name}:{line}: key {key_name!r} has no {needed}")
        keys.append(make_key(key_name, fields["algorithm"], fields["secret"],
                             f"{name}:{line}"))
    if not keys:
        raise InvalidInput(f"{name}: no key clause found")
    return keys


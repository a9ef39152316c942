"""Token counting with tiktoken, strictly offline.

tiktoken fetches its rank files from the network on first use (and caches them in
``TIKTOKEN_CACHE_DIR``); a guard must not depend on that. The ``bpe-openai`` wheel ships the
same rank files, gzipped, and they are byte-for-byte OpenAI's: their SHA-256 matches the hash
tiktoken itself pins. So we run tiktoken's own encoding constructors
(``tiktoken_ext.openai_public``: its split patterns, its special tokens) with the one thing
swapped, the loader, which reads the bundled file and checks that pinned hash.

    >>> count_tokens("hello world", "cl100k_base")
    2
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]

__all__ = ["ENCODINGS", "count_tokens", "encoding_for"]

#: Encodings we can build offline: those both tiktoken knows and bpe-openai bundles.
ENCODINGS: tuple[str, ...] = ("cl100k_base", "o200k_base")


def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """How many tokens ``text`` is in ``encoding``.

    Special-token markers such as ``<|endoftext|>`` count as the plain text they are: the text
    comes from agents and tools, and counting it must never fail on what it contains.
    """
    return len(encoding_for(encoding).encode_ordinary(text))


def encoding_for(name: str) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name``, built offline once and then cached."""
    if name not in ENCODINGS:
        raise ValueError(
            f"unknown token encoding {name!r}: available offline are {', '.join(ENCODINGS)}"
        )
    return _build(name)


@functools.cache
def _build(name: str) -> tiktoken.Encoding:
    # Two threads racing here may both build it (about a second); both results are equal.
    constructor: Callable[[], dict[str, Any]] = _offline(openai_public.ENCODING_CONSTRUCTORS[name])
    return tiktoken.Encoding(**constructor())


def _offline(constructor: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``constructor`` as tiktoken wrote it, but with ``load_tiktoken_bpe`` reading bundled files.

    The copy gets its own globals, so tiktoken's module (used by others in this process) is
    left untouched.
    """
    namespace = {**vars(openai_public), "load_tiktoken_bpe": _load_bundled_bpe}
    return types.FunctionType(constructor.__code__, namespace, constructor.__name__)


def _load_bundled_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stand-in for ``tiktoken.load.load_tiktoken_bpe``: same file format, read from bpe-openai.

    tiktoken's format is one ``<base64 token> <rank>`` pair per line.
    """
    filename = url.rsplit("/", 1)[-1] + ".gz"
    # Found, not imported: importing bpe_openai would parse every encoding it ships.
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or spec.origin is None:
        raise RuntimeError("cannot count tokens offline: the bpe-openai package is missing")
    path = Path(spec.origin).parent / "data" / filename
    try:
        contents = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise RuntimeError(
            f"cannot read bundled token ranks {filename!r} from the bpe-openai package "
            f"(wanted for {url}); reinstall bpe-openai: {exc}"
        ) from exc
    if expected_hash is not None and hashlib.sha256(contents).hexdigest() != expected_hash:
        raise RuntimeError(
            f"bundled token ranks {filename!r} from bpe-openai do not match the SHA-256 "
            f"tiktoken pins for {url} ({expected_hash}); the installed bpe-openai is unusable"
        )
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks

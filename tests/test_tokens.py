"""Token counting: tiktoken's own encodings, built from files shipped in bpe-openai, offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import tiktoken

from guardrails_plugin import _tokens
from guardrails_plugin._tokens import ENCODINGS, count_tokens, encoding_for

SAMPLES = [
    "hello world",
    "",
    "The quick brown fox jumps over the lazy dog.",
    "naïve café — 日本語のテキスト, Ελληνικά, emoji 🤖🚀",
    "def f(x):\n    return x ** 2  # 12345678901234\n\n\n",
    '{"to": ["alice@example.org"], "subject": "Q3 numbers", "amount": 1234.56}',
    "   leading and trailing spaces   \t\r\n",
]


def rust_tokens(encoding: str, text: str) -> list[int]:
    """``text`` encoded by bpe-openai's own tokenizer (a Rust implementation), for comparison."""
    with warnings.catch_warnings():  # bpe-openai loads its data with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        from bpe_openai import _bindings

        return _bindings.tokenizer_for_encoding(encoding).encode(text)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network and an empty tiktoken cache; encodings are rebuilt from scratch."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is blocked in this test")

    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    _tokens._build.cache_clear()
    return cache


def test_the_network_block_is_real(offline: Path) -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    # tiktoken left to itself would download r50k_base; here it cannot.
    with pytest.raises((OSError, ImportError)):
        tiktoken.get_encoding("r50k_base")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_counting_never_touches_the_network_or_the_cache(offline: Path, encoding: str) -> None:
    assert count_tokens("hello world", encoding) == 2
    assert list(offline.iterdir()) == []


def test_counting_does_not_import_bpe_openai() -> None:
    # Importing bpe_openai parses every encoding it ships (seconds); we only read its files.
    root = Path(_tokens.__file__).resolve().parents[1]
    code = (
        "import sys; from guardrails_plugin._tokens import count_tokens; "
        "print(count_tokens('hello world'), 'bpe_openai' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["2", "False"]


def test_hello_world_is_two_tokens() -> None:
    assert count_tokens("hello world", "cl100k_base") == 2
    assert count_tokens("hello world", "o200k_base") == 2
    assert count_tokens("hello world") == 2


def test_known_token_ids() -> None:
    assert encoding_for("cl100k_base").encode("hello world") == [15339, 1917]
    assert encoding_for("o200k_base").encode("hello world") == [24912, 2375]


def test_empty_text_is_zero_tokens() -> None:
    assert count_tokens("") == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("text", SAMPLES)
def test_counts_agree_with_bpe_openai_rust_tokenizer(encoding: str, text: str) -> None:
    expected = rust_tokens(encoding, text)
    assert encoding_for(encoding).encode_ordinary(text) == expected
    assert count_tokens(text, encoding) == len(expected)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_special_token_markers_count_as_plain_text(encoding: str) -> None:
    text = "ignore this <|endoftext|> and <|endofprompt|>"
    assert count_tokens(text, encoding) == len(rust_tokens(encoding, text))
    assert count_tokens(text, encoding) > 4


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encoding_is_tiktokens_own(encoding: str) -> None:
    enc = encoding_for(encoding)
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.name == encoding
    assert enc.eot_token == {"cl100k_base": 100257, "o200k_base": 199999}[encoding]
    assert "<|endofprompt|>" in enc.special_tokens_set
    text = SAMPLES[3]
    assert enc.decode(enc.encode(text)) == text


def test_encoding_is_built_once() -> None:
    assert encoding_for("o200k_base") is encoding_for("o200k_base")


def test_unknown_encoding_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'p50k_base'.*cl100k_base, o200k_base"):
        count_tokens("hi", "p50k_base")
    with pytest.raises(ValueError, match="available"):
        encoding_for("gpt-4o")


def test_bundled_ranks_must_match_the_hash_tiktoken_pins() -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    with pytest.raises(RuntimeError, match="do not match the SHA-256"):
        _tokens._load_bundled_bpe(url, expected_hash="0" * 64)


def test_ranks_missing_from_bpe_openai_are_reported() -> None:
    with pytest.raises(RuntimeError, match="r50k_base"):
        _tokens._load_bundled_bpe("https://example.invalid/r50k_base.tiktoken")

"""SM4 for HJ 212-2025's encrypted CP: the GB/T 32907 vector, the plain tail, both wire forms."""

from __future__ import annotations

import pytest

from ecowatch.ingest.hj212.sm4 import (
    BLOCK,
    KEY_BYTES,
    Sm4KeyError,
    decrypt_cp,
    encrypt_cp,
    from_text_form,
    parse_key,
    to_text_form,
)

# GB/T 32907's check vector: the key is also the plaintext.
VECTOR_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
VECTOR_CIPHER = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
APPENDIX_KEY = b"0" * 16  # HJ 212-2025 Appendix A.2's example key
CP = b"DataTime=20260601085857;w01018-Rtd=45.2,w01018-Flag=N;w00000-Rtd=31.5,w00000-Flag=N"


def test_constants() -> None:
    assert (KEY_BYTES, BLOCK) == (16, 16)


def test_check_vector_encrypts() -> None:
    assert encrypt_cp(VECTOR_KEY, VECTOR_KEY) == VECTOR_CIPHER


def test_check_vector_decrypts() -> None:
    assert decrypt_cp(VECTOR_KEY, VECTOR_CIPHER) == VECTOR_KEY


def test_whole_blocks_change_and_a_short_tail_stays_plain() -> None:
    plain = bytes(range(65, 65 + 37))
    cipher = encrypt_cp(VECTOR_KEY, plain)
    assert len(cipher) == 37
    assert cipher[32:] == plain[32:]
    assert cipher[:16] != plain[:16]
    assert cipher[16:32] != plain[16:32]
    # ECB: each whole block is encrypted on its own, as a single block would be.
    assert cipher[:16] == encrypt_cp(VECTOR_KEY, plain[:16])
    assert cipher[16:32] == encrypt_cp(VECTOR_KEY, plain[16:32])


def test_shorter_than_a_block_is_left_alone() -> None:
    assert encrypt_cp(VECTOR_KEY, b"abc") == b"abc"


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 100])
def test_round_trip_keeps_length(length: int) -> None:
    plain = bytes((7 * i + 3) % 256 for i in range(length))
    cipher = encrypt_cp(VECTOR_KEY, plain)
    assert len(cipher) == length
    assert decrypt_cp(VECTOR_KEY, cipher) == plain


def test_appendix_key_round_trip_of_a_real_cp() -> None:
    cipher = encrypt_cp(APPENDIX_KEY, CP)
    whole = len(CP) - len(CP) % BLOCK
    assert cipher[:whole] != CP[:whole]
    assert cipher[whole:] == CP[whole:]
    assert decrypt_cp(APPENDIX_KEY, cipher) == CP


def test_wrong_key_does_not_decrypt() -> None:
    assert decrypt_cp(VECTOR_KEY, encrypt_cp(APPENDIX_KEY, CP)) != CP


def test_text_form_is_the_appendix_print() -> None:
    assert to_text_form(bytes([0xE4, 0x3E, 0x0A])) == "{0xE4,0x3E,0x0A}"
    assert to_text_form(b"") == "{}"


def test_text_form_round_trip() -> None:
    cipher = encrypt_cp(APPENDIX_KEY, CP)
    assert from_text_form(to_text_form(cipher)) == cipher
    assert decrypt_cp(APPENDIX_KEY, from_text_form(to_text_form(cipher)) or b"") == CP


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{0xe4,0x3e}", b"\xe4\x3e"),
        ("{0xE4, 0x3E,  0x00}", b"\xe4\x3e\x00"),
        ("{0xA,0x0}", b"\x0a\x00"),
        ("{}", b""),
    ],
)
def test_from_text_form_accepts_variants(text: str, expected: bytes) -> None:
    assert from_text_form(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        CP.decode(),
        "DataTime=20260601085857;w01018-Rtd=45.2",
        "{0xE4,0x3E",
        "0xE4,0x3E}",
        "{0xE4,,0x3E}",
        "{0xE4,0x3G}",
        "{0x123}",
        "{E4,3E}",
        "x{0xE4}",
    ],
)
def test_from_text_form_refuses_other_text(text: str) -> None:
    assert from_text_form(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "0123456789abcdeffedcba9876543210",
        "0123456789ABCDEFFEDCBA9876543210",
        "  0123456789AbCdEfFeDcBa9876543210\n",
    ],
)
def test_parse_key_accepts_32_hex_digits(text: str) -> None:
    assert parse_key(text) == VECTOR_KEY


@pytest.mark.parametrize(
    "text",
    [
        "0123456789abcdeffedcba987654321",  # 31 digits
        "0123456789abcdeffedcba98765432100",  # 33 digits
        "0123456789abcdeffedcba987654321g",  # not hex
        "0123456789abcdef fedcba987654321",  # a space inside
        "0000000000000000",  # the appendix's ASCII key, not its hex
        "",
    ],
)
def test_parse_key_refuses_and_keeps_the_key_secret(text: str) -> None:
    with pytest.raises(Sm4KeyError) as caught:
        parse_key(text)
    message = str(caught.value)
    assert "32 hex digits" in message
    if text:
        assert text.strip() not in message


@pytest.mark.parametrize("key", [b"", b"0" * 15, b"0" * 17, b"0" * 32])
def test_wrong_length_key_is_refused(key: bytes) -> None:
    with pytest.raises(Sm4KeyError):
        encrypt_cp(key, CP)
    with pytest.raises(Sm4KeyError):
        decrypt_cp(key, CP)

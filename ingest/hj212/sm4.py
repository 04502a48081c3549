"""SM4 for the encrypted CP of HJ 212-2025 (§6.4, Appendix A.2): pure functions, no I/O.

The standard encrypts the CP content (the bytes between ``CP=&&`` and the closing ``&&``)
with SM4 (GB/T 32907) in ECB mode without padding: whole 16-byte blocks are encrypted and a
tail shorter than a block stays plain text, so a packet's length never changes. The CRC is
computed over the plain text, so a receiver decrypts first and checks the CRC after.

On the wire the ciphertext is raw bytes, but Appendix A.2 prints it as ``{0xE4,0x3E,...}``
and some implementers send exactly that text; :func:`from_text_form` lets a caller accept both.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 16  # SM4 keys are 128 bits, one per device
BLOCK = 16  # SM4 block size; a shorter tail is left plain by the standard

_KEY_TEXT = re.compile(r"[0-9A-Fa-f]{32}")
# Two hex digits is how Appendix A.2 prints a byte; one is accepted too, since a sender's
# printf("0x%X") drops the leading zero. Spaces after commas are tolerated for the same reason.
_TEXT_FORM = re.compile(r"\{(?:0x[0-9A-Fa-f]{1,2}(?:, *0x[0-9A-Fa-f]{1,2})*)?\}")
_TEXT_BYTE = re.compile(r"0x([0-9A-Fa-f]{1,2})")


class Sm4KeyError(ValueError):
    """A device's SM4 key is not 16 bytes (or not 32 hex digits as configured text)."""


def parse_key(text: str) -> bytes:
    """The 16-byte key written as 32 hex digits; surrounding whitespace is ignored.

    The message of the error never contains the text itself: a key is a secret and errors
    end up in logs.
    """
    candidate = text.strip()
    if len(candidate) != 2 * KEY_BYTES:
        raise Sm4KeyError(
            f"an SM4 key is {2 * KEY_BYTES} hex digits ({KEY_BYTES} bytes); "
            f"got {len(candidate)} characters"
        )
    if not _KEY_TEXT.fullmatch(candidate):
        raise Sm4KeyError(
            f"an SM4 key is {2 * KEY_BYTES} hex digits ({KEY_BYTES} bytes); "
            f"got {len(candidate)} characters that are not all hex digits (0-9, a-f)"
        )
    return bytes.fromhex(candidate)


def _cipher(key: bytes) -> Cipher[modes.ECB]:
    # Checked here so that a bad key is an Sm4KeyError, like parse_key's, not a library error.
    if len(key) != KEY_BYTES:
        raise Sm4KeyError(f"an SM4 key is {KEY_BYTES} bytes; got {len(key)}")
    return Cipher(algorithms.SM4(bytes(key)), modes.ECB())


def encrypt_cp(key: bytes, plain: bytes) -> bytes:
    """CP content encrypted as HJ 212-2025 wants it: whole blocks in ECB, the tail kept plain."""
    cipher = _cipher(key)
    whole = len(plain) - len(plain) % BLOCK
    # ECB has no chaining, so all whole blocks go through one update call.
    encryptor = cipher.encryptor()
    return encryptor.update(plain[:whole]) + encryptor.finalize() + plain[whole:]


def decrypt_cp(key: bytes, data: bytes) -> bytes:
    """The inverse of :func:`encrypt_cp`: whole blocks decrypted, the plain tail kept."""
    cipher = _cipher(key)
    whole = len(data) - len(data) % BLOCK
    decryptor = cipher.decryptor()
    return decryptor.update(data[:whole]) + decryptor.finalize() + data[whole:]


def to_text_form(data: bytes) -> str:
    """The bytes as Appendix A.2 prints them: ``{0xE4,0x3E,...}``."""
    return "{" + ",".join(f"0x{b:02X}" for b in data) + "}"


def from_text_form(text: str) -> bytes | None:
    """The bytes if ``text`` is in Appendix A.2's printed form, else None (then it is raw)."""
    if not _TEXT_FORM.fullmatch(text):
        return None
    return bytes(int(digits, 16) for digits in _TEXT_BYTE.findall(text))

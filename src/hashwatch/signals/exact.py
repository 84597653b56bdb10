"""MD5, SHA-1 and SHA-256 of a file's bytes as received: the exact hashes hotlines share.

They are three tiny declarations over ExactDigestSignalType; all behaviour lives there.
"""

from __future__ import annotations

from hashwatch.signals.base import ExactDigestSignalType

__all__ = ["MD5", "SHA1", "SHA256"]


class MD5(ExactDigestSignalType):
    name = "md5"
    description = "MD5 of the file's bytes"
    digest_name = "md5"
    hex_length = 32


class SHA1(ExactDigestSignalType):
    name = "sha1"
    description = "SHA-1 of the file's bytes"
    digest_name = "sha1"
    hex_length = 40


class SHA256(ExactDigestSignalType):
    name = "sha256"
    description = "SHA-256 of the file's bytes"
    digest_name = "sha256"
    hex_length = 64

"""BLAKE2b, the hash of carlang's cache keys and grammar digests, without `hashlib`'s import.

`hashlib` loads OpenSSL when it is imported (~4 ms, paid by every `carlang check`, which hashes
its grammars and conditions); CPython's own BLAKE2 module is a few microseconds. Interpreters
without it get hashlib's, which is the same function.
"""

from __future__ import annotations

try:
    from _blake2 import blake2b
except ImportError:  # (another implementation: hashlib's, the same digests)
    from hashlib import blake2b

__all__ = ["blake2b"]

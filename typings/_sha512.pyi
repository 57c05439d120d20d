# CPython 3.11's builtin SHA-512 (Modules/sha512module.c; `_sha2` from 3.12), which pycni imports to avoid loading
# OpenSSL through hashlib (~3 ms per plugin start). typeshed has no stub for it; it behaves as hashlib's.
from hashlib import sha512 as sha512

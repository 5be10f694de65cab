"""Hub88 request signatures: RSA-SHA256, PKCS#1 v1.5, base64, header ``X-Hub88-Signature``.

Source: README.md ("Signature"): Hub88 signs the raw request body with
its private key and the operator verifies with Hub88's public key; the operator signs its
response bodies with its own private key, in the same header. Test vectors:
tests/vectors/hub88/ (tests/test_hub88_signature.py).

Keys are loaded once (``Hub88Signer.from_settings`` at start-up), never per request.

Cost and threading, measured on this sandbox (2 cores, cryptography 50 / OpenSSL 3+,
RSA-2048, ~120-byte bodies; the benchmark is in README.md):

* sign: ~300 us of CPU. Two threads signing in parallel finish 1.9x faster than one
  thread doing the same work, and a pure-Python loop on the main thread keeps ~70-97 % of
  its speed while another thread signs: **cryptography releases the GIL during RSA
  signing**. So ``sign_async`` runs on a small ``ThreadPoolExecutor``
  (``providers.hub88.signing_threads``) and the event loop keeps serving while a response
  is signed; ``signing_threads = 0`` signs inline on the loop instead.
* verify: ~22 us (public exponent 65537); two threads give no speed-up (0.96x), it is too
  short for a thread hand-off to pay, so ``verify`` runs inline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.config import Settings
from gateway.providers.hub88.settings import Hub88Settings

HEADER: Final = "X-Hub88-Signature"

# Longest header value accepted before decoding: base64 of a 4096-bit signature is 684
# characters; anything far longer is refused without work.
_HEADER_CHARS_MAX: Final = 2_048

_PADDING: Final = padding.PKCS1v15()
_HASH: Final = hashes.SHA256()


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Parse a PEM RSA public key (SubjectPublicKeyInfo). Raises ValueError if not RSA."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Hub88 public key must be an RSA key")  # noqa: TRY004 - documented: a wrong key is bad configuration
    return key


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key (PKCS#1 or PKCS#8). Raises ValueError if not RSA."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("operator private key must be an RSA key")  # noqa: TRY004 - documented: a wrong key is bad configuration
    return key


def decode_signature_header(value: str | bytes | None) -> bytes | None:
    """The raw signature bytes from a base64 header value, or None if absent or not base64."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            return None
    value = value.strip()
    if not value or len(value) > _HEADER_CHARS_MAX:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_signature(public_key: rsa.RSAPublicKey, body: bytes, header: str | bytes | None) -> bool:
    """True iff ``header`` is base64(RSA-SHA256 PKCS#1 v1.5 over ``body``) under ``public_key``.

    Never raises for bad input: a missing, non-base64, wrong-length or wrong signature is
    simply False.
    """
    signature = decode_signature_header(header)
    if signature is None or len(signature) != (public_key.key_size + 7) // 8:
        return False
    try:
        public_key.verify(signature, body, _PADDING, _HASH)
    except InvalidSignature:
        return False
    return True


def sign_body(private_key: rsa.RSAPrivateKey, body: bytes) -> str:
    """base64(RSA-SHA256 PKCS#1 v1.5 over ``body``): the value of ``X-Hub88-Signature``."""
    return base64.b64encode(private_key.sign(body, _PADDING, _HASH)).decode("ascii")


class Hub88Signer:
    """Verifies Hub88's requests and signs our responses, with keys loaded once.

    ``public_key`` may be None when verification is disabled
    (``providers.hub88.verify_signatures = false``); ``verify`` then refuses everything, so
    callers check ``verifies`` first.
    """

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey | None,
        private_key: rsa.RSAPrivateKey,
        signing_threads: int,
    ) -> None:
        self._public_key = public_key
        self._private_key = private_key
        self._executor: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(max_workers=signing_threads, thread_name_prefix="hub88-sign")
            if signing_threads > 0
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings, hub88: Hub88Settings) -> Hub88Signer:
        """Load both keys from the integration's paths (relative to the project root).

        Raises OSError / ValueError at start-up if a key is missing or not RSA: the adapter
        must not start half-configured.
        """
        public_key = None
        if hub88.verify_signatures:
            public_key = load_public_key(_read(settings.resolve_path(hub88.provider_public_key_path)))
        private_key = load_private_key(_read(settings.resolve_path(hub88.operator_private_key_path)))
        return cls(
            public_key=public_key, private_key=private_key, signing_threads=hub88.signing_threads
        )

    @property
    def verifies(self) -> bool:
        return self._public_key is not None

    def verify(self, body: bytes, header: str | bytes | None) -> bool:
        """Check Hub88's signature over the raw request body (inline: ~22 us)."""
        if self._public_key is None:
            return False
        return verify_signature(self._public_key, body, header)

    def sign(self, body: bytes) -> str:
        """Sign a response body on the calling thread (~300 us of CPU)."""
        return sign_body(self._private_key, body)

    async def sign_async(self, body: bytes) -> str:
        """Sign a response body on the signing pool, off the event loop (GIL released)."""
        if self._executor is None:
            return self.sign(body)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.sign, body)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _read(path: Path) -> bytes:
    return path.read_bytes()

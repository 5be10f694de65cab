"""Hub88 signature module against the published vectors (tests/vectors/hub88, from
coingaming/Hub88-Examples, Apache License 2.0: see the README.md there).

Each vector line is ``data;signature`` with signature = base64(RSA-SHA256 PKCS#1 v1.5 over
the bytes of ``data``) made with private.pem; every line must verify with public.pem and
any altered byte of data or signature must be refused (gateway/providers/hub88/README.md,
"Signature").
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.providers.hub88.settings import Hub88Settings
from gateway.providers.hub88.signature import (
    HEADER,
    Hub88Signer,
    decode_signature_header,
    load_private_key,
    load_public_key,
    sign_body,
    verify_signature,
)
from tests.helpers import integration_config

VECTORS = Path(__file__).parent / "vectors" / "hub88"  # README.md there: source and license


def _vectors() -> list[tuple[bytes, str]]:
    lines = (VECTORS / "signatures.csv").read_bytes().decode("utf-8").splitlines()
    assert lines[0] == "data;signature"
    out = []
    for line in lines[1:]:
        if line:
            data, signature = line.rsplit(";", 1)
            out.append((data.encode("utf-8"), signature))
    return out


VECTOR_LINES = _vectors()


@pytest.fixture(scope="module")
def public_key():
    return load_public_key((VECTORS / "public.pem").read_bytes())


@pytest.fixture(scope="module")
def private_key():
    return load_private_key((VECTORS / "private.pem").read_bytes())


def test_there_are_vectors():
    assert len(VECTOR_LINES) >= 4


@pytest.mark.parametrize("data,signature", VECTOR_LINES)
def test_every_vector_verifies(public_key, data, signature):
    assert verify_signature(public_key, data, signature)
    assert verify_signature(public_key, data, signature.encode("ascii"))


@pytest.mark.parametrize("data,signature", VECTOR_LINES)
def test_altered_data_byte_refused(public_key, data, signature):
    for i in (0, len(data) // 2, len(data) - 1):
        altered = bytearray(data)
        altered[i] ^= 0x01
        assert not verify_signature(public_key, bytes(altered), signature)
    assert not verify_signature(public_key, data + b" ", signature)
    assert not verify_signature(public_key, data[:-1], signature)


@pytest.mark.parametrize("data,signature", VECTOR_LINES)
def test_altered_signature_byte_refused(public_key, data, signature):
    raw = base64.b64decode(signature)
    for i in (0, len(raw) // 2, len(raw) - 1):
        altered = bytearray(raw)
        altered[i] ^= 0x80
        assert not verify_signature(public_key, data, base64.b64encode(bytes(altered)))


def test_signature_of_another_vector_refused(public_key):
    (data0, _), (_, sig1) = VECTOR_LINES[0], VECTOR_LINES[1]
    assert not verify_signature(public_key, data0, sig1)


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "not base64 !!", "@@@@", "AAAA", "V3bEXE72v0fbrKNV6bHW945W", "é" * 10, "A" * 5000],
)
def test_missing_or_garbage_header_refused(public_key, header):
    data, _ = VECTOR_LINES[0]
    assert not verify_signature(public_key, data, header)


def test_decode_header_rejects_non_base64():
    assert decode_signature_header(None) is None
    assert decode_signature_header("abc$") is None
    assert decode_signature_header("QUJD") == b"ABC"
    assert decode_signature_header(" QUJD\n") == b"ABC"


def test_demo_key_signs_like_the_vectors(private_key, public_key):
    # PKCS#1 v1.5 is deterministic: our signer reproduces Hub88's published signatures.
    for data, signature in VECTOR_LINES:
        assert sign_body(private_key, data) == signature


def test_sign_then_verify_round_trip(private_key, public_key):
    body = b'{"user":"john12345","status":"RS_OK","request_uuid":"r-1","currency":"EUR","balance":100500}'
    signature = sign_body(private_key, body)
    assert verify_signature(public_key, body, signature)
    assert not verify_signature(public_key, body.replace(b"100500", b"100501"), signature)


def test_key_loaders_refuse_wrong_material():
    with pytest.raises(ValueError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError):
        load_private_key(b"not a key")


def _hub88(**hub88) -> tuple[Settings, Hub88Settings]:
    settings = _settings(**hub88)
    integration = settings.integration("hub88")
    assert isinstance(integration, Hub88Settings)
    return settings, integration


def _settings(**hub88) -> Settings:
    import msgspec

    keys = {"provider_public_key_path": str(VECTORS / "public.pem"),
            "operator_private_key_path": str(VECTORS / "private.pem")}
    base = integration_config("hub88", **{**keys, **hub88})
    return msgspec.convert(base, Settings)


def test_signer_from_settings_and_async_signing():
    signer = Hub88Signer.from_settings(*_hub88(signing_threads=2))
    try:
        assert signer.verifies
        data, signature = VECTOR_LINES[2]
        assert signer.verify(data, signature)
        assert not signer.verify(data, None)

        async def sign_many() -> list[str]:
            return await asyncio.gather(*(signer.sign_async(d) for d, _ in VECTOR_LINES))

        assert asyncio.run(sign_many()) == [s for _, s in VECTOR_LINES]
    finally:
        signer.close()
    assert HEADER == "X-Hub88-Signature"


def test_signer_inline_and_without_verification():
    signer = Hub88Signer.from_settings(*_hub88(signing_threads=0, verify_signatures=False))
    data, signature = VECTOR_LINES[0]
    assert not signer.verifies
    assert not signer.verify(data, signature)  # nothing verifies without a key
    assert asyncio.run(signer.sign_async(data)) == signature
    signer.close()


def test_signer_refuses_missing_key_file(tmp_path):
    with pytest.raises(OSError):
        Hub88Signer.from_settings(*_hub88(operator_private_key_path=str(tmp_path / "none.pem")))

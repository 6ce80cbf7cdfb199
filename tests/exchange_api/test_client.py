"""The client refuses answers it cannot trust: forged, signed by an unpublished key, or answering another request."""

from __future__ import annotations

import httpx
import pytest

from exchange_api.answers import build_payload, sign_answer
from exchange_api.client import AnswerNotTrusted, HubClient, verify_answer
from exchange_api.hub_keys import HubKeyring
from tests.exchange_api.conftest import PERSON_ID

PURPOSE = "social_assistance"


def test_a_tampered_answer_is_refused(hub):
    dept = hub.department()
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-C1")
    header, payload, signature = answer.token.split(".")
    for forged in (f"{header}.{payload[:-4]}AAAA.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA",
                   "not a jws", f"{header}.{payload}"):
        with pytest.raises(AnswerNotTrusted):
            dept.client.verify(forged)


def test_an_answer_to_another_request_is_refused(hub):
    dept = hub.department()
    answer = dept.client.lookup("population", PERSON_ID, PURPOSE, "CASE-C2")
    jwks = dept.client.jwks()
    with pytest.raises(AnswerNotTrusted, match="another request"):
        verify_answer(answer.token, jwks, expected_nonce="some-other-nonce")
    with pytest.raises(AnswerNotTrusted, match="another department"):
        verify_answer(answer.token, jwks, expected_department="someone_else")


def test_an_answer_signed_by_an_unpublished_key_is_refused(hub, tmp_path):
    """A man in the middle with its own key: the client fetches the real JWKS and refuses the answer."""
    dept = hub.department()
    impostor_keys = HubKeyring(tmp_path / "impostor")
    real_jwks = httpx.get(hub.url + "/.well-known/jwks.json").json()

    def fake_hub(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            return httpx.Response(200, json=real_jwks)
        payload = build_payload(request_id="x", snapshot_version="v000001", library="population", record=None,
                                released=(), department=dept.code, nonce="n")
        return httpx.Response(200, text=sign_answer(payload, impostor_keys),
                              headers={"Content-Type": "application/jose"})

    with HubClient("http://hub.test", dept.kid, dept.private_key, transport=httpx.MockTransport(fake_hub)) as client:
        with pytest.raises(AnswerNotTrusted, match="does not publish"):
            client.lookup("population", PERSON_ID, PURPOSE, "CASE-C3")

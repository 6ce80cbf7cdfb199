"""The one JWS algorithm answers are signed with (EdDSA over Ed25519), and a joserfc registry that allows only it."""

from __future__ import annotations

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jws import JWSAlgModel, JWSRegistry

JWS_ALG = "EdDSA"


class EdDSAOnly(JWSRegistry):
    """Accepts EdDSA and nothing else.

    RFC 9864 deprecates "EdDSA" in favour of the fully specified "Ed25519", and joserfc warns on every
    use. We keep "EdDSA" because it is what today's JOSE libraries verify; the warning adds nothing.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != JWS_ALG:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


REGISTRY = EdDSAOnly(algorithms=[JWS_ALG])

#!/usr/bin/env python3
"""bench/auth_tokens.py - keys, a JWKS and one JWT per algorithm for bench/auth.sh.

    auth_tokens.py DIR ISSUER AUDIENCE GROUP

Makes an RSA 2048 (RS256), an EC P-256 (ES256) and an Ed25519 (EdDSA) key with
`cryptography`, writes their public halves to DIR/jwks.json (kids rsa-1, ec-1, ed-1)
and one token per algorithm to DIR/token-RS256, DIR/token-ES256, DIR/token-EdDSA:
iss, aud, sub "bench-jwt", groups [GROUP], iat now, exp in two hours.

Tokens are minted by PyJWT when it can be imported (tests/integration uses it; the
repository's .venv has it, scripts/install-deps.sh --test), else signed here with
`cryptography` alone (JWS compact form, ES256 as r||s).  Prints "minted_with=pyjwt" or
"minted_with=cryptography".
"""
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

try:
    import jwt as pyjwt
except ImportError:
    pyjwt = None


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64url(value, length=None):
    length = length or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(length, "big"))


def public_jwk(alg, kid, key):
    public = key.public_key()
    if alg == "RS256":
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": int_b64url(numbers.n), "e": int_b64url(numbers.e),
                "kid": kid, "use": "sig", "alg": alg}
    if alg == "ES256":
        numbers = public.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": int_b64url(numbers.x, 32),
                "y": int_b64url(numbers.y, 32), "kid": kid, "use": "sig", "alg": alg}
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": kid, "use": "sig",
            "alg": alg}


def sign_by_hand(alg, key, signing_input):
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(signing_input)


def mint(alg, kid, key, claims):
    if pyjwt is not None:
        return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    return signing_input + "." + b64url(sign_by_hand(alg, key, signing_input.encode()))


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: auth_tokens.py DIR ISSUER AUDIENCE GROUP")
    out, issuer, audience, group = sys.argv[1:]
    keys = [("RS256", "rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            ("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1())),
            ("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate())]
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": "bench-jwt", "groups": [group],
              "iat": now, "exp": now + 7200}
    with open(os.path.join(out, "jwks.json"), "w") as jwks:
        json.dump({"keys": [public_jwk(alg, kid, key) for alg, kid, key in keys]}, jwks)
    for alg, kid, key in keys:
        with open(os.path.join(out, "token-" + alg), "w") as token:
            token.write(mint(alg, kid, key, claims))
    print("minted_with=" + ("pyjwt" if pyjwt is not None else "cryptography"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Independent checks of the gcp plugin's service-account JWT assertions.

    jwt_check.py genkey DIR
        Generates an RSA 2048 key with PyPI `cryptography`; writes DIR/key.pem
        (PKCS#8 PEM, the key file's format) and DIR/pub.pem (SubjectPublicKeyInfo).

    jwt_check.py verify PUB_PEM AUDIENCE KEY_FILE   (JWT on stdin)
        Verifies the JWT's RS256 signature with `cryptography`
        (RSASSA-PKCS1-v1_5 + SHA-256) and with google-auth's verifier
        (google.auth.jwt.decode: signature, audience, iat/exp), and builds google-auth's
        own service-account assertion from KEY_FILE for comparison. Prints JSON:
        {header, claims, cryptography_signature, google_auth_decode,
         google_auth_header, google_auth_claims}.
"""

import base64
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def genkey(out_dir):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(os.path.join(out_dir, "key.pem"), "wb") as f:
        f.write(pem)
    with open(os.path.join(out_dir, "pub.pem"), "wb") as f:
        f.write(pub)


def verify(pub_path, audience, key_file):
    jwt = sys.stdin.read().strip()
    header_b64, claims_b64, sig_b64 = jwt.split(".")
    with open(pub_path, "rb") as f:
        pub_pem = f.read()
    public_key = serialization.load_pem_public_key(pub_pem)
    try:
        public_key.verify(
            b64url_decode(sig_b64),
            (header_b64 + "." + claims_b64).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        crypto = "valid"
    except InvalidSignature:
        crypto = "invalid"

    import google.auth.exceptions
    import google.auth.jwt
    from google.oauth2 import service_account

    try:
        google.auth.jwt.decode(jwt, certs=pub_pem.decode(), audience=audience)
        gauth = "valid"
    except (ValueError, google.auth.exceptions.GoogleAuthError) as e:
        gauth = "invalid"
        print("google-auth: %s" % e, file=sys.stderr)

    with open(key_file) as f:
        info = json.load(f)
    scopes = json.loads(b64url_decode(claims_b64))["scope"].split(" ")
    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    # The assertion google-auth itself POSTs to the token endpoint.
    theirs = creds._make_authorization_grant_assertion()
    if isinstance(theirs, bytes):
        theirs = theirs.decode()
    th, tc, _ = theirs.split(".")

    print(
        json.dumps(
            {
                "header": json.loads(b64url_decode(header_b64)),
                "claims": json.loads(b64url_decode(claims_b64)),
                "cryptography_signature": crypto,
                "google_auth_decode": gauth,
                "google_auth_header": json.loads(b64url_decode(th)),
                "google_auth_claims": json.loads(b64url_decode(tc)),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "genkey":
        genkey(sys.argv[2])
    elif sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: jwt_check.py genkey DIR | verify PUB_PEM AUDIENCE KEY_FILE")

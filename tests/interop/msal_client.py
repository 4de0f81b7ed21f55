"""Microsoft's MSAL for Python, client credentials with a certificate, against a given authority.

Run (from tests/tests/interop.rs, inside tests/interop/.venv):

    REQUESTS_CA_BUNDLE=ca.pem python msal_client.py --authority https://127.0.0.1:PORT/TENANT \
        --client-id ID --scope api://weather/.default --mode thumbprint|public_certificate|pfx \
        [--key key.pem] [--cert cert.pem] [--thumbprint SHA1HEX] [--pfx client.pfx --passphrase P]

Modes, as msal 1.39 chooses the assertion (msal/application.py, _build_client):
  thumbprint          client_credential={"private_key", "thumbprint"}: RS256 + x5t (SHA-1)
  public_certificate  client_credential={"private_key", "public_certificate"}: PS256 + x5t#S256 + x5c
  pfx                 client_credential={"private_key_pfx_path", "passphrase"}: PS256 + x5t#S256

Prints one JSON object on stdout: {"msal_version", "result": <acquire_token_for_client's dict>,
"assertion_header": <the JOSE header MSAL sent>, "form_fields": [<names of the posted fields>],
"headers": [<names of the request headers>]}. Exit 0 when a token came back, 1 otherwise.
"""

import argparse
import base64
import json
import sys

import msal
import requests


class RecordingSession(requests.Session):
    """A requests session that remembers what MSAL posts to the token endpoint."""

    def __init__(self):
        super().__init__()
        self.token_requests = []

    def post(self, url, data=None, headers=None, **kwargs):
        if isinstance(data, dict):
            self.token_requests.append({"url": url, "data": dict(data), "headers": dict(headers or {})})
        return super().post(url, data=data, headers=headers, **kwargs)


def jose_header(jwt):
    if isinstance(jwt, bytes):
        jwt = jwt.decode("ascii")
    segment = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--authority", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--mode", required=True, choices=["thumbprint", "public_certificate", "pfx"])
    parser.add_argument("--key")
    parser.add_argument("--cert")
    parser.add_argument("--thumbprint")
    parser.add_argument("--pfx")
    parser.add_argument("--passphrase")
    args = parser.parse_args()

    if args.mode == "thumbprint":
        credential = {"private_key": open(args.key).read(), "thumbprint": args.thumbprint}
    elif args.mode == "public_certificate":
        credential = {"private_key": open(args.key).read(), "public_certificate": open(args.cert).read()}
    else:
        credential = {"private_key_pfx_path": args.pfx}
        if args.passphrase:
            credential["passphrase"] = args.passphrase

    session = RecordingSession()
    app = msal.ConfidentialClientApplication(
        args.client_id,
        authority=args.authority,
        client_credential=credential,
        # The authority is not one Microsoft knows: skip instance discovery (a call to
        # login.microsoftonline.com); MSAL still reads {authority}/v2.0/.well-known/openid-configuration.
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[args.scope])

    sent = session.token_requests[-1] if session.token_requests else {"data": {}, "headers": {}}
    assertion = sent["data"].get("client_assertion")
    print(json.dumps({
        "msal_version": msal.__version__,
        "result": result,
        "assertion_header": jose_header(assertion) if assertion else None,
        "form_fields": sorted(sent["data"].keys()),
        "headers": sorted(k.lower() for k in sent["headers"].keys()),
    }))
    return 0 if "access_token" in result else 1


if __name__ == "__main__":
    sys.exit(main())

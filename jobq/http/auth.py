"""Credentials of a request: HTTP Basic (`APIKEY:` or `JOBKEY:TOKEN`) or `?apikey=`."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from jobq.core.credentials import Principal


def credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization")
    if header:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            user, _, password = decoded.partition(":")
            return user, password
    return request.query_params.get("apikey"), None


async def principal(request: Request) -> Principal:
    user, password = credentials(request)
    authenticator = request.app.state.authenticator
    who: Principal = await authenticator.authenticate(user, password)
    return who

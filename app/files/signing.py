"""Signed, expiring download URLs for day-0 configs (docs/protocol.md pitfall P12).

With ``SIGNED_CONFIG_URLS = True`` the config-upgrade job hands the device
``<base>/configs/signed/<token>/<name>`` instead of ``/configs/<name>``. The
token is an itsdangerous ``URLSafeTimedSerializer`` signature (HMAC-SHA1 over
the serial number and file name, salt ``pnp-day0-config``) made with
``CONFIG_URL_SECRET``; it is accepted for ``CONFIG_URL_MAX_AGE`` seconds and
only for that file name. Plain ``/configs/<name>`` is then refused (403), so
nobody else on the segment can fetch a day-0 config by guessing a serial.

Tokens never reach the logs: ``redact_token()`` masks them in log lines and
device history, and run.py's access log masks them too.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.config import Config

SALT = "pnp-day0-config"
SIGNED_PREFIX = "/configs/signed/"
_TOKEN_IN_PATH = re.compile(r"(/configs/signed/)[^/\s\"'<>]+")


class InvalidConfigToken(ValueError):
    """The token is forged, expired, or for another file; ``str()`` says which (no secret)."""


def _serializer(secret: str) -> URLSafeTimedSerializer:
    if not secret:
        raise ValueError("CONFIG_URL_SECRET is empty")
    return URLSafeTimedSerializer(secret, salt=SALT)


def sign_config(secret: str, serial: str, name: str) -> str:
    """A URL-safe token binding ``serial`` and file ``name`` (timestamped now)."""
    return _serializer(secret).dumps({"sn": serial, "f": name})


def verify_config(secret: str, token: str, name: str, max_age: int) -> str:
    """Check ``token`` for file ``name``; returns the serial it was issued to.

    Raises InvalidConfigToken when the signature is wrong, older than
    ``max_age`` seconds, or was issued for another file.
    """
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise InvalidConfigToken("signed URL expired") from exc
    except BadSignature as exc:
        raise InvalidConfigToken("bad signature") from exc
    if not isinstance(data, dict) or data.get("f") != name or not isinstance(data.get("sn"), str):
        raise InvalidConfigToken("signed URL is for another file")
    return data["sn"]


def config_url_builder(config: Config):
    """``(serial, name) → URL`` for the workflow Context, or None when signing is off."""
    if not config.signed_config_urls:
        return None

    def build(serial: str, name: str) -> str:
        token = sign_config(config.config_url_secret, serial, name)
        return f"{config.base_url}{SIGNED_PREFIX}{token}/{quote(name)}"
    return build


def redact_token(text: str) -> str:
    """``/configs/signed/<token>/x.cfg`` → ``/configs/signed/***/x.cfg`` (for logs and history)."""
    return _TOKEN_IN_PATH.sub(r"\1***", text)

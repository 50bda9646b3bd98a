"""The ceiling for bench/run: a bare WSGI app answering every request with a constant PnP backoff.

Served by gunicorn with the same worker class, workers and threads as the
PnP server, it shows what this machine's gunicorn + Python can do with no
parsing, no database and no logging.
"""

BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<pnp xmlns="urn:cisco:pnp" version="1.0" '
        b'udi="PID:C1131-8PWB,VID:V01,SN:FGL0000000"><request correlator="CiscoPnP-1-1" '
        b'xmlns="urn:cisco:pnp:backoff"><backoff><callbackAfter><seconds>60</seconds>'
        b'</callbackAfter><reason>nothing to do now</reason></backoff></request></pnp>')


def app(environ, start_response):
    """WSGI: drain the request body, answer the constant XML."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(BODY)))])
    return [BODY]

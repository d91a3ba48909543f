"""TLS on the one port: the certificate and key pier serves, checked before a worker reads them, and SIGHUP.

Granian terminates TLS (rustls; TLS 1.2 and 1.3, HTTP/2 by ALPN) and reads the PEM files each time it
starts a worker. A worker that cannot read them stops the whole server, so Granian never reads the
operator's files themselves: pier reads them once, writes a copy into a directory of the serve's own
(<data-dir>/tls/<pid>/<generation>, owner-only), checks that copy loads as a certificate chain with its
key, and hands Granian the copy. The operator may then replace the files at any time, in any order.

SIGHUP takes a new copy the same way; if it loads, pier starts new workers with it, then stops the old
ones once their requests are answered: the new certificate is served without dropping a connection. If
it does not load, pier logs why and goes on serving the one it has. Without TLS, SIGHUP is ignored.

Under TLS the ASGI scope's scheme is "https", so a request knows it came over TLS.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
from pathlib import Path

from pier import rundirs

log = logging.getLogger("pier")
KEPT_GENERATIONS = 3  # copies kept: a worker being started may still be reading the one before


class CertificateError(Exception):
    """The certificate or key cannot be served; the message says which file and why."""


def problem(cert: str, key: str) -> str | None:
    """Why this certificate (with its chain) and key cannot be served, or None when they can."""
    for kind, path in (("tls_cert", cert), ("tls_key", key)):
        if not Path(path).is_file():
            return f"{kind} {path!r} is not a readable file"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A key protected by a password cannot be served (there is no one to type it): refuse it here
        # rather than let OpenSSL ask on the terminal.
        context.load_cert_chain(cert, key, password=_no_password)
    except (OSError, ssl.SSLError, ValueError) as error:
        return f"cannot use tls_cert {cert!r} with tls_key {key!r}: {error}"
    return None


def _no_password() -> str:
    raise ValueError("the key is protected by a password; give pier an unencrypted key (mode 0600)")


class Certificates:
    """The operator's certificate and key, and the checked copy of them Granian serves now."""

    def __init__(self, cert: str, key: str, data_dir: Path) -> None:
        self.cert = cert
        self.key = key
        self.directory = rundirs.serve_dir(data_dir, "tls")
        self.generation = 0
        self.current = self._copy()  # raises CertificateError: pier does not start with what it cannot serve

    def _copy(self) -> tuple[Path, Path]:
        """A new generation: the files' bytes as they are now, written owner-only and checked."""
        try:
            cert_bytes, key_bytes = Path(self.cert).read_bytes(), Path(self.key).read_bytes()
        except OSError as error:
            raise CertificateError(f"cannot read tls_cert {self.cert!r} or tls_key {self.key!r}: {error}") from None
        self.generation += 1
        target = self.directory / str(self.generation)
        target.mkdir(mode=0o700)
        cert, key = target / "cert.pem", target / "key.pem"
        for path, data in ((cert, cert_bytes), (key, key_bytes)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        found = problem(str(cert), str(key))
        if found is not None:
            shutil.rmtree(target, ignore_errors=True)
            raise CertificateError(found.replace(str(cert), self.cert).replace(str(key), self.key))
        for old in range(self.generation - KEPT_GENERATIONS, 0, -1):
            if not (self.directory / str(old)).exists():
                break
            shutil.rmtree(self.directory / str(old), ignore_errors=True)
        return cert, key

    def renew(self) -> bool:
        """On SIGHUP: take a new copy of the files; whether it loads (if not, says why and keeps the old)."""
        try:
            self.current = self._copy()
        except CertificateError as error:
            log.error("SIGHUP: the certificate is not reloaded, pier goes on serving the one it has: %s", error)
            return False
        log.info("SIGHUP: serving the certificate in %s again from the file, without dropping connections", self.cert)
        return True

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def reload_wanted(certificates: Certificates | None) -> bool:
    """On SIGHUP: whether to start new workers, with a new copy of the certificate (says why not)."""
    if certificates is None:
        log.info("SIGHUP ignored: pier serves no TLS, there is no certificate to reload")
        return False
    return certificates.renew()

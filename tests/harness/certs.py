"""Test certificates made at test time with the `openssl` command: a CA and leaf
certificates it signs, for the proxy's listener and for PostgreSQL servers.

EC P-256 keys (fast to make), valid for two days, no passphrase. `make_ca` and
`make_leaf` return file paths; nothing here is fit for anything but tests.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
DAYS = "2"


@dataclass(frozen=True)
class CertFiles:
    """A PEM certificate and its private key."""

    cert: Path
    key: Path


def require_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "ca") -> CertFiles:
    """A self-signed CA certificate."""
    require_openssl()
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl("req", "-x509", *_EC_KEY, "-days", DAYS, "-subj", f"/CN=pgcat-py test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(files.key), "-out", str(files.cert))
    return files


def make_leaf(directory: Path, ca: CertFiles, name: str, alt_names: str) -> CertFiles:
    """A server certificate signed by ``ca``; ``alt_names`` is an openssl subjectAltName
    value such as ``DNS:localhost,IP:127.0.0.1``."""
    require_openssl()
    files = CertFiles(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", *_EC_KEY, "-subj", f"/CN={name}", "-keyout", str(files.key),
             "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", DAYS, "-extfile", str(extensions),
             "-out", str(files.cert))
    return files

"""HTTPS interception for limited mode: a local CA, per-host leaf certificates, request loop.

Only hosts in limited mode are intercepted (everything else stays an opaque tunnel). The CA is
generated on first use under ``$CORRAL_HOME/proxy-ca/`` (key 0600, directory 0700) - outside
the sandbox; only the certificate bundle is handed to sandboxed clients.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from corral.errors import CorralError

if TYPE_CHECKING:
    import asyncio

    from corral.netproxy.gate import Target
    from corral.netproxy.http import HttpHandler

_VALID = datetime.timedelta(days=825)


class Mitm:
    """The interception CA and the TLS contexts built from it."""

    def __init__(self, ca_dir: Path, upstream_cafile: str | None = None) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.dir = ca_dir
        self.cert_path = ca_dir / "ca.pem"
        self.key_path = ca_dir / "ca.key"
        if not self.key_path.exists():
            self._generate()
        mode = self.key_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CorralError(
                "network", f"CA key {self.key_path} is readable by others (mode {mode:o})",
                f"chmod 600 {self.key_path}",
            )
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CorralError("network", f"CA key {self.key_path} is not an EC key")
        self._key = key
        self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._leaves: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self.upstream = ssl.create_default_context(cafile=upstream_cafile)

    @classmethod
    def default(cls, upstream_cafile: str | None = None) -> Mitm:
        from corral.paths import corral_home

        return cls(corral_home() / "proxy-ca", upstream_cafile)

    def _generate(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral proxy CA (local)")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem_key)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def bundle(self, out: Path | None = None) -> Path:
        """System trust plus this CA: what SSL_CERT_FILE & co. point at (they replace, not add).
        Written to ``out`` (default ``bundle.pem`` next to the CA)."""
        out = out or self.dir / "bundle.pem"
        system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
        parts = [self.cert_path.read_bytes()]
        with contextlib.suppress(OSError):
            parts.append(Path(system).read_bytes())
        out.write_bytes(b"\n".join(parts))
        return out

    def server_context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            ctx = self._leaves.get(host)
            if ctx is None:
                ctx = self._leaf_context(host)
                self._leaves[host] = ctx
            return ctx

    def _leaf_context(self, host: str) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self._cert.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + _VALID)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:  # ssl only loads chains from files
            path = Path(tmp) / "leaf.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self._leaf_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption()))
                f.write(cert.public_bytes(serialization.Encoding.PEM))
            ctx.load_cert_chain(path)
        return ctx


async def intercept(
    handler: HttpHandler, target: Target, reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter, client: str | None,
) -> None:
    """Terminate the client's TLS with a leaf for the target, then serve requests one by one."""
    from corral.netproxy.http import Pool, close_pool

    mitm = handler.mitm
    assert isinstance(mitm, Mitm)
    try:
        await writer.start_tls(mitm.server_context(target.host.name))
    except (ssl.SSLError, ConnectionError, OSError):
        return  # client refused our certificate: nothing more to say in the clear
    pool: Pool = {}
    try:
        await handler.serve_requests(reader, writer, client, pool, via=target)
    finally:
        close_pool(pool)


async def open_tls_upstream(
    handler: HttpHandler, target: Target, client: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect (with the gate's address checks) and verify the real server's certificate."""
    mitm = handler.mitm
    assert isinstance(mitm, Mitm)
    from corral.netproxy.gate import Blocked

    r, w = await handler.gate.open(target, client)
    try:
        await w.start_tls(mitm.upstream, server_hostname=target.host.name)
    except (ssl.SSLError, OSError) as exc:
        w.close()
        detail = f"TLS to {target.host.name}:{target.port} failed: {exc}"
        raise Blocked("connect_failed", target.host.name, target.port, detail) from None
    return r, w

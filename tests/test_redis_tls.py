"""rediss://: the Redis backend over TLS checks the server's certificate and name."""

import datetime
import subprocess

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hpxd.core import errors
from tests.support import free_port, need, sleep_until_port, started_backend, stopped_backend


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, key, signer, ca=False, dns=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(path, cert=None, key=None):
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(path)


@pytest.fixture
def tls_redis(tmp_path):
    program = need("redis-server", "the Redis TLS test needs a real Redis")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("hpxd test CA", "hpxd test CA", ca_key, ca_key, ca=True)
    cert = _cert("localhost", "hpxd test CA", key, ca_key, dns="localhost")
    files = {"ca": _write(tmp_path / "ca.pem", cert=ca),
             "cert": _write(tmp_path / "cert.pem", cert=cert),
             "key": _write(tmp_path / "key.pem", key=key)}
    port = free_port()
    proc = subprocess.Popen(
        [program, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", files["cert"], "--tls-key-file", files["key"],
         "--tls-ca-cert-file", files["ca"], "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sleep_until_port(port)
        yield port, files["ca"]
    finally:
        proc.kill()
        proc.wait()


def _backend(url, ca_file):
    return started_backend({"backend": {"kind": "redis", "redis_url": url,
                                        "redis_ca_file": ca_file, "redis_connect_timeout": 2}})


_stop = stopped_backend


@pytest_twisted.ensureDeferred
async def test_rediss_with_the_right_ca(tls_redis):
    port, ca = tls_redis
    backend = await _backend(f"rediss://localhost:{port}/0", ca)
    try:
        session = await backend.sessions.create({"user_name": "ann", "role": "user"})
        assert (await backend.sessions.get(session.id)).user_info["user_name"] == "ann"
    finally:
        await _stop(backend)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("host, use_ca", [("localhost", False), ("127.0.0.1", True)])
async def test_rediss_refuses_an_unchecked_server(tls_redis, host, use_ca):
    """An unknown CA, or a certificate for another name: no connection, 504."""
    port, ca = tls_redis
    backend = await _backend(f"rediss://{host}:{port}/0", ca if use_ca else "")
    try:
        with pytest.raises(errors.BackendUnavailable):
            await backend.sessions.create({"user_name": "ann", "role": "user"})
    finally:
        await _stop(backend)

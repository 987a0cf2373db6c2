"""Test certificates made with the openssl CLI: a CA, a server, two clients, a rogue CA.

``make_certs(directory)`` writes every file and returns a ``Certs`` with their paths.
Each party ``name`` gets:

  name.key       unencrypted PKCS#8 private key ("BEGIN PRIVATE KEY"), RSA 2048
  name.crt       its certificate (PEM)
  name.pem       key then certificate in one file: ZooKeeper's PEM key store
                 (ssl.keyStore.type=PEM; PEMFileLoader reads the key and the chain)
  name.p12       PKCS#12 key store, password ``PASSWORD`` (openssl 3 defaults: AES-256)

and the trust stores are ``ca.crt`` (PEM, ssl.trustStore.type=PEM) and ``truststore.p12``
(PKCS#12 of the CA certificate only, made with ``keytool -importcert -storetype PKCS12``
so that Java marks it a trusted certificate entry: an ``openssl pkcs12 -export -nokeys``
file lacks Java's trusted-key-usage attribute, and Java 17 loads it with no trusted
certificate at all).

Subjects are fixed so that tests can assert exact x509 identities: ZooKeeper's
X509AuthenticationProvider uses ``X500Principal.getName()`` (RFC 2253): the RDNs of the
subject in reverse order of their encoding, comma-separated without spaces.
"""

import shutil
import subprocess
from pathlib import Path

PASSWORD = "rzk-test-pw"

# openssl -subj form (encoding order) -> RFC 2253 as Java prints it (reverse order).
ALICE_SUBJ = "/C=US/O=rzk-test/OU=clients/CN=alice"
ALICE_ID = "CN=alice,OU=clients,O=rzk-test,C=US"
BOB_SUBJ = "/O=rzk-test/CN=bob"
BOB_ID = "CN=bob,O=rzk-test"
# The rogue CA issues a certificate with alice's very subject: only the chain differs.
ROGUE_ALICE_SUBJ = ALICE_SUBJ

TIMEOUT_S = 60


def rfc2253(subj):
    """'/C=US/O=x/CN=y' -> 'CN=y,O=x,C=US' (enough for the plain ASCII subjects above)."""
    rdns = [part for part in subj.split("/") if part]
    return ",".join(reversed(rdns))


assert rfc2253(ALICE_SUBJ) == ALICE_ID and rfc2253(BOB_SUBJ) == BOB_ID


class CertError(RuntimeError):
    pass


def _run(args, cwd):
    try:
        res = subprocess.run(
            args, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except FileNotFoundError as e:
        raise CertError("%s not found: install it (Debian: openssl, openjdk-17-jre-headless)" % args[0]) from e
    if res.returncode != 0:
        raise CertError("%s failed (%d):\n%s%s" % (" ".join(args), res.returncode, res.stdout, res.stderr))
    return res.stdout


class Party:
    def __init__(self, directory, name):
        self.name = name
        self.key = directory / ("%s.key" % name)
        self.crt = directory / ("%s.crt" % name)
        self.pem = directory / ("%s.pem" % name)
        self.p12 = directory / ("%s.p12" % name)


class Certs:
    """Paths of everything make_certs wrote, and the identities of the clients."""

    password = PASSWORD
    alice_id = ALICE_ID
    bob_id = BOB_ID

    def __init__(self, directory):
        d = Path(directory)
        self.dir = d
        self.ca = Party(d, "ca")
        self.rogue_ca = Party(d, "rogue-ca")
        self.server = Party(d, "server")
        self.alice = Party(d, "alice")
        self.bob = Party(d, "bob")
        self.rogue = Party(d, "rogue")  # alice's subject, signed by the rogue CA
        self.truststore_pem = self.ca.crt
        self.truststore_p12 = d / "truststore.p12"


def _key(party, cwd):
    # genpkey writes PKCS#8 "BEGIN PRIVATE KEY", the form PEMFileLoader reads unencrypted.
    _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(party.key)], cwd)


def _ca(party, subj, cwd):
    _key(party, cwd)
    _run(
        ["openssl", "req", "-x509", "-new", "-key", str(party.key), "-subj", subj, "-days", "30", "-sha256",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", str(party.crt)],
        cwd,
    )


def _leaf(party, subj, ca, cwd, ext):
    _key(party, cwd)
    csr = party.crt.with_suffix(".csr")
    extfile = party.crt.with_suffix(".ext")
    extfile.write_text(ext)
    _run(["openssl", "req", "-new", "-key", str(party.key), "-subj", subj, "-out", str(csr)], cwd)
    _run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.crt), "-CAkey", str(ca.key), "-CAcreateserial",
         "-days", "30", "-sha256", "-extfile", str(extfile), "-out", str(party.crt)],
        cwd,
    )
    party.pem.write_text(party.key.read_text() + party.crt.read_text())
    _run(
        ["openssl", "pkcs12", "-export", "-inkey", str(party.key), "-in", str(party.crt), "-certfile", str(ca.crt),
         "-name", party.name, "-passout", "pass:" + PASSWORD, "-out", str(party.p12)],
        cwd,
    )


SERVER_EXT = """\
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
"""

CLIENT_EXT = """\
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
"""


def make_certs(directory):
    """Writes the CA, server, alice, bob, rogue CA and rogue client into directory."""
    for tool in ("openssl", "keytool"):
        if shutil.which(tool) is None:
            raise CertError("%s not found on PATH (Debian: openssl, openjdk-17-jre-headless)" % tool)
    c = Certs(directory)
    c.dir.mkdir(parents=True, exist_ok=True)
    _ca(c.ca, "/O=rzk-test/CN=rzk test CA", c.dir)
    _ca(c.rogue_ca, "/O=rogue/CN=rogue CA", c.dir)
    _leaf(c.server, "/O=rzk-test/CN=localhost", c.ca, c.dir, SERVER_EXT)
    _leaf(c.alice, ALICE_SUBJ, c.ca, c.dir, CLIENT_EXT)
    _leaf(c.bob, BOB_SUBJ, c.ca, c.dir, CLIENT_EXT)
    _leaf(c.rogue, ROGUE_ALICE_SUBJ, c.rogue_ca, c.dir, CLIENT_EXT)
    _run(
        ["keytool", "-importcert", "-noprompt", "-storetype", "PKCS12", "-alias", "ca", "-file", str(c.ca.crt),
         "-keystore", str(c.truststore_p12), "-storepass", PASSWORD],
        c.dir,
    )
    return c

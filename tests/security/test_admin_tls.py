"""The AdminServer over HTTPS (admin.forceHttps=true), client certificates
(admin.needClientAuth=true) and x509 authentication of the state-changing commands.

Key material: ZooKeeper's JettyAdminServer reads the quorum keys (ssl.quorum.keyStore.*,
ssl.quorum.trustStore.*, its QuorumX509Util); rzk does too, and falls back to the client
port's ssl.* keys when no ssl.quorum.keyStore.location is set. Clients here are python's
ssl + http.client, verifying the server against the test CA.

Apache ZooKeeper 3.8 runs the HTTPS checks too. admin.needClientAuth and the admin auth
(`Authorization: x509`) are ZooKeeper 3.9 features that 3.8 lacks, so those tests are
rzk-only.
"""

import http.client
import json
import os
import ssl
import urllib.request

import pytest
from kazoo.security import make_acl

from waiting import wait_until

TARGET = os.environ.get("ZK_TARGET", "rzk")
HTTP_TIMEOUT_S = 10.0

rzk_only = pytest.mark.skipif(
    TARGET != "rzk",
    reason="Apache ZooKeeper 3.8's AdminServer has neither admin.needClientAuth nor admin auth (3.9 has both)",
)


def admin_tls_cfg(certs, need_client_auth=False, prefix="ssl.quorum."):
    cfg = {
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.forceHttps": "true",
        prefix + "keyStore.location": str(certs.server.pem),
        prefix + "keyStore.type": "PEM",
        prefix + "trustStore.location": str(certs.truststore_pem),
        prefix + "trustStore.type": "PEM",
    }
    if need_client_auth:
        cfg["admin.needClientAuth"] = "true"
    return cfg


def tls_context(certs, party=None):
    ctx = ssl.create_default_context(cafile=str(certs.ca.crt))
    if party is not None:
        ctx.load_cert_chain(str(party.crt), str(party.key))
    return ctx


def https_get(server, command, ctx, auth=None):
    """GET /commands/<command> over HTTPS; returns (status, decoded JSON)."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.admin_port, context=ctx, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", "/commands/" + command, headers={"Authorization": auth} if auth else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read().decode("utf-8"))
    finally:
        conn.close()


def wait_https(server, ctx):
    def ruok():
        try:
            return https_get(server, "ruok", ctx)[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    wait_until(ruok, timeout=20, message="HTTPS AdminServer on port %d" % server.admin_port)


def assert_plain_http_fails(server):
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen("http://127.0.0.1:%d/commands/ruok" % server.admin_port, timeout=HTTP_TIMEOUT_S)


def test_https_with_the_ca_and_plain_http_refused(server_factory, certs, client_factory):
    server = server_factory("admin-https", extra_cfg=admin_tls_cfg(certs))
    ctx = tls_context(certs)
    wait_https(server, ctx)
    status, answer = https_get(server, "ruok", ctx)
    assert (status, answer["command"], answer["error"]) == (200, "ruok", None)
    assert https_get(server, "srvr", ctx)[1]["command"] == "server_stats"

    # An HTTPS client that does not trust the server's CA gets nowhere.
    with pytest.raises(ssl.SSLError):
        https_get(server, "ruok", ssl.create_default_context())

    # Plain HTTP on the HTTPS-only port: the connection is closed, the server carries on.
    for _ in range(3):
        assert_plain_http_fails(server)
    assert https_get(server, "ruok", ctx)[0] == 200
    zk = client_factory(server.hosts)
    zk.create("/still-serving", b"x")
    if server.kind == "rzk":
        assert "TLS handshake failed" in server.log_tail(200)


@pytest.mark.skipif(TARGET != "rzk", reason="ZooKeeper's AdminServer reads only the ssl.quorum.* keys")
def test_client_port_keys_serve_when_no_quorum_keys(server_factory, certs):
    """rzk's fallback: with no ssl.quorum.keyStore.location, the client port's ssl.* keys."""
    server = server_factory("admin-https-ssl", extra_cfg=admin_tls_cfg(certs, prefix="ssl."))
    ctx = tls_context(certs)
    wait_https(server, ctx)
    assert https_get(server, "ruok", ctx)[0] == 200


@rzk_only
def test_need_client_auth(server_factory, certs):
    server = server_factory("admin-mtls", extra_cfg=admin_tls_cfg(certs, need_client_auth=True))
    alice = tls_context(certs, certs.alice)
    wait_https(server, alice)
    assert https_get(server, "ruok", alice)[0] == 200
    # No certificate, or one from the rogue CA (with alice's very subject): refused. Under
    # TLS 1.3 the client sees it at its first read rather than in the handshake.
    for ctx in (tls_context(certs), tls_context(certs, certs.rogue)):
        with pytest.raises((OSError, http.client.HTTPException)):
            https_get(server, "ruok", ctx)
    assert https_get(server, "ruok", alice)[0] == 200


@rzk_only
def test_x509_auth_for_state_changing_commands(server_factory, certs, client_factory):
    server = server_factory("admin-x509", extra_cfg=admin_tls_cfg(certs, need_client_auth=True))
    alice, bob = tls_context(certs, certs.alice), tls_context(certs, certs.bob)
    wait_https(server, alice)
    assert https_get(server, "crst", alice, auth="x509") == (200, {"command": "connection_stat_reset", "error": None})
    assert https_get(server, "crst", alice) == (
        401,
        {"command": "crst", "error": "Auth info is missing for the command"},
    )

    # Only alice's subject on "/": her certificate passes, bob's and her address do not.
    zk = client_factory(server.hosts)
    zk.set_acls("/", [make_acl("x509", certs.alice_id, all=True)])
    assert https_get(server, "srst", alice, auth="x509")[0] == 200
    assert https_get(server, "srst", bob, auth="x509") == (403, {"command": "srst", "error": "Not authorized"})
    assert https_get(server, "srst", alice, auth="ip") == (403, {"command": "srst", "error": "Not authorized"})
    # Reads stay open.
    assert https_get(server, "gtmk", bob)[0] == 200


@rzk_only
def test_x509_without_a_certificate_is_not_authenticated(server_factory, certs):
    server = server_factory("admin-x509-nocert", extra_cfg=admin_tls_cfg(certs))
    ctx = tls_context(certs, certs.alice)  # offered, but never asked for without needClientAuth
    wait_https(server, ctx)
    assert https_get(server, "crst", ctx, auth="x509") == (401, {"command": "crst", "error": "Not authenticated"})
    assert https_get(server, "crst", ctx, auth="ip")[0] == 200

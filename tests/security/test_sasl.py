"""SASL DIGEST-MD5 on the client port (kazoo with pure-sasl): sasl ACLs, a wrong
password, sessions that must authenticate, and a SASL super user.

The server gets a JAAS file with a Server section (DigestLoginModule, user_<name>=
password) through the Java system property java.security.auth.login.config, and
authProvider.sasl in zoo.cfg (without it Apache 3.8 has no "sasl" scheme: an ACL
sasl:bob is refused with InvalidACL and enforce.auth.schemes=sasl fails at start with
"Authentication scheme sasl is not available."). Every expectation here was observed
on Apache ZooKeeper 3.8.0.
"""

import threading
import time

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KeeperState
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

SERVER_JAAS = """\
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="supersecret"
    user_bob="bobsecret";
};
"""


def bob_sasl(password="bobsecret", username="bob"):
    return {"mechanism": "DIGEST-MD5", "username": username, "password": password}


def sasl_acl(user):
    return [make_acl("sasl", user, all=True)]


@pytest.fixture
def sasl_server_factory(server_factory, tmp_path):
    """factory(name="sasl", extra_cfg=None, jvm_props=None): a server with the JAAS
    Server section above and authProvider.sasl."""

    def make(name="sasl", extra_cfg=None, jvm_props=None):
        jaas = tmp_path / ("%s-jaas.conf" % name)
        jaas.write_text(SERVER_JAAS)
        cfg = {"authProvider.sasl": SASL_PROVIDER}
        cfg.update(extra_cfg or {})
        props = {"java.security.auth.login.config": str(jaas)}
        props.update(jvm_props or {})
        return server_factory(name, extra_cfg=cfg, jvm_props=props)

    return make


def wait_state(client, state, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.client_state == state:
            return
        time.sleep(0.02)
    raise AssertionError("client state %s, not %s, after %.0f s" % (client.client_state, state, timeout))


# 8 ------------------------------------------------------------------------------------


def test_sasl_acl_admits_the_authenticated_user(sasl_server_factory, client_factory):
    server = sasl_server_factory()
    bob = client_factory(server.hosts, sasl_options=bob_sasl())
    bob.create("/bobs", b"his", acl=sasl_acl("bob"))
    assert bob.get("/bobs")[0] == b"his"
    acls, _ = bob.get_acls("/bobs")
    assert acls == [ACL(Permissions.ALL, Id("sasl", "bob"))]
    anonymous = client_factory(server.hosts)
    with pytest.raises(NoAuthError):
        anonymous.get("/bobs")
    with pytest.raises(NoAuthError):
        anonymous.set("/bobs", b"x")


def test_sasl_through_legacy_auth_data(sasl_server_factory, client_factory):
    server = sasl_server_factory()
    with pytest.warns(DeprecationWarning):
        bob = client_factory(server.hosts, start=False, auth_data=[("sasl", "bob:bobsecret")])
    bob.start(timeout=15)
    bob.create("/legacy", b"l", acl=sasl_acl("bob"))
    assert bob.get("/legacy")[0] == b"l"


# 9 ------------------------------------------------------------------------------------


def test_wrong_password_fails_authentication(sasl_server_factory, client_factory, caplog):
    """Apache answers the DIGEST-MD5 response with error AUTHFAILED (-115) and closes:
      WARN  ZooKeeperServer@1737 - Client /127.0.0.1:N failed to SASL authenticate: {}
      javax.security.sasl.SaslException: DIGEST-MD5: digest response format violation.
          Mismatched response.
      WARN  ZooKeeperServer@1749 - Closing client connection due to SASL authentication failure.
    kazoo has set CONNECTED already (its SASL exchange follows the ConnectResponse); the
    -115 reply raises AuthFailedError in its connection loop, which goes to AUTH_FAILED
    (listeners see LOST) and stops for good; a later request fails without a server."""
    server = sasl_server_factory()
    states = []
    client = client_factory(server.hosts, start=False, sasl_options=bob_sasl("wrong"))
    lost = threading.Event()

    def listener(state):
        states.append(state)
        if state == "LOST":
            lost.set()

    client.add_listener(listener)
    client.start_async()
    assert lost.wait(10), "no LOST within 10 s; states %s" % states
    assert states == ["CONNECTED", "LOST"]
    wait_state(client, KeeperState.CLOSED)  # the connection loop has stopped
    with pytest.raises((AuthFailedError, ConnectionClosedError)):
        client.get("/")
    # The server's -115 reply (kazoo raises AuthFailedError() with no message), not a
    # plain drop of the connection (kazoo would say "Connection dropped in SASL").
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("AUTH_FAILED closing")]
    assert failures == ["AUTH_FAILED closing: "], failures
    # an unknown user fails the same way; bob with the right password still gets in
    unknown = client_factory(server.hosts, start=False, sasl_options=bob_sasl("x", username="mallory"))
    unknown.start_async()
    wait_state(unknown, KeeperState.CLOSED)
    bob = client_factory(server.hosts, sasl_options=bob_sasl())
    assert bob.get("/")[1].numChildren == 1


# 10 -----------------------------------------------------------------------------------

REQUIRE_SASL = [
    pytest.param({}, {"zookeeper.sessionRequireClientSASLAuth": "true"}, id="sessionRequireClientSASLAuth-property"),
    # Apache 3.8 turns the zoo.cfg keys into zookeeper.* properties: both work from zoo.cfg.
    pytest.param({"sessionRequireClientSASLAuth": "true"}, {}, id="sessionRequireClientSASLAuth-zoo.cfg"),
    pytest.param({"enforce.auth.enabled": "true", "enforce.auth.schemes": "sasl"}, {}, id="enforce.auth-zoo.cfg"),
]


@pytest.mark.parametrize("cfg,props", REQUIRE_SASL)
def test_session_requires_sasl(sasl_server_factory, client_factory, cfg, props):
    """An unauthenticated client gets its ConnectResponse, then its first request is
    answered with SESSIONCLOSEDREQUIRESASLAUTH (-124) and the connection is closed:
      ERROR AuthenticationHelper@121 - Client authentication scheme(s) [ip] does not match
          with any of the expected authentication scheme [sasl], closing session.
    Despite "closing session", Apache 3.8 closes only the connection (sendCloseSession
    writes the close-connection marker): kazoo reconnects to the same session
    (SUSPENDED, then CONNECTED) and every request fails the same way."""
    server = sasl_server_factory(extra_cfg=cfg, jvm_props=props)
    states = []
    anonymous = client_factory(server.hosts, start=False)
    anonymous.add_listener(states.append)
    anonymous.start(timeout=15)
    session_id = anonymous.client_id[0]
    with pytest.raises(SessionClosedRequireSaslError):
        anonymous.get("/")
    wait_until_states(states, ["CONNECTED", "SUSPENDED", "CONNECTED"])
    assert anonymous.client_id[0] == session_id
    with pytest.raises(SessionClosedRequireSaslError):
        anonymous.create("/anon")
    bob = client_factory(server.hosts, sasl_options=bob_sasl())
    bob.create("/bob-was-here", b"b")
    assert bob.get("/bob-was-here")[0] == b"b"
    assert bob.exists("/anon") is None


def wait_until_states(states, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and states[: len(expected)] != expected:
        time.sleep(0.02)
    assert states[: len(expected)] == expected, states


# 12 -----------------------------------------------------------------------------------

SUPER_USER = [
    # ZooKeeperServer.SASL_SUPER_USER: the property zookeeper.superUser, or any
    # zookeeper.superUser.<suffix> (isSaslSuperUser matches the prefix).
    pytest.param({}, {"zookeeper.superUser": "super"}, id="property"),
    pytest.param({}, {"zookeeper.superUser.2": "super"}, id="property-with-suffix"),
    pytest.param({"superUser": "super"}, {}, id="zoo.cfg"),
]


def digest_acl():
    return [make_digest_acl("carol", "carolsecret", all=True)]


@pytest.mark.parametrize("cfg,props", SUPER_USER)
def test_sasl_super_user(sasl_server_factory, client_factory, cfg, props):
    """The SASL user named by zookeeper.superUser gets the id super: every ACL admits it."""
    server = sasl_server_factory(extra_cfg=cfg, jvm_props=props)
    carol = client_factory(server.hosts, auth_data=[("digest", "carol:carolsecret")])
    carol.create("/carols", b"hers", acl=digest_acl())
    bob = client_factory(server.hosts, sasl_options=bob_sasl())
    with pytest.raises(NoAuthError):
        bob.get("/carols")
    root = client_factory(server.hosts, sasl_options=bob_sasl("supersecret", username="super"))
    assert root.get("/carols")[0] == b"hers"
    root.set("/carols", b"super was here")
    root.set_acls("/carols", sasl_acl("super"))
    with pytest.raises(NoAuthError):
        carol.get("/carols")
    acls, _ = root.get_acls("/carols")
    assert acls == [ACL(Permissions.ALL, Id("sasl", "super"))]


def test_sasl_user_named_super_matches_every_sasl_acl(sasl_server_factory, client_factory):
    """Quirk of Apache 3.8 without any superUser property: SASLAuthenticationProvider.matches
    is `id.equals("super") || id.equals(aclExpr)`, so a SASL user called "super" passes
    every sasl:* ACL (but no other scheme's: it is no super user)."""
    server = sasl_server_factory()
    bob = client_factory(server.hosts, sasl_options=bob_sasl())
    bob.create("/bobs", b"his", acl=sasl_acl("bob"))
    carol = client_factory(server.hosts, auth_data=[("digest", "carol:carolsecret")])
    carol.create("/carols", b"hers", acl=digest_acl())
    root = client_factory(server.hosts, sasl_options=bob_sasl("supersecret", username="super"))
    assert root.get("/bobs")[0] == b"his"
    with pytest.raises(NoAuthError):
        root.get("/carols")
    # and the match goes one way only: bob is not admitted by sasl:super
    root.create("/supers", acl=sasl_acl("super"))
    with pytest.raises(NoAuthError):
        bob.get("/supers")


# 11 -----------------------------------------------------------------------------------

CLIENT_JAAS = """\
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="%s"
    password="%s";
};
"""


def client_jaas(tmp_path, name, username, password):
    path = tmp_path / ("%s-client-jaas.conf" % name)
    path.write_text(CLIENT_JAAS % (username, password))
    return {"java.security.auth.login.config": str(path), "zookeeper.sasl.client": "true"}


def test_java_client_sasl(sasl_server_factory, secure_client, tmp_path):
    """The Java client reads its JAAS Client section, authenticates (SaslAuthenticated
    event after SyncConnected) and is sasl:bob."""
    server = sasl_server_factory()
    output = secure_client(server, "sasl", server.hosts, "bob", client_jaas(tmp_path, "bob", "bob", "bobsecret"))
    assert "PASS whoAmI: [ip:127.0.0.1, sasl:bob]" in output


def test_java_client_sasl_wrong_password(sasl_server_factory, secure_client, tmp_path):
    """Apache 3.8 with the Java client: events SyncConnected then AuthFailed, the handle
    is AUTH_FAILED for good and a request throws KeeperException.AuthFailedException
    (AUTHFAILED, -115)."""
    server = sasl_server_factory()
    output = secure_client(server, "sasl-fail", server.hosts, "AuthFailed", client_jaas(tmp_path, "bad", "bob", "nope"))
    assert "PASS events: [SyncConnected, AuthFailed]" in output
    assert "PASS request_after_failure: AUTHFAILED" in output


# SASL over TLS --------------------------------------------------------------------------


def test_sasl_over_tls_holds_both_identities(tls_server_factory, tls_client, certs, tmp_path):
    """On the secure port a client has its certificate's x509 id and then its SASL id."""
    jaas = tmp_path / "tls-jaas.conf"
    jaas.write_text(SERVER_JAAS)
    server = tls_server_factory(
        client_auth="need",
        extra_cfg={"authProvider.sasl": SASL_PROVIDER},
        jvm_props={"java.security.auth.login.config": str(jaas)},
    )
    both = tls_client(server, sasl_options=bob_sasl())
    alice_only = tls_client(server)
    both.create("/bobs", b"b", acl=sasl_acl("bob"))
    both.create("/alices", b"a", acl=[make_acl("x509", certs.alice_id, all=True)])
    assert both.get("/bobs")[0] == b"b"
    assert both.get("/alices")[0] == b"a"
    assert alice_only.get("/alices")[0] == b"a"
    with pytest.raises(NoAuthError):
        alice_only.get("/bobs")

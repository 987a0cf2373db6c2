"""TLS on secureClientPort, client certificates and x509 identities (kazoo clients).

The server: zoo.cfg secureClientPort beside clientPort, NettyServerCnxnFactory, the
ssl.* key and trust stores, authProvider.x509 (see conftest.secure_cfg). Clients
verify the server against the test CA and present alice's, bob's, the rogue's or no
certificate. Every expectation here was observed on Apache ZooKeeper 3.8.0.
"""

import socket
import ssl

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, Id, Permissions, make_acl


# How long a client that must not get in is given to try, and how it retries meanwhile.
REFUSED_START_S = 4
FEW_RETRIES = dict(max_tries=3, delay=0.1, backoff=1.0, max_jitter=0.0, max_delay=0.2)


def x509_acl(subject):
    return [make_acl("x509", subject, all=True)]


def assert_refused(make_client, **kwargs):
    """A client that must not get a session: its start() times out (KazooTimeoutError).

    Apache closes the TLS connection (a failed handshake, or after it when the
    certificate check fails) and kazoo's connection loop keeps retrying, so start()
    never sees CONNECTED and raises KazooTimeoutError after its timeout."""
    client = make_client(start=False, connection_retry=dict(FEW_RETRIES), **kwargs)
    with pytest.raises(KazooTimeoutError):
        client.start(timeout=REFUSED_START_S)
    assert not client.connected
    client.stop()


def roundtrip(client, path, data=b"ok"):
    client.create(path, data)
    assert client.get(path)[0] == data
    client.delete(path)


# 1 ------------------------------------------------------------------------------------


def test_tls_client_and_plain_client_side_by_side(tls_server_factory, tls_client, client_factory):
    server = tls_server_factory(client_auth="need")
    secure = tls_client(server)
    plain = client_factory(server.hosts)
    secure.create("/over-tls", b"secret")
    assert secure.get("/over-tls")[0] == b"secret"
    # one tree, two ports
    assert plain.get("/over-tls")[0] == b"secret"
    plain.set("/over-tls", b"plain")
    assert secure.get("/over-tls")[0] == b"plain"
    assert plain.client_id[0] != secure.client_id[0]


# 2 ------------------------------------------------------------------------------------


def test_client_auth_need_refuses_no_and_rogue_certificates(tls_server_factory, tls_client, certs):
    server = tls_server_factory(client_auth="need")
    # Apache 3.8 fails the handshake itself (Netty's SslHandler, need => the JDK engine
    # requires a certificate) and logs, per attempt:
    #   ERROR [..CertificateVerifier@468] - Unsuccessful handshake with session 0x0
    #   WARN  [..CnxnChannelHandler@304] - Exception caught
    #   io.netty.handler.codec.DecoderException: javax.net.ssl.SSLHandshakeException:
    #       Empty client certificate chain
    assert_refused(lambda **kw: tls_client(server, party=None, **kw))
    # alice's subject, signed by the rogue CA: the same two lines, then
    #   SSLHandshakeException: PKIX path building failed: ... unable to find valid
    #   certification path to requested target
    assert_refused(lambda **kw: tls_client(server, party=certs.rogue, **kw))
    good = tls_client(server)
    roundtrip(good, "/after-refusals")
    assert server.running()


def test_client_auth_default_is_need(tls_server_factory, tls_client):
    """Without ssl.clientAuth in zoo.cfg, Apache requires a client certificate
    (X509Util.ClientAuth.fromPropertyValue(null) is NEED)."""
    server = tls_server_factory(client_auth=None)
    assert_refused(lambda **kw: tls_client(server, party=None, **kw))
    roundtrip(tls_client(server), "/default-need")


# 3 ------------------------------------------------------------------------------------


def test_client_auth_want_admits_a_client_without_certificate(tls_server_factory, tls_client, certs):
    server = tls_server_factory(client_auth="want")
    anonymous = tls_client(server, party=None)
    roundtrip(anonymous, "/want-anon")
    # ... and one with a certificate still gets its x509 identity
    alice = tls_client(server)
    alice.create("/want-alice", b"a", acl=x509_acl(certs.alice_id))
    assert alice.get("/want-alice")[0] == b"a"
    with pytest.raises(NoAuthError):
        anonymous.get("/want-alice")


def test_client_auth_none_admits_a_client_without_certificate(tls_server_factory, tls_client):
    server = tls_server_factory(client_auth="none")
    roundtrip(tls_client(server, party=None), "/none-anon")


# 4 ------------------------------------------------------------------------------------


def test_x509_acl_admits_the_subject_only(tls_server_factory, tls_client, certs):
    server = tls_server_factory(client_auth="need")
    alice = tls_client(server)
    bob = tls_client(server, party=certs.bob)
    alice.create("/alice-only", b"hers", acl=x509_acl(certs.alice_id))
    assert alice.get("/alice-only")[0] == b"hers"
    acls, _ = alice.get_acls("/alice-only")
    assert acls == [ACL(Permissions.ALL, Id("x509", "CN=alice,OU=clients,O=rzk-test,C=US"))]
    with pytest.raises(NoAuthError):
        bob.get("/alice-only")
    with pytest.raises(NoAuthError):
        bob.set("/alice-only", b"bob's")
    # bob's own identity is his subject in RFC 2253 form
    bob.create("/bob-only", acl=x509_acl("CN=bob,O=rzk-test"))
    bob.set("/bob-only", b"his")
    with pytest.raises(NoAuthError):
        alice.get("/bob-only")


def test_x509_acl_with_another_spelling_of_the_subject_does_not_match(tls_server_factory, tls_client, certs):
    """The id is compared as a string: the OpenSSL one-line form with spaces is not alice."""
    server = tls_server_factory(client_auth="need")
    alice = tls_client(server)
    alice.create("/spaced", b"x", acl=x509_acl("CN=alice, OU=clients, O=rzk-test, C=US") + [
        make_acl("world", "anyone", admin=True)])
    with pytest.raises(NoAuthError):
        alice.get("/spaced")


@pytest.mark.parametrize("where", ["property", "zoo.cfg"])
def test_x509_super_user_reads_everything(tls_server_factory, tls_client, certs, where):
    """zookeeper.X509AuthenticationProvider.superUser=<subject>; Apache 3.8 also takes it
    from zoo.cfg as X509AuthenticationProvider.superUser (unknown keys become
    "zookeeper." + key properties)."""
    if where == "property":
        kw = dict(jvm_props={"zookeeper.X509AuthenticationProvider.superUser": certs.bob_id})
    else:
        kw = dict(extra_cfg={"X509AuthenticationProvider.superUser": certs.bob_id})
    server = tls_server_factory(client_auth="need", **kw)
    alice = tls_client(server)
    bob = tls_client(server, party=certs.bob)
    alice.create("/alice-only", b"hers", acl=x509_acl(certs.alice_id))
    assert bob.get("/alice-only")[0] == b"hers"
    bob.set("/alice-only", b"super")
    assert alice.get("/alice-only")[0] == b"super"
    # super is bob only
    bob.create("/bob-only", b"his", acl=x509_acl(certs.bob_id))
    with pytest.raises(NoAuthError):
        alice.get("/bob-only")


# 5 ------------------------------------------------------------------------------------


def test_pkcs12_key_store_and_trust_store(tls_server_factory, tls_client, certs):
    server = tls_server_factory(store="p12", client_auth="need")
    alice = tls_client(server)
    alice.create("/p12", b"p12", acl=x509_acl(certs.alice_id))
    assert alice.get("/p12")[0] == b"p12"
    with pytest.raises(NoAuthError):
        tls_client(server, party=certs.bob).get("/p12")
    assert_refused(lambda **kw: tls_client(server, party=certs.rogue, **kw))


# 6 ------------------------------------------------------------------------------------


def test_plain_client_on_the_secure_port_fails(tls_server_factory, tls_client, client_factory):
    server = tls_server_factory(client_auth="need")
    working = tls_client(server)
    plain_ok = client_factory(server.hosts)
    # Apache: "Unsuccessful handshake with session 0x0" and
    #   DecoderException: io.netty.handler.ssl.NotSslRecordException: not an SSL/TLS record:
    #   0000002d00000000... (kazoo's ConnectRequest, 45 bytes); the connection is closed.
    assert_refused(lambda **kw: client_factory("127.0.0.1:%d" % server.secure_port, **kw))
    roundtrip(working, "/still-tls")
    roundtrip(plain_ok, "/still-plain")


def test_tls_client_on_the_plain_port_fails(tls_server_factory, client_factory, certs):
    """Apache reads the ClientHello's first four bytes (16 03 01 02) as a frame length:
    WARN NettyServerCnxn@552 - Closing connection to /127.0.0.1:N
    java.io.IOException: Len error 369295618 (over jute.maxbuffer), and closes."""
    server = tls_server_factory(client_auth="need")
    assert_refused(
        lambda **kw: client_factory(
            server.hosts, use_ssl=True, ca=str(certs.ca.crt), certfile=str(certs.alice.crt),
            keyfile=str(certs.alice.key), verify_certs=True, **kw
        )
    )
    roundtrip(client_factory(server.hosts), "/plain-after-tls")


def test_silent_and_garbage_sockets_do_not_disturb_tls_clients(tls_server_factory, tls_client):
    server = tls_server_factory(client_auth="need")
    working = tls_client(server)
    silent = socket.create_connection(("127.0.0.1", server.secure_port), timeout=5)
    garbage = socket.create_connection(("127.0.0.1", server.secure_port), timeout=5)
    try:
        garbage.sendall(b"\x00\x00\x00\x2c" + b"not a TLS record at all " * 40)
        # the server answers garbage with an alert or a close, never with data
        garbage.settimeout(5)
        try:
            reply = garbage.recv(4096)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        assert not reply or reply[0] == 0x15, "expected a TLS alert or a close, got %r" % reply[:32]
        roundtrip(working, "/beside-silent")
        roundtrip(tls_client(server), "/new-beside-silent")
    finally:
        silent.close()
        garbage.close()


# four-letter words and protocol versions over TLS -------------------------------------


def tls_four_letter(server, certs, word=b"ruok", minimum=None, maximum=None):
    """Sends a four-letter word over TLS (alice's certificate) on the secure port; returns
    (negotiated TLS version, the answer read to EOF)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(certs.ca.crt))
    ctx.load_cert_chain(str(certs.alice.crt), str(certs.alice.key))
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", server.secure_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            version = conn.version()
            conn.sendall(word)
            chunks = []
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
    return version, b"".join(chunks)


def test_four_letter_words_over_tls(tls_server_factory, certs):
    server = tls_server_factory(client_auth="need")
    assert tls_four_letter(server, certs, b"ruok")[1] == b"imok"
    assert b"Mode: standalone" in tls_four_letter(server, certs, b"srvr")[1]


def test_tls12_client_connects_with_default_protocols(tls_server_factory, certs):
    """Apache 3.8's defaults: ssl.protocol=TLSv1.2 (X509Util.DEFAULT_PROTOCOL) and
    ssl.enabledProtocols = [ssl.protocol], so it negotiates TLSv1.2 and, unlike a server
    that also offers TLSv1.3, refuses a client that insists on TLSv1.3 (not asserted: a
    server that also offers TLSv1.3 serves every client Apache serves)."""
    server = tls_server_factory(client_auth="need")
    assert tls_four_letter(server, certs, maximum=ssl.TLSVersion.TLSv1_2) == ("TLSv1.2", b"imok")


def test_ssl_protocol_tls13(tls_server_factory, certs):
    """ssl.protocol=TLSv1.3 needs ssl.ciphersuites with TLSv1.3 suites on Apache 3.8.0: its
    default suite list (X509Util.getDefaultCipherSuites) has TLSv1.2 suites only, and
    every handshake then fails with "SSLHandshakeException: No appropriate protocol
    (protocol is disabled or cipher suites are inappropriate)" (not asserted here)."""
    server = tls_server_factory(
        client_auth="need",
        extra_cfg={"ssl.protocol": "TLSv1.3", "ssl.ciphersuites": "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384"},
    )
    assert tls_four_letter(server, certs) == ("TLSv1.3", b"imok")
    # TLSv1.3 only: a client capped at TLSv1.2 is refused
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        tls_four_letter(server, certs, maximum=ssl.TLSVersion.TLSv1_2)


def test_ssl_enabled_protocols_tls12_only(tls_server_factory, certs, tls_client):
    server = tls_server_factory(client_auth="need", extra_cfg={"ssl.enabledProtocols": "TLSv1.2"})
    assert tls_four_letter(server, certs) == ("TLSv1.2", b"imok")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        tls_four_letter(server, certs, minimum=ssl.TLSVersion.TLSv1_3)
    roundtrip(tls_client(server), "/tls12")


# 7 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["pem", "p12"])
def test_java_client_over_tls(tls_server_factory, secure_client, certs, store):
    """The Java client's TLS: ClientCnxnSocketNetty with zookeeper.client.secure=true and
    its own key and trust stores (zookeeper.ssl.*); it verifies the server's address
    against the certificate's SAN (zookeeper.ssl.hostnameVerification defaults to true)."""
    server = tls_server_factory(client_auth="need")
    party = certs.alice
    if store == "pem":
        stores = {
            "zookeeper.ssl.keyStore.location": party.pem,
            "zookeeper.ssl.keyStore.type": "PEM",
            "zookeeper.ssl.trustStore.location": certs.truststore_pem,
            "zookeeper.ssl.trustStore.type": "PEM",
        }
    else:
        stores = {
            "zookeeper.ssl.keyStore.location": party.p12,
            "zookeeper.ssl.keyStore.password": certs.password,
            "zookeeper.ssl.keyStore.type": "PKCS12",
            "zookeeper.ssl.trustStore.location": certs.truststore_p12,
            "zookeeper.ssl.trustStore.password": certs.password,
            "zookeeper.ssl.trustStore.type": "PKCS12",
        }
    props = {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        **stores,
    }
    output = secure_client(server, "tls", "127.0.0.1:%d" % server.secure_port, certs.alice_id, props)
    # whoAmI over TLS: the ip id and the certificate's subject
    assert "PASS whoAmI: [ip:127.0.0.1, x509:%s]" % certs.alice_id in output

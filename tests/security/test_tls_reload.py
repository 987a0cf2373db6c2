"""Certificate files re-read on change: a server whose key store file is replaced presents
the new certificate to new TLS connections, without a restart, and keeps serving the
connections it had.

rzk only: Apache ZooKeeper 3.8 re-reads certificate files only for the quorum
(sslQuorumReloadCertFiles); its client port keeps the certificate it started with.
"""

import os
import shutil
import time

import pytest

import certs as certs_mod

TARGET = os.environ.get("ZK_TARGET", "rzk")


def test_a_replaced_key_store_is_presented_to_new_connections(tls_server_factory, tls_client, certs, tmp_path):
    if TARGET == "apache":
        pytest.skip("Apache 3.8 does not re-read the client port's certificate files (module docstring)")
    # The server's key store is a copy the test can replace.
    key_store = tmp_path / "live-server.pem"
    shutil.copy(certs.server.pem, key_store)
    server = tls_server_factory(extra_cfg={"ssl.keyStore.location": str(key_store)})
    before = tls_client(server)
    before.create("/reload", b"v1")
    # A server certificate from another CA replaces it (renamed into place, as a
    # certificate manager does).
    other = certs_mod.Party(tmp_path, "other-server")
    certs_mod._leaf(other, "/O=rzk-test/CN=localhost", certs.rogue_ca, tmp_path, certs_mod.SERVER_EXT)
    staged = tmp_path / "staged.pem"
    shutil.copy(other.pem, staged)
    os.replace(staged, key_store)
    # A client that trusts only the new CA gets in once the server noticed (it looks at
    # most once a second); one that trusts only the old CA no longer does.
    deadline = time.monotonic() + 15
    after = None
    while time.monotonic() < deadline and after is None:
        try:
            after = tls_client(server, ca=certs.rogue_ca.crt, start_timeout=3)
        except Exception:
            time.sleep(0.5)
    assert after is not None, "the replaced certificate was not presented within 15 s:\n" + server.log_tail()
    assert after.get("/reload")[0] == b"v1"
    with pytest.raises(Exception):
        tls_client(server, start_timeout=3)
    # The connection made before the change goes on.
    before.set("/reload", b"v2")
    assert after.get("/reload")[0] == b"v2"

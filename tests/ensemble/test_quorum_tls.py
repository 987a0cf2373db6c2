"""sslQuorum: TLS on every server-to-server connection (quorum and election ports).

The ssl.quorum.* keys are ZooKeeper's; each server presents a certificate and verifies its
peers' against its trust store. Runs against rzk (default) and Apache ZooKeeper
(ZK_TARGET=apache), whose behaviour is what the tests expect.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import certs as certs_mod  # noqa: E402
from ensemble_checks import forms_replicates_and_survives_its_leader, outsider_cannot_join  # noqa: E402
from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return certs_mod.make_certs(tmp_path_factory.mktemp("quorum-certs"))
    except certs_mod.CertError as e:
        pytest.fail(str(e), pytrace=False)


def quorum_tls_cfg(key_store, trust_store, store_type="PEM"):
    cfg = {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": str(key_store),
        "ssl.quorum.keyStore.type": store_type,
        "ssl.quorum.trustStore.location": str(trust_store),
        "ssl.quorum.trustStore.type": store_type,
    }
    if store_type == "PKCS12":
        cfg["ssl.quorum.keyStore.password"] = certs_mod.PASSWORD
        cfg["ssl.quorum.trustStore.password"] = certs_mod.PASSWORD
    return cfg


def test_an_ensemble_with_quorum_tls_forms_replicates_and_survives_its_leader(certs, tmp_path):
    e = Ensemble(TARGET, tmp_path / "e", voters=3, extra_cfg=quorum_tls_cfg(certs.server.pem, certs.ca.crt))
    forms_replicates_and_survives_its_leader(e, "/over-tls")


def test_pkcs12_quorum_stores_work(certs, tmp_path):
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=quorum_tls_cfg(certs.server.p12, certs.truststore_p12, store_type="PKCS12"),
    )
    forms_replicates_and_survives_its_leader(e, "/p12")


def test_a_server_without_the_right_certificate_cannot_join(certs, tmp_path):
    e = Ensemble(TARGET, tmp_path / "e", voters=3, extra_cfg=quorum_tls_cfg(certs.server.pem, certs.ca.crt))
    # Server 3 presents a certificate of another CA: it trusts the real CA, but nobody
    # trusts it.
    e[3].extra_cfg.update(quorum_tls_cfg(certs.rogue.pem, certs.ca.crt))
    e[3]._write_cfg()
    outsider_cannot_join(e, 3, "with an untrusted certificate")

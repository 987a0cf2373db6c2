"""Quorum SASL: DIGEST-MD5 between servers (quorum.auth.enableSasl and its require flags).

The connecting server is the learner (its QuorumLearner JAAS section names the user it
logs in as), the accepting one the server (its QuorumServer section lists the users it
accepts). With learnerRequireSasl and serverRequireSasl, a server that cannot authenticate
never gets a connection, so never joins. Runs against rzk (default) and Apache ZooKeeper
(ZK_TARGET=apache), whose behaviour is what the tests expect.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from ensemble_checks import forms_replicates_and_survives_its_leader, outsider_cannot_join  # noqa: E402
from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")

SASL_CFG = {
    "quorum.auth.enableSasl": "true",
    "quorum.auth.learnerRequireSasl": "true",
    "quorum.auth.serverRequireSasl": "true",
}


def jaas_file(path, learner_password="mypassword"):
    # No Server section: client SASL stays off, the quorum's sections suffice.
    path.write_text(
        "QuorumServer {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '    user_test="mypassword";\n'
        "};\n"
        "QuorumLearner {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '    username="test"\n'
        '    password="%s";\n'
        "};\n" % learner_password
    )
    return path


def test_an_ensemble_with_quorum_sasl_forms_replicates_and_survives_its_leader(tmp_path):
    jaas = jaas_file(tmp_path / "jaas.conf")
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=SASL_CFG,
        jvm_props={"java.security.auth.login.config": str(jaas)},
    )
    forms_replicates_and_survives_its_leader(e, "/over-sasl")


def test_a_server_with_a_wrong_learner_password_cannot_join(tmp_path):
    jaas = jaas_file(tmp_path / "jaas.conf")
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=SASL_CFG,
        jvm_props={"java.security.auth.login.config": str(jaas)},
    )
    # Server 3 accepts the right user, but logs in to its peers with a wrong password.
    wrong = jaas_file(tmp_path / "jaas-wrong.conf", learner_password="not-the-password")
    e[3].jvm_props["java.security.auth.login.config"] = str(wrong)
    outsider_cannot_join(e, 3, "with a wrong password")

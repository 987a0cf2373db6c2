"""ACLs and authentication: world, digest, auth (creator), ip, super digest.

Which permission each operation needs (Apache ZooKeeper 3.8):
  getData, getChildren(2): READ on the node    exists, sync: none
  getACL: READ or ADMIN on the node           setACL: ADMIN on the node
  setData: WRITE on the node                  create: CREATE on the parent
  delete: DELETE on the parent (the node's own ACL does not matter)
"""

import base64
import hashlib

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoNodeError,
)
from kazoo.protocol.states import KazooState
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from waiting import wait_until


def digest_of(user, password):
    raw = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(raw).decode())


def world(**perms):
    return make_acl("world", "anyone", **perms)


# --- permission values and the digest format ------------------------------------


def test_permission_bits_and_open_acl(zk):
    assert (Permissions.READ, Permissions.WRITE, Permissions.CREATE, Permissions.DELETE, Permissions.ADMIN) == (
        1, 2, 4, 8, 16)
    zk.create("/open")
    acls, stat = zk.get_acls("/open")
    assert acls == [ACL(31, Id("world", "anyone"))]
    assert stat.aversion == 0
    assert stat == zk.exists("/open")


def test_digest_acl_id_is_base64_sha1(zk):
    assert make_digest_acl_credential("user", "pw") == digest_of("user", "pw")
    zk.create("/d", acl=[make_digest_acl("user", "pw", all=True)])
    zk.add_auth("digest", "user:pw")
    acls, _ = zk.get_acls("/d")
    assert acls == [ACL(31, Id("digest", digest_of("user", "pw")))]


def test_root_and_zookeeper_acls(zk):
    assert zk.get_acls("/")[0] == [ACL(31, Id("world", "anyone"))]
    assert zk.get_acls("/zookeeper")[0] == [ACL(31, Id("world", "anyone"))]
    assert zk.get_acls("/zookeeper/config")[0] == [ACL(Permissions.READ, Id("world", "anyone"))]


# --- world ----------------------------------------------------------------------


def test_read_only_world_acl(zk):
    zk.create("/ro", b"data", acl=READ_ACL_UNSAFE)
    assert zk.get("/ro")[0] == b"data"
    assert zk.get_children("/ro") == []
    assert zk.get_acls("/ro")[0] == READ_ACL_UNSAFE
    with pytest.raises(NoAuthError):
        zk.set("/ro", b"x")
    with pytest.raises(NoAuthError):
        zk.create("/ro/child")
    with pytest.raises(NoAuthError):
        zk.set_acls("/ro", OPEN_ACL_UNSAFE)
    assert zk.get("/ro")[0] == b"data"


def test_no_permissions_at_all(zk):
    zk.create("/none", b"secret", acl=[world()])
    with pytest.raises(NoAuthError):
        zk.get("/none")
    with pytest.raises(NoAuthError):
        zk.get_children("/none")
    with pytest.raises(NoAuthError):
        zk.get_children("/none", include_data=True)
    with pytest.raises(NoAuthError):
        zk.get_acls("/none")
    with pytest.raises(NoAuthError):
        zk.set("/none", b"x")
    with pytest.raises(NoAuthError):
        zk.set_acls("/none", OPEN_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        zk.create("/none/c")
    # exists and sync need no permission
    assert zk.exists("/none").dataLength == 6
    assert zk.sync("/none") == "/none"
    # delete needs DELETE on the parent only
    zk.delete("/none")
    assert zk.exists("/none") is None


def test_get_acl_needs_read_or_admin(zk):
    zk.create("/c", acl=[world(create=True)])
    with pytest.raises(NoAuthError):
        zk.get_acls("/c")
    zk.create("/a", acl=[world(admin=True)])
    acls, _ = zk.get_acls("/a")
    assert acls == [ACL(Permissions.ADMIN, Id("world", "anyone"))]
    zk.create("/r", acl=[world(read=True)])
    assert zk.get_acls("/r")[0] == [ACL(Permissions.READ, Id("world", "anyone"))]


def test_admin_only_allows_set_acl(zk):
    zk.create("/a", acl=[world(admin=True)])
    with pytest.raises(NoAuthError):
        zk.get("/a")
    stat = zk.set_acls("/a", OPEN_ACL_UNSAFE)
    assert stat.aversion == 1
    zk.get("/a")


def test_delete_needs_delete_on_parent(zk):
    zk.create("/p", acl=[world(read=True, write=True, create=True, admin=True)])
    zk.create("/p/c")
    with pytest.raises(NoAuthError):
        zk.delete("/p/c")
    zk.set_acls("/p", OPEN_ACL_UNSAFE)
    zk.delete("/p/c")


def test_create_needs_create_on_parent(zk):
    zk.create("/p", acl=[world(read=True, write=True, delete=True, admin=True)])
    with pytest.raises(NoAuthError):
        zk.create("/p/c")
    with pytest.raises(NoAuthError):
        zk.create("/p/s-", sequence=True)
    zk.create("/q", acl=[world(create=True)])
    assert zk.create("/q/c") == "/q/c"


def test_write_only(zk):
    zk.create("/w", acl=[world(write=True)])
    stat = zk.set("/w", b"blind")
    assert stat.version == 1
    with pytest.raises(NoAuthError):
        zk.get("/w")


def test_multi_with_unauthorized_op(zk):
    zk.create("/ro", acl=READ_ACL_UNSAFE)
    t = zk.transaction()
    t.create("/ok")
    t.set_data("/ro", b"x")
    results = t.commit()
    assert isinstance(results[1], NoAuthError)
    assert zk.exists("/ok") is None


# --- digest ---------------------------------------------------------------------


def test_digest_acl(zk, zk_factory):
    zk.add_auth("digest", "alice:wonder")
    zk.create("/d", b"hidden", acl=[make_digest_acl("alice", "wonder", all=True)])
    assert zk.get("/d")[0] == b"hidden"
    zk.set("/d", b"changed")

    stranger = zk_factory()
    with pytest.raises(NoAuthError):
        stranger.get("/d")
    with pytest.raises(NoAuthError):
        stranger.set("/d", b"x")
    with pytest.raises(NoAuthError):
        stranger.create("/d/c")
    assert stranger.exists("/d") is not None

    impostor = zk_factory()
    impostor.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        impostor.get("/d")

    friend = zk_factory(auth_data=[("digest", "alice:wonder")])
    assert friend.get("/d")[0] == b"changed"


def test_digest_read_for_one_write_for_another(zk, zk_factory):
    zk.create(
        "/d",
        b"v",
        acl=[make_digest_acl("reader", "r", read=True), make_digest_acl("writer", "w", write=True)],
    )
    reader = zk_factory(auth_data=[("digest", "reader:r")])
    writer = zk_factory(auth_data=[("digest", "writer:w")])
    assert reader.get("/d")[0] == b"v"
    with pytest.raises(NoAuthError):
        reader.set("/d", b"x")
    writer.set("/d", b"x")
    with pytest.raises(NoAuthError):
        writer.get("/d")


def test_several_identities_on_one_session(zk):
    zk.create("/a", acl=[make_digest_acl("a", "1", all=True)])
    zk.create("/b", acl=[make_digest_acl("b", "2", all=True)])
    zk.add_auth("digest", "a:1")
    zk.add_auth("digest", "b:2")
    zk.get("/a")
    zk.get("/b")


def test_world_read_plus_digest_all(zk, zk_factory):
    zk.create("/mix", b"m", acl=[world(read=True), make_digest_acl("u", "p", all=True)])
    assert zk.get("/mix")[0] == b"m"
    with pytest.raises(NoAuthError):
        zk.set("/mix", b"x")
    owner = zk_factory(auth_data=[("digest", "u:p")])
    owner.set("/mix", b"x")


def test_digest_credential_without_colon_is_accepted(zk):
    """The digest provider hashes the whole string; user is the part before any colon."""
    assert zk.add_auth("digest", "lonely") is True
    zk.create("/x")


# --- auth scheme (creator) ----------------------------------------------------------


def test_creator_acl_needs_an_identity(zk):
    with pytest.raises(InvalidACLError):
        zk.create("/c", acl=CREATOR_ALL_ACL)
    assert zk.exists("/c") is None
    zk.create("/n")
    with pytest.raises(InvalidACLError):
        zk.set_acls("/n", CREATOR_ALL_ACL)


def test_creator_acl_expands_to_every_digest_identity(zk, zk_factory):
    zk.add_auth("digest", "u:p")
    zk.add_auth("digest", "v:q")
    zk.create("/c", acl=CREATOR_ALL_ACL)
    acls, _ = zk.get_acls("/c")
    assert sorted(acls, key=lambda a: a.id.id) == [
        ACL(31, Id("digest", digest_of("u", "p"))),
        ACL(31, Id("digest", digest_of("v", "q"))),
    ]
    stranger = zk_factory()
    with pytest.raises(NoAuthError):
        stranger.get("/c")
    other_user = zk_factory(auth_data=[("digest", "v:q")])
    other_user.get("/c")


def test_creator_acl_on_ephemeral(zk):
    zk.add_auth("digest", "u:p")
    zk.create("/e", acl=CREATOR_ALL_ACL, ephemeral=True)
    assert zk.get_acls("/e")[0] == [ACL(31, Id("digest", digest_of("u", "p")))]


# --- ip -------------------------------------------------------------------------------


def test_ip_acl(zk):
    zk.create("/ip", b"local", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert zk.get("/ip")[0] == b"local"
    zk.create("/ip8", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    zk.get("/ip8")
    zk.create("/far", acl=[make_acl("ip", "10.1.2.3", all=True)])
    with pytest.raises(NoAuthError):
        zk.get("/far")
    with pytest.raises(NoAuthError):
        zk.create("/far/c")
    zk.create("/farnet", acl=[make_acl("ip", "192.168.0.0/16", all=True)])
    with pytest.raises(NoAuthError):
        zk.set("/farnet", b"x")


# --- invalid ACLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "acl",
    [
        [make_acl("world", "someone", all=True)],
        [make_acl("nosuchscheme", "x", all=True)],
        [make_acl("digest", "no-colon-here", all=True)],
        [make_acl("ip", "1.2.3", all=True)],
    ],
    ids=["world-not-anyone", "unknown-scheme", "digest-malformed", "ip-malformed"],
)
def test_invalid_acl(zk, acl):
    with pytest.raises(InvalidACLError):
        zk.create("/bad", acl=acl)
    assert zk.exists("/bad") is None
    zk.create("/good")
    with pytest.raises(InvalidACLError):
        zk.set_acls("/good", acl)
    assert zk.get_acls("/good")[0] == OPEN_ACL_UNSAFE


def test_empty_acl_list_is_invalid(zk):
    """(kazoo replaces an empty ACL on create by its default; test_wire.py sends it raw.)"""
    zk.create("/good")
    with pytest.raises(InvalidACLError):
        zk.set_acls("/good", [])


def test_zero_permission_acl_is_valid(zk):
    zk.create("/z", acl=[world()])
    assert zk.exists("/z") is not None


# --- setACL versions ---------------------------------------------------------------------


def test_set_acls_versions(zk):
    zk.create("/v", b"d")
    stat = zk.set_acls("/v", [world(read=True, admin=True)])
    assert stat.aversion == 1
    assert stat.version == 0
    with pytest.raises(BadVersionError):
        zk.set_acls("/v", OPEN_ACL_UNSAFE, version=0)
    stat = zk.set_acls("/v", OPEN_ACL_UNSAFE, version=1)
    assert stat.aversion == 2
    acls, stat2 = zk.get_acls("/v")
    assert acls == OPEN_ACL_UNSAFE
    assert stat2 == stat
    # setACL is not a data change
    assert stat.mzxid == stat.czxid


def test_set_acls_missing_node(zk):
    with pytest.raises(NoNodeError):
        zk.set_acls("/nope", OPEN_ACL_UNSAFE)
    with pytest.raises(NoNodeError):
        zk.get_acls("/nope")


def test_duplicate_acl_entries_are_merged(zk):
    zk.create("/dup", acl=[world(read=True), world(read=True)])
    assert zk.get_acls("/dup")[0] == [ACL(Permissions.READ, Id("world", "anyone"))]


# --- auth failures ---------------------------------------------------------------------------


def test_unknown_auth_scheme_fails_the_session(zk_factory):
    client = zk_factory()
    states = []
    client.add_listener(states.append)
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "whatever")
    wait_until(lambda: KazooState.LOST in states)


def test_ip_auth_is_accepted(zk):
    assert zk.add_auth("ip", "127.0.0.1") is True


# --- super user ----------------------------------------------------------------------------


@pytest.fixture
def super_server(zk_server_factory):
    """superDigest set in zoo.cfg only (Apache 3.8 turns unknown zoo.cfg keys into zookeeper.* properties)."""
    return zk_server_factory("super", extra_cfg={"DigestAuthenticationProvider.superDigest": digest_of("super", "s3cret")})


def test_super_digest_user_bypasses_acls(super_server, zk_factory):
    owner = zk_factory(hosts=super_server.hosts, auth_data=[("digest", "u:p")])
    owner.create("/private", b"mine", acl=[make_digest_acl("u", "p", all=True)])
    owner.create("/locked", b"none", acl=[world()])

    nobody = zk_factory(hosts=super_server.hosts)
    with pytest.raises(NoAuthError):
        nobody.get("/private")

    root = zk_factory(hosts=super_server.hosts, auth_data=[("digest", "super:s3cret")])
    assert root.get("/private")[0] == b"mine"
    assert root.get("/locked")[0] == b"none"
    root.set("/locked", b"opened")
    root.create("/locked/child")
    assert root.get_acls("/locked")[0] == [world()]
    root.set_acls("/locked", OPEN_ACL_UNSAFE)
    assert nobody.get("/locked")[0] == b"opened"


def test_super_user_with_wrong_password_is_ordinary(super_server, zk_factory):
    owner = zk_factory(hosts=super_server.hosts)
    owner.create("/locked", acl=[world()])
    fake = zk_factory(hosts=super_server.hosts, auth_data=[("digest", "super:wrong")])
    with pytest.raises(NoAuthError):
        fake.get("/locked")


def test_creator_acl_for_super_user(super_server, zk_factory):
    root = zk_factory(hosts=super_server.hosts, auth_data=[("digest", "super:s3cret")])
    root.create("/c", acl=CREATOR_ALL_ACL)
    assert root.get_acls("/c")[0] == [ACL(31, Id("digest", digest_of("super", "s3cret")))]

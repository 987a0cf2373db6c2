#!/usr/bin/env bash
# The one test command (README and .ci/run call it). On a fresh Debian machine, as root:
#   1. installs the Debian packages the tests need (Apache ZooKeeper 3.8, its C and Java
#      clients, Curator, a JDK, openssl for the test certificates), only those missing;
#   2. makes the Python venv .venv-test/ with the pinned tests/requirements.txt;
#   3. cargo build --workspace --bins, then cargo test --workspace, then every criterion
#      bench once on tiny inputs so the benches keep compiling and running, then 300 seeds
#      of the ensemble simulator (`rzk sim`) (all skipped only when RZK_SKIP_CARGO=1);
#   4. runs pytest tests/ against the server chosen by ZK_TARGET (default rzk, the
#      binary at RZK_BIN=target/debug/rzk; ZK_TARGET=apache runs the same tests
#      against Apache ZooKeeper, the reference), then the client suites (kazoo's and the
#      Java client's) once more against a 3-server ensemble (ZK_TOPOLOGY=ensemble).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k watches -x
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
started=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$*" "$(( $(date +%s) - started ))"; }
die() { echo "scripts/test.sh: $*" >&2; exit 1; }

DEBIAN_PACKAGES=(
  zookeeper zookeeper-bin libzookeeper-java libzookeeper-mt-dev
  libcurator-framework-java libcurator-recipes-java libcurator-client-java
  default-jdk-headless
  openssl
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: $*"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
}

step "Debian packages"
command -v dpkg-query >/dev/null 2>&1 || die "not a Debian system: install ${DEBIAN_PACKAGES[*]} by hand"
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
# The venv needs ensurepip, which Debian's own python3 keeps in python3-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt_install "${missing[@]}"
else
  echo "all present: ${DEBIAN_PACKAGES[*]}"
fi
command -v java >/dev/null 2>&1 || die "java not found after installing default-jdk-headless"
command -v javac >/dev/null 2>&1 || die "javac not found after installing default-jdk-headless"
command -v keytool >/dev/null 2>&1 || die "keytool not found after installing default-jdk-headless"
command -v openssl >/dev/null 2>&1 || die "openssl not found after installing it"
for jar in zookeeper.jar zookeeper-jute.jar curator-framework.jar curator-recipes.jar curator-client.jar; do
  [ -f "/usr/share/java/$jar" ] || die "/usr/share/java/$jar missing after installing the Debian packages"
done

step "Python venv .venv-test"
VENV=$ROOT/.venv-test
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
"$VENV/bin/python" -c 'import kazoo, puresasl, pytest, pytest_timeout, prometheus_client' || die "test requirements did not install"

if [ "${RZK_SKIP_CARGO:-0}" = "1" ]; then
  step "cargo: skipped (RZK_SKIP_CARGO=1)"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found"
  step "cargo build --workspace --bins"
  cargo build --workspace --bins
  step "cargo test --workspace"
  cargo test --workspace
  # Run without `--bench`, criterion runs each bench body once instead of measuring it.
  # `--bench '*'` picks the bench targets only (`--benches` would run the unit tests again).
  step "cargo test --workspace --bench '*'"
  cargo test --workspace --bench '*'
  # The ensemble simulator over a bounded range of fresh seeds (sim/tests/ covers others and
  # the plants); about a minute on 2 cores with the debug build.
  step "rzk sim --seeds 300"
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/rzk" sim --seeds 300
fi

step "pytest tests/ (ZK_TARGET=${ZK_TARGET:-rzk})"
export RZK_BIN="${RZK_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/rzk}"
export ZK_TARGET="${ZK_TARGET:-rzk}"
"$VENV/bin/python" -m pytest tests/ "$@"

step "pytest tests/compat tests/java against a 3-server ensemble (ZK_TOPOLOGY=ensemble)"
ZK_TOPOLOGY=ensemble "$VENV/bin/python" -m pytest tests/compat tests/java "$@"

step "all tests passed"

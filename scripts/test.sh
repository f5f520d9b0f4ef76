#!/usr/bin/env bash
# postdesk's test command (README, CI's .ci/run, pre-commit bar):
#
#   sudo scripts/test.sh      (or scripts/test.sh as root)
#
# 1. On Debian/Ubuntu, installs what the integration tests need if it is
#    missing: dovecot-imapd dovecot-lmtpd postfix openssl ca-certificates
#    systemd (for systemd-analyze, which checks the unit file)
#    (needs root; the packages' own services are kept from starting: the
#    tests run private Dovecot/Postfix instances on free 127.0.0.1 ports).
# 2. cargo fmt --check, cargo clippy -D warnings (fail fast),
# 3. cargo build --all-targets, the doc tests, then the whole suite.
#
# Exits non-zero on the first failure. Works from any directory. The
# integration tests start real servers and therefore must run as root.
set -Eeuo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nscripts/test.sh: ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

PACKAGES=(dovecot-imapd dovecot-lmtpd postfix openssl ca-certificates systemd)
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0

# the policy-rc.d we created must not outlive an interrupted install
remove_own_policy() {
    if ((OWN_POLICY)); then rm -f "$POLICY"; OWN_POLICY=0; fi
}
trap remove_own_policy EXIT

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
    done
}

install_packages() {
    local -a missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        step "system packages: ${PACKAGES[*]} are installed"
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "missing packages: ${missing[*]}; run this script as root (it installs them with apt-get)"
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and there is no apt-get (Debian bookworm expected)"
    step "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix's debconf question: no system mail configuration at all
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Keep the packages from starting system-wide Dovecot/Postfix services:
    # a policy-rc.d that denies every start, unless one exists already.
    if [[ ! -e $POLICY ]]; then
        printf '#!/bin/sh\n# scripts/test.sh: no service starts while installing\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        OWN_POLICY=1
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
    remove_own_policy
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
    stop_system_services
}

# In case a service was started anyway (e.g. another policy allowed it):
# stop it through the init system, only right after we installed it.
stop_system_services() {
    local svc
    for svc in dovecot postfix; do
        if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
            if systemctl is-active --quiet "$svc"; then
                step "stopping and disabling the system $svc service (the tests run their own)"
                systemctl stop "$svc" || true
                systemctl disable "$svc" >/dev/null 2>&1 || true
            fi
        elif [[ -x /etc/init.d/$svc ]] && /etc/init.d/"$svc" status >/dev/null 2>&1; then
            step "stopping the system $svc service (the tests run their own)"
            /etc/init.d/"$svc" stop || true
        fi
    done
}

command -v cargo >/dev/null || die "cargo not found: install Rust 1.95 (https://rustup.rs)"
install_packages
[[ $EUID -eq 0 ]] || printf '\nscripts/test.sh: WARNING: not root; the integration tests start Postfix and Dovecot and will fail\n' >&2

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo build --all-targets"
cargo build --locked --all-targets

step "cargo test --doc"
cargo test --locked --doc

step "cargo test --all-targets"
cargo test --locked --all-targets

trap - ERR
step "all checks passed"

#!/usr/bin/env bash
# Installs and starts what berth's demo and tests need, and nothing that is
# already there: a Docker Engine (Debian's docker.io) that answers,
# busybox-static (the offline test images are built from it), a registry on
# loopback (Debian's docker-registry, 127.0.0.1:5114), systemd-analyze,
# Node.js and npm (the web UI's build), Chromium (its browser tests).
# Idempotent.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
# systemd-analyze checks the units berth writes (installing it does not make systemd PID 1).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# sshd for the scp/sftp source tests (each test runs its own, on loopback).
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# scripts/package-deb.sh (and the package test) need dpkg-shlibdeps and strip.
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
# A test makes a short-lived certificate with openssl (berth itself does not use it).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The web UI's end-to-end tests drive Debian's Chromium headless.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The web UI is built with Node.js (scripts/build-web.sh checks its version).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_answers; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        log "starting docker with systemd"
        as_root systemctl start docker || true
    fi
fi
if ! engine_answers; then
    # No systemd (containers, CI sandboxes): run the engine directly.
    log "starting dockerd (log: /var/log/berth-dockerd.log)"
    # setsid: the engine outlives the shell, session and process group that started it.
    as_root setsid -f sh -c 'exec dockerd >>/var/log/berth-dockerd.log 2>&1 </dev/null'
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 0.5
    done
fi
if ! engine_answers; then
    log "the Docker Engine does not answer; see /var/log/berth-dockerd.log"
    exit 1
fi
log "docker engine $(docker version --format '{{.Server.Version}}') is up"

# The account the scp/sftp tests log in as (password and key); it can only be
# reached through the tests' own sshd instances, which listen on loopback.
if ! id berth-ssh-test >/dev/null 2>&1; then
    log "creating the test account berth-ssh-test"
    as_root useradd --create-home --shell /bin/sh berth-ssh-test
    echo 'berth-ssh-test:berth-ssh-test-pw' | as_root chpasswd
fi
as_root mkdir -p /run/sshd

registry_answers() { (exec 3<>/dev/tcp/127.0.0.1/5114) 2>/dev/null; }
if ! registry_answers; then
    log "starting docker-registry on 127.0.0.1:5114 (log: /var/log/berth-registry.log)"
    config="$(cd "$(dirname "$0")" && pwd)/registry.yml"
    as_root setsid -f sh -c "exec docker-registry serve '$config' >>/var/log/berth-registry.log 2>&1 </dev/null"
    for _ in $(seq 1 40); do
        registry_answers && break
        sleep 0.25
    done
    registry_answers || { log "the registry does not answer; see /var/log/berth-registry.log"; exit 1; }
fi

# --- berth-kafka: a Kafka-protocol broker on loopback (tansu, in-memory) ----
# berth-kafka's tests publish to it, stop it and restart it through
# scripts/kafka.sh, which pins tansu's version. The first run builds tansu from
# crates.io (about 11 minutes on 2 cores); later runs find it installed and
# running and return at once. The address (127.0.0.1:9092, or 127.0.0.1:19092
# when 9092 is taken) is in /run/berth-kafka.addr (`scripts/kafka.sh addr`).
kafka_sh="$(cd "$(dirname "$0")" && pwd)/kafka.sh"
bash "$kafka_sh" install
bash "$kafka_sh" start
log "kafka broker (tansu) on $(bash "$kafka_sh" addr) is up"
# --- end berth-kafka ---------------------------------------------------------

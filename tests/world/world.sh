#!/bin/bash
# Test world for agentpen: two network namespaces joined by a veth pair.
#   apw-srv  : "the internet" (nginx with TLS, arrival logger, bait listeners)
#   apw-host : "the user's machine" (agentpen runs here as an unprivileged user)
# Only 198.18.0.0/24 and fd0c::/64 are used. Nothing leaves the namespaces.
# Usage (as root): world.sh up | down | status
set -euo pipefail
# The daemons started here live on after this script: they must not keep any
# descriptor the caller had open (a test lock on fd 9 would stay held forever).
for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${APW_STATE:-/run/apw}
# APW_SRV_NS/APW_HOST_NS (with APW_STATE) make a second, private world beside the
# shared one (same addresses: each pair of namespaces is its own network).
SRV=${APW_SRV_NS:-apw-srv}
HOST=${APW_HOST_NS:-apw-host}
VH=apw-h0     # veth end in apw-host
VS=apw-s0     # veth end in apw-srv
PY=/usr/bin/python3
NAMES=(allowed.test other.test a.wild.test b.wild.test v6only.test private-denied.test reset.test)

die() { echo "world.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

pid_alive() {  # pidfile [expected comm substring]
    local f=$1 p
    [ -s "$f" ] || return 1
    p=$(cat "$f")
    [[ "$p" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$p" 2>/dev/null || return 1
    if [ -n "${2:-}" ]; then grep -q -- "$2" "/proc/$p/cmdline" 2>/dev/null || return 1; fi
}

kill_pidfile() {  # pidfile expected-comm-substring
    local f=$1 p i
    pid_alive "$f" "$2" || { rm -f "$f"; return 0; }
    p=$(cat "$f")
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    rm -f "$f"
}

make_netns() {
    ns_exists $SRV  || ip netns add $SRV
    ns_exists $HOST || ip netns add $HOST
    ip -n $SRV link set lo up
    ip -n $HOST link set lo up
    if ! ip -n $HOST link show $VH >/dev/null 2>&1; then
        ip -n $HOST link add $VH type veth peer name $VS netns $SRV
    fi
    # IPv6 on, no DAD delay, no router solicitations needed.
    for ns in $SRV $HOST; do
        ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_dad=0 >/dev/null
    done
    ip netns exec $HOST sysctl -qw net.ipv6.conf.$VH.accept_dad=0 >/dev/null 2>&1 || true
    ip netns exec $SRV  sysctl -qw net.ipv6.conf.$VS.accept_dad=0 >/dev/null 2>&1 || true
    ip -n $HOST addr replace 198.18.0.2/24 dev $VH
    ip -n $HOST addr replace fd0c::2/64 dev $VH nodad
    ip -n $SRV addr replace 198.18.0.1/24 dev $VS
    ip -n $SRV addr replace fd0c::1/64 dev $VS nodad
    ip -n $SRV addr replace 198.18.0.10/32 dev $VS
    ip -n $SRV addr replace 198.18.0.11/32 dev $VS
    ip -n $SRV addr replace 198.18.0.12/32 dev $VS   # faults.py (reset server)
    ip -n $SRV addr replace 198.18.0.13/32 dev $VS   # bench.test (bench/ only; see make_bench_server)
    ip -n $SRV addr replace fd0c::10/128 dev $VS nodad
    ip -n $HOST link set $VH up
    ip -n $SRV link set $VS up
    ip -n $HOST route replace default via 198.18.0.1 dev $VH
    ip -n $HOST -6 route replace default via fd0c::1 dev $VH
}

make_etc() {
    mkdir -p /etc/netns/$HOST
    cat > /etc/netns/$HOST/hosts <<HOSTS
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
198.18.0.10	allowed.test other.test a.wild.test b.wild.test
fd0c::10	v6only.test
198.18.0.11	private-denied.test
198.18.0.12	reset.test
198.18.0.13	bench.test
198.18.0.10	git.test
# This machine's own name, as Debian's /etc/hosts has it: git (an identity for
# a reflog) and others look it up, and 198.18.0.1:53 answers nothing, so each
# such lookup otherwise waits out two 5 s resolver timeouts.
127.0.1.1	$(hostname)
# Names the SNI proxy must never dial (never reachable; for refusal tests):
127.0.0.1	loopback-name.test
::1	loopback6-name.test
169.254.169.254	metadata.test
0.0.0.0	unspecified-name.test
HOSTS
    echo "nameserver 198.18.0.1" > /etc/netns/$HOST/resolv.conf
    chmod 0644 /etc/netns/$HOST/hosts /etc/netns/$HOST/resolv.conf
}

make_pki() {
    [ -s "$STATE/ca.pem" ] && [ -s "$STATE/server.pem" ] && return 0
    local d="$STATE/pki"
    mkdir -p "$d"; chmod 0700 "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/ca.key" -sha256 -days 30 -subj "/CN=agentpen test world CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$d/ca.pem" 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key" 2>/dev/null
    openssl req -new -key "$d/server.key" -subj "/CN=allowed.test" -out "$d/server.csr" 2>/dev/null
    local san="DNS:allowed.test,DNS:other.test,DNS:*.wild.test,DNS:a.wild.test,DNS:b.wild.test"
    san+=",DNS:v6only.test,DNS:private-denied.test,DNS:reset.test"
    san+=",IP:198.18.0.1,IP:198.18.0.10,IP:198.18.0.11,IP:fd0c:0:0:0:0:0:0:1,IP:fd0c:0:0:0:0:0:0:10"
    cat > "$d/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san
EXT
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
    cp "$d/ca.pem" "$STATE/ca.pem"; chmod 0644 "$STATE/ca.pem"
    cp "$d/server.pem" "$STATE/server.pem"; chmod 0644 "$STATE/server.pem"
}

make_www() {
    mkdir -p "$STATE/www"
    [ -e "$STATE/www/big" ] || truncate -s 256M "$STATE/www/big"
    echo "agentpen test world" > "$STATE/www/index.html"
    chmod 0755 "$STATE/www"; chmod 0644 "$STATE/www/big" "$STATE/www/index.html"
    make_git_repo
    mkdir -p "$STATE/nginx-tmp"; chmod 0700 "$STATE/nginx-tmp"
    chown www-data: "$STATE/nginx-tmp" 2>/dev/null || true
    local tls="ssl_certificate $STATE/server.pem; ssl_certificate_key $STATE/pki/server.key;"
    cat > "$STATE/nginx.conf" <<CONF
# generated by tests/world/world.sh; runs inside netns $SRV
worker_processes auto;
worker_rlimit_nofile 16384;
pid $STATE/nginx.pid;
error_log $STATE/nginx-error.log warn;
events { worker_connections 8192; }
http {
    default_type application/octet-stream;
    types { text/html html; text/plain txt; }
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 100000;
    client_body_temp_path $STATE/nginx-tmp/body;
    proxy_temp_path $STATE/nginx-tmp/proxy;
    fastcgi_temp_path $STATE/nginx-tmp/fastcgi;
    uwsgi_temp_path $STATE/nginx-tmp/uwsgi;
    scgi_temp_path $STATE/nginx-tmp/scgi;
    log_format apw '\$ssl_server_name \$host \$remote_addr "\$request" \$status \$bytes_sent \$server_addr \$server_port';
    access_log $STATE/nginx-access.log apw;
    map \$ssl_server_name \$apw_name { "" \$host; default \$ssl_server_name; }
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 198.18.0.10:443 ssl http2;
        listen 198.18.0.11:443 ssl http2;
        listen [fd0c::10]:443 ssl http2;
        listen 198.18.0.10:8443 ssl;
        listen 198.18.0.11:8443 ssl;
        listen [fd0c::10]:8443 ssl;
        listen 198.18.0.10:80;
        listen 198.18.0.11:80;
        listen [fd0c::10]:80;
        server_name _;
        $tls
        root $STATE/www;
        location = /hello { default_type text/plain; return 200 "hello from \$apw_name\n"; }
        location / { }
    }
$(make_bench_server)
}
CONF
    chmod 0644 "$STATE/nginx.conf"
}

# ---- bench server (bench/run.sh only; tests do not use it) ----------------------------
# bench.test = 198.18.0.13:443, its own listening socket and its own certificate, so
# the server blocks above (and the access log the tests read) are untouched. Tuned not
# to be the limit of a bulk download: no access log, sendfile, big output buffers, and
# kernel TLS where the kernel has it (nginx >= 1.21.4 with an OpenSSL built with ktls,
# as Debian 12's is; without the kernel's tls module OpenSSL falls back to userspace
# silently). One listener with http2: the client picks the protocol by ALPN
# (curl --http1.1 / --http2), as it would through agentpen's port-443-only proxy.
make_bench_pki() {
    [ -s "$STATE/bench.pem" ] && [ -s "$STATE/pki/bench.key" ] && return 0
    local d="$STATE/pki"
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/bench.key" 2>/dev/null
    openssl req -new -key "$d/bench.key" -subj "/CN=bench.test" -out "$d/bench.csr" 2>/dev/null
    sed 's/^subjectAltName=.*/subjectAltName=DNS:bench.test,IP:198.18.0.13/' "$d/server.ext" > "$d/bench.ext"
    openssl x509 -req -in "$d/bench.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$d/bench.ext" -out "$d/bench.pem" 2>/dev/null
    cp "$d/bench.pem" "$STATE/bench.pem"; chmod 0644 "$STATE/bench.pem"
}
make_bench_server() {
    cat <<BENCH
    server {    # bench.test: see make_bench_server in world.sh
        listen 198.18.0.13:443 ssl http2 backlog=4096;
        server_name bench.test;
        ssl_certificate $STATE/bench.pem; ssl_certificate_key $STATE/pki/bench.key;
        ssl_conf_command Options KTLS;
        access_log off;
        sendfile on;
        tcp_nopush on;
        output_buffers 2 256k;
        root $STATE/www;
        location = /hello { default_type text/plain; return 200 "hello from bench.test\n"; }
        location / { }
    }
BENCH
}

# A bare repository served over git's dumb HTTP protocol (static files):
# https://allowed.test/repo.git, one commit with README "hello from the test repo".
make_git_repo() {
    local repo="$STATE/www/repo.git" tmp
    [ -s "$repo/info/refs" ] && return 0
    rm -rf "$repo"
    tmp=$(mktemp -d)
    git -c init.defaultBranch=main init -q "$tmp/src"
    echo "hello from the test repo" > "$tmp/src/README"
    git -C "$tmp/src" add README
    git -C "$tmp/src" -c user.email=world@apw.test -c user.name=world commit -q -m "test repo"
    git clone -q --bare "$tmp/src" "$repo"
    git -C "$repo" update-server-info
    rm -rf "$tmp"
    chmod -R a+rX "$repo"
}

# sshd for git over ssh (issue 11): 198.18.0.10:2222 (22 is the arrival logger's bait
# on every address), user apw-git whose shell is git-shell (git commands only), key
# authentication only. The client key is a test key, world-readable so each test
# copies it into its own fixture (0600); known_hosts pins the host key for
# [git.test]:2222. The repository ($STATE/ssh/repo.git) is a copy of the one the
# dumb-HTTP path serves.
make_ssh() {
    local d="$STATE/ssh"
    mkdir -p "$d" "$d/home"; chmod 0755 "$d" "$d/home"
    id apw-git >/dev/null 2>&1 || useradd --system -M -d "$d/home" -s /usr/bin/git-shell apw-git
    # No password, but not "locked" ("!"): without PAM, sshd refuses locked accounts even for keys.
    [ "$(getent shadow apw-git | cut -d: -f2)" = '*' ] || usermod -p '*' apw-git
    [ -s "$d/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C apw-git-host -f "$d/host_ed25519"
    [ -s "$d/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C apw-test-client -f "$d/client_ed25519"
    chmod 0644 "$d/client_ed25519" "$d/client_ed25519.pub"
    cp "$d/client_ed25519.pub" "$d/authorized_keys"
    echo "[git.test]:2222 $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" > "$d/known_hosts"
    chmod 0644 "$d/authorized_keys" "$d/known_hosts"
    # The repository, owned by the account that serves it (git refuses another owner's).
    if [ ! -s "$d/repo.git/HEAD" ]; then
        git clone -q --bare "$STATE/www/repo.git" "$d/repo.git"
        chown -R apw-git: "$d/repo.git"
    fi
    cat > "$d/sshd_config" <<CONF
Port 2222
ListenAddress 198.18.0.10
HostKey $d/host_ed25519
PidFile $STATE/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers apw-git
PermitRootLogin no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY no
MaxStartups 100
CONF
}

start_sshd() {
    [ -x /usr/sbin/sshd ] || { echo "world.sh: warning: no /usr/sbin/sshd (scripts/deps.sh --test installs openssh-server); git over ssh tests fail" >&2; return 0; }
    pid_alive "$STATE/sshd.pid" sshd && return 0
    mkdir -p /run/sshd; chmod 0755 /run/sshd
    ip netns exec $SRV /usr/sbin/sshd -f "$STATE/ssh/sshd_config" -E "$STATE/sshd.log" \
        || die "sshd failed; see $STATE/sshd.log"
    local i; for i in $(seq 1 50); do pid_alive "$STATE/sshd.pid" sshd && return 0; sleep 0.1; done
    die "sshd did not write its pid file; see $STATE/sshd.log"
}

start_faults() {
    pid_alive "$STATE/faults.pid" faults.py && return 0
    ip netns exec $SRV setsid $PY "$HERE/faults.py" --log "$STATE/arrivals.log" --pidfile "$STATE/faults.pid" \
        </dev/null >>"$STATE/faults.stderr" 2>&1 &
    local i; for i in $(seq 1 50); do pid_alive "$STATE/faults.pid" faults.py && return 0; sleep 0.1; done
    die "fault servers did not start; see $STATE/faults.stderr"
}

# The "corporate" HTTP CONNECT proxy (connectproxy.py): 198.18.0.1:3128, Basic
# credentials apw-proxy / s3cr:et@pa%ss (the URL spells them
# http://apw-proxy:s3cr%3Aet%40pa%25ss@198.18.0.1:3128), names from the host
# namespace's hosts file, one line per request in $STATE/proxy.log.
PROXY_USER=apw-proxy
PROXY_PASSWORD='s3cr:et@pa%ss'
start_proxy() {
    pid_alive "$STATE/proxy.pid" connectproxy.py && return 0
    touch "$STATE/proxy.log"; chmod 0644 "$STATE/proxy.log"
    rm -f "$STATE/proxy.pid"
    ip netns exec $SRV setsid $PY "$HERE/connectproxy.py" --log "$STATE/proxy.log" --pidfile "$STATE/proxy.pid" \
        --hosts /etc/netns/$HOST/hosts --user "$PROXY_USER" --password "$PROXY_PASSWORD" \
        </dev/null >>"$STATE/proxy.stderr" 2>&1 &
    local i; for i in $(seq 1 50); do pid_alive "$STATE/proxy.pid" connectproxy.py && return 0; sleep 0.1; done
    die "CONNECT proxy did not start; see $STATE/proxy.stderr"
}

start_nginx() {
    if pid_alive "$STATE/nginx.pid" nginx; then
        # Already running: reload if it runs an older config (e.g. one without bench.test).
        cmp -s "$STATE/nginx.conf" "$STATE/nginx.conf.loaded" 2>/dev/null && return 0
        ip netns exec $SRV nginx -t -q -c "$STATE/nginx.conf" -p "$STATE" \
            || die "new nginx config rejected; see $STATE/nginx-error.log"
        kill -HUP "$(cat "$STATE/nginx.pid")"
        cp "$STATE/nginx.conf" "$STATE/nginx.conf.loaded"
        return 0
    fi
    touch "$STATE/nginx-access.log" "$STATE/nginx-error.log"
    chmod 0644 "$STATE/nginx-access.log" "$STATE/nginx-error.log"
    ip netns exec $SRV nginx -c "$STATE/nginx.conf" -p "$STATE" -g 'daemon on;' \
        || die "nginx failed; see $STATE/nginx-error.log"
    cp "$STATE/nginx.conf" "$STATE/nginx.conf.loaded"
    local i; for i in $(seq 1 50); do pid_alive "$STATE/nginx.pid" nginx && return 0; sleep 0.1; done
    die "nginx did not write its pid file"
}

start_logger() {
    pid_alive "$STATE/arrivals.pid" arrivals.py && return 0
    touch "$STATE/arrivals.log"; chmod 0644 "$STATE/arrivals.log"
    rm -f "$STATE/arrivals.ready"
    ip netns exec $SRV setsid $PY "$HERE/arrivals.py" --iface $VS --log "$STATE/arrivals.log" \
        --pidfile "$STATE/arrivals.pid" --ready "$STATE/arrivals.ready" ${APW_ARRIVALS_ALL:+--all-packets} \
        </dev/null >>"$STATE/arrivals.stderr" 2>&1 &
    local i; for i in $(seq 1 50); do [ -e "$STATE/arrivals.ready" ] && return 0; sleep 0.1; done
    die "arrival logger did not start; see $STATE/arrivals.stderr"
}

wait_net() {
    local i
    for i in $(seq 1 50); do
        if ip netns exec $HOST curl -s -o /dev/null --max-time 1 http://198.18.0.10/ &&
           ip netns exec $HOST curl -s -o /dev/null --max-time 1 'http://[fd0c::10]/'; then return 0; fi
        sleep 0.1
    done
    die "veth link not usable"
}

cmd_up() {
    mkdir -p "$STATE"; chmod 0755 "$STATE"
    if [ -e /dev/net/tun ]; then
        [ "$(stat -c %a /dev/net/tun)" = 666 ] || chmod 0666 /dev/net/tun
    else
        echo "world.sh: warning: /dev/net/tun missing (pasta will not work)" >&2
    fi
    make_netns
    make_etc
    make_pki
    make_bench_pki
    make_www
    start_logger
    start_nginx
    start_faults
    start_proxy
    make_ssh
    start_sshd
    wait_net
    bash "$HERE/models.sh" up   # the real agents' scripted model servers (issue 9; models.sh)
    echo "world up: state=$STATE  (apw-host 198.18.0.2, fd0c::2; servers 198.18.0.10/.11, fd0c::10)"
}

cmd_down() {
    [ -d "$STATE" ] && kill_pidfile "$STATE/arrivals.pid" arrivals.py
    [ -d "$STATE" ] && kill_pidfile "$STATE/faults.pid" faults.py
    [ -d "$STATE" ] && kill_pidfile "$STATE/proxy.pid" connectproxy.py
    [ -d "$STATE" ] && kill_pidfile "$STATE/sshd.pid" sshd
    if [ -d "$STATE" ] && pid_alive "$STATE/nginx.pid" nginx; then
        local p; p=$(cat "$STATE/nginx.pid")
        kill -QUIT "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    fi
    # Anything else still running inside OUR namespaces (e.g. a test left behind):
    # end those processes by PID (TERM, then KILL), bounded.
    local ns pids
    for ns in $HOST $SRV; do
        ns_exists $ns || continue
        for attempt in 1 2 3; do
            pids=$(ip netns pids $ns 2>/dev/null || true)
            [ -z "$pids" ] && break
            for p in $pids; do
                if [ $attempt -lt 3 ]; then kill -TERM "$p" 2>/dev/null || true
                else kill -KILL "$p" 2>/dev/null || true; fi
            done
            sleep 0.5
        done
    done
    ns_exists $HOST && ip netns del $HOST
    ns_exists $SRV && ip netns del $SRV
    rm -rf /etc/netns/$HOST
    rmdir /etc/netns 2>/dev/null || true
    rm -rf "$STATE"
    echo "world down"
}

cmd_status() {
    local ok=0
    for ns in $SRV $HOST; do
        if ns_exists $ns; then echo "netns $ns: present"; else echo "netns $ns: MISSING"; ok=1; fi
    done
    if pid_alive "$STATE/nginx.pid" nginx; then echo "nginx: running pid $(cat "$STATE/nginx.pid")"
    else echo "nginx: NOT running"; ok=1; fi
    if pid_alive "$STATE/arrivals.pid" arrivals.py; then echo "arrivals logger: running pid $(cat "$STATE/arrivals.pid")"
    else echo "arrivals logger: NOT running"; ok=1; fi
    if pid_alive "$STATE/faults.pid" faults.py; then echo "fault servers: running pid $(cat "$STATE/faults.pid")"
    else echo "fault servers: NOT running"; ok=1; fi
    if pid_alive "$STATE/proxy.pid" connectproxy.py; then echo "CONNECT proxy (198.18.0.1:3128): running pid $(cat "$STATE/proxy.pid")"
    else echo "CONNECT proxy: NOT running"; ok=1; fi
    if pid_alive "$STATE/sshd.pid" sshd; then echo "sshd (git.test:2222): running pid $(cat "$STATE/sshd.pid")"
    else echo "sshd: NOT running (git over ssh tests fail; world.sh up starts it)"; fi
    [ -s "$STATE/ca.pem" ] && echo "CA: $STATE/ca.pem" || { echo "CA: missing"; ok=1; }
    [ -s /etc/netns/$HOST/hosts ] && echo "hosts: /etc/netns/$HOST/hosts" || { echo "hosts: missing"; ok=1; }
    echo "logs: $STATE/nginx-access.log $STATE/arrivals.log $STATE/proxy.log"
    return $ok
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

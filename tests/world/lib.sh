# Shared helpers for scripts that use the test world (source it; bash).
APW_STATE=${APW_STATE:-/run/apw}
APW_USER=${APW_USER:-apw-test}

# Create the unprivileged test user if missing (needs root).
apw_ensure_user() {
    id "$APW_USER" >/dev/null 2>&1 ||
        useradd -m -d "/home/$APW_USER" -s /bin/bash "$APW_USER"
}

# Run a command in netns apw-host as the unprivileged test user, with a clean
# environment. `ip netns exec` bind-mounts /etc/netns/apw-host/{hosts,resolv.conf}.
# Extra environment: set APW_ENV=("VAR=value" ...) before calling.
apw_as_user() {
    local home; home=$(getent passwd "$APW_USER" | cut -d: -f6)
    ip netns exec "${APW_HOST_NS:-apw-host}" setpriv --reuid="$APW_USER" --regid="$APW_USER" --clear-groups \
        --inh-caps=-all -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" \
        USER="$APW_USER" LOGNAME="$APW_USER" LANG=C.UTF-8 ${APW_ENV[@]+"${APW_ENV[@]}"} "$@"
}

# Same, but as root (the "direct" baseline for things that need no user).
apw_as_root() { ip netns exec "${APW_HOST_NS:-apw-host}" "$@"; }

#!/usr/bin/env bash
# Installs the real agents the end-to-end suite drives (RealAgent*Tests), pinned,
# from PyPI wheels downloaded once into a cache outside the clone:
#   $AGENTPEN_AGENT_CACHE (default /var/cache/agentpen-test)/
#     wheels/                      the pinned wheels (pip download), fetched once
#     claude/VERSION/claude        Claude Code, from claude-agent-sdk's _bundled/claude
#     codex/VERSION/codex_cli_bin  the openai-codex-cli-bin package dir (bin/codex, …)
#     codex/VERSION/venv           a virtualenv with `pip install openai-codex-cli-bin`
#     aider/VERSION/pipx           PIPX_HOME with `pipx install aider-chat` (venvs/aider-chat)
#     versions                     NAME=VERSION lines the tests read
# A second run finds everything in place and fetches nothing. The tests lay each
# agent out in a fake home the way its users have it (tests/agents/README.md).
# Usage (as root): tests/agents/install.sh [OWNER]   OWNER: the test user, who gets
# the installed trees so its tests can hard-link them into their fake homes.
set -euo pipefail
CLAUDE_SDK=0.2.184   # carries Claude Code 2.1.327
CLAUDE=2.1.327
CODEX=0.163.0
AIDER=0.86.2
C=${AGENTPEN_AGENT_CACHE:-/var/cache/agentpen-test}
owner=${1:-}
PY=/usr/bin/python3
die() { echo "install.sh: $*" >&2; exit 1; }
mkdir -p "$C/wheels/aider"
chmod 0755 "$C" "$C/wheels"

# Only what is missing is fetched (pip download skips nothing on its own).
fetch() {  # glob, pip args…
    local glob=$1; shift
    compgen -G "$C/wheels/$glob" >/dev/null && return 0
    echo "install.sh: downloading $*" >&2
    "$PY" -m pip download -q --no-deps -d "$C/wheels" "$@" || die "cannot download $*"
}
fetch "claude_agent_sdk-$CLAUDE_SDK-*.whl" "claude-agent-sdk==$CLAUDE_SDK"
fetch "openai_codex_cli_bin-$CODEX-*.whl" "openai-codex-cli-bin==$CODEX"
if ! compgen -G "$C/wheels/aider/aider_chat-$AIDER-*.whl" >/dev/null; then
    echo "install.sh: downloading aider-chat==$AIDER and its dependencies" >&2
    "$PY" -m pip download -q -d "$C/wheels/aider.tmp" "aider-chat==$AIDER" || die "cannot download aider-chat"
    mv "$C/wheels/aider.tmp"/* "$C/wheels/aider/" && rmdir "$C/wheels/aider.tmp"
fi

# Claude Code: the native binary the SDK bundles (the native installer's versions/V file).
d="$C/claude/$CLAUDE"
if [ ! -x "$d/claude" ]; then
    rm -rf "$d.tmp"; mkdir -p "$d.tmp"
    unzip -q -o "$C"/wheels/claude_agent_sdk-$CLAUDE_SDK-*.whl 'claude_agent_sdk/_bundled/claude' -d "$d.tmp"
    mv "$d.tmp/claude_agent_sdk/_bundled/claude" "$d.tmp/claude"; rm -rf "$d.tmp/claude_agent_sdk"
    chmod 0755 "$d.tmp/claude"
    rm -rf "$d"; mv "$d.tmp" "$d"
fi
"$d/claude" --version | grep -q "^$CLAUDE " || die "$d/claude is not Claude Code $CLAUDE"

# Codex: the wheel's package dir (the standalone binary is its bin/codex), and a venv.
d="$C/codex/$CODEX"
if [ ! -x "$d/codex_cli_bin/bin/codex" ]; then
    rm -rf "$d/codex_cli_bin.tmp"; mkdir -p "$d/codex_cli_bin.tmp"
    unzip -q -o "$C"/wheels/openai_codex_cli_bin-$CODEX-*.whl 'codex_cli_bin/*' -d "$d/codex_cli_bin.tmp"
    chmod 0755 "$d/codex_cli_bin.tmp/codex_cli_bin/bin/"* "$d/codex_cli_bin.tmp/codex_cli_bin/codex-path/"* \
        "$d/codex_cli_bin.tmp/codex_cli_bin/codex-resources/"*
    mv "$d/codex_cli_bin.tmp/codex_cli_bin" "$d/codex_cli_bin"; rmdir "$d/codex_cli_bin.tmp"
fi
if [ ! -x "$d/venv/bin/python" ] || ! compgen -G "$d/venv/lib/python3*/site-packages/codex_cli_bin/bin/codex" >/dev/null; then
    rm -rf "$d/venv"
    "$PY" -m venv "$d/venv"
    "$d/venv/bin/python" -m pip install -q --no-index --find-links "$C/wheels" "openai-codex-cli-bin==$CODEX"
fi
"$d/codex_cli_bin/bin/codex" --version 2>/dev/null | grep -q "^codex-cli $CODEX$" || die "codex is not $CODEX"

# Aider: pipx's layout (PIPX_HOME/venvs/aider-chat), from the cached wheels only.
d="$C/aider/$AIDER"
if [ ! -x "$d/pipx/venvs/aider-chat/bin/aider" ]; then
    command -v pipx >/dev/null || die "pipx is missing (scripts/deps.sh --test installs it)"
    rm -rf "$d"; mkdir -p "$d"
    PIPX_HOME="$d/pipx" PIPX_BIN_DIR="$d/bin" PIPX_MAN_DIR="$d/man" pipx install --python "$PY" \
        --pip-args="--no-index --find-links $C/wheels/aider" "aider-chat==$AIDER" >/dev/null \
        || die "pipx install aider-chat failed"
fi
"$d/pipx/venvs/aider-chat/bin/aider" --version 2>/dev/null | grep -q "$AIDER" || die "aider is not $AIDER"

printf 'claude=%s\ncodex=%s\naider=%s\n' "$CLAUDE" "$CODEX" "$AIDER" > "$C/versions"
chmod -R a+rX "$C/claude" "$C/codex" "$C/aider" "$C/versions"
# The tests hard-link these trees into fake homes; with fs.protected_hardlinks only
# the files' owner may do that.
if [ -n "$owner" ]; then chown -R "$owner": "$C/claude" "$C/codex" "$C/aider"; fi

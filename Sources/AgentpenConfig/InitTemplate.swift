/// What `agentpen init` writes to `.agentpen.toml`: every key commented out,
/// the tightening ones first (honoured without trust).
public enum InitTemplate {
    public static let text = """
    # agentpen project settings (see the README, "Config files").
    #
    # This file is UNTRUSTED: anyone who can change the repository can change it.
    # agentpen honours only what tightens the sandbox; every other key is ignored
    # with a warning until you review the file and run `agentpen trust` (an edit
    # makes it untrusted again). Inside the sandbox it is read-only.
    # Precedence: flags > this file (when trusted) > global config > presets.

    # --- honoured without trust (tightening) ---

    # Paths in the project hidden from the agent (an empty file or directory),
    # matched one path component at a time from the project root.
    # hide = [".env", "*.pem", "secrets"]

    # Hosts taken out of the preset's and the configs' allowlist.
    # remove_hosts = ["statsig.anthropic.com"]

    # Variables not passed in, even if the preset passes them.
    # remove_env = ["ANTHROPIC_API_KEY"]

    # The agent's config directories read-only (like --ro-config).
    # ro_config = true

    # A git worktree's parent git dir stays read-only.
    # allow_parent_git = false

    # A profile from your global config that only tightens.
    # profile = "untrusted"

    # --- honoured only after `agentpen trust` (widening) ---

    # preset = "claude"                 # like --agent
    # allow = ["pypi.org", "*.pythonhosted.org"]
    # allow_private = ["git.internal.example"]
    # allow = ["github.com:22"]           # any TCP to that name and port
    # allow_host_ports = [5432]           # like --allow-host-port
    # publish = [8080]                    # like --publish
    # hop = "direct"                      # like --hop
    # env = ["GITHUB_TOKEN"]
    # mounts = ["~/src/shared-lib"]       # read-only
    # mounts_rw = ["~/.cache/pip"]
    # tmpfs_size = "4G"
    # memory_max = "8G"
    # cpus = 2
    # tasks_max = 2048
    # no_cgroup = false
    # log = "~/agentpen.log"
    #
    # [agent.claude]
    # hosts = ["api.example.com"]
    # env = ["EXAMPLE_TOKEN"]
    # mounts = ["~/.config/example"]
    # args = ["--model", "example"]

    """
}

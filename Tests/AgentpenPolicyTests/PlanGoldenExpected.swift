/// Expected plans for PlanGoldenTests, recorded from the planner before it was
/// split into stages (commit 8c598a1). One line per bubblewrap flag and its values.
/// Changed on purpose since: /etc's files are copies (`--file`) and its links
/// links, the identity files `--file`, and the root read-only last (etcfiles).
enum PlanGoldenExpected {
    static let plans: [String: String] = [
        "plain": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --bind-fd 16 /home/u/src/p/.git
        bwrap --ro-bind-fd 17 /home/u/src/p/.git/hooks
        bwrap --ro-bind-fd 18 /home/u/src/p/.git/config
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 19
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 21 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --watch /home/u/src/p --watch /home/u/src/p/.git -- /bin/sh -c true
        command /bin/sh -c true
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        pathfd 16 /home/u/src/p/.git
        pathfd 17 /home/u/src/p/.git/hooks
        pathfd 18 /home/u/src/p/.git/config
        seccomp 19 cgroupfd 20 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        hostWritable /home/u/src/p
        hostWritable /home/u/src/p/.git
        gitdir /home/u/src/p/.git
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/p read-write
        note git dir /home/u/src/p/.git pinned (a mount point: it cannot be renamed aside)
        note persistence guard: /home/u/src/p/.git/hooks read-only
        note persistence guard: /home/u/src/p/.git/config read-only
        """#,
        "worktree": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --ro-bind-fd 16 /home/u/src/p/.git
        bwrap --ro-bind-fd 17 /home/u/src/main/.git
        bwrap --bind-fd 18 /home/u/src/main/.git/worktrees/p
        bwrap --ro-bind-fd 19 /home/u/src/main/.git/worktrees/p/commondir
        bwrap --ro-bind-fd 20 /home/u/src/main/.git/worktrees/p/config.worktree
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 21
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 23 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --rw /home/u/src/main/.git/worktrees/p --watch /home/u/src/p -- /bin/sh
        command /bin/sh
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        pathfd 16 /home/u/src/p/.git
        pathfd 17 /home/u/src/main/.git
        pathfd 18 /home/u/src/main/.git/worktrees/p
        pathfd 19 /home/u/src/main/.git/worktrees/p/commondir
        pathfd 20 /home/u/src/main/.git/worktrees/p/config.worktree
        seccomp 21 cgroupfd 22 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        landlock /home/u/src/main/.git/worktrees/p
        hostWritable /home/u/src/p
        hostWritable /home/u/src/main/.git/worktrees/p
        create emptyFile("/home/u/src/main/.git/worktrees/p/config.worktree")
        gitdir /home/u/src/main/.git/worktrees/p
        gitdir /home/u/src/main/.git
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/p read-write
        note persistence guard: /home/u/src/p/.git read-only, pinned
        note parent git dir /home/u/src/main/.git read-only (--allow-parent-git makes it writable)
        note worktree git dir /home/u/src/main/.git/worktrees/p read-write, pinned
        note persistence guard: /home/u/src/main/.git/worktrees/p/commondir read-only
        note persistence guard: /home/u/src/main/.git/worktrees/p/config.worktree read-only
        """#,
        "worktree-parent-rw": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --ro-bind-fd 16 /home/u/src/p/.git
        bwrap --bind-fd 17 /home/u/src/main/.git
        bwrap --ro-bind-fd 18 /home/u/src/main/.git/hooks
        bwrap --ro-bind-fd 19 /home/u/src/main/.git/config
        bwrap --bind-fd 20 /home/u/src/main/.git/worktrees
        bwrap --bind-fd 21 /home/u/src/main/.git/worktrees/p
        bwrap --ro-bind-fd 22 /home/u/src/main/.git/worktrees/p/commondir
        bwrap --ro-bind-fd 23 /home/u/src/main/.git/worktrees/p/config.worktree
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 24
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 26 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --rw /home/u/src/main/.git/worktrees/p --rw /home/u/src/main/.git --watch /home/u/src/p -- /bin/sh
        command /bin/sh
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        pathfd 16 /home/u/src/p/.git
        pathfd 17 /home/u/src/main/.git
        pathfd 18 /home/u/src/main/.git/hooks
        pathfd 19 /home/u/src/main/.git/config
        pathfd 20 /home/u/src/main/.git/worktrees
        pathfd 21 /home/u/src/main/.git/worktrees/p
        pathfd 22 /home/u/src/main/.git/worktrees/p/commondir
        pathfd 23 /home/u/src/main/.git/worktrees/p/config.worktree
        seccomp 24 cgroupfd 25 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        landlock /home/u/src/main/.git/worktrees/p
        landlock /home/u/src/main/.git
        hostWritable /home/u/src/p
        hostWritable /home/u/src/main/.git
        hostWritable /home/u/src/main/.git/worktrees
        hostWritable /home/u/src/main/.git/worktrees/p
        create emptyFile("/home/u/src/main/.git/worktrees/p/config.worktree")
        gitdir /home/u/src/main/.git/worktrees/p
        gitdir /home/u/src/main/.git
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/p read-write
        note persistence guard: /home/u/src/p/.git read-only, pinned
        note git dir /home/u/src/main/.git pinned (a mount point: it cannot be renamed aside)
        note persistence guard: /home/u/src/main/.git/hooks read-only
        note persistence guard: /home/u/src/main/.git/config read-only
        note worktree git dir /home/u/src/main/.git/worktrees/p read-write, pinned
        note persistence guard: /home/u/src/main/.git/worktrees/p/commondir read-only
        note persistence guard: /home/u/src/main/.git/worktrees/p/config.worktree read-only
        note parent git dir /home/u/src/main/.git read-write (--allow-parent-git)
        """#,
        "submodule": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/sup/lib /home/u/src/sup/lib
        bwrap --ro-bind-fd 16 /home/u/src/sup/lib/.git
        bwrap --bind-fd 17 /home/u/src/sup/.git/modules/lib
        bwrap --ro-bind-fd 18 /home/u/src/sup/.git/modules/lib/hooks
        bwrap --ro-bind-fd 19 /home/u/src/sup/.git/modules/lib/config
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/sup/lib
        bwrap --seccomp 20
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 22 --rw /home/u/src/sup/lib --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --rw /home/u/src/sup/.git/modules/lib --watch /home/u/src/sup/lib -- /bin/sh
        command /bin/sh
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        pathfd 16 /home/u/src/sup/lib/.git
        pathfd 17 /home/u/src/sup/.git/modules/lib
        pathfd 18 /home/u/src/sup/.git/modules/lib/hooks
        pathfd 19 /home/u/src/sup/.git/modules/lib/config
        seccomp 20 cgroupfd 21 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/sup/lib
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        landlock /home/u/src/sup/.git/modules/lib
        hostWritable /home/u/src/sup/lib
        hostWritable /home/u/src/sup/.git/modules/lib
        gitdir /home/u/src/sup/.git/modules/lib
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/sup/lib read-write
        note persistence guard: /home/u/src/sup/lib/.git read-only, pinned
        note git dir /home/u/src/sup/.git/modules/lib pinned (a mount point: it cannot be renamed aside)
        note persistence guard: /home/u/src/sup/.git/modules/lib/hooks read-only
        note persistence guard: /home/u/src/sup/.git/modules/lib/config read-only
        note submodule git dir /home/u/src/sup/.git/modules/lib read-write (core.worktree points back at the project)
        """#,
        "no-git-root": #"""
        bwrap --unshare-user
        bwrap --uid 0
        bwrap --gid 0
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --perms 0555
        bwrap --tmpfs /home/u/src/p/.git
        bwrap --remount-ro /home/u/src/p/.git
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 16
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 18 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --watch /home/u/src/p -- /usr/bin/sh
        command /usr/bin/sh
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env SHELL=/usr/bin/sh
        env USER=root
        env LOGNAME=root
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        seccomp 16 cgroupfd 17 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        hostWritable /home/u/src/p
        create transientMountPoint("/home/u/src/p/.git")
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/p read-write
        note persistence guard: no .git yet; /home/u/src/p/.git is an empty read-only directory
        """#,
        "venv-agent-mounts-preset": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 161058816
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 322121728
        bwrap --tmpfs /tmp
        bwrap --size 107372544
        bwrap --tmpfs /var/tmp
        bwrap --size 53686272
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 429494272
        bwrap --tmpfs /home/u
        bwrap --ro-bind /srv/ro /srv/ro
        bwrap --ro-bind /home/u/.toolrc /home/u/.toolrc
        bwrap --ro-bind /etc/corp/ca.pem /etc/corp/ca.pem
        bwrap --bind /srv/rw /srv/rw
        bwrap --bind /home/u/.tool /home/u/.tool
        bwrap --bind /home/u/.tool-new /home/u/.tool-new
        bwrap --ro-bind /home/u/.local/share/tool/venv /home/u/.local/share/tool/venv
        bwrap --symlink ../share/tool/venv/bin/tool /home/u/.local/bin/tool
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --bind-fd 16 /home/u/src/p/.git
        bwrap --ro-bind-fd 17 /home/u/src/p/.git/hooks
        bwrap --ro-bind-fd 18 /home/u/src/p/.git/config
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --ro-bind /opt/swift/lib /opt/swift/lib
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 19
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --cgroup 20 --syscall-notify 21 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --rw /srv/rw --rw /home/u/.tool --rw /home/u/.tool-new --watch /home/u/src/p --watch /home/u/src/p/.git -- /home/u/.local/bin/tool --yes --flag
        command /home/u/.local/bin/tool --yes --flag
        env EXTRA=e
        env HOME=/home/u
        env LC_ALL=C
        env PATH=/home/u/.local/bin:/usr/bin
        env SHELL=/bin/zsh
        env SSL_CERT_FILE=/etc/corp/ca.pem
        env TERM=xterm
        env TOOL_HOME=/home/u/.tool
        env TOOL_KEY=k
        env USER=u
        env LOGNAME=u
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "10.0.0.1 api.example\n"
        file 15 /etc/resolv.conf "nameserver 10.0.0.1\n"
        pathfd 16 /home/u/src/p/.git
        pathfd 17 /home/u/src/p/.git/hooks
        pathfd 18 /home/u/src/p/.git/config
        seccomp 19 cgroupfd 20 cgroup apply(directory: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/agentpen-4242", writes: [AgentpenPolicy.CgroupPlan.Write(file: "memory.max", value: "12884901825"), AgentpenPolicy.CgroupPlan.Write(file: "pids.max", value: "4096"), AgentpenPolicy.CgroupPlan.Write(file: "cpu.weight", value: "50")], skipped: [])
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        landlock /srv/rw
        landlock /home/u/.tool
        landlock /home/u/.tool-new
        hostWritable /srv/rw
        hostWritable /home/u/.tool
        hostWritable /home/u/.tool-new
        hostWritable /home/u/src/p
        hostWritable /home/u/src/p/.git
        create directory("/home/u/.tool-new")
        gitdir /home/u/src/p/.git
        note preset tool: /home/u/.tool read-write
        note preset tool: /home/u/.tool-new read-write
        note preset tool: /home/u/.toolrc read-only
        note SSL_CERT_FILE: CA bundle /etc/corp/ca.pem read-only
        note cgroup limits in /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/agentpen-4242: memory.max 12884901825, pids.max 4096, cpu.weight 50
        note tmpfs bounds, 1G in all: $HOME 409.5M, /tmp 307.1M, /var/tmp 102.3M, /dev/shm 153.5M, /run 51.1M; /dev read-only
        note --mount /srv/ro read-only
        note --mount /home/u/.toolrc read-only
        note --mount /etc/corp/ca.pem read-only
        note --mount-rw /srv/rw read-write
        note agent install tree /home/u/.local/share/tool/venv read-only
        note project /home/u/src/p read-write
        note git dir /home/u/src/p/.git pinned (a mount point: it cannot be renamed aside)
        note persistence guard: /home/u/src/p/.git/hooks read-only
        note persistence guard: /home/u/src/p/.git/config read-only
        """#,
        "ro-config": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --disable-userns
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --symlink usr/bin /bin
        bwrap --symlink usr/lib /lib
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /sys /sys
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --ro-bind /etc/ssl /etc/ssl
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --ro-bind /home/u/.tool /home/u/.tool
        bwrap --ro-bind /home/u/.toolrc /home/u/.toolrc
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --bind-fd 16 /home/u/src/p/.git
        bwrap --ro-bind-fd 17 /home/u/src/p/.git/hooks
        bwrap --ro-bind-fd 18 /home/u/src/p/.git/config
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 19
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 21 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --watch /home/u/src/p --watch /home/u/src/p/.git -- /bin/sh
        command /bin/sh
        env HOME=/home/u
        env PATH=/usr/bin:/bin
        env TOOL_HOME=/home/u/.tool
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        pathfd 16 /home/u/src/p/.git
        pathfd 17 /home/u/src/p/.git/hooks
        pathfd 18 /home/u/src/p/.git/config
        seccomp 19 cgroupfd 20 cgroup notApplied("no limits asked for (all set to none)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        hostWritable /home/u/src/p
        hostWritable /home/u/src/p/.git
        gitdir /home/u/src/p/.git
        note preset tool: /home/u/.tool read-only (--ro-config)
        note preset tool: /home/u/.toolrc read-only
        note cgroup limits not applied: no limits asked for (all set to none)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note --mount /home/u/.tool read-only
        note --mount /home/u/.toolrc read-only
        note project /home/u/src/p read-write
        note git dir /home/u/src/p/.git pinned (a mount point: it cannot be renamed aside)
        note persistence guard: /home/u/src/p/.git/hooks read-only
        note persistence guard: /home/u/src/p/.git/config read-only
        """#,
        "nixos": #"""
        bwrap --unshare-user
        bwrap --uid 1000
        bwrap --gid 1000
        bwrap --unshare-pid
        bwrap --unshare-ipc
        bwrap --unshare-uts
        bwrap --unshare-cgroup-try
        bwrap --unshare-net
        bwrap --die-with-parent
        bwrap --cap-drop ALL
        bwrap --hostname agentpen
        bwrap --ro-bind /usr /usr
        bwrap --ro-bind /bin /bin
        bwrap --proc /proc
        bwrap --dev /dev
        bwrap --size 322121728
        bwrap --tmpfs /dev/shm
        bwrap --remount-ro /dev
        bwrap --size 644243456
        bwrap --tmpfs /tmp
        bwrap --size 214745088
        bwrap --tmpfs /var/tmp
        bwrap --size 107372544
        bwrap --tmpfs /run
        bwrap --ro-bind /nix /nix
        bwrap --symlink /nix/store/sys-1 /run/current-system
        bwrap --symlink /nix/store/sys-0 /run/booted-system
        bwrap --perms 0755
        bwrap --dir /etc
        bwrap --perms 0644
        bwrap --file 10 /etc/nsswitch.conf
        bwrap --perms 0644
        bwrap --file 11 /etc/passwd
        bwrap --perms 0644
        bwrap --file 12 /etc/group
        bwrap --perms 0644
        bwrap --file 13 /etc/hostname
        bwrap --perms 0644
        bwrap --file 14 /etc/hosts
        bwrap --perms 0644
        bwrap --file 15 /etc/resolv.conf
        bwrap --perms 0700
        bwrap --size 858992640
        bwrap --tmpfs /home/u
        bwrap --bind /home/u/src/p /home/u/src/p
        bwrap --perms 0555
        bwrap --tmpfs /home/u/src/p/.git
        bwrap --remount-ro /home/u/src/p/.git
        bwrap --ro-bind /self/agentpen /run/agentpen/agentpen
        bwrap --ro-bind /opt/x /opt/x
        bwrap --chdir /home/u/src/p
        bwrap --seccomp 16
        bwrap --remount-ro /
        inner /run/agentpen/agentpen __exec --syscall-notify 18 --rw /home/u/src/p --rw /home/u --rw /tmp --rw /var/tmp --rw /run --rw /dev --watch /home/u/src/p -- /run/current-system/sw/bin/sh
        command /run/current-system/sw/bin/sh
        env HOME=/home/u
        env PATH=/run/current-system/sw/bin:/bin
        env USER=u
        env LOGNAME=u
        env SHELL=/bin/sh
        file 11 /etc/passwd "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        file 12 /etc/group "root:x:0:\nu:x:1000:\nnogroup:x:65534:\n"
        file 13 /etc/hostname "agentpen\n"
        file 14 /etc/hosts "127.0.0.1 localhost agentpen\n::1 localhost\n"
        file 15 /etc/resolv.conf "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        seccomp 16 cgroupfd 17 cgroup notApplied("no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)")
        landlock /home/u/src/p
        landlock /home/u
        landlock /tmp
        landlock /var/tmp
        landlock /run
        landlock /dev
        hostWritable /home/u/src/p
        create transientMountPoint("/home/u/src/p/.git")
        note /etc/static: not in the sandbox (a dangling or looping symlink)
        note cgroup limits not applied: no unified cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or a hybrid layout)
        note tmpfs bounds, 2G in all: $HOME 819.1M, /tmp 614.3M, /var/tmp 204.7M, /dev/shm 307.1M, /run 102.3M; /dev read-only
        note project /home/u/src/p read-write
        note persistence guard: no .git yet; /home/u/src/p/.git is an empty read-only directory
        """#,
    ]
}

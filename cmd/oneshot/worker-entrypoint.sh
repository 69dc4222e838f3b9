#!/bin/sh
# Entry point of the worker container (Dockerfile, docker-compose.yml): give
# oneshot a cgroup v2 tree it may create sandbox cgroups in, then run the
# worker. Needs CAP_SYS_ADMIN and AppArmor unconfined (see docker-compose.yml).
set -eu
cg=/sys/fs/cgroup
if [ -f "$cg/cgroup.controllers" ]; then
	# With its own cgroup namespace the container sees only its own subtree,
	# which Docker mounts read-only: make it writable.
	if ! mkdir -p "$cg/init" 2>/dev/null; then
		mount -o remount,rw "$cg"
		mkdir -p "$cg/init"
	fi
	# cgroup v2 hands controllers to child cgroups only from a cgroup without
	# processes of its own: move this container's processes into a leaf.
	for pid in $(cat "$cg/cgroup.procs"); do
		echo "$pid" >"$cg/init/cgroup.procs" 2>/dev/null || true
	done
fi
exec /usr/local/bin/oneshot worker "$@"

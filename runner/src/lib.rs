//! berth-runner: the OCI runtime that runs RUN steps and `berth run` containers (overlayfs rootfs,
//! namespaces, pivot_root, capabilities, cgroup limits). Not implemented yet: see the runner issue.

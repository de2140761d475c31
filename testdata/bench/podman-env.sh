# Sourced by the benchmarks that run podman beside berth: podman with
# netavark, its own storage and network config under $W, runc, and ulimits
# within this sandbox's hard limits (../shared/lab/REPORT.md). Sets
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF.
nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
[ "$nofile" = unlimited ] && nofile=1048576
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
cat > "$W/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
network_config_dir = "$W/podman-networks"
CONF
cat > "$W/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$W/podman-storage"
runroot = "$W/podman-run"
CONF
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"

# Sourced by the benchmark scripts (after they cd to the checkout).
#   need_root NAME          containers need root: say so and stop without it
#   install_missing ITEM... each ITEM is a command name (its Debian package
#                           has that name) or /PATH=PACKAGE (installed unless
#                           PATH is executable); what is missing is installed
#   release_workdir [-p CRATE]...
#                           builds berth's release binary (and CRATEs'), sets
#                           BERTH, and makes $W an empty folder (unmounting
#                           what an interrupted run left mounted under it)
need_root() {
  [ "$(id -u)" = 0 ] || { echo "$1: containers need root" >&2; exit 1; }
}

install_missing() {
  local missing=() item
  for item in "$@"; do
    case "$item" in
      /*=*) [ -x "${item%%=*}" ] || missing+=("${item#*=}") ;;
      *) command -v "$item" >/dev/null || missing+=("$item") ;;
    esac
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

release_workdir() {
  cargo build --release -p berth-cli "$@" >/dev/null 2>&1
  BERTH="$PWD/target/release/berth"
  awk -v w="$W" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf "$W"; mkdir -p "$W"
}

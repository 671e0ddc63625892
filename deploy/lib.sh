# shellcheck shell=bash
# Shared preamble of the deploy scripts; sourced, not run:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" TAG    # TAG names the script in log lines
#
# Sets SCRIPT_DIR (the sourcing script's folder), REPO_ROOT and LOCAL_DIR (the
# repo's .local/, home of all local state), and defines log/die (to stderr, as
# "[TAG HH:MM:SS] ...") and port_open.

# shellcheck disable=SC2034  # read by the scripts that source this file
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034
LOCAL_DIR="$REPO_ROOT/.local"
LOG_TAG="${1:?usage: source deploy/lib.sh TAG}"

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Exit 0 if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

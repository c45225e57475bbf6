# Shared by setup_resources.sh and clean_resources.sh: options, the env file, and `run`,
# which prints every az command and runs it unless --dry-run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_file="$here/resources.env"
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --env) env_file=${2:?--env needs a file}; shift ;;
        -h|--help) echo "usage: $(basename "$0") [--dry-run] [--env FILE]"; exit 0 ;;
        *) echo "$(basename "$0"): unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ ! -f "$env_file" ]; then
    echo "$(basename "$0"): env file $env_file not found" >&2
    exit 2
fi
# shellcheck disable=SC1090
. "$env_file"
for name in OTA_LOCATION OTA_RESOURCE_GROUP OTA_IOT_HUB OTA_IOT_HUB_SKU OTA_DPS \
            OTA_DPS_LINK_POLICY OTA_CA_NAME OTA_CA_CERT OTA_STORAGE_ACCOUNT OTA_STORAGE_SKU \
            OTA_CONTAINER; do
    if [ -z "${!name:-}" ]; then
        echo "$(basename "$0"): $name is not set in $env_file" >&2
        exit 2
    fi
done
if [ "$dry_run" = 0 ] && ! command -v az >/dev/null 2>&1; then
    echo "$(basename "$0"): the Azure CLI (az) is not installed; try --dry-run" >&2
    exit 2
fi
run() {
    printf 'az'
    printf ' %q' "$@"
    printf '\n'
    if [ "$dry_run" = 0 ]; then
        az "$@"
    fi
}

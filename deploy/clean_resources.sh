#!/usr/bin/env bash
# Delete exactly what setup_resources.sh made, named by the same env file, innermost
# first (the original's clean script missed some):
#   deploy/clean_resources.sh [--dry-run] [--env FILE]
. "$(dirname "$0")/_resources.sh"

run storage container delete --account-name "$OTA_STORAGE_ACCOUNT" --name "$OTA_CONTAINER" \
    --auth-mode login
run storage account delete --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_STORAGE_ACCOUNT" \
    --yes
run iot dps certificate delete --resource-group "$OTA_RESOURCE_GROUP" --dps-name "$OTA_DPS" \
    --certificate-name "$OTA_CA_NAME" --etag '*'
run iot dps linked-hub delete --resource-group "$OTA_RESOURCE_GROUP" --dps-name "$OTA_DPS" \
    --linked-hub "$OTA_IOT_HUB"
run iot dps delete --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_DPS"
run iot hub delete --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_IOT_HUB"
run group delete --name "$OTA_RESOURCE_GROUP" --yes

#!/usr/bin/env bash
# Create the original design's Azure resources, every name from one env file
# (deploy/resources.env by default): resource group, IoT Hub, DPS linked to the hub,
# the tenant CA verified on DPS, a StorageV2 account and a private container.
#   deploy/setup_resources.sh [--dry-run] [--env FILE]
# --dry-run prints every az command and runs none. Needs the azure-iot CLI extension.
. "$(dirname "$0")/_resources.sh"

run group create --name "$OTA_RESOURCE_GROUP" --location "$OTA_LOCATION"
run iot hub create --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_IOT_HUB" \
    --sku "$OTA_IOT_HUB_SKU" --location "$OTA_LOCATION"
run iot dps create --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_DPS" \
    --location "$OTA_LOCATION"
run iot dps linked-hub create --resource-group "$OTA_RESOURCE_GROUP" --dps-name "$OTA_DPS" \
    --hub-name "$OTA_IOT_HUB"
run iot dps certificate create --resource-group "$OTA_RESOURCE_GROUP" --dps-name "$OTA_DPS" \
    --certificate-name "$OTA_CA_NAME" --path "$OTA_CA_CERT" --verified true
run storage account create --resource-group "$OTA_RESOURCE_GROUP" --name "$OTA_STORAGE_ACCOUNT" \
    --location "$OTA_LOCATION" --kind StorageV2 --sku "$OTA_STORAGE_SKU" \
    --allow-blob-public-access false
run storage container create --account-name "$OTA_STORAGE_ACCOUNT" --name "$OTA_CONTAINER" \
    --public-access off --auth-mode login

"""The service side, simulated: the device twin, the IoT Hub, the fault-injecting Azure
Blob server and its faults, Azurite as a reference, the storage development account."""

"""cloudsim: a local emulator of the AiTEMS, OpenSearch and Azure Language APIs."""

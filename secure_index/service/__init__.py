"""The HTTP services: partner query gateway, node uploads, internal store API."""

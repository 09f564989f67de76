"""index_client."""

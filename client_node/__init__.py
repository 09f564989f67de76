"""Member node: local DP-SGD fine-tuning of the adapter, protected uploads (planned)."""

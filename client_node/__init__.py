"""Member node: the Flower ClientApp (DP-SGD rounds, secure aggregation), protected uploads."""

"""The consortium's control plane: the admin API (``fedembed coordinator admin serve``)."""

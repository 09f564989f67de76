"""What a member does with the shared model on its own records (nothing leaves the node)."""

from client_node.analysis.record_vectors import RecordEncoder

__all__ = ["RecordEncoder"]

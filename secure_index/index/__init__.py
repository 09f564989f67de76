"""The vector index: hnswlib collections behind a reader-writer lock, and the store."""

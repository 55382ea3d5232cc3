"""The Great Expectations binding: metrics, expectations, checkpoint actions, Data Docs, the checkpoint runner."""

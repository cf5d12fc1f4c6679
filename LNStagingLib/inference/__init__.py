"""Inference: running trained networks on whole images (sliding windows, batching, progress and cancel)."""

"""Turns trained models into (quantized) ONNX and writes model bundles for the edge."""

"""Datasets (MERL Shopping labels, synthetic store video, YOLO boxes), model training and metrics."""

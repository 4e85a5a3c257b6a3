"""Consumes edge events and cross-references item counts with checkout transactions."""

"""Configuration and provisioning of edge boxes, per store and camera."""

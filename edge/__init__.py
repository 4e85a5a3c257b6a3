"""The ShelfWatch edge agent: ONNX Runtime only, no torch. Also the contract (classes, preprocessing,
event schema) that training imports."""

# The agent's software version, which bundles are checked against (`requires_agent`); the package's version.
__version__ = "0.1.0"

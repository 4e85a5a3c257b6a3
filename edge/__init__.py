"""The ShelfWatch edge agent: ONNX Runtime only, no torch. Also the contract (classes, preprocessing,
event schema) that training imports."""

"""Models: backbones (timm), CAM wrappers, zero-shot encoders, the size estimator."""

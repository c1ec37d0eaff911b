"""Crossmodal Reverse Distillation (CRD): a second detector behind the same model interface.

One reverse-distillation branch per modality (the colour image, and the cloud seen as a
surface-normal or depth image), each reconstructing a frozen ImageNet MobileNetV2's features;
the other modality's teacher features enter each branch through a Crossmodal Filter (on the
bottleneck) and a Crossmodal Amplifier (blended into each decoder stage). See ``network.py``.
"""

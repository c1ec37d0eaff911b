"""Deployment backends: export a trained model as ONNX / OpenVINO IR and run it there.

``export`` writes a folder (graphs + ``model.json`` + ``manifest.json``), ``load`` opens a
model file or such a folder on ``torch``, ``onnxruntime`` or ``openvino``; ``exported`` holds
the ``ExportedNet`` that runs the graphs behind the detectors' common ``branch_maps``.
"""

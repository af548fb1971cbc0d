"""Classify images with self-describing ONNX models, in Python.

The runtime of cifar-onnx as a Python package: the models carry their preprocessing and class names,
and run through ONNX Runtime (when its library is found: ``ort_library=``, ``ORT_DYLIB_PATH``, or
the ``onnxruntime`` Python package) or the built-in pure-Rust tract engine.

>>> from cifar_onnx import Classifier
>>> classifier = Classifier("models/cnn.onnx")                         # doctest: +SKIP
>>> classifier.classify("cat.png").label                               # doctest: +SKIP
'cat'
>>> [p.to_dict() for p in classifier.classify_files("photos/")]        # doctest: +SKIP

``python -m cifar_onnx.ray_classify`` runs the same on a Ray cluster (see its ``--help``).
"""

from ._native import (
    ORT_VERSION,
    Classifier,
    EngineError,
    Error,
    ImageError,
    InputError,
    ModelError,
    Prediction,
    __version__,
)

__all__ = [
    "ORT_VERSION",
    "Classifier",
    "EngineError",
    "Error",
    "ImageError",
    "InputError",
    "ModelError",
    "Prediction",
    "__version__",
]

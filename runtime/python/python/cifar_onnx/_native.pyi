"""Type stubs of the native extension (re-exported by ``cifar_onnx``)."""

import os
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
ORT_VERSION: str
"""The ONNX Runtime release whose C API this build uses (an older library is passed over)."""

StrPath = Union[str, "os.PathLike[str]"]

class Error(Exception):
    """Any error of the runtime: the message names the file or engine and the reason."""

    path: Optional[str]
    """The file involved, or None."""

class ModelError(Error):
    """A model file that cannot be read or used."""

class ImageError(Error):
    """An image that cannot be read or decoded."""

class EngineError(Error):
    """An engine (ONNX Runtime or tract) that is missing or failed."""

class InputError(Error):
    """Input that does not fit the model (its size, its type)."""

class Prediction:
    """One image's result: its most probable classes, or why there is none."""

    path: str
    """The file, or the name given to the image."""
    ok: bool
    """Whether the image was classified."""
    label: Optional[str]
    """The most probable class's name (its index as text where the model names none)."""
    index: Optional[int]
    """The most probable class's index."""
    probability: Optional[float]
    """Its probability (a float32 value)."""
    top: list[Tuple[str, int, float]]
    """The ``top_k`` most probable classes, most probable first: ``(label, index, probability)``."""
    error: Optional[str]
    """Why the image was not classified."""
    engine: str
    """``"ort"`` or ``"tract"``."""
    provider: str
    """The execution provider that ran the model."""
    @property
    def probabilities(self) -> npt.NDArray[np.float32]:
        """Every class's probability; empty where the image was not classified."""
    def to_json(self) -> str:
        """The row ``runtime classify --format jsonl`` writes for this image (no newline)."""
    def to_dict(self) -> dict[str, Any]:
        """A flat row: ``path, ok, label, index, probability, top_labels, top_indices,
        top_probabilities, error, engine, provider``."""

class Classifier:
    """A model loaded into an engine, with its preprocessing.

    ``engine``: ``"auto"`` (ONNX Runtime when its library loads, else tract), ``"ort"`` or
    ``"tract"``. ``providers``: ONNX Runtime's execution providers in order of preference
    (``"cuda"``, ``"tensorrt"``, ``"cpu"``; default ``["cuda", "cpu"]``, the first that runs the
    model is used). ``threads``: threads the engine may use per run (default: the engine's
    choice). ``ort_library``: the ``libonnxruntime`` file to load (default: ``ORT_DYLIB_PATH``,
    else the ``onnxruntime`` Python package's); a process loads one and keeps it.

    Raises ``ModelError`` for a file that is not a usable image classifier, ``EngineError`` when
    the engine asked for cannot run it, ``ValueError`` for an unknown engine or provider, an empty
    ``providers`` or ``threads`` outside 1 to 1024.

    Calls on one classifier from several threads take turns; the engine runs without the GIL.
    """

    def __init__(
        self,
        path: StrPath,
        engine: str = "auto",
        providers: Optional[Sequence[str]] = None,
        threads: Optional[int] = None,
        ort_library: Optional[StrPath] = None,
    ) -> None: ...
    @property
    def engine(self) -> str:
        """``"ort"`` or ``"tract"``."""
    @property
    def provider(self) -> str:
        """The execution provider that runs the model."""
    @property
    def fallback_reason(self) -> Optional[str]:
        """Why the engine or provider asked for first is not the one running, if it is not."""
    @property
    def classes(self) -> list[str]:
        """The class names the model carries (empty when it names none)."""
    @property
    def input_size(self) -> Tuple[int, int]:
        """``(height, width)`` of the images the model takes."""
    def classify(
        self,
        image: Union[StrPath, bytes, bytearray, memoryview],
        top_k: int = 5,
        name: Optional[str] = None,
    ) -> Prediction:
        """Classifies one image: a path, or the encoded bytes of a PNG, JPEG, BMP, GIF or WebP
        (resized and cropped to the model's size), as ``runtime classify --batch 1`` does.
        ``name`` is the result's ``path``; ``top_k`` is from 1 to the number of classes (more
        lists them all).

        Raises ``ImageError`` (with ``path``) when it cannot be read or decoded."""
    def classify_files(
        self,
        paths: Union[StrPath, Iterable[StrPath]],
        batch: int = 32,
        top_k: int = 5,
        threads: Optional[int] = None,
    ) -> list[Prediction]:
        """Classifies image files, and every image under folders (walked in name order, hidden
        names left out, as ``runtime classify`` does), decoding on ``threads`` threads (1 to 1024,
        default: all cores) while the model runs batches of ``batch`` (1 to 4096). One result
        per file, as the CLI lists them: first each path that does not exist or cannot be
        listed, then the files in order. Match results by ``path``. A file that cannot be read
        or decoded has ``ok == False`` and an ``error``, and does not stop the others."""
    def classify_bytes(
        self,
        images: Sequence[Union[bytes, bytearray]],
        names: Optional[Sequence[str]] = None,
        batch: int = 32,
        top_k: int = 5,
        threads: Optional[int] = None,
    ) -> list[Prediction]:
        """``classify_files`` for encoded images in memory, one result per image in order;
        ``names`` (default ``"0"``, ``"1"``, ...) become the results' ``path``."""
    def predict(self, images: npt.NDArray[np.uint8], batch: int = 32) -> npt.NDArray[np.float32]:
        """Class probabilities ``[N, classes]`` for uint8 RGB images ``[N, H, W, 3]`` (or one
        ``[H, W, 3]``) already at ``input_size``, preprocessed as the model says; the engine runs
        ``batch`` images at a time (1 to 4096).

        Raises ``InputError`` for another shape, ``TypeError`` for another dtype."""
    def info(self) -> dict[str, Any]:
        """What the model says about itself and how it runs: ``path``, ``engine``,
        ``provider``, ``fallback_reason``, ``input`` and ``output`` (``name``, ``shape``,
        ``shape_text``), ``classes``, ``num_classes``, ``outputs_probabilities``,
        ``preprocessing`` (the metadata keys it is described by) and ``metadata``."""

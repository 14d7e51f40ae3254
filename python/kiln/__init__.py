"""kiln: an inference optimizer and runtime (TF-TRT's successor), from Python.

The API follows TF-TRT's, on numpy instead of TensorFlow:

* :func:`create_inference_graph` -- TF1's ``trt.create_inference_graph``: a frozen GraphDef (bytes
  or a path), an ONNX model or a SavedModel in, the optimized model out;
* :class:`Converter` -- TF2's ``TrtGraphConverterV2``: ``convert()``, ``build(input_fn)``,
  ``save(dir)``, ``summary()``;
* :func:`calib_graph_to_infer_graph` -- the second step of INT8 calibration;
* :func:`freeze_meta_graph` -- a MetaGraph + checkpoint to a frozen GraphDef;
* :class:`Session` -- load a model and run it on numpy arrays (thread-safe, GIL released).

Errors are :class:`kiln.Error` subclasses carrying kiln's C++ message (see :mod:`kiln.errors`).

Example::

    import numpy as np, kiln
    session = kiln.Session("models/ppocr_cls/model.onnx")
    x = np.random.default_rng(0).random((1, 3, 48, 192), dtype=np.float32)
    print(session.run({"x": x}))
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

try:
    from . import _kiln
except ImportError as e:  # e.g. the source tree's python/kiln, which has no extension
    raise ImportError(
        f"kiln's extension module kiln._kiln could not be loaded from {os.path.dirname(__file__)} ({e}); "
        "build it (cmake -DKILN_BUILD_PYTHON=ON, ninja kiln_python) and put build/python on PYTHONPATH, "
        "or install it with `cmake --install build --component python`") from e
from .errors import (
    DataLossError,
    Error,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnimplementedError,
    _register,
)
from . import errors as _errors

_register(_kiln)

__version__: str = _kiln.version()

__all__ = [
    "__version__",
    "TensorInfo",
    "Session",
    "ConversionParams",
    "Converter",
    "create_inference_graph",
    "calib_graph_to_infer_graph",
    "freeze_meta_graph",
    "PRECISION_MODES",
    *_errors.__all__,
]

#: The precision modes kiln knows (``precision_mode`` is case-insensitive).
PRECISION_MODES: Tuple[str, ...] = ("FP32", "FP16", "BF16", "INT8", "FP8")

PathLike = Union[str, "os.PathLike[str]"]
ModelSource = Union[bytes, bytearray, memoryview, PathLike]


# ----------------------------------------------------------------------------- Session


class TensorInfo(NamedTuple):
    """A model input or output: its name, numpy dtype and shape.

    ``shape`` is a tuple with ``None`` for unknown dimensions, or ``None`` when even the rank is
    unknown. ``dtype`` is ``None`` for types numpy lacks (bfloat16) or that are not declared;
    ``dtype_name`` is kiln's name for the type either way ("float32", "bfloat16", ...).
    """

    name: str
    dtype: Optional[np.dtype]
    shape: Optional[Tuple[Optional[int], ...]]
    dtype_name: str


def _tensor_info(raw: Tuple[str, str, Any]) -> TensorInfo:
    name, dtype_name, shape = raw
    if dtype_name == "string":
        dtype: Optional[np.dtype] = np.dtype(object)
    elif dtype_name in ("bfloat16", "undefined"):
        dtype = None
    else:
        dtype = np.dtype(dtype_name)
    return TensorInfo(name, dtype, shape, dtype_name)


def _model_bytes(model: Any) -> Optional[bytes]:
    """The serialized model if `model` is bytes-like or a protobuf message, else None."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):  # a tf.compat.v1.GraphDef or onnx.ModelProto
        return model.SerializeToString()
    return None


def _path(model: Any, what: str) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    raise TypeError(f"{what} must be a path, bytes or a protobuf message, got {type(model).__name__}")


class Session:
    """A loaded model, run on numpy arrays (C++ ``kiln::Session``).

    ``model`` is a path (ONNX ``.onnx``, frozen GraphDef ``.pb``/``.pbtxt``, SavedModel
    directory, TF.js ``model.json``) or the serialized bytes of an ONNX model or GraphDef (e.g.
    what :func:`create_inference_graph` returns). A SavedModel is read with the MetaGraph of
    ``tags`` (default ``["serve"]``) and the signature ``signature_key`` (default
    "serving_default"); its feeds and fetches accept signature keys as well as tensor names.
    Converted models run their engines;
    ``engine_cache_dir`` is a disk engine cache for the engines they build at run time
    (default: the environment's ``KILN_ENGINE_CACHE``, else none).

    :meth:`run` may be called from several threads at once; the GIL is released while the
    model runs.
    """

    def __init__(
        self,
        model: ModelSource,
        *,
        tags: Optional[Sequence[str]] = None,
        signature_key: Optional[str] = None,
        engine_cache_dir: Optional[PathLike] = None,
    ) -> None:
        options = _kiln.SessionOptions()
        if engine_cache_dir is not None:
            options.engine_cache_dir = os.fspath(engine_cache_dir)
        if tags is not None:
            options.saved_model_tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
        if signature_key is not None:
            options.saved_model_signature_key = str(signature_key)
        data = _model_bytes(model)
        if data is not None:
            self._session = _kiln.Session.from_bytes(data, "<model bytes>", options)
        else:
            self._session = _kiln.Session.load(_path(model, "model"), options)
        self._inputs = [_tensor_info(i) for i in self._session.inputs()]
        self._outputs = [_tensor_info(o) for o in self._session.outputs()]

    @property
    def inputs(self) -> List[TensorInfo]:
        """The model's inputs, in order."""
        return list(self._inputs)

    @property
    def outputs(self) -> List[TensorInfo]:
        """The model's outputs (what :meth:`run` fetches by default), in order."""
        return list(self._outputs)

    def run(
        self,
        feeds: Mapping[str, Any],
        fetches: Union[None, str, Sequence[str]] = None,
    ) -> Dict[str, np.ndarray]:
        """Runs the model and returns ``{fetch name: array}``.

        ``feeds`` maps each input name (TensorFlow names may drop ``:0``; SavedModel signature
        keys work too) to an array-like. An array of the input's dtype that is C-contiguous is
        used in place, without a copy; other arrays are converted (numpy ``same_kind``
        casting, so float64 -> float32 is fine and float -> int is an error). ``fetches``
        names the values to return (any value of the graph; default: the model's outputs).
        The returned arrays wrap kiln's output buffers without a copy.

        Raises InvalidArgumentError (wrong dtype or shape, missing feed), NotFoundError
        (unknown input or fetch name) or another :class:`kiln.Error` from the run itself.
        """
        if not isinstance(feeds, Mapping):
            raise TypeError(f"feeds must be a mapping of input name to array, got {type(feeds).__name__}")
        if fetches is None:
            names: List[str] = []
        elif isinstance(fetches, str):
            names = [fetches]
        else:
            names = [str(f) for f in fetches]
        arrays = self._session.run([(str(k), v) for k, v in feeds.items()], names)
        keys = names or [o.name for o in self._outputs]
        return dict(zip(keys, arrays))

    def __repr__(self) -> str:
        def shape(i: TensorInfo) -> str:
            return "[*]" if i.shape is None else "[" + ",".join("?" if d is None else str(d) for d in i.shape) + "]"

        ins = ", ".join(f"{i.name}: {i.dtype_name}{shape(i)}" for i in self._inputs)
        return f"kiln.Session({ins})"


# ----------------------------------------------------------------------------- conversion


def _check_precision(precision_mode: str) -> str:
    mode = str(precision_mode).upper()
    if mode not in PRECISION_MODES:
        raise ValueError(f"precision_mode must be one of {', '.join(PRECISION_MODES)}, got {precision_mode!r}")
    return mode


@dataclasses.dataclass
class ConversionParams:
    """Conversion parameters (TF2's ``TrtConversionParams``, plus kiln's extras).

    ``precision_mode`` is one of :data:`PRECISION_MODES`. ``is_dynamic_op=False`` (static mode)
    builds each engine at conversion time for ``max_batch_size``; an engine serves any batch up
    to it. In dynamic mode, ``cached_engine_batches`` engines are built ahead and
    ``allow_build_at_runtime`` lets the EngineOps build engines for unseen shapes.
    ``engine_cache_dir`` is a disk engine cache (default: ``KILN_ENGINE_CACHE``).
    ``input_shapes`` declares input shapes the model leaves open (``-1`` = unknown), e.g.
    ``{"x": [-1, 3, 224, 224]}``. ``outputs`` restricts the model to these fetches.
    ``fp32_layers`` names conv / matmul nodes whose layers stay in FP32 in FP16 / BF16 / INT8
    engines (TensorRT's per-layer precision; CPU backend). INT8 with ``use_calibration``:
    ``calibration_method`` is "entropy" (TensorRT's entropy calibrator, the default), "minmax"
    or "percentile" (``calibration_percentile``);
    ``calibration_cache`` is a calibration table file, read when it exists, else written.
    """

    precision_mode: str = "FP32"
    max_workspace_size_bytes: int = 1 << 30
    minimum_segment_size: int = 3
    maximum_cached_engines: int = 1
    use_calibration: bool = True
    max_batch_size: int = 1
    is_dynamic_op: bool = False
    cached_engine_batches: Optional[Sequence[int]] = None
    allow_build_at_runtime: bool = True
    engine_cache_dir: Optional[PathLike] = None
    outputs: Optional[Sequence[str]] = None
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None
    op_denylist: Optional[Sequence[str]] = None
    fp32_layers: Optional[Sequence[str]] = None
    max_engines: int = 1000
    backend: str = "cpu"
    calibration_method: str = "entropy"
    calibration_percentile: float = 99.99
    calibration_cache: Optional[PathLike] = None

    def _to_cpp(self) -> Any:
        p = _kiln.ConversionParams()
        p.precision_mode = _check_precision(self.precision_mode)
        p.max_workspace_size_bytes = int(self.max_workspace_size_bytes)
        p.minimum_segment_size = int(self.minimum_segment_size)
        p.maximum_cached_engines = int(self.maximum_cached_engines)
        p.use_calibration = bool(self.use_calibration)
        p.max_batch_size = int(self.max_batch_size)
        p.is_dynamic_op = bool(self.is_dynamic_op)
        p.cached_engine_batches = [int(b) for b in (self.cached_engine_batches or [])]
        p.allow_build_at_runtime = bool(self.allow_build_at_runtime)
        p.engine_cache_dir = "" if self.engine_cache_dir is None else os.fspath(self.engine_cache_dir)
        p.outputs = [str(o) for o in (self.outputs or [])]
        p.input_shapes = {str(k): [int(d) for d in v] for k, v in (self.input_shapes or {}).items()}
        p.op_denylist = [str(o) for o in (self.op_denylist or [])]
        p.fp32_layers = [str(o) for o in (self.fp32_layers or [])]
        p.max_engines = int(self.max_engines)
        p.backend = str(self.backend)
        p.calibration_method = str(self.calibration_method)
        p.calibration_percentile = float(self.calibration_percentile)
        p.calibration_cache = "" if self.calibration_cache is None else os.fspath(self.calibration_cache)
        return p


def _convert(model: Any, params: Any) -> Tuple[Any, str]:
    """(ConvertedModel, source format) for a path, bytes or protobuf message."""
    data = _model_bytes(model)
    if data is not None:
        fmt = "onnx" if data[:1] == b"\x08" else "tf_graphdef"
        return _kiln.convert_bytes(data, "<input_graph_def bytes>", params), fmt
    path = _path(model, "input_graph_def")
    return _kiln.convert_path(path, params), _kiln.model_format(path)


def _serialized(converted: Any, fmt: str) -> bytes:
    """The converted model in its input's format family: ONNX bytes for ONNX input, else a GraphDef."""
    return converted.onnx_bytes() if fmt == "onnx" else converted.graphdef_bytes()


def create_inference_graph(
    input_graph_def: Union[None, ModelSource, Any] = None,
    outputs: Optional[Sequence[str]] = None,
    max_batch_size: int = 1,
    max_workspace_size_bytes: int = 1 << 30,
    precision_mode: str = "FP32",
    minimum_segment_size: int = 3,
    is_dynamic_op: bool = False,
    maximum_cached_engines: int = 1,
    cached_engine_batches: Optional[Sequence[int]] = None,
    use_calibration: bool = True,
    input_saved_model_dir: Optional[PathLike] = None,
    input_saved_model_tags: Optional[Sequence[str]] = None,
    output_saved_model_dir: Optional[PathLike] = None,
    *,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    calibration_method: str = "entropy",
) -> Optional[bytes]:
    """TF-TRT's ``create_inference_graph``: optimizes a model for inference.

    The model is ``input_graph_def`` -- serialized GraphDef bytes, a ``GraphDef`` message, or a
    path to a ``.pb``/``.pbtxt``/``.onnx`` file -- or the SavedModel in
    ``input_saved_model_dir`` (MetaGraph chosen by ``input_saved_model_tags``, default
    ``["serve"]``). Supported segments of at least ``minimum_segment_size`` nodes become kiln
    engines; the rest runs natively. ``input_shapes`` (a kiln extension) declares input shapes
    the model leaves open, e.g. ``{"x": [-1, 3, 224, 224]}``: static mode builds engines only
    where the dimensions other than the batch are known.

    Returns the optimized GraphDef as bytes (ONNX bytes for an ONNX input), which
    :class:`Session` loads directly; with ``output_saved_model_dir`` the result is written there
    as a SavedModel instead and ``None`` is returned.

    ``precision_mode="INT8"`` with ``use_calibration=True`` returns a *calibration graph*: run it
    with :class:`Session` on representative inputs, then pass it to
    :func:`calib_graph_to_infer_graph` for the INT8 graph (TF-TRT's two steps).
    ``calibration_method`` (a kiln extension) is "entropy", "minmax" or "percentile".

    Raises ValueError for an unknown ``precision_mode`` or a bad combination of arguments, and
    :class:`kiln.Error` subclasses (InvalidArgumentError, NotFoundError, ...) for errors from
    kiln, with its message.
    """
    if (input_graph_def is None) == (input_saved_model_dir is None):
        raise ValueError("give exactly one of input_graph_def and input_saved_model_dir")
    params = ConversionParams(
        precision_mode=precision_mode,
        max_workspace_size_bytes=max_workspace_size_bytes,
        minimum_segment_size=minimum_segment_size,
        maximum_cached_engines=maximum_cached_engines,
        use_calibration=use_calibration,
        max_batch_size=max_batch_size,
        is_dynamic_op=is_dynamic_op,
        cached_engine_batches=cached_engine_batches,
        outputs=outputs,
        input_shapes=input_shapes,
        calibration_method=calibration_method,
    )._to_cpp()
    if output_saved_model_dir is not None and _is_calibration(params):
        raise ValueError("an INT8 calibration graph is returned as bytes, not saved: leave out "
                         "output_saved_model_dir, run it, then call calib_graph_to_infer_graph")
    if input_saved_model_dir is not None:
        _set_saved_model_source(params, input_saved_model_tags, None)
        converted, fmt = _kiln.convert_path(os.fspath(input_saved_model_dir), params), "saved_model"
    else:
        if input_saved_model_tags is not None:
            raise ValueError("input_saved_model_tags needs input_saved_model_dir")
        converted, fmt = _convert(input_graph_def, params)
    if output_saved_model_dir is not None:
        converted.save(os.fspath(output_saved_model_dir))
        return None
    data = _serialized(converted, fmt)
    if _is_calibration(params):
        with _CALIBRATION_LOCK:
            _CALIBRATION_GRAPHS[hashlib.sha256(data).digest()] = (converted, fmt)
    return data


def _set_saved_model_source(params: Any, tags: Optional[Sequence[str]], signature_key: Optional[str]) -> None:
    """Puts the SavedModel tag set / signature key into the C++ params (defaults: "serve",
    "serving_default")."""
    if tags is not None:
        if isinstance(tags, str):
            tags = [t for t in tags.split(",") if t]
        params.input_saved_model_tags = [str(t) for t in tags]
    if signature_key is not None:
        params.input_saved_model_signature_key = str(signature_key)


# Calibration graphs handed out by create_inference_graph, by the SHA-256 of their bytes: the
# statistics their EngineOps collect live in this process, and the second step needs the
# conversion they came from.
_CALIBRATION_GRAPHS: Dict[bytes, Tuple[Any, str]] = {}
_CALIBRATION_LOCK = threading.Lock()


def _is_calibration(params: Any) -> bool:
    return params.precision_mode == "INT8" and params.use_calibration and not params.calibration_table


def calib_graph_to_infer_graph(calib_graph_def: Union[bytes, Any], is_dynamic_op: bool = False) -> bytes:
    """The second step of INT8 calibration (TF-TRT's ``calib_graph_to_infer_graph``).

    ``calib_graph_def`` is the calibration graph (bytes) that :func:`create_inference_graph`
    returned for ``precision_mode="INT8"`` with ``use_calibration=True``, after it has been run
    with :class:`Session` on representative inputs in this process (its engines record the
    value ranges). Returns the INT8 inference graph, in the same format. A graph that was never
    run raises FailedPreconditionError; bytes that are not such a calibration graph raise
    InvalidArgumentError. ``is_dynamic_op`` is accepted for TF-TRT compatibility (the mode is
    the one the calibration graph was converted with).
    """
    data = _model_bytes(calib_graph_def)
    if data is None:
        raise TypeError("calib_graph_def must be the bytes create_inference_graph returned")
    key = hashlib.sha256(data).digest()
    with _CALIBRATION_LOCK:
        entry = _CALIBRATION_GRAPHS.get(key)
    if entry is None:
        raise InvalidArgumentError(
            "calib_graph_to_infer_graph: not a calibration graph made by create_inference_graph(precision_mode="
            "'INT8', use_calibration=True) in this process")
    calib, fmt = entry
    infer = _kiln.calib_graph_to_infer_graph(calib)
    with _CALIBRATION_LOCK:
        _CALIBRATION_GRAPHS.pop(key, None)
    return _serialized(infer, fmt)


def freeze_meta_graph(
    meta_graph: PathLike,
    checkpoint: PathLike,
    outputs: Sequence[str],
    output_path: Optional[PathLike] = None,
) -> Optional[bytes]:
    """Freezes a MetaGraphDef (``model.ckpt.meta``) with its checkpoint into a GraphDef.

    ``checkpoint`` is a checkpoint prefix (``dir/model.ckpt``) or a directory whose
    ``checkpoint`` file names the latest one. ``outputs`` are the tensors to keep (``"node:0"``
    or ``"node"``). Returns the frozen GraphDef bytes, or writes them to ``output_path``
    (atomically; text for ``.pbtxt``) and returns None. TF's ``convert_variables_to_constants``.
    """
    names = [outputs] if isinstance(outputs, str) else [str(o) for o in outputs]
    if output_path is None:
        return _kiln.freeze_meta_graph(os.fspath(meta_graph), os.fspath(checkpoint), names)
    _kiln.freeze_meta_graph_to_file(os.fspath(meta_graph), os.fspath(checkpoint), names, os.fspath(output_path))
    return None


# ----------------------------------------------------------------------------- Converter


def _sample_feeds(sample: Any, input_names: Sequence[str]) -> List[Tuple[str, Any]]:
    """A sample from an input_fn as (input name, array) pairs."""
    if isinstance(sample, Mapping):
        return [(str(k), v) for k, v in sample.items()]
    if isinstance(sample, (list, tuple)):
        if len(sample) != len(input_names):
            raise ValueError(f"a sample has {len(sample)} arrays but the model has {len(input_names)} inputs "
                             f"({', '.join(input_names)})")
        return list(zip(input_names, sample))
    if len(input_names) != 1:
        raise ValueError(f"a single-array sample needs a model with one input; it has {len(input_names)}")
    return [(input_names[0], sample)]


InputFn = Callable[[], Iterable[Any]]


class Converter:
    """TF2's ``TrtGraphConverterV2``: convert a SavedModel (or a model file), build, save.

    ::

        converter = kiln.Converter(input_saved_model_dir="my_model",
                                   conversion_params=kiln.ConversionParams(max_batch_size=8))
        converter.convert()
        converter.build(input_fn)        # optional: engines for the shapes input_fn yields
        converter.save("my_model_kiln")
        print(converter.summary())

    ``input_model`` takes a model file instead (``.onnx``, ``.pb``); give one of the two.
    """

    def __init__(
        self,
        input_saved_model_dir: Optional[PathLike] = None,
        input_saved_model_tags: Optional[Sequence[str]] = None,
        input_saved_model_signature_key: Optional[str] = None,
        conversion_params: Optional[ConversionParams] = None,
        *,
        input_model: Optional[ModelSource] = None,
    ) -> None:
        if (input_saved_model_dir is None) == (input_model is None):
            raise ValueError("give exactly one of input_saved_model_dir and input_model")
        self._params = conversion_params if conversion_params is not None else ConversionParams()
        if not isinstance(self._params, ConversionParams):
            raise TypeError("conversion_params must be a kiln.ConversionParams")
        _check_precision(self._params.precision_mode)
        self._saved_model_dir = None if input_saved_model_dir is None else os.fspath(input_saved_model_dir)
        self._tags = input_saved_model_tags
        self._signature_key = input_saved_model_signature_key
        self._input_model = input_model
        self._converted: Any = None

    def convert(self, calibration_input_fn: Optional[InputFn] = None) -> None:
        """Converts the model. With ``precision_mode="INT8"`` and ``use_calibration=True``,
        ``calibration_input_fn()`` must yield representative inputs (see :meth:`build` for
        their form): they run through the calibration graph and the INT8 engines are built
        from the ranges seen."""
        params = self._params._to_cpp()
        int8_calibration = params.precision_mode == "INT8" and params.use_calibration
        if int8_calibration and calibration_input_fn is None:
            raise ValueError("INT8 calibration needs calibration_input_fn")
        if not int8_calibration and calibration_input_fn is not None:
            raise ValueError("calibration_input_fn is only used for INT8 with use_calibration=True")
        if self._saved_model_dir is not None:
            _set_saved_model_source(params, self._tags, self._signature_key)
            converted = _kiln.convert_path(self._saved_model_dir, params)
        else:
            converted, _ = _convert(self._input_model, params)
        if int8_calibration:
            # The calibration graph's engines record ranges while it runs the samples.
            session = converted.session(_kiln.SessionOptions())
            names = [i[0] for i in session.inputs()]
            runs = 0
            for sample in calibration_input_fn():
                session.run(_sample_feeds(sample, names), [])
                runs += 1
            if runs == 0:
                raise ValueError("calibration_input_fn yielded no samples")
            converted = _kiln.calib_graph_to_infer_graph(converted)
        self._converted = converted

    def _require_converted(self, what: str) -> Any:
        if self._converted is None:
            raise FailedPreconditionError(f"{what} needs convert() first")
        return self._converted

    def build(self, input_fn: InputFn, strategy: str = "Range") -> None:
        """Builds engines for the input shapes ``input_fn`` yields (TF2's ``build``).

        ``input_fn()`` returns an iterable of samples; a sample is a dict ``{input name:
        array}``, or a list/tuple of arrays in the order of the model's inputs, or one array
        for a single-input model. The samples run through the converted model and each engine
        is built for the shapes it saw: ``strategy`` "Range" builds one engine per distinct
        non-batch shape at the largest batch seen (kiln's engines serve any smaller batch),
        "Optimal" one per exact shape, "Range+Optimal" both. :meth:`save` keeps them.
        """
        converted = self._require_converted("build()")
        names = converted.graph_inputs()
        samples = [_sample_feeds(sample, names) for sample in input_fn()]
        if not samples:
            raise ValueError("build(): input_fn yielded no samples")
        converted.build_engines(samples, strategy)

    def save(self, output_saved_model_dir: PathLike) -> None:
        """Writes the converted model: a SavedModel directory for a SavedModel input (or any
        path without a model extension), else the format of the path's extension."""
        self._require_converted("save()").save(os.fspath(output_saved_model_dir))

    def summary(self) -> str:
        """The conversion summary that ``kiln convert`` prints (engines, nodes not
        converted and why, passes, times)."""
        return self._require_converted("summary()").summary_text()

    def summary_dict(self) -> Dict[str, Any]:
        """The conversion summary as a dict (``kiln convert --json-summary``)."""
        import json

        return json.loads(self._require_converted("summary_dict()").summary_json())

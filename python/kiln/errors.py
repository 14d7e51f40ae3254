"""Exceptions raised by kiln.

Every failure reported by kiln's C++ library (a ``kiln::Status`` that is not OK) is raised as a
subclass of :class:`Error`, chosen by the status code, with the C++ message (which names the
file, node or parameter that failed). Some classes also derive from the matching built-in
exception, so ordinary Python handlers work too::

    try:
        kiln.Session("missing.onnx")
    except kiln.NotFoundError as e:   # also an Error; e.code == "NotFound"
        print(e)

=========================  ====================  =====================================
class                      also a                raised when
=========================  ====================  =====================================
InvalidArgumentError       ValueError            the input is wrong (bad parameter, feed,
                                                 malformed model)
NotFoundError              LookupError           a named thing does not exist (file,
                                                 input, tensor, tag, signature)
UnimplementedError         NotImplementedError   valid input kiln does not support yet
FailedPreconditionError                          not in a state to do this (e.g. a graph
                                                 that was never calibrated)
ResourceExhaustedError     MemoryError           a size limit or an allocation failed
DataLossError                                    stored data is corrupt
InternalError                                    a bug in kiln
=========================  ====================  =====================================
"""

from __future__ import annotations

__all__ = [
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "UnimplementedError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "DataLossError",
    "InternalError",
]


class Error(Exception):
    """Base class of every error kiln raises; ``code`` is the C++ StatusCode name."""

    code: str = "Unknown"

    @property
    def message(self) -> str:
        """The C++ message (the same as ``str(error)``)."""
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(Error, ValueError):
    """The caller's input is wrong: a bad parameter, feed or model file."""

    code = "InvalidArgument"


class NotFoundError(Error, LookupError):
    """A named thing does not exist: a file, input, tensor, tag or signature."""

    code = "NotFound"


class UnimplementedError(Error, NotImplementedError):
    """Valid input that kiln does not support yet (an op, attribute value or dtype)."""

    code = "Unimplemented"


class FailedPreconditionError(Error):
    """kiln is not in a state to do this (e.g. ``build()`` before ``convert()``)."""

    code = "FailedPrecondition"


class ResourceExhaustedError(Error, MemoryError):
    """A size limit was exceeded or an allocation failed."""

    code = "ResourceExhausted"


class DataLossError(Error):
    """Stored data is corrupt (checksum mismatch, truncated file)."""

    code = "DataLoss"


class InternalError(Error):
    """A bug in kiln: one of its own invariants was broken."""

    code = "Internal"


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        UnimplementedError,
        FailedPreconditionError,
        ResourceExhaustedError,
        DataLossError,
        InternalError,
    )
}


def _register(module) -> None:
    """Tells the extension module which class to raise for each C++ status code."""
    for name in module._status_code_names():
        module._error_classes[name] = _BY_CODE.get(name, Error)

"""kiln.Session: loading, metadata, run, zero-copy, errors, threads, leaks."""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest

import kiln
from conftest import (
    PPOCR,
    check_fixture_outputs,
    fixture_dir,
    fixture_feeds,
    graphdef_text,
    manifest,
    op,
    placeholder,
)

# y = x + z, w = Identity(x)
ADD_GRAPH = graphdef_text(placeholder("x"), placeholder("z"), op("y", "AddV2", "x", "z"),
                          op("w", "Identity", "x"))


def test_version_and_errors_hierarchy():
    assert isinstance(kiln.__version__, str) and kiln.__version__
    assert issubclass(kiln.InvalidArgumentError, kiln.Error)
    assert issubclass(kiln.InvalidArgumentError, ValueError)
    assert issubclass(kiln.NotFoundError, LookupError)


def test_frozen_graph_fixture_by_path_and_bytes():
    d = fixture_dir("graphdef", "fc-layers")
    by_path = kiln.Session(d / "frozen.pb")
    by_bytes = kiln.Session((d / "frozen.pb").read_bytes())
    assert [i.name for i in by_path.inputs] == ["X:0"]
    info = by_path.inputs[0]
    assert info.dtype == np.float32 and info.dtype_name == "float32"
    assert [o.name for o in by_path.outputs] == ["output:0"]
    feeds = fixture_feeds(d)
    for s in (by_path, by_bytes):
        got = s.run(feeds)
        assert list(got) == ["output:0"]
        check_fixture_outputs(d, got)
    # "node" names "node:0"; fetches choose what comes back.
    got = by_path.run({"X": feeds["X:0"]}, fetches="output")
    assert list(got) == ["output"]
    np.testing.assert_array_equal(got["output"], by_path.run(feeds)["output:0"])


def test_saved_model_tags_and_signatures():
    d = fixture_dir("saved_model", "module_with_multiple_signatures__timestwo")
    m = manifest(d)
    model = (d / m["model_path"]).resolve()
    s = kiln.Session(model, tags=m["tags"], signature_key=m["signature"])
    assert [i.name for i in s.inputs] == [i["name"] for i in m["inputs"]]
    # feeds and fetches by signature key or tensor name
    check_fixture_outputs(d, s.run(fixture_feeds(d, by_signature_key=True), ["output_0"]), by_signature_key=True)
    check_fixture_outputs(d, s.run(fixture_feeds(d), [o["name"] for o in m["outputs"]]))
    default = kiln.Session(model)  # serving_default
    assert [i.name for i in default.inputs] != [i.name for i in s.inputs]
    with pytest.raises(kiln.NotFoundError, match="no_such_tag"):
        kiln.Session(model, tags=["no_such_tag"])
    with pytest.raises(kiln.NotFoundError, match="no_such_signature"):
        kiln.Session(model, signature_key="no_such_signature")


def test_gil_is_released_while_running(rng):
    s = kiln.Session(ADD_GRAPH)
    x = rng.standard_normal(16).astype(np.float32)
    before = kiln._kiln._runs_without_gil()
    for _ in range(5):
        s.run({"x": x, "z": x})
    assert kiln._kiln._runs_without_gil() - before == 5


def test_shapes_report_unknown_dims_as_none():
    s = kiln.Session(graphdef_text(placeholder("x"), op("y", "Relu", "x")))
    assert s.inputs[0].shape is None  # no shape attribute: unknown rank
    if PPOCR.is_file():
        p = kiln.Session(PPOCR)
        assert p.inputs[0].name == "x"
        assert p.inputs[0].shape == (None, 3, None, None)


def test_run_values_and_dtype_conversion(rng):
    s = kiln.Session(ADD_GRAPH)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    z = rng.standard_normal((3, 5)).astype(np.float32)
    got = s.run({"x": x, "z": z}, ["y:0", "w:0"])
    np.testing.assert_array_equal(got["y:0"], x + z)
    np.testing.assert_array_equal(got["w:0"], x)
    # float64 and Python lists are converted (same_kind), Fortran order and strided views too.
    xf = np.asfortranarray(rng.standard_normal((4, 6)))
    zs = rng.standard_normal((4, 12)).astype(np.float32)[:, ::2]
    got = s.run({"x": xf, "z": zs}, "y")
    np.testing.assert_allclose(got["y"], xf.astype(np.float32) + zs, rtol=0, atol=0)
    got = s.run({"x": [1.5, 2.5], "z": np.float32([0.25, 1])}, "y")
    np.testing.assert_array_equal(got["y"], np.float32([1.75, 3.5]))
    # big-endian input is byte-swapped, not misread
    xb = x.astype(">f4")
    np.testing.assert_array_equal(s.run({"x": xb, "z": z}, "y")["y"], x + z)


def test_inputs_are_borrowed_outputs_are_not_copied(rng):
    x = rng.standard_normal((64, 64)).astype(np.float32)
    assert kiln._kiln._borrows(x)
    assert kiln._kiln._borrows(np.ascontiguousarray(x[:8]))
    ro = x.copy()
    ro.flags.writeable = False
    assert kiln._kiln._borrows(ro)
    assert not kiln._kiln._borrows(x[:, ::2])  # not contiguous
    assert not kiln._kiln._borrows(np.asfortranarray(x))
    assert not kiln._kiln._borrows(x.astype(">f4"))  # not native byte order

    s = kiln.Session(ADD_GRAPH)
    z = rng.standard_normal((64, 64)).astype(np.float32)
    before = sys.getrefcount(x)
    out = s.run({"x": x, "z": z}, ["y", "w"])
    assert sys.getrefcount(x) == before  # the borrow was released
    y = out["y"]
    assert not y.flags.owndata and y.base is not None  # kiln's buffer, no copy
    assert y.flags.writeable and y.flags.c_contiguous
    # Identity(x) would alias the caller's array: it comes back as a copy.
    w = out["w"]
    assert not np.shares_memory(w, x)
    np.testing.assert_array_equal(w, x)
    w[0, 0] = 1e6
    assert x[0, 0] != 1e6
    # outputs stay valid after the session is gone
    del s
    gc.collect()
    np.testing.assert_array_equal(y, x + z)


def test_constant_output_is_a_copy():
    d = fixture_dir("graphdef", "regression")
    s = kiln.Session(d / "frozen.pb")
    consts = [n for n in ("W:0", "W/read:0", "b:0", "b/read:0")]
    for name in consts:
        try:
            first = s.run({"X:0": np.float32([1, 2])}, name)[name]
        except kiln.Error:
            continue
        first[...] = 123.0  # must not change the model
    got = s.run(fixture_feeds(d))
    check_fixture_outputs(d, got)


def test_errors(tmp_path, rng):
    with pytest.raises(kiln.NotFoundError, match="nonexistent.onnx"):
        kiln.Session(tmp_path / "nonexistent.onnx")
    with pytest.raises(kiln.InvalidArgumentError):
        kiln.Session(b"\x0a\xff\xff\xff")
    with pytest.raises(kiln.InvalidArgumentError):
        kiln.Session(b"")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    with pytest.raises(kiln.Error, match="bad.onnx"):
        kiln.Session(bad)
    with pytest.raises(TypeError):
        kiln.Session(42)

    s = kiln.Session(ADD_GRAPH)
    x = rng.standard_normal(4).astype(np.float32)
    with pytest.raises(kiln.NotFoundError, match="'nope' is not an input"):
        s.run({"x": x, "z": x, "nope": x})
    with pytest.raises(kiln.InvalidArgumentError, match="'z:0'.*not fed"):
        s.run({"x": x}, "y")
    with pytest.raises(kiln.NotFoundError, match="cannot fetch 'missing'"):
        s.run({"x": x, "z": x}, "missing")
    with pytest.raises(kiln.InvalidArgumentError, match="cannot convert float64 to the input's int32"):
        kiln.Session(graphdef_text(placeholder("i", "DT_INT32"), op("o", "Neg", "i", dtype="DT_INT32"))).run(
            {"i": np.float64([1.5])})
    with pytest.raises(kiln.InvalidArgumentError, match="cannot convert complex64 to the input's float32"):
        s.run({"x": x.astype(np.complex64), "z": x}, "y")
    with pytest.raises(kiln.InvalidArgumentError, match="numpy dtype complex64 has no kiln equivalent"):
        kiln._kiln._borrows(x.astype(np.complex64))
    with pytest.raises(TypeError):
        s.run([("x", x)])
    if PPOCR.is_file():
        p = kiln.Session(PPOCR)
        with pytest.raises(kiln.InvalidArgumentError, match=r"expects shape \[\?,3,\?,\?\], got \[1,4,48,192\]"):
            p.run({"x": rng.random((1, 4, 48, 192), dtype=np.float32)})


def test_int_and_bool_dtypes(rng):
    s = kiln.Session(graphdef_text(placeholder("i", "DT_INT64"), op("o", "Neg", "i", dtype="DT_INT64")))
    i = rng.integers(-1000, 1000, (3, 4))
    assert s.inputs[0].dtype == np.int64
    out = s.run({"i": i})["o:0"]
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, -i)
    b = kiln.Session(graphdef_text(placeholder("p", "DT_BOOL"), f'name: "q" op: "LogicalNot" input: "p"'))
    p = rng.random(7) > 0.5
    np.testing.assert_array_equal(b.run({"p": p})["q:0"], ~p)


def _ppocr_or_fixture(engines: bool = False):
    """A model worth running from threads: the default model, else the fc-layers fixture;
    with `engines`, converted (kiln engines in the graph)."""
    if PPOCR.is_file():
        model, name, shape = PPOCR, "x", (2, 3, 48, 192)
        if engines:
            model = kiln.create_inference_graph(PPOCR, max_batch_size=2, input_shapes={"x": [-1, 3, 48, 192]})
    else:
        d = fixture_dir("graphdef", "fc-layers")
        model, name, shape = d / "frozen.pb", "X:0", (1, 784)
        if engines:
            model = kiln.create_inference_graph(model, outputs=["output:0"])
    return kiln.Session(model), name, shape


@pytest.mark.parametrize("engines", [False, True], ids=["reference_kernels", "engines"])
def test_threads_match_serial(engines, rng):
    s, name, shape = _ppocr_or_fixture(engines)
    inputs = [rng.random(shape, dtype=np.float32) for _ in range(16)]
    serial = [s.run({name: x}) for x in inputs]
    results = [None] * (8 * len(inputs))
    errors = []
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            start.wait()
            for k in range(len(inputs)):
                j = (k + 3 * t) % len(inputs)
                results[t * len(inputs) + j] = s.run({name: inputs[j]})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for t in range(8):
        for j in range(len(inputs)):
            got = results[t * len(inputs) + j]
            for key, ref in serial[j].items():
                np.testing.assert_array_equal(got[key], ref)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
@pytest.mark.parametrize("engines", [False, True], ids=["reference_kernels", "engines"])
def test_no_leak_over_1000_runs(engines, rng):
    # Feeds of 64 Ki floats: leaking a feed or an output per run would grow RSS by >= 256 KiB a
    # run (250 MiB over 1,000 runs). Reference kernels: pred = X * W + b; engines: the fc-layers
    # MLP converted for batch 84 (84 x 784 floats in).
    if engines:
        d = fixture_dir("graphdef", "fc-layers")
        s = kiln.Session(kiln.create_inference_graph(d / "frozen.pb", outputs=["output:0"], max_batch_size=84))
        name, fetch, shape = "X:0", "output:0", (84, 784)
    else:
        d = fixture_dir("graphdef", "regression")
        s = kiln.Session(d / "frozen.pb")
        name, fetch, shape = "X:0", "pred:0", (1 << 16,)
    base = rng.standard_normal(shape).astype(np.float32)

    def step(k: int) -> None:
        x = base + np.float32(k)  # a fresh array each run
        out = s.run({name: x})[fetch]
        assert out.shape[0] == x.shape[0]

    for k in range(200):
        step(k)
    gc.collect()
    before = _rss_bytes()
    for k in range(1000):
        step(k)
    gc.collect()
    grown = _rss_bytes() - before
    assert grown < 16 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 1,000 runs"


def test_strings_and_float16():
    s = kiln.Session(graphdef_text(placeholder("s", "DT_STRING"), op("o", "Identity", "s", dtype="DT_STRING")))
    assert s.inputs[0].dtype == np.dtype(object) and s.inputs[0].dtype_name == "string"
    out = s.run({"s": np.array([b"ab", b"c\x00d"], dtype=object)})["o:0"]
    assert out.dtype == object and list(out) == [b"ab", b"c\x00d"]
    assert list(s.run({"s": np.array(["h\u00e9llo", "x"])})["o:0"]) == ["h\u00e9llo".encode(), b"x"]
    with pytest.raises(kiln.InvalidArgumentError, match="element 0 of a string array is <class 'int'>"):
        s.run({"s": np.array([1, "x"], dtype=object)})
    h = kiln.Session(graphdef_text(placeholder("h", "DT_HALF"), op("o", "Neg", "h", dtype="DT_HALF")))
    got = h.run({"h": np.float16([1.5, -2, 65504])})["o:0"]
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.float16([-1.5, 2, -65504]))


def test_bad_model_bytes_never_crash(rng):
    """Random and truncated model bytes: always a kiln.Error, never a crash."""
    d = fixture_dir("graphdef", "fc-layers")
    good = (d / "frozen.pb").read_bytes()
    cases = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (1, 7, 64, 1000)]
    cases += [b"\x08" + bytes(rng.integers(0, 256, 300, dtype=np.uint8))]  # looks like ONNX
    cases += [good[: len(good) // k] for k in (2, 3, 7)]
    flipped = bytearray(good[:4096])
    flipped[100:110] = bytes(rng.integers(0, 256, 10, dtype=np.uint8))
    cases.append(bytes(flipped))
    for data in cases:
        for load in (kiln.Session, lambda b: kiln.create_inference_graph(b)):
            try:
                load(data)
            except kiln.Error:
                pass

"""dlib's face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an in-memory ONNX
graph: the same embeddings as dlib at a fraction of the cost (dlib-bin has no BLAS).

The ``.dat`` is dlib's ``serialize()`` of ``anet_type`` from dlib's
``examples/dnn_face_recognition_ex.cpp``. It is read with the formats of dlib's
``serialize.h`` (``pack_int`` integers, ``float_details`` floats), ``dnn/tensor.h``
(version-2 tensors: raw little-endian float32) and the layers' own ``serialize()`` in
``dnn/core.h``, ``layers.h``, ``input.h`` and ``loss.h``, checked against that layout with
every byte accounted for. The graph keeps dlib's semantics: convolutions and pooling with
the padding stored in the file, each ``affine`` folded into the convolution it follows, and
``add_prev`` adding tensors of different sizes as dlib's ``tt::add`` does (the smaller one
zero-padded at the end of each axis). Weights whose bytes changed cannot be told from real
ones here: the manifest's SHA-256 (``registry.weights_path``) guards those. The file is
read, never written, and nothing loads at import: call :func:`create_dlib_resnet`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from facegate.errors import ModelError
from facegate.vision import onnx_repair

if TYPE_CHECKING:
    import onnx

Backend = Literal["dlib", "onnxruntime"]
CHIP_SIZE = 150
F32 = NDArray[np.float32]
Shape = tuple[int, int, int]
_TAGS = ("tag", "skip")  # layers that only name a tensor or return to one


def resolve_backend(setting: str) -> Backend:
    """``auto``: the converted net on onnxruntime when onnxruntime and onnx import, else
    dlib's own forward pass."""
    if setting == "auto":
        return "onnxruntime" if onnx_repair.onnxruntime_available() else "dlib"
    if setting in ("dlib", "onnxruntime"):
        return cast(Backend, setting)
    raise ValueError(f"unknown dlib backend {setting!r}; use auto, dlib or onnxruntime")


# --- dlib's serialisation -----------------------------------------------------------------
class _Reader:
    """A cursor over the file's bytes. Every read is bounds-checked, so a truncated or
    corrupt file raises ``ModelError`` rather than reading garbage or allocating wildly."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str) -> ModelError:
        return ModelError(f"dlib model {self.name}: {what} at byte {self.pos}; corrupt file?")

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"truncated while reading {what}")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def integer(self, what: str) -> int:
        """``pack_int``: a control byte (bit 7: negative; low nibble: byte count; the
        three bits between always 0), then the magnitude, little-endian."""
        control = self.take(1, what)[0]
        if control & 0x70 or control & 0x0F > 8:
            raise self.fail(f"bad integer control byte {control:#x} in {what}")
        value = int.from_bytes(self.take(control & 0x0F, what), "little")
        return -value if control & 0x80 else value

    def real(self, what: str) -> float:
        """``float_details``: mantissa (int64) then exponent (int16), ``m * 2**e``;
        exponents 32000-32002 stand for inf, -inf and NaN."""
        mantissa, exponent = self.integer(what), self.integer(what)
        specials = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent >= 32000:
            return specials.get(exponent, math.nan)
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.fail(f"{what} out of range") from None

    def expect(self, name: str) -> None:
        """Layers open with a name-and-version string, such as ``con_4``."""
        found = self.take(self.integer(name), name).decode("latin-1")
        if found != name:
            raise self.fail(f"expected {name!r}, found {found[:40]!r}")

    def version(self, allowed: Sequence[int], what: str) -> int:
        found = self.integer(f"{what} version")
        if found not in allowed:
            raise self.fail(f"{what} version {found}, expected one of {list(allowed)}")
        return found

    def flag(self, what: str) -> None:
        if self.take(1, what) not in (b"0", b"1"):  # bools are the characters '0' / '1'
            raise self.fail(f"bad bool in {what}")

    def dims(self, what: str) -> tuple[int, int, int, int]:
        n, k, nr, nc = (self.integer(what) for _ in range(4))
        if min(n, k, nr, nc) < 0 or max(n, k, nr, nc) > len(self.data):
            raise self.fail(f"impossible size {(n, k, nr, nc)} in {what}")
        return n, k, nr, nc

    def tensor(self, what: str) -> F32:
        """``resizable_tensor`` version 2: its four sizes, then raw little-endian float32."""
        self.version((2,), what)
        shape = self.dims(what)
        raw = self.take(4 * math.prod(shape), what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        """``alias_tensor``: version 1 and four sizes (a view into a layer's params)."""
        self.version((1,), what)
        return self.dims(what)

    def ignore(self, what: str, count: int) -> None:
        """Training-only doubles (learning-rate and weight-decay multipliers, ...)."""
        for _ in range(count):
            self.real(what)


@dataclass(frozen=True)
class Layer:
    """One layer, in order from the input up. ``tag``: the id of tag/skip/add_prev."""

    kind: str
    tag: int = 0
    window: tuple[int, int] = (0, 0)  # 0: the whole input (avg_pool_everything)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    weights: F32 | None = None
    bias: F32 | None = None


@dataclass(frozen=True)
class DlibResNet:
    """The parsed net: dlib's per-channel input means (RGB) and its layers, input first."""

    mean: F32
    layers: list[Layer]


def _layout() -> list[str]:
    """``anet_type`` of dnn_face_recognition_ex.cpp, from the top (fc) down to the first
    con (the order the file writes the layers' versions in), with the template arguments
    dlib checks on reading: ``con filters kernel stride``, ``*_pool window stride`` (0:
    the whole input), ``fc outputs``."""

    def block(n: int, stride: int) -> list[str]:
        return ["affine", f"con {n} 3 1", "relu", "affine", f"con {n} 3 {stride}"]

    def ares(n: int) -> list[str]:
        return ["relu", "add_prev1", *block(n, 1), "tag1"]

    def ares_down(n: int) -> list[str]:
        return ["relu", "add_prev2", "avg_pool 2 2", "skip1", "tag2", *block(n, 2), "tag1"]

    levels = [ares_down(256), *(ares(n) + ares(n) + ares_down(n) for n in (256, 128))]
    levels += [ares(64) * 3 + ares_down(64), ares(32) * 3]
    first = ["max_pool 3 2", "relu", "affine", "con 32 7 2"]
    return ["fc 128", "avg_pool 0 1", *(name for level in levels for name in level), *first]


def _check(r: _Reader, kind: str, found: Sequence[object], expected: Sequence[object]) -> None:
    """dlib refuses a file whose layer differs from the type's template arguments."""
    if list(found) != list(expected):
        raise r.fail(f"{kind} has {list(found)}, dlib's anet_type has {list(expected)}")


def _read_con(r: _Reader, filters: int, size: int, step: int) -> Layer:
    r.expect("con_4")
    params = r.tensor("con params").reshape(-1)
    found = [r.integer("con") for _ in range(7)]  # filters, kernel, stride, padding (y, x)
    pad = 0 if step != 1 else size // 2  # con_'s default padding
    _check(r, "con", found, [filters, size, size, step, step, pad, pad])
    shape, bias_shape = r.alias("con filters"), r.alias("con biases")
    r.ignore("con multipliers", 4)
    weights = math.prod(shape)
    if shape[0] != filters or shape[2:] != (size, size) or params.size != weights + filters:
        raise r.fail(f"con filters {shape} do not match its {params.size} parameters")
    if bias_shape[1] != filters:
        raise r.fail(f"con biases {bias_shape} do not match its {filters} filters")
    w, b = params[:weights].reshape(shape), params[weights:]
    return Layer("con", stride=(step, step), padding=(pad, pad), weights=w, bias=b)


def _read_pool(r: _Reader, kind: str, size: int, step: int) -> Layer:
    r.expect(f"{kind}_2")
    pad = 0 if step != 1 else size // 2  # the pools' default padding
    _check(r, kind, [r.integer(kind) for _ in range(6)], [size, size, step, step, pad, pad])
    return Layer(kind, window=(size, size), stride=(step, step), padding=(pad, pad))


def _read_affine(r: _Reader) -> Layer:
    r.expect("affine_")
    params = r.tensor("affine params").reshape(-1)
    gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
    mode = r.integer("affine mode")
    if mode != 0 or gamma != beta or params.size != 2 * gamma[1] or gamma[2:] != (1, 1):
        raise r.fail(f"affine is not per channel (mode {mode}, gamma {gamma})")
    return Layer("affine", weights=params[: gamma[1]], bias=params[gamma[1] :])


def _read_fc(r: _Reader, outputs: int) -> Layer:
    r.expect("fc_2")
    found, inputs = r.integer("fc outputs"), r.integer("fc inputs")
    params = r.tensor("fc params").reshape(-1)
    r.alias("fc weights"), r.alias("fc biases")
    _check(r, "fc", [found, r.integer("fc bias mode")], [outputs, 1])  # 1: FC_NO_BIAS
    if inputs < 1 or params.size != inputs * outputs:
        raise r.fail(f"fc has {params.size} parameters for {inputs} inputs")
    r.ignore("fc multipliers", 4)
    return Layer("fc", weights=params.reshape(inputs, outputs))


def _read_layer(r: _Reader, spec: str) -> Layer:
    """One layer's details as its ``serialize()`` in dlib's layers.h writes them."""
    kind, *args = spec.split()
    numbers = [int(a) for a in args]
    if kind == "relu":
        r.expect("relu_")
        return Layer("relu")
    if kind.startswith("add_prev"):
        r.expect("add_prev_")  # the tag id is in the type, not the file
        return Layer("add_prev", tag=int(kind[-1]))
    if kind in ("max_pool", "avg_pool"):
        return _read_pool(r, kind, *numbers)
    if kind == "con":
        return _read_con(r, *numbers)
    return _read_fc(r, *numbers) if kind == "fc" else _read_affine(r)


def _skip_state(r: _Reader, version: int, on_input: bool) -> None:
    """What ``add_layer`` writes after its details: three flags and cached tensors that
    only training uses (the bottom layer, on the input layer, writes its own set)."""
    for _ in range(3):
        r.flag("add_layer flags")
    for _ in range(3 if on_input or version == 2 else 2):
        r.tensor("add_layer state")
    if on_input and version == 3:
        r.integer("sample expansion factor")


def read_dlib_resnet(data: bytes, name: str = "dlib-resnet") -> DlibResNet:
    """Parse the ``.dat`` bytes: ``ModelError`` unless they are exactly that network.

    Layers nest: each writes its version, then its subnet, then its details; so the file
    holds all the versions top-down, the input layer, then the details bottom-up."""
    r = _Reader(data, name)
    r.version((1,), "add_loss_layer")
    r.expect("loss_metric_2")
    r.ignore("loss margin and threshold", 2)
    layout = _layout()
    bottom = len(layout) - 1
    versions = [
        r.version((1,) if kind.startswith(_TAGS) else (2, 3) if i == bottom else (1, 2), kind)
        for i, kind in enumerate(layout)
    ]
    r.expect("input_rgb_image_sized")
    mean = np.array([r.real("input mean") for _ in range(3)], dtype=np.float32)
    size = (r.integer("input rows"), r.integer("input columns"))
    if size != (CHIP_SIZE, CHIP_SIZE) or not np.all(np.isfinite(mean)):
        raise r.fail(f"input size {size} or means {mean}; expected {CHIP_SIZE}x{CHIP_SIZE}")
    layers: list[Layer] = []
    for i in range(bottom, -1, -1):
        kind = layout[i]
        if kind.startswith(_TAGS):  # tag and skip layers write only version and subnet
            layers.append(Layer(kind[:-1], tag=int(kind[-1])))
            continue
        layers.append(_read_layer(r, kind))
        _skip_state(r, versions[i], on_input=i == bottom)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return DlibResNet(mean=mean, layers=_fold_affines(layers))


def _fold_affines(layers: list[Layer]) -> list[Layer]:
    """Each ``affine`` follows a ``con`` here: ``(x*w + b)*g + beta`` becomes one conv,
    ``x*(w*g) + (b*g + beta)`` (float32 rounding apart, the same numbers)."""
    folded: list[Layer] = []
    for layer in layers:
        if layer.kind != "affine":
            folded.append(layer)
            continue
        con = folded[-1] if folded else None
        if con is None or con.kind != "con" or con.weights is None or con.bias is None:
            raise ModelError("dlib model: an affine layer does not follow a con layer")
        gamma, beta = layer.weights, layer.bias
        assert gamma is not None and beta is not None
        if gamma.size != con.weights.shape[0]:
            raise ModelError(f"dlib model: affine of {gamma.size} after con of {con.bias.size}")
        weights = (con.weights * gamma[:, None, None, None]).astype(np.float32)
        bias = (con.bias * gamma + beta).astype(np.float32)
        folded[-1] = Layer(
            "con", stride=con.stride, padding=con.padding, weights=weights, bias=bias
        )
    return folded


# --- the ONNX graph -----------------------------------------------------------------------
def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output size of a conv or pooling window, dlib's formula (ONNX's floor mode)."""
    if kernel > size + 2 * pad:  # dlib asserts the same
        raise ModelError(f"dlib model: a {kernel}-wide window does not fit {size} + 2*{pad}")
    return (size + 2 * pad - kernel) // stride + 1


class _GraphBuilder:
    """Emits ONNX nodes layer by layer, input first, tracking each tensor's static
    ``(C, H, W)``: ``add_prev`` needs them to pad, and a mismatch means a bad file."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.current, self.shape = "chips", (3, CHIP_SIZE, CHIP_SIZE)
        self.tags: dict[int, tuple[str, Shape]] = {}

    def const(self, name: str, value: NDArray[Any]) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def emit(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def relu(self, layer: Layer, out: str) -> Shape:
        self.emit("Relu", [self.current], out)
        return self.shape

    def con(self, layer: Layer, out: str) -> Shape:
        assert layer.weights is not None and layer.bias is not None
        (c, h, w), (f, ci, kh, kw) = self.shape, layer.weights.shape
        if ci != c:
            raise ModelError(f"dlib model: a con takes {ci} channels but gets {c}")
        (sy, sx), (py, px) = layer.stride, layer.padding
        inputs = [self.current, self.const(f"{out}_w", layer.weights)]
        inputs.append(self.const(f"{out}_b", layer.bias))
        self.emit("Conv", inputs, out, kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px] * 2)
        return f, _out_size(h, kh, sy, py), _out_size(w, kw, sx, px)

    def pool(self, layer: Layer, out: str) -> Shape:
        """dlib's windows never leave the padded input, as ONNX's; a window of 0 is the
        whole input (``avg_pool_everything``)."""
        c, h, w = self.shape
        (kh, kw), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
        kh, kw = kh or h, kw or w
        if layer.kind == "avg_pool" and (py or px):  # dlib's divisor there is unchecked
            raise ModelError("dlib model: a padded avg_pool is not supported")
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        self.emit(
            op, [self.current], out, kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px] * 2
        )
        return c, _out_size(h, kh, sy, py), _out_size(w, kw, sx, px)

    def add_prev(self, layer: Layer, out: str) -> Shape:
        other, other_shape = self.tags[layer.tag]
        c, h, w = (max(a, b) for a, b in zip(self.shape, other_shape, strict=True))
        target = (c, h, w)
        padded = [self.pad(self.current, self.shape, target), self.pad(other, other_shape, target)]
        self.emit("Add", padded, out)
        return target

    def pad(self, name: str, shape: Shape, target: Shape) -> str:
        """dlib's ``tt::add`` adds tensors of different sizes as if the smaller were
        zero-padded at the end of each axis (ares_down: 3x3 + 4x4, 128 + 256 channels)."""
        if shape == target:
            return name
        ends = [t - s for s, t in zip(shape, target, strict=True)]
        pads = self.const(f"{name}_pads", np.array([0, 0, 0, 0, 0, *ends], dtype=np.int64))
        return self.emit("Pad", [name, pads], f"{name}_padded")

    def fc(self, layer: Layer, out: str) -> Shape:
        assert layer.weights is not None
        (inputs, outputs), size = layer.weights.shape, math.prod(self.shape)
        if inputs != size:
            raise ModelError(f"dlib model: fc takes {inputs} inputs but gets {size}")
        flat = self.emit("Flatten", [self.current], f"{out}_flat", axis=1)
        self.emit("MatMul", [flat, self.const(f"{out}_w", layer.weights)], out)
        return outputs, 1, 1

    def build(self, net: DlibResNet) -> onnx.ModelProto:
        import onnx
        from onnx import TensorProto, helper

        emitters = {"relu": self.relu, "con": self.con, "max_pool": self.pool}
        emitters.update(avg_pool=self.pool, add_prev=self.add_prev, fc=self.fc)
        for i, layer in enumerate(net.layers):
            if layer.kind == "tag":
                self.tags[layer.tag] = (self.current, self.shape)
            elif layer.kind == "skip":
                self.current, self.shape = self.tags[layer.tag]
            else:
                out = f"l{i}_{layer.kind}"
                self.current, self.shape = out, emitters[layer.kind](layer, out)
        self.emit("Identity", [self.current], "descriptor")
        chips = helper.make_tensor_value_info(
            "chips", TensorProto.FLOAT, ["batch", 3, CHIP_SIZE, CHIP_SIZE]
        )
        descriptor = helper.make_tensor_value_info(
            "descriptor", TensorProto.FLOAT, ["batch", self.shape[0]]
        )
        graph = helper.make_graph(
            self.nodes, "dlib_resnet_v1", [chips], [descriptor], initializer=self.inits
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8  # read by onnxruntime and by OpenCV's DNN alike
        onnx.checker.check_model(model)
        return model


def build_onnx(net: DlibResNet) -> onnx.ModelProto:
    """``chips (N, 3, 150, 150)`` float32, normalised (:meth:`DlibResNetOnnx.blob`), ->
    ``descriptor (N, 128)``."""
    return _GraphBuilder().build(net)


# --- running it ---------------------------------------------------------------------------
class DlibResNetOnnx:
    """The converted net on onnxruntime, one thread: RGB ``(150, 150, 3)`` uint8 chips, as
    ``dlib.get_face_chip`` makes them, in; ``(N, 128)`` float32 descriptors, not normalised
    (as dlib's), out. Session runs are thread-safe: no lock."""

    def __init__(self, net: DlibResNet, model: onnx.ModelProto) -> None:
        import onnxruntime as ort

        self.model = model
        self._mean = net.mean.reshape(1, 1, 1, 3)
        options = ort.SessionOptions()  # the options onnx_repair's sessions use
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def blob(self, chips: Sequence[NDArray[np.uint8]]) -> F32:
        """dlib's input layer: ``(pixel - mean) / 256`` per RGB channel (float32, rounded
        as dlib rounds it), as NCHW."""
        arrays = [np.asarray(chip) for chip in chips]
        if not arrays:
            raise ValueError("chips must hold at least one face chip")
        for chip in arrays:
            if chip.dtype != np.uint8 or chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
                raise ValueError(
                    f"chips must be ({CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 RGB, "
                    f"got {chip.dtype} {chip.shape}"
                )
        pixels = np.stack(arrays).astype(np.float32)
        return np.ascontiguousarray(((pixels - self._mean) / 256).transpose(0, 3, 1, 2))

    def forward(self, blob: NDArray[Any]) -> F32:
        """``(N, 3, 150, 150)`` float32, N >= 1 (from :meth:`blob`) -> ``(N, 128)``."""
        blob = np.asarray(blob)
        if blob.dtype != np.float32 or blob.shape[1:] != (3, CHIP_SIZE, CHIP_SIZE) or not len(blob):
            raise ValueError(
                f"blob must be (N>=1, 3, {CHIP_SIZE}, {CHIP_SIZE}) float32, "
                f"got {blob.dtype} {blob.shape}"
            )
        (out,) = self._session.run(["descriptor"], {"chips": blob})
        return np.asarray(out, dtype=np.float32).reshape(len(blob), -1)

    def descriptors(self, chips: Sequence[NDArray[np.uint8]]) -> F32:
        return self.forward(self.blob(chips))


def create_dlib_resnet(path: Path) -> DlibResNetOnnx:
    """Read dlib's ``.dat`` at ``path`` (its SHA-256 checked by the caller, through
    ``registry.weights_path``), convert it and open it on onnxruntime."""
    from facegate.vision.onnx_repair import release_heap

    net = read_dlib_resnet(Path(path).read_bytes(), Path(path).name)
    resnet = DlibResNetOnnx(net, build_onnx(net))
    del net
    release_heap()  # the parsed weights and graph copies
    return resnet

"""The generator as ONNX, for ONNX Runtime: on the server's CPU (``OnnxGenerator``) and in the visitor's browser
(ONNX Runtime Web in a worker, ``assets/js/worker.js``).

    python -m pix2pix.export [--weights W] [--out model.onnx] [--fp32 | --int8]

The graph takes the noise as inputs, never draws it: ``labels`` (N, 3, H, W) in [-1, 1], the dropout masks
``mask0`` ... (already scaled by 1/(1-p), from ``UnetGenerator.sample_noise``) and, for a generator with a latent
code, ``code`` (N, nz); it gives ``facade`` (N, 3, H, W) in [-1, 1]. So any runtime that follows the seed rule
(``pix2pix.philox`` and ``assets/js/philox.js``) draws the facade torch draws for a seed. Dropout off is masks of
ones and a code of zeros.

Weights are stored in fp16 (27 MB for the bundled model instead of 54) and cast to fp32 at the graph's start;
``int8_weights`` (what a browser downloads: 13.9 MB, 11.9 gzipped) stores the convolutions in int8 with one scale
per output channel, dequantised to fp32 in the graph. Either way the arithmetic is fp32 in every runtime. The fp16
rounding of the weights moves a facade by a fraction of a grey level (``tests/test_export.py`` holds ONNX
Runtime's output within 1e-3 of torch's, on the [-1, 1] scale), int8 by about half a grey level for the bundled
model (measured figures in docs/browser.md).

Why built and cached rather than shipped: every file committed stays in git history (27 MB per model), and the
export takes about a second. ``onnx_file`` builds a generator's ONNX once and keeps it under
``$PIX2PIX_CACHE`` (default ``~/.cache/facade-pix2pix``) named by a hash of its weights, so a new model gets a new
file and a browser's cached copy of an old one is never mistaken for it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models import DROPOUT_P, UnetGenerator
from .weights import WeightsNotFoundError, load_generator, resolve_weights

CACHE_ENV = "PIX2PIX_CACHE"
#: Bumped when the graph's inputs, outputs or storage change, so that cached files of an older layout are rebuilt.
EXPORT_VERSION = 1
OPSET = 17


def input_names(generator: UnetGenerator) -> list[str]:
    """The graph's inputs, in order: the label map, one mask per dropout block, the code (when nz > 0)."""
    masks = [f"mask{k}" for k in range(len(generator.dropout_blocks))]
    return ["labels", *masks, *(["code"] if generator.nz else [])]


def noise_shapes(generator: UnetGenerator, image_size: int) -> list[tuple[int, int, int]]:
    """The per-sample shape of each dropout mask, as ``sample_noise`` draws them."""
    masks, _ = generator.sample_noise([0], image_size)
    return [tuple(m.shape[1:]) for m in masks]


def weights_hash(generator: UnetGenerator) -> str:
    """A short hash of the weights, the configuration and the export layout: the name of a model's ONNX file."""
    digest = hashlib.sha256(f"pix2pix-onnx-{EXPORT_VERSION}".encode())
    if generator.code_max_norm:  # part of the graph, not of the state dict
        digest.update(f"code_max_norm={generator.code_max_norm!r}".encode())
    for key, tensor in generator.state_dict().items():  # the shapes say the configuration (ngf, nz, depth)
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class _WithNoise(nn.Module):
    """The generator with its noise as positional inputs (what ONNX export traces)."""

    def __init__(self, generator: UnetGenerator):
        super().__init__()
        self.generator, self.masks = generator, len(generator.dropout_blocks)

    def forward(self, labels: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        masks, code = list(noise[:self.masks]), (noise[self.masks] if self.generator.nz else None)
        return self.generator(labels, masks=masks, z=code)


def export_onnx(generator: UnetGenerator, path: str | os.PathLike | None = None, image_size: int | None = None,
                fp16_weights: bool = True, int8_weights: bool = False) -> bytes:
    """The generator as an ONNX model (bytes; also written to ``path`` when given), batch size free.

    ``fp16_weights`` stores the weights in fp16, cast to fp32 at the graph's start (see the module's docstring).
    ``int8_weights`` stores the convolutions' weights in int8 with one scale per output channel, dequantised to
    fp32 in the graph (``_store_weights_in_int8``; the rest in fp16): half the bytes again, the arithmetic still
    fp32.
    """
    import onnx

    size = image_size or 2**generator.num_downs
    net = _WithNoise(generator).eval()
    masks, z = generator.sample_noise([0], size)
    example = (torch.zeros(1, generator.in_channels, size, size), *masks, *([z] if z is not None else []))
    names = input_names(generator)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter: the dynamo one needs onnxscript, another dependency, for the same graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, buffer, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["facade"], dynamic_axes={n: {0: "batch"} for n in [*names, "facade"]})
    model = onnx.load_from_string(buffer.getvalue())
    if int8_weights:
        _store_weights_in_int8(model)
    if fp16_weights or int8_weights:  # int8: the rest (biases, norms) in fp16, the scales as they are
        _store_weights_in_fp16(model, frozenset(i.name for i in model.graph.initializer if i.name.endswith(".scale")))
    info = {"pix2pix_export_version": str(EXPORT_VERSION), "pix2pix_weights": "int8" if int8_weights else
            "fp16" if fp16_weights else "fp32", "pix2pix_weights_hash": weights_hash(generator),
            "pix2pix_noise": json.dumps({"shapes": noise_shapes(generator, size), "nz": generator.nz,
                                         "p": DROPOUT_P, "size": size})}
    for key, value in info.items():
        model.metadata_props.add(key=key, value=value)
    data = model.SerializeToString()
    if path is not None:
        _write_atomically(Path(path), data)
    return data


def _store_weights_in_fp16(model, keep: frozenset[str] = frozenset()) -> None:
    """Every fp32 initializer (but those named in ``keep``) becomes an fp16 one with a Cast back to fp32 at the
    graph's start."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < 16 or init.name in keep:
            continue  # small tensors (shapes, scalars) are not worth a Cast
        name = init.name
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}.fp16"))
        casts.append(onnx.helper.make_node("Cast", [f"{name}.fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


#: The int8 values used: -INT8_LEVELS..INT8_LEVELS. 120 rather than 127: steps 6% coarser (the facades move by
#: about 0.03 grey levels more) for a file that gzips 1.2% smaller, under 12 MB for the bundled model.
INT8_LEVELS = 120


def int8_per_channel(weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``weights``, one scale per slice along ``axis``: (int8 values, fp32 scales), with
    ``values * scales`` (broadcast along ``axis``) the weights to within half a scale step."""
    moved = np.moveaxis(weights.astype(np.float32), axis, 0)
    peak = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scales = np.where(peak > 0, peak / INT8_LEVELS, 1.0).astype(np.float32)
    shape = [1] * weights.ndim
    shape[axis] = -1
    values = np.clip(np.rint(weights / scales.reshape(shape)), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return values, scales


#: Convolutions with fewer weights than this stay fp16 under int8: the first and the last layer (the image's own
#: channels in and out), where int8 would cost the most accuracy for the fewest bytes.
INT8_MIN_WEIGHTS = 16_384


def int8_weight_axes(model) -> dict[str, int]:
    """The convolutions' weight initializers to store in int8 (``INT8_MIN_WEIGHTS`` and more) and their
    output-channel axis: 0 for Conv (out, in, kh, kw), 1 for ConvTranspose (in, out, kh, kw)."""
    inits = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    axes = {}
    for node in model.graph.node:
        if (node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1
                and inits.get(node.input[1], 0) >= INT8_MIN_WEIGHTS):
            axes[node.input[1]] = 0 if node.op_type == "Conv" else 1
    return axes


def _store_weights_in_int8(model) -> None:
    """Every convolution's weights become int8 with per-output-channel fp32 scales and a ``DequantizeLinear``
    back to fp32 at the graph's start (what ONNX Runtime Web then computes with: fp32, as for fp16 storage)."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    axes = int8_weight_axes(model)
    nodes, extra = [], []
    for init in graph.initializer:
        if init.name not in axes or init.data_type != onnx.TensorProto.FLOAT:
            continue
        name, axis = init.name, axes[init.name]
        values, scales = int8_per_channel(numpy_helper.to_array(init), axis)
        init.CopyFrom(numpy_helper.from_array(values, f"{name}.int8"))
        extra.append(numpy_helper.from_array(scales, f"{name}.scale"))
        extra.append(numpy_helper.from_array(np.zeros_like(values, shape=scales.shape), f"{name}.zero"))
        nodes.append(onnx.helper.make_node("DequantizeLinear", [f"{name}.int8", f"{name}.scale", f"{name}.zero"],
                                           [name], axis=axis))
    graph.initializer.extend(extra)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)


def quantised_generator(generator: UnetGenerator) -> UnetGenerator:
    """A copy of ``generator`` whose convolution weights are what the int8 ONNX computes with (int8 times its
    per-channel scale, in fp32; the other weights rounded to fp16): for measuring the int8 model with torch's
    tools (``python -m train.evaluate``)."""
    import copy

    out = copy.deepcopy(generator).eval()
    with torch.no_grad():
        for module in out.modules():
            for pname, param in list(module.named_parameters(recurse=False)):
                data = param.detach().cpu().float().numpy()
                if (pname == "weight" and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
                        and data.size >= INT8_MIN_WEIGHTS):
                    values, scales = int8_per_channel(data, 0 if isinstance(module, nn.Conv2d) else 1)
                    shape = [1] * data.ndim
                    shape[0 if isinstance(module, nn.Conv2d) else 1] = -1
                    data = values.astype(np.float32) * scales.reshape(shape)
                elif data.size >= 16:
                    data = data.astype(np.float16).astype(np.float32)
                param.copy_(torch.from_numpy(data))
    return out


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(staging, path)


def cache_root() -> Path:
    """The project's cache folder: ``$PIX2PIX_CACHE`` or ``~/.cache/facade-pix2pix`` (built ONNX files, the layout
    segmenter of ``train.fidelity``)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "facade-pix2pix").expanduser()


def cache_dir() -> Path:
    """Where built ONNX files are kept: ``$PIX2PIX_CACHE/onnx`` or ``~/.cache/facade-pix2pix/onnx``."""
    return cache_root() / "onnx"


def onnx_file(generator: UnetGenerator, int8: bool = False) -> Path:
    """The generator's ONNX file (fp16 weights; ``int8``: int8 convolutions, ``_store_weights_in_int8``), built
    on first use and cached under ``cache_dir()``, named by ``weights_hash`` (and ``-int8``). A cached file that
    cannot be read as ONNX is rebuilt."""
    path = cache_dir() / f"{weights_hash(generator)}{'-int8' if int8 else ''}.onnx"
    if path.is_file():
        try:
            import onnx

            onnx.load(str(path), load_external_data=False)
            return path
        except Exception:  # a truncated or damaged file: make it again
            pass
    export_onnx(generator, path, int8_weights=int8)
    return path


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` (for the export) can be imported here."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxGenerator:
    """A generator run by ONNX Runtime on the CPU, called like ``UnetGenerator``: ``(x, masks=, z=)`` -> tensor.

    No masks (dropout off) means masks of ones and a zero code, which is what the torch generator computes in
    eval mode. ``threads`` defaults to torch's intra-op threads (``webapp.serving.serving_threads`` sets those
    for a server); ORT's threads do not spin between calls, for the reason torch's are kept off the Python
    thread's core (see ``serving_threads``).
    """

    def __init__(self, generator: UnetGenerator, model: str | os.PathLike | bytes | None = None,
                 threads: int | None = None):
        import onnxruntime as ort

        self.nz, self.names = generator.nz, input_names(generator)
        self._mask_shapes = noise_shapes(generator, 2**generator.num_downs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        source = model if model is not None else export_onnx(generator)
        if isinstance(source, os.PathLike):
            source = str(source)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None,
                 z: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        if masks is None:
            masks = [torch.ones(n, *shape) for shape in self._mask_shapes]
        feed = {"labels": x.detach().float().cpu().numpy()}
        for k, mask in enumerate(masks):
            feed[f"mask{k}"] = mask.detach().float().cpu().numpy()
        if self.nz:
            feed["code"] = (torch.zeros(n, self.nz) if z is None else z).detach().float().cpu().numpy()
        return torch.from_numpy(self.session.run(["facade"], feed)[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pix2pix.export",
                                     description="Write a generator as ONNX (fp16 weights; noise as inputs).")
    parser.add_argument("--weights", help="save_pretrained folder, .safetensors, official .pth or Hub repo id "
                        "(default: $PIX2PIX_WEIGHTS, then assets/weights)")
    parser.add_argument("--out", default="model.onnx", help="the ONNX file to write (default model.onnx)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--fp32", action="store_true", help="keep the weights in fp32 (twice the size)")
    weights.add_argument("--int8", action="store_true", help="the convolutions in int8 with per-channel scales "
                         "(half the size; what the app serves to browsers)")
    args = parser.parse_args(argv)
    try:
        generator = load_generator(resolve_weights(args.weights))
    except WeightsNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as e:
        print(f"error: cannot load the weights: {e}", file=sys.stderr)
        return 1
    try:
        data = export_onnx(generator, args.out, fp16_weights=not args.fp32, int8_weights=args.int8)
    except ImportError as e:
        print(f"error: the export needs the onnx package ({e}); pip install onnx", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB; inputs {', '.join(input_names(generator))}; "
          f"weights {'fp32' if args.fp32 else 'int8' if args.int8 else 'fp16'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

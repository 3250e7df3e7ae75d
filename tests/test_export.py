"""The ONNX export (``pix2pix.export``) against the torch model, run by onnxruntime on the CPU, and the server's
ONNX Runtime path chosen by the speed rule."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import pix2pix.fast
from pix2pix import Pix2Pix, UnetGenerator
from pix2pix.export import (
    INT8_LEVELS,
    OnnxGenerator,
    export_onnx,
    input_names,
    int8_per_channel,
    main,
    onnx_file,
    quantised_generator,
    weights_hash,
)
from pix2pix.fast import plan_inference


@pytest.fixture(scope="module")
def coded_generator() -> UnetGenerator:
    """A tiny generator with a latent code (the bundled model's kind: nz = 8)."""
    torch.manual_seed(1)
    return UnetGenerator(ngf=8, nz=8).eval()


@pytest.mark.parametrize("coded", [False, True])
def test_onnxruntime_matches_torch_for_seeded_noise_and_dropout_off(tiny_generator, coded_generator, coded):
    generator = coded_generator if coded else tiny_generator
    data = export_onnx(generator)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == input_names(generator)
    assert input_names(generator)[-1] == ("code" if coded else "mask2")
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    masks, z = generator.sample_noise([5, 6], 256)
    feed = {"labels": x.numpy(), **{f"mask{k}": m.numpy() for k, m in enumerate(masks)}}
    if coded:
        feed["code"] = z.numpy()
    with torch.inference_mode():
        expected = generator(x, masks=masks, z=z).numpy()
        off = generator(x).numpy()
    got = session.run(["facade"], feed)[0]
    assert got.shape == (2, 3, 256, 256)
    assert np.abs(got - expected).max() <= 1e-3
    assert np.abs(got - off).max() > 0.01  # the masks and the code reached the graph
    assert np.abs(OnnxGenerator(generator, data)(x).numpy() - off).max() <= 1e-3  # dropout off: ones, zero code


def test_weights_are_stored_in_fp16_and_the_noise_is_described(coded_generator):
    model = onnx.load_from_string(export_onnx(coded_generator))
    big = [i for i in model.graph.initializer if np.prod(i.dims) >= 16]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["pix2pix_weights_hash"] == weights_hash(coded_generator)
    assert json.loads(meta["pix2pix_noise"]) == {"shapes": [[64, 4, 4], [64, 8, 8], [64, 16, 16]], "nz": 8,
                                                 "p": 0.5, "size": 256}


def test_int8_weights_per_output_channel_dequantised_in_the_graph(coded_generator):
    """The browser's model: the convolutions' weights in int8 with one fp32 scale per output channel and a
    DequantizeLinear to fp32 in the graph (the arithmetic stays fp32), half the fp16 file; it computes exactly
    what ``quantised_generator`` does in torch, within a grey level of the fp16 model on this tiny one."""
    fp16, int8 = export_onnx(coded_generator), export_onnx(coded_generator, int8_weights=True)
    model = onnx.load_from_string(int8)
    quantised = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    dequantise = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert quantised and len(dequantise) == len(quantised) and len(int8) < 0.6 * len(fp16)
    conv_types = {n.op_type for n in model.graph.node if n.op_type.startswith("Conv")}
    assert conv_types == {"Conv", "ConvTranspose"}
    axes = {n.input[0]: next(a.i for a in n.attribute if a.name == "axis") for n in dequantise}
    assert set(axes.values()) == {0, 1}  # Conv (out, in, kh, kw) and ConvTranspose (in, out, kh, kw)
    weights = np.random.default_rng(0).normal(size=(8, 4, 3, 3)).astype(np.float32)
    weights[3] *= 100  # one loud channel does not coarsen the others
    values, scales = int8_per_channel(weights, 0)
    assert values.dtype == np.int8 and np.abs(values).max() == INT8_LEVELS and scales.shape == (8,)
    assert (np.abs(values * scales[:, None, None, None] - weights).max(axis=(1, 2, 3)) <= scales / 2 + 1e-6).all()
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    masks, z = coded_generator.sample_noise([5, 6], 256)
    feed = {"labels": x.numpy(), **{f"mask{k}": m.numpy() for k, m in enumerate(masks)}, "code": z.numpy()}
    got = ort.InferenceSession(int8, providers=["CPUExecutionProvider"]).run(["facade"], feed)[0]
    with torch.inference_mode():
        same = quantised_generator(coded_generator)(x, masks=masks, z=z).numpy()
        full = coded_generator(x, masks=masks, z=z).numpy()
    assert np.abs(got - same).max() <= 1e-3
    assert np.abs(got - full).mean() * 127.5 <= 1.0  # within a grey level (mean) of the full model


def test_onnx_file_is_built_once_named_by_the_weights_and_rebuilt_when_damaged(tiny_generator, coded_generator,
                                                                               monkeypatch, tmp_path):
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path))
    path = onnx_file(tiny_generator)
    assert path.parent == tmp_path / "onnx" and path.stem == weights_hash(tiny_generator)
    stamp = path.stat().st_mtime_ns
    assert onnx_file(tiny_generator).stat().st_mtime_ns == stamp  # cached, not exported again
    assert onnx_file(coded_generator) != path  # other weights, another file
    path.write_bytes(b"not onnx")
    assert onnx_file(tiny_generator) == path and len(path.read_bytes()) > 1000
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_onnxruntime_runtime_draws_the_torch_facade(tiny_generator, data_dir):
    label = data_dir / "label_jpeg_noisy.jpg"
    torch_model = Pix2Pix(tiny_generator, "cpu", precision="fp32", fast_path=False)
    onnx_model = Pix2Pix(tiny_generator, "cpu", runtime="onnxruntime")
    assert onnx_model.plan.name == "fp32 on onnxruntime" and isinstance(onnx_model._net, OnnxGenerator)
    for stochastic in (True, False):
        a = np.asarray(torch_model.generate(label, seed=9, stochastic=stochastic)[0], np.float32)
        b = np.asarray(onnx_model.generate(label, seed=9, stochastic=stochastic)[0], np.float32)
        assert np.abs(a - b).max() <= 1
    batch = onnx_model.generate(label, seed=9, num_samples=2)
    assert np.abs(np.asarray(batch[0], np.float32) - b).max() > 0  # b is dropout off; batch[0] is seed 9


def test_the_speed_rule_serves_with_onnxruntime_when_it_is_timed_fastest(monkeypatch, tiny_generator):
    seconds = {("fp32", "plain"): 1.0, ("fp32", "gemm"): 0.9, ("fp32", "onnxruntime"): 0.7, ("bf16", "gemm"): 0.65}
    seen = []
    monkeypatch.setattr(pix2pix.fast, "time_inference", lambda generator, variants: seen.append(variants) or seconds)
    monkeypatch.setattr(pix2pix.fast, "cpu_has_bf16", lambda: True)
    model = Pix2Pix(tiny_generator, "cpu")
    assert not seen  # making a Pix2Pix times nothing; choose_fastest does
    model.choose_fastest()
    assert ("fp32", "onnxruntime") in seen[0]
    assert model.plan.layout == "onnxruntime" and isinstance(model._net, OnnxGenerator)  # bf16 only 1.08x more
    assert "fp32 on onnxruntime 1.43x" in model.plan.why
    plan_inference(tiny_generator, torch.device("cpu"), runtime="torch")
    assert ("fp32", "onnxruntime") not in seen[-1]
    with pytest.raises(ValueError, match="onnxruntime runs fp32 on the CPU"):
        plan_inference(tiny_generator, torch.device("cpu"), "bf16", runtime="onnxruntime")
    with pytest.raises(ValueError, match="unknown runtime"):
        plan_inference(tiny_generator, torch.device("cpu"), runtime="tvm")


def test_the_export_command_writes_a_model_or_says_why_not(tiny_weights, tmp_path, capsys):
    out = tmp_path / "tiny.onnx"
    assert main(["--weights", str(tiny_weights), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out and out.stat().st_size > 1000
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert main(["--weights", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "no such weights file or folder" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()

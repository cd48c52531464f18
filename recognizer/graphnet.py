"""A trainable torch module that runs a graph stored as JSON (a list of ONNX-style nodes) over named weights.

The photo reader (``recognizer/photoreader.py``) is initialised from an ONNX recogniser: its nodes are
kept as a JSON list and its weights as safetensors, and this module runs them in torch so they can be
fine-tuned; ``to_onnx`` writes the same graph back for ONNX Runtime. Only the operators that graph
uses are implemented; any other raises ``NotImplementedError`` with the operator's name.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _pad_same(x: torch.Tensor, k: list[int], value: float = 0.0) -> torch.Tensor:
    ph, pw = k[0] - 1, k[1] - 1     # SAME_UPPER at stride 1: the extra pixel goes after
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


class GraphNet(nn.Module):
    """``graph``: {"input", "output", "nodes": [{"op", "in", "out", "attrs"}]}; ``weights``: name -> array.

    Float tensors with more than one element are trainable parameters (BatchNorm running statistics
    are used as constants); the rest (shapes, scalars) are constants.
    """

    def __init__(self, graph: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.graph = graph
        self.names: dict[str, str] = {}
        self.params = nn.ParameterDict()
        self.consts: dict[str, torch.Tensor] = {}
        for k, v in weights.items():
            v = np.asarray(v)
            if v.dtype.kind == "f" and v.size > 1:
                self.names[k] = k.replace(".", "_")
                self.params[self.names[k]] = nn.Parameter(torch.from_numpy(v.astype(np.float32)))
            else:
                self.consts[k] = torch.from_numpy(v.copy())

    def weight(self, name: str) -> torch.Tensor:
        return self.params[self.names[name]]

    def named_weights(self) -> dict[str, torch.Tensor]:
        """Every weight under its graph name (parameters and constants), for saving."""
        out = {k: self.params[s].detach() for k, s in self.names.items()}
        out.update(self.consts)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.graph["input"]: x}

        def get(name: str) -> torch.Tensor:
            if name in env:
                return env[name]
            if name in self.names:
                return self.params[self.names[name]]
            return self.consts[name]

        for n in self.graph["nodes"]:
            op, a = n["op"], n["attrs"]
            i = [get(k) if k else None for k in n["in"]]
            if op == "Identity":
                y = i[0]
            elif op == "Conv":
                k, st = a["kernel_shape"], a.get("strides", [1, 1])
                d, g, b = a.get("dilations", [1, 1]), a.get("group", 1), i[2] if len(i) > 2 else None
                if a.get("auto_pad") == "SAME_UPPER":
                    y = F.conv2d(_pad_same(i[0], k), i[1], b, st, 0, d, g)
                else:
                    p = a.get("pads", [0, 0, 0, 0])
                    y = F.conv2d(i[0], i[1], b, st, (p[0], p[1]), d, g)
            elif op == "Add":
                y = i[0] + i[1]
            elif op == "Sub":
                y = i[0] - i[1]
            elif op == "Mul":
                y = i[0] * i[1]
            elif op == "Div":
                y = i[0] / i[1]
            elif op == "Pow":
                y = torch.pow(i[0], i[1])
            elif op == "Sqrt":
                y = torch.sqrt(i[0])
            elif op == "Erf":
                y = torch.erf(i[0])
            elif op == "Relu":
                y = F.relu(i[0])
            elif op == "Sigmoid":
                y = torch.sigmoid(i[0])
            elif op == "HardSigmoid":
                y = torch.clamp(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5), 0, 1)
            elif op == "ReduceMean":
                y = i[0].mean(dim=a["axes"], keepdim=bool(a.get("keepdims", 1)))
            elif op == "MatMul":
                y = i[0] @ i[1]
            elif op == "Softmax":
                y = torch.softmax(i[0], dim=a.get("axis", -1))
            elif op == "Transpose":
                y = i[0].permute(*a["perm"])
            elif op == "Squeeze":
                y = i[0].squeeze(a["axes"][0])
            elif op == "Unsqueeze":
                y = i[0].unsqueeze(a["axes"][0])
            elif op == "Shape":
                y = torch.tensor(i[0].shape, dtype=torch.int64)
            elif op == "Slice":
                ax = _ints(i[3])[0] if len(i) > 3 and i[3] is not None else 0
                if len(i) > 4 and i[4] is not None and _ints(i[4])[0] != 1:
                    raise NotImplementedError("Slice with a step")
                size = i[0].shape[ax]
                st, en = _ints(i[1])[0], _ints(i[2])[0]
                st, en = (st + size if st < 0 else min(st, size)), (en + size if en < 0 else min(en, size))
                y = i[0].narrow(ax, st, max(0, en - st))
            elif op == "Concat":
                y = torch.cat([t.reshape(-1) if t.dim() == 0 else t for t in i], dim=a["axis"])
            elif op == "Reshape":
                shape = [i[0].shape[j] if s == 0 else s for j, s in enumerate(_ints(i[1]))]
                y = i[0].reshape(shape)
            elif op == "BatchNormalization":
                y = F.batch_norm(i[0], i[3].detach(), i[4].detach(), i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
            elif op == "MaxPool":
                k, st = a["kernel_shape"], a.get("strides", [1, 1])
                xx = _pad_same(i[0], k, float("-inf")) if a.get("auto_pad") == "SAME_UPPER" else i[0]
                y = F.max_pool2d(xx, k, st)
            elif op == "AveragePool":
                k, st = list(a["kernel_shape"]), list(a.get("strides", a["kernel_shape"]))
                k[0] = st[0] = min(k[0], i[0].shape[2])   # pools the whole height on lower inputs
                y = F.avg_pool2d(i[0], k, st, 0, bool(a.get("ceil_mode", 0)), bool(a.get("count_include_pad", 0)))
            else:
                raise NotImplementedError(f"graph operator {op}")
            for o in n["out"]:
                env[o] = y
        return env[self.graph["output"]]


def graph_from_onnx(model) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """An ``onnx.ModelProto`` -> (graph as JSON-able dict, weights by name)."""
    import onnx
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        attrs = {}
        for at in n.attribute:
            v = onnx.helper.get_attribute_value(at)
            if isinstance(v, onnx.TensorProto):
                v = numpy_helper.to_array(v)
                if n.op_type == "Constant":
                    weights[n.output[0]] = v.copy()
                continue
            attrs[at.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) else v)
        if n.op_type == "Constant":
            continue
        nodes.append({"op": n.op_type, "in": list(n.input), "out": list(n.output), "attrs": attrs})
    return {"input": model.graph.input[0].name, "output": model.graph.output[0].name, "nodes": nodes}, weights


def to_onnx(graph: dict[str, Any], weights: dict[str, np.ndarray], num_classes: int, opset: int = 17) -> bytes:
    """The graph and weights as an ONNX model: input ``x`` (N x 3 x H x W), output ``probs`` (N x T x C)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node(n["op"], n["in"], n["out"], **n["attrs"]) for n in graph["nodes"]]
    nodes.append(helper.make_node("Identity", [graph["output"]], ["probs"]))
    used = {k for n in graph["nodes"] for k in n["in"]}
    inits = [numpy_helper.from_array(np.asarray(v, np.float32 if np.asarray(v).dtype.kind == "f" else None), k)
             for k, v in weights.items() if k in used]
    g = helper.make_graph(nodes, "photo_reader", [helper.make_tensor_value_info(graph["input"], TensorProto.FLOAT,
                                                                                ["n", 3, "h", "w"])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", "t", num_classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="tagloop")
    return m.SerializeToString()

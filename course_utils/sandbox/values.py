"""What crosses the sandbox's boundary as data: the cases the grader sends to the kernel, the outputs a
harvest cell sends back. One format both ways: ``b"CGH1"``, the length of a JSON header (8 bytes, little
endian), the header, then the tensors' bytes. In the header a tensor is ``{"__tensor__": i}`` (its dtype and
shape in ``"tensors"``), a tuple ``{"__tuple__": [...]}``, a NoiseSchedule ``{"__schedule__": {field: ...}}``.

No pickle on either side (nothing runs on load), nothing compressed (nothing inflates): ``decode_outputs``
checks every bound before it allocates (the header's size, the dtypes, shapes that match the bytes, at most
``MAX_ELEMENTS`` numbers, nesting depth, integers within 64 bits) and makes text valid Unicode.

``HARVEST_CODE`` is the kernel's half (it runs in the student's kernel, so it imports nothing of the grader's):
it decodes the cases, calls the check's ``call`` with the student's object on each, as ``checks.harvest`` does,
and encodes the outputs.
"""
from __future__ import annotations

import json
import re

MAX_ELEMENTS = 4 * 2 ** 20           # tensor elements in one harvest file
MAX_HEADER_BYTES = 2 ** 20           # the JSON part of a harvest file (the largest real one: a few kB)
_SURROGATES = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate (valid JSON, invalid Unicode) becomes U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


HARVEST_CODE = """\
def _course_grade_harvest(check, target, obj, cases_path, out_path):
    import json, os, torch, traceback
    if obj is None:
        def obj(*args, **kwargs):
            raise NameError(f"name {target!r} is not defined: did its cell run, or was it renamed?")
    from course_utils.checks import CHECKS
    from course_utils.schedules import NoiseSchedule
    with open(cases_path, "rb") as f:
        data = f.read()
    size = int.from_bytes(data[4:12], "little")
    header, payload = json.loads(data[12:12 + size]), data[12 + size:]
    tensors, offset = [], 0
    for spec in header["tensors"]:
        dtype, numel = getattr(torch, spec["dtype"]), 1
        for n in spec["shape"]:
            numel *= n
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        raw = bytearray(payload[offset:offset + nbytes])
        tensors.append(torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(spec["shape"]) if numel
                       else torch.empty(spec["shape"], dtype=dtype))
        offset += nbytes

    def build(x):
        if isinstance(x, dict):
            if "__tensor__" in x:
                return tensors[x["__tensor__"]].clone()
            if "__tuple__" in x:
                return tuple(build(v) for v in x["__tuple__"])
            if "__schedule__" in x:
                return NoiseSchedule(**{k: build(v) for k, v in x["__schedule__"].items()})
            return {k: build(v) for k, v in x.items()}
        return [build(v) for v in x] if isinstance(x, list) else x

    blobs, specs = [], []

    def encode(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            blobs.append(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            specs.append({"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)})
            return {"__tensor__": len(specs) - 1}
        if isinstance(x, dict):
            return {str(k): encode(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [encode(v) for v in x]
        if isinstance(x, (int, float, bool, str)) or x is None:
            return x
        raise TypeError(f"expected tensors (or tuples of tensors), got {type(x).__name__}")

    outputs = []
    for case in build(header["values"]):       # what checks.harvest does, on the cases the grader sent
        try:
            n = len(specs)
            outputs.append(encode(CHECKS[check].call(obj, case)))
        except NotImplementedError:
            del specs[n:], blobs[n:]
            outputs.append({"error": "NotImplementedError", "message": "not implemented yet"})
        except Exception as err:
            del specs[n:], blobs[n:]
            frame = traceback.extract_tb(err.__traceback__)[-1]
            outputs.append({"error": type(err).__name__, "message": f"{str(err)[:1000]} (line {frame.lineno})"})
    head = json.dumps({"values": outputs, "tensors": specs}).encode()
    with open(out_path + ".tmp", "wb") as f:
        f.write(b"CGH1" + len(head).to_bytes(8, "little") + head + b"".join(blobs))
    os.replace(out_path + ".tmp", out_path)
"""

def encode_values(values) -> bytes:
    """``values`` (tensors, NoiseSchedules, lists, tuples, dicts, numbers, text) in the harvest files' format."""
    from ..schedules import NoiseSchedule
    import torch
    blobs, specs = [], []

    def encode(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            blobs.append(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            specs.append({"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)})
            return {"__tensor__": len(specs) - 1}
        if isinstance(x, NoiseSchedule):
            return {"__schedule__": {k: encode(v) for k, v in vars(x).items()}}
        if isinstance(x, tuple):
            return {"__tuple__": [encode(v) for v in x]}
        if isinstance(x, list):
            return [encode(v) for v in x]
        if isinstance(x, dict):
            return {str(k): encode(v) for k, v in x.items()}
        if isinstance(x, (int, float, bool, str)) or x is None:
            return x
        raise TypeError(f"cannot send a {type(x).__name__} to the kernel")

    head = json.dumps({"values": encode(values), "tensors": specs}).encode()
    return b"CGH1" + len(head).to_bytes(8, "little") + head + b"".join(blobs)


_DTYPES = {"float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32",
           "int64", "uint8", "bool"}


def decode_outputs(data: bytes) -> list:
    """The outputs a harvest cell wrote: checked bounds everywhere, no pickle, no decompression."""
    import torch
    if len(data) < 12 or data[:4] != b"CGH1":
        raise ValueError("not a harvest file (was it replaced?)")
    size = int.from_bytes(data[4:12], "little")
    if size > len(data) - 12:
        raise ValueError("truncated harvest file")
    if size > MAX_HEADER_BYTES:     # JSON of many small values costs ~30x its size in Python objects
        raise ValueError(f"the outputs' structure is too large ({size / 2 ** 20:.1f} MB)")
    header = json.loads(data[12:12 + size].decode("utf-8"))
    payload = memoryview(data)[12 + size:]
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise ValueError("malformed harvest file")
    tensors, offset, elements = [], 0, 0
    for spec in header["tensors"]:
        dtype, shape = (spec.get("dtype"), spec.get("shape")) if isinstance(spec, dict) else (None, None)
        if dtype not in _DTYPES or not isinstance(shape, list) or len(shape) > 8 or not all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape):
            raise ValueError("malformed tensor in the harvest file")
        numel = 1
        for n in shape:
            numel *= n
        elements += numel
        if elements > MAX_ELEMENTS:
            raise ValueError(f"the outputs hold more than {MAX_ELEMENTS} numbers")
        dt = getattr(torch, dtype)
        nbytes = numel * torch.empty((), dtype=dt).element_size()
        if offset + nbytes > len(payload):
            raise ValueError("truncated harvest file")
        raw = bytearray(payload[offset:offset + nbytes])
        tensors.append(torch.frombuffer(raw, dtype=torch.uint8).view(dt).reshape(shape) if numel
                       else torch.empty(shape, dtype=dt))
        offset += nbytes
    count = [0]

    def decode(x, depth: int):
        count[0] += 1
        if depth > 20 or count[0] > 100_000:
            raise ValueError("the outputs are nested too deeply, or too many")
        if isinstance(x, dict):
            if set(x) == {"__tensor__"} and isinstance(x["__tensor__"], int) and 0 <= x["__tensor__"] < len(tensors):
                return tensors[x["__tensor__"]]
            if set(x) == {"__tuple__"} and isinstance(x["__tuple__"], list):
                return [decode(v, depth + 1) for v in x["__tuple__"]]
            return {k: decode(v, depth + 1) for k, v in x.items()}
        if isinstance(x, list):
            return [decode(v, depth + 1) for v in x]
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2 ** 63:
            raise ValueError("an integer out of range in the outputs")
        if isinstance(x, str):
            return valid_text(x[:2000])
        return x

    outputs = decode(header.get("values"), 0)
    if not isinstance(outputs, list):
        raise TypeError(f"expected a list of outputs, got {type(outputs).__name__}")
    return outputs



"""The harvest format's code, one copy for both sides of the sandbox: the grader packs the cases and unpacks
the outputs here; the student's kernel runs this same source (``values.HARVEST_CODE`` carries it as text and
executes it in a private namespace), so the two halves of the format cannot drift apart.

Format: ``b"CGH1"``, the length of a JSON header (8 bytes, little endian), the header
``{"values": ..., "tensors": [{"dtype", "shape"}, ...]}``, then the tensors' bytes in order. In ``values`` a
tensor is ``{"__tensor__": i}``; ``Packer(special=...)`` adds other forms (the grader's tuples and schedules).

This module imports json and torch only, and nothing of course_utils: it must run inside the kernel too.
``unpack`` checks every bound before it allocates (the header's size, the dtypes, shapes that match the
bytes, at most ``MAX_ELEMENTS`` numbers); no pickle, nothing compressed.
"""
import json

import torch

MAGIC = b"CGH1"
MAX_ELEMENTS = 4 * 2 ** 20           # tensor elements in one harvest file
MAX_HEADER_BYTES = 2 ** 20           # the JSON part of a harvest file (the largest real one: a few kB)
DTYPES = {"float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32",
          "int64", "uint8", "bool"}


class NotEncodable(TypeError):
    """A value the format has no form for; ``value`` is the value (the harvest words the student's message)."""

    def __init__(self, value):
        super().__init__(f"expected tensors (or tuples of tensors), got {type(value).__name__}")
        self.value = value


class Packer:
    """Values (tensors, dicts, lists, tuples, numbers, text, None) -> JSON, each tensor's bytes kept aside.

    ``special(x, encode)`` may return the JSON of a value it knows (else None); it is asked before dicts and
    lists, so it can give tuples a form of their own. ``mark``/``rollback`` drop the tensors of a value whose
    encoding failed half-way.
    """

    def __init__(self, special=None):
        self.specs, self.blobs, self.special = [], [], special

    def encode(self, x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            self.blobs.append(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            self.specs.append({"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)})
            return {"__tensor__": len(self.specs) - 1}
        if self.special is not None:
            found = self.special(x, self.encode)
            if found is not None:
                return found
        if isinstance(x, dict):
            return {str(k): self.encode(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [self.encode(v) for v in x]
        if isinstance(x, (int, float, bool, str)) or x is None:
            return x
        raise NotEncodable(x)

    def mark(self) -> int:
        return len(self.specs)

    def rollback(self, mark: int) -> None:
        del self.specs[mark:], self.blobs[mark:]

    def to_bytes(self, encoded) -> bytes:
        """The file: ``encoded`` (what ``encode`` returned, or a list of such) and the tensors kept aside."""
        head = json.dumps({"values": encoded, "tensors": self.specs}).encode()
        return MAGIC + len(head).to_bytes(8, "little") + head + b"".join(self.blobs)


def unpack(data: bytes):
    """(the header's ``values`` as parsed JSON, the list of tensors), every bound checked before allocating."""
    if len(data) < 12 or data[:4] != MAGIC:
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
        if dtype not in DTYPES or not isinstance(shape, list) or len(shape) > 8 or not all(
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
    return header.get("values"), tensors

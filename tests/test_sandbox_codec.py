"""The harvest format (course_utils/sandbox/codec.py): what the student's kernel packs, the grader unpacks
unchanged, and a file written by the student's code (which can write any bytes there) is refused before the
grader allocates what it asks for: the tensors' numbers are bounded per file, the JSON header by its size."""
from __future__ import annotations

import json

import pytest
import torch

from course_utils.sandbox import codec


def test_values_and_tensors_come_back_unchanged():
    """What the grader judges is exactly what the student's functions returned: every dtype's bits, shapes
    (0-d, empty, non-contiguous) and the structure around them."""
    tensors = [torch.arange(6, dtype=torch.float64).reshape(2, 3).t(), torch.tensor(-0.0, dtype=torch.bfloat16),
               torch.zeros(0, 4, dtype=torch.int64), torch.tensor([True, False]), torch.tensor([1 + 2j]),
               torch.tensor([float("nan"), float("inf")], dtype=torch.float16)]
    packer = codec.Packer()
    encoded = {"case": [packer.encode(t) for t in tensors], "note": ("text", 3, 0.5, None, False)}
    values, back = codec.unpack(packer.to_bytes(encoded))
    assert values == {"case": [{"__tensor__": i} for i in range(len(tensors))], "note": ["text", 3, 0.5, None, False]}
    assert len(back) == len(tensors)
    for want, got in zip(tensors, back):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got.reshape(-1).view(torch.uint8), want.contiguous().reshape(-1).view(torch.uint8))


def test_the_numbers_of_a_file_are_bounded_together():
    """MAX_ELEMENTS bounds a harvest file, not each tensor: otherwise a student's outputs made of many tensors
    just under the bound each would have the grader allocate as many times the memory it allows for one file."""
    half = codec.MAX_ELEMENTS // 2
    packer = codec.Packer()                 # uint8: one byte a number, 4 MB in all
    encoded = [packer.encode(torch.zeros(half, dtype=torch.uint8)), packer.encode(torch.ones(half, dtype=torch.uint8))]
    _, back = codec.unpack(packer.to_bytes(encoded))                # at the bound: read
    assert [t.numel() for t in back] == [half, half]
    packer = codec.Packer()
    encoded = [packer.encode(torch.zeros(half + 1, dtype=torch.uint8)),      # each under the bound
               packer.encode(torch.ones(half, dtype=torch.uint8))]
    with pytest.raises(ValueError, match=f"more than {codec.MAX_ELEMENTS} numbers"):
        codec.unpack(packer.to_bytes(encoded))


def test_a_header_over_its_bound_is_refused():
    """The JSON header is parsed in the grader's memory at ~30 times its size in Python objects: one over
    MAX_HEADER_BYTES (1 MB; the real ones are a few kB) is refused unread, even when it is valid JSON."""
    head = json.dumps({"values": [0] * (2 * codec.MAX_HEADER_BYTES // 3), "tensors": []}).encode()
    assert len(head) // 2 ** 20 == 2                                  # 2 MB of valid JSON
    with pytest.raises(ValueError, match="structure is too large"):
        codec.unpack(codec.MAGIC + len(head).to_bytes(8, "little") + head)


@pytest.mark.parametrize("spec", [{"dtype": "float32", "shape": [1] * 9}, {"dtype": "float32", "shape": [-1, 2]},
                                  {"dtype": "float8_e5m2", "shape": [1]}, {"dtype": "float32", "shape": [4]}])
def test_malformed_or_truncated_tensors_are_refused(spec):
    """Nine dimensions, a negative size, a dtype outside the list, fewer bytes than the shape needs: each is a
    ValueError before anything is allocated (a negative size would also lower the count of numbers)."""
    head = json.dumps({"values": [{"__tensor__": 0}], "tensors": [spec]}).encode()
    data = codec.MAGIC + len(head).to_bytes(8, "little") + head + bytes(4)
    with pytest.raises(ValueError, match="malformed|truncated"):
        codec.unpack(data)

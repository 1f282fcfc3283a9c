"""What crosses the sandbox's boundary as data: the cases the grader sends to the kernel, the outputs a
harvest cell sends back, both in the harvest format of ``codec`` (whose source both sides run). In the cases
a tuple is ``{"__tuple__": [...]}`` and a NoiseSchedule ``{"__schedule__": {field: ...}}``; outputs come back
with tensors, lists, dicts, numbers and text only.

No pickle on either side (nothing runs on load), nothing compressed (nothing inflates): ``decode_outputs``
checks every bound before it allocates (``codec.unpack``; then nesting depth, integers within 64 bits, each
tensor used once, so the outputs hold at most ``codec.MAX_ELEMENTS`` numbers) and makes text valid Unicode.

``HARVEST_CODE`` is the kernel's half (it runs in the student's kernel, so it imports nothing of the grader's):
it executes ``codec``'s source in a namespace of its own, decodes the cases, calls the check's ``call`` with
the student's object on each, as ``checks.harvest`` does, and encodes the outputs, then, as a last element, the
case's tensors as each call left them (the grader judges whether an input changed: ``checks.judge_inputs``).
"""
from __future__ import annotations

import inspect

from ..grade_files import valid_text
from . import codec
from .codec import Packer, unpack



_KERNEL_HALF = """\
def _course_grade_harvest(check, target, obj, cases_path, out_path):
    import os
    codec = {}
    exec(CODEC_SOURCE, codec)        # course_utils.sandbox.codec, as text: the grader's own format code
    if obj is None:
        def obj(*args, **kwargs):
            raise NameError(f"name {target!r} is not defined: did its cell run, or was it renamed?")
    import torch
    from course_utils.checks import CHECKS
    from course_utils.checks.framework import RETURNED, call_case, not_an_output
    from course_utils.schedules import NoiseSchedule
    with open(cases_path, "rb") as f:
        values, tensors = codec["unpack"](f.read())

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

    packer, outputs, after = codec["Packer"](), [], []
    for case in build(values):       # what checks.harvest does, on the cases the grader sent
        given = {k: v for k, v in case.items() if type(v) is torch.Tensor}     # this cell's own references
        out, record = call_case(CHECKS[check], obj, case)
        # the tensors given as this call left them, copied now (a later call cannot put them back), each with its
        # exact type (a class swapped in place could lie through detach): checks.judge_inputs, in the grader
        after.append(packer.encode({k: [torch.Tensor.detach(v) if type(v) is torch.Tensor else torch.zeros(0),
                                        bool(torch.Tensor.requires_grad.__get__(v)), type(v) is torch.Tensor]
                                    for k, v in given.items()}))
        if record is not None:
            outputs.append(record)
            continue
        mark = packer.mark()
        try:
            outputs.append(packer.encode(out))
        except Exception as err:     # codec's NotEncodable carries the value the format has no form for
            packer.rollback(mark)
            outputs.append({"error": RETURNED, "message": not_an_output(getattr(err, "value", err))[:1000]})
    outputs.append({"__inputs_after__": after})
    with open(out_path + ".tmp", "wb") as f:
        f.write(packer.to_bytes(outputs))
    os.replace(out_path + ".tmp", out_path)
"""
HARVEST_CODE = _KERNEL_HALF.replace("CODEC_SOURCE", repr(inspect.getsource(codec)), 1)


def _cases_form(x, encode):
    """The grader's extra forms for the cases: tuples stay tuples, a NoiseSchedule is rebuilt in the kernel."""
    from ..schedules import NoiseSchedule
    if isinstance(x, NoiseSchedule):
        return {"__schedule__": {k: encode(v) for k, v in vars(x).items()}}
    if isinstance(x, tuple):
        return {"__tuple__": [encode(v) for v in x]}
    return None


def encode_values(values) -> bytes:
    """``values`` (tensors, NoiseSchedules, lists, tuples, dicts, numbers, text) in the harvest files' format."""
    packer = Packer(special=_cases_form)
    return packer.to_bytes(packer.encode(values))


def decode_outputs(data: bytes) -> list:
    """The outputs a harvest cell wrote: checked bounds everywhere, no pickle, no decompression."""
    values, tensors = unpack(data)
    count, used = [0], set()

    def decode(x, depth: int):
        count[0] += 1
        if depth > 20 or count[0] > 100_000:
            raise ValueError("the outputs are nested too deeply, or too many")
        if isinstance(x, dict):
            if set(x) == {"__tensor__"} and isinstance(x["__tensor__"], int) and 0 <= x["__tensor__"] < len(tensors):
                if x["__tensor__"] in used:      # the kernel's half writes each tensor once: a copy would multiply
                    raise ValueError("a tensor referenced twice in the outputs")   # the bound on numbers
                used.add(x["__tensor__"])
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

    outputs = decode(values, 0)
    if not isinstance(outputs, list):
        raise TypeError(f"expected a list of outputs, got {type(outputs).__name__}")
    return outputs

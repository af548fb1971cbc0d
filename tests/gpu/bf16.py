"""Rounds an ONNX file's float32 weights to bf16 precision (to nearest, ties to even), kept as
float32: the low 16 bits of every weight become zero, so the file compresses to about half. Used
to carry the public VGG16 to a GPU machine under a size limit; such a model is close to, not
the same as, the public one.

    python3 tests/gpu/bf16.py IN.onnx OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper


def round_to_bf16(values):
    values = values.astype(np.float32)
    bits = values.view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = (rounded & np.uint32(0xFFFF0000)).view(np.float32)
    # Rounding the bits would turn some NaNs into infinities or zeros: they stay NaN.
    return np.where(np.isnan(values), values, rounded)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    changed = 0
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        model.graph.initializer[i].CopyFrom(
            numpy_helper.from_array(round_to_bf16(values), tensor.name))
        changed += values.size
    onnx.save(model, dst)
    print("%s: %d float32 weights rounded to bf16 precision" % (dst, changed), file=sys.stderr)


if __name__ == "__main__":
    main()

"""CropAndResize (bilinear and nearest) as TensorFlow samples it, from core layers: the sample
positions of every box are computed from the boxes at run time, the four (or one) neighbours
are gathered from the flattened image, and positions outside the image give the
extrapolation value. The channel count must be known; boxes may vary in number, and the image
height and width may be known only at run time (then read from its shape)."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV
from .graphdef_ops import attr_s, const, op


@op("CropAndResize")
def _crop_and_resize(cv, node, ins):
    """Bilinear / nearest sampling of image[box_ind] at each box's grid (TF's formula), gathered."""
    image, boxes, box_ind, crop = ins
    if not isinstance(image, TV) or not isinstance(boxes, TV):
        raise UnsupportedError("CropAndResize of a constant image or constant boxes")
    method = attr_s(node, "method", "bilinear")
    if method not in ("bilinear", "nearest"):
        raise UnsupportedError(f"CropAndResize method {method!r}")
    ext = node.attr("extrapolation_value")
    extrapolation = float(ext.f()) if ext is not None else 0.0
    ch, cw = (int(v) for v in np.asarray(const(crop, "crop_size")).reshape(-1)[:2])
    net, n = cv.net, node.name
    img = cv.plain(image)
    if img.rank != 4 or img.shape[3] is None:
        raise UnsupportedError("CropAndResize needs a 4-D image with a known channel count "
                               "(give the input a shape with --input-shape)")
    C = img.shape[3]
    f32 = "float32"

    def c(arr, tag):
        a = np.asarray(arr, np.float32)
        return net.add_constant(a.shape, a, name=f"{n}/{tag}").output

    def ew(a, b, opname, tag):
        return net.add_elementwise(a, b, opname, name=f"{n}/{tag}").output

    def extent(axis, tag):
        """The image's height or width as a float scalar: a constant, or read from its shape at run time."""
        if img.shape[axis] is not None:
            return c(float(img.shape[axis]), tag)
        shape = net.add_shape(img, name=f"{n}/image_shape_{tag}").output
        d = net.add_gather(shape, net.add_constant((), np.array(axis, np.int32), name=f"{n}/{tag}_axis").output,
                           axis=0, name=f"{n}/{tag}_int").output
        return net.add_cast(d, f32, name=f"{n}/{tag}").output

    H, W = extent(1, "height"), extent(2, "width")
    one = c(1.0, "one")
    H1, W1 = ew(H, one, "sub", "height_last"), ew(W, one, "sub", "width_last")

    def col(k):  # boxes[:, k:k+1] -> [N, 1]
        idx = net.add_constant((1,), np.array([k], np.int32), name=f"{n}/col{k}").output
        return net.add_gather(boxes.t, idx, axis=1, name=f"{n}/box{k}").output

    def positions(lo, hi, size, last, tag, shape):
        """TF's sample positions [N, size] (in its order of operations) reshaped to `shape`, and
        0/1 'inside the image'; `last` is the image's last row / column index."""
        if size > 1:
            step = ew(ew(ew(hi, lo, "sub", f"{tag}_extent"), last, "prod", f"{tag}_span"), c(size - 1, f"{tag}_n"),
                      "div", f"{tag}_step")
            grid = ew(ew(lo, last, "prod", f"{tag}_start"),
                      ew(step, c(np.arange(size), f"{tag}_range"), "prod", f"{tag}_offsets"), "sum", f"{tag}_pos")
        else:
            mid = ew(ew(lo, hi, "sum", f"{tag}_sum"), c(0.5, f"{tag}_half"), "prod", f"{tag}_mid")
            grid = ew(mid, last, "prod", f"{tag}_pos")
        pos = net.add_shuffle(grid, reshape_dims=shape, name=f"{tag}_shaped").output
        outside = ew(net.add_cast(ew(pos, c(0.0, f"{tag}_zero"), "less", f"{tag}_below"), f32,
                                  name=f"{n}/{tag}_below_f").output,
                     net.add_cast(ew(pos, last, "greater", f"{tag}_above"), f32,
                                  name=f"{n}/{tag}_above_f").output, "sum", f"{tag}_outside")
        inside = ew(c(1.0, f"{tag}_one"), outside, "sub", f"{tag}_inside")
        return pos, inside

    y, y_in = positions(col(0), col(2), ch, H1, f"{n}/y", [0, ch, 1, 1])
    x, x_in = positions(col(1), col(3), cw, W1, f"{n}/x", [0, 1, cw, 1])
    if box_ind is None:
        raise UnsupportedError("CropAndResize without box indices")
    bi = box_ind.t if isinstance(box_ind, TV) else \
        net.add_constant(np.shape(box_ind), np.asarray(box_ind, np.int32), name=f"{n}/box_ind").output
    base = net.add_shuffle(net.add_cast(bi, f32, name=f"{n}/box_ind_f").output, reshape_dims=[-1, 1, 1, 1],
                           name=f"{n}/base_shaped").output
    base = ew(base, ew(H, W, "prod", "plane"), "prod", "base")  # image offset of each box's image, in pixels
    flat = net.add_shuffle(img, reshape_dims=[-1, C], name=f"{n}/pixels").output  # [B*H*W, C]

    def clipped(v, unary, last, tag):
        r = net.add_unary(v, unary, name=f"{n}/{tag}").output if unary else v
        return ew(ew(r, c(0.0, f"{tag}_lo"), "max", f"{tag}_clip_lo"), last, "min", f"{tag}_clip")

    def sample(row, colv, tag):
        idx = ew(ew(base, ew(row, W, "prod", f"{tag}_rows"), "sum", f"{tag}_row_base"),
                 colv, "sum", f"{tag}_index")  # [N, ch, cw, 1]
        idx = net.add_shuffle(idx, reshape_dims=[0, ch, cw], name=f"{n}/{tag}_index3").output
        idx = net.add_cast(idx, "int32", name=f"{n}/{tag}_index_i").output
        return net.add_gather(flat, idx, axis=0, name=f"{n}/{tag}").output  # [N, ch, cw, C]

    if method == "nearest":  # TF rounds half away from zero: floor(p + 0.5) for p >= 0
        half = c(0.5, "half")
        out = sample(clipped(ew(y, half, "sum", "y_r"), "floor", H1, "yn"),
                     clipped(ew(x, half, "sum", "x_r"), "floor", W1, "xn"), "nearest")
    else:
        top, bottom = clipped(y, "floor", H1, "top"), clipped(y, "ceil", H1, "bottom")
        left, right = clipped(x, "floor", W1, "left"), clipped(x, "ceil", W1, "right")
        y_lerp = ew(y, net.add_unary(y, "floor", name=f"{n}/y_floor").output, "sub", "y_lerp")
        x_lerp = ew(x, net.add_unary(x, "floor", name=f"{n}/x_floor").output, "sub", "x_lerp")
        tl, tr = sample(top, left, "tl"), sample(top, right, "tr")
        bl, br = sample(bottom, left, "bl"), sample(bottom, right, "br")
        t = ew(tl, ew(ew(tr, tl, "sub", "t_diff"), x_lerp, "prod", "t_step"), "sum", "t")
        b = ew(bl, ew(ew(br, bl, "sub", "b_diff"), x_lerp, "prod", "b_step"), "sum", "b")
        out = ew(t, ew(ew(b, t, "sub", "tb_diff"), y_lerp, "prod", "tb_step"), "sum", "bilinear")
    inside = ew(y_in, x_in, "prod", "inside")  # [N, ch, cw, 1], 1 inside the image
    kept = ew(out, inside, "prod", "kept")
    if extrapolation != 0.0:
        kept = ew(kept, ew(ew(one, inside, "sub", "outside"), c(extrapolation, "extrapolation"), "prod",
                           "filled"), "sum", "with_extrapolation")
    return [TV(kept)]

"""Seeded, non-degenerate keras.applications CNNs and the checks their engines must pass:
shared by the Keras CNN importer tests and the GraphDef / SavedModel importer tests."""

from __future__ import annotations

import numpy as np

import oracles

# model -> input size; small inputs keep the suite fast (VGG16 keeps include_top at 64x64)
MODELS = {"MobileNetV2": 96, "MobileNetV3Small": 96, "ResNet50": 96, "InceptionV3": 96, "EfficientNetB0": 96,
          "VGG16": 64}
# models that rescale inside (Rescaling/Normalization layers) take raw 0..255 pixels
RAW_PIXELS = ("MobileNetV3Small", "EfficientNetB0")
# BatchNorm variance floor (fraction of the mean variance): keeps random nets from amplifying
# rounding noise (near-dead channels) while their logits still depend on the image
VAR_FLOOR = {"EfficientNetB0": 0.05}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photos(size: int, name: str = "") -> np.ndarray:
    """Real RGB photographs from scikit-image, resized; scaled to [-1, 1] (inception preprocessing)
    unless the model `name` rescales raw pixels itself."""
    from skimage import data, transform

    imgs = np.stack([transform.resize(getattr(data, n)(), (size, size), anti_aliasing=True) for n in PHOTOS])
    if name in RAW_PIXELS:
        return (imgs * 255.0).astype(np.float32)
    return (imgs * 2.0 - 1.0).astype(np.float32)


def seeded_application(name: str, size: int, seed: int = 0):
    """A keras.applications model with random weights, non-trivial BatchNorm statistics and a
    rescaled classifier so that its logits on photos are far from uniform."""
    keras = oracles.keras()
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=1000,
                                              classifier_activation=None)
    rng = np.random.default_rng(seed)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:  # random affine parameters, then moving statistics measured on real images
        ws = layer.get_weights()
        if layer.scale:
            ws[0] = rng.uniform(0.5, 1.5, ws[0].shape).astype(np.float32)
        if layer.center:
            ws[int(layer.scale)] = rng.normal(0, 0.1, ws[int(layer.scale)].shape).astype(np.float32)
        layer.set_weights(ws)
        layer.momentum = 0.0  # one training-mode pass sets the moving statistics to the batch's
    calib = photos(size, name)
    drops = [(layer, layer.rate) for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    for layer, _ in drops:  # measure the statistics inference will see
        layer.rate = 0.0
    model(np.concatenate([calib, calib[:, :, ::-1]]), training=True)
    for layer, rate in drops:
        layer.rate = rate
    for layer in bns:  # perturb the measured statistics so they are not exactly the batch's
        ws = layer.get_weights()
        ws[-2] = (ws[-2] + rng.normal(0, 0.05, ws[-2].shape) * np.sqrt(ws[-1])).astype(np.float32)
        # floor the variances: near-dead channels would otherwise get gains of ~1/sqrt(epsilon)
        ws[-1] = ((ws[-1] + VAR_FLOOR.get(name, 0.25) * ws[-1].mean()) * rng.uniform(0.8, 1.25, ws[-1].shape)).astype(np.float32)
        layer.set_weights(ws)
    x = photos(size, name)
    ref = model(x).numpy()
    last = [layer for layer in model.layers if layer.get_weights()][-1]
    w = last.get_weights()
    # logits with std ~4; the bias removes part of the image-independent component, as little
    # as gives the photos different top-1 classes (cancelling all of it would make the test
    # measure cancellation error rather than the engine)
    noise = rng.normal(0, 0.5, w[-1].shape)
    for frac in (0.5, 0.8, 0.9, 0.95, 0.98, 1.0):
        centered = ref - frac * ref.mean(axis=0)
        k = 4.0 / centered.std()
        logits = k * centered + noise
        if len(set(logits.argmax(axis=1).tolist())) > 1 and (logits - logits.mean(0)).std() > 0.15 * logits.std():
            break
    w[0] = (w[0] * k).astype(np.float32)
    w[-1] = (k * (w[-1] - frac * ref.mean(axis=0)) + noise).astype(np.float32)
    last.set_weights(w)
    return model


def assert_not_degenerate(logits: np.ndarray) -> None:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    entropy = float(-(p * np.log(p + 1e-30)).sum(axis=1).mean())
    assert logits.std() > 0.5, f"reference logits are nearly constant (std {logits.std():.3g})"
    assert entropy < np.log(logits.shape[1]) - 1.0, f"reference softmax is nearly uniform (entropy {entropy:.3f})"
    spread = (logits - logits.mean(axis=0)).std() / logits.std()
    assert spread > 0.1, f"logits barely depend on the image (spread {spread:.3g})"
    assert len(set(logits.argmax(axis=1).tolist())) > 1, "every image gets the same top-1 class"


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """Largest |a - ref| relative to the largest |ref| (the tolerance that would have passed)."""
    return float(np.abs(a.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-12))


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    """||a - ref|| / ||ref|| over all logits (the tolerance that would have passed)."""
    return float(np.linalg.norm(a.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-12))


def check_engine(net, x: np.ndarray, ref: np.ndarray, what: str) -> None:
    from tf2rt.engine import build_engine

    engine = build_engine(net)
    y = engine.run({net.inputs[0].name: x})[net.outputs[0].name]
    err = rel_err(y, ref)
    assert err < 1e-4, f"{what} fp32: relative error {err:.3g}"
    assert (y.argmax(1) == ref.argmax(1)).all(), f"{what}: top-1 differs"
    half = build_engine(net, precision="fp16")
    y16 = half.run({net.inputs[0].name: x})[net.outputs[0].name]
    err16 = rel_l2(y16, ref)
    assert err16 < 1e-2, f"{what} fp16: relative (L2) error {err16:.3g}"


__all__ = ["MODELS", "PHOTOS", "RAW_PIXELS", "VAR_FLOOR", "assert_not_degenerate", "check_engine", "photos",
           "rel_err", "rel_l2", "seeded_application"]

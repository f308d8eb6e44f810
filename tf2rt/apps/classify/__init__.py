"""Image classification with an engine: preprocessing, label files, top-k over images or folders."""

from __future__ import annotations

from .classify import Classifier, calibration_images, classify_paths, load_classifier_engine
from .labels import label_for, load_labels
from .preprocess import PREPROCESSING, list_images, load_image, preprocess

__all__ = ["Classifier", "calibration_images", "classify_paths", "load_classifier_engine", "load_labels", "label_for", "PREPROCESSING",
           "preprocess", "load_image", "list_images"]

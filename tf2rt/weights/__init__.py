"""Weight files: TensorFlow checkpoints, TensorRT .wts, npz, safetensors, Keras h5."""

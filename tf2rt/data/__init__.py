"""Data files that ship with tf2rt: the bundled char-RNN example (charrnn/)."""

"""The fast runtime: a codec model's index functions exported to ONNX and run by onnxruntime, without Keras.

- :mod:`~vqcodec.runtime.onnx_model`: :class:`ExportedModel` and the export's metadata (numpy, onnxruntime);
- :mod:`~vqcodec.runtime.export`: ``vqcodec export``, tracing a model to ONNX (the ``export`` extra);
- :mod:`~vqcodec.runtime.onnx_graph`: the graph rewrite that export applies.
"""

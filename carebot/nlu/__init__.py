"""Language understanding: the FAQ intents and their files, the sentence encoders (torch and
ONNX), the matcher and its classifier head, the emotion signal, and evaluation.

It depends on the core types only (``carebot.config``, ``models``, ``exceptions``, ``clock``,
``wakeup``): nothing here knows of storage, channels, desks or the message pipeline
(``tests/test_layout.py`` checks it).
"""

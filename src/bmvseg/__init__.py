"""bmvseg: video semantic segmentation that reuses the codec's block motion vectors.

The package is laid out one idea per folder, data flowing one way:
``video`` (decode, motion fields) -> ``warp`` -> ``models`` -> ``schemes`` (the streaming engine)
-> ``evaluation``; ``data`` holds datasets and the synthetic scene generator, ``training`` the
training loops, ``cli`` the command line.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``bmvseg.segment`` without importing torch on ``import bmvseg``."""
    if name == "segment":
        from bmvseg.schemes.segment import segment

        return segment
    raise AttributeError(name)

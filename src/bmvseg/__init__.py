"""bmvseg: video semantic segmentation that reuses the codec's block motion vectors.

The package is laid out one idea per folder, data flowing one way:
``video`` (decode, motion fields) -> ``warp`` -> ``models`` -> ``schemes`` (the streaming engine)
-> ``run`` (one run: options, model, engine, outputs) -> ``evaluation``; ``output`` owns what may
be written and removed, ``distributed`` spreads runs over a Ray cluster, ``data`` holds datasets
and the synthetic scene generator, ``training`` the training loops, ``cli`` the command line
(which only parses arguments and prints).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``bmvseg.segment`` without importing torch on ``import bmvseg``."""
    if name == "segment":
        from bmvseg.run.iterate import segment

        return segment
    raise AttributeError(name)

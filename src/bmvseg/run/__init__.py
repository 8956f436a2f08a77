"""One run of the engine over one video, as every entry point runs it.

``bmvseg segment``, :func:`bmvseg.segment`, the benchmark's timing runs and the demo all go
through here, so building the model (and its conv fusion), reading, the engine, writing outputs,
resuming and the memory discipline of long runs exist once:

- :mod:`bmvseg.run.options`: :class:`RunOptions`, every option of a run, validated.
- :mod:`bmvseg.run.build`: model, fusion weights and engine from options.
- :mod:`bmvseg.run.iterate`: :func:`segment`, results one frame at a time (the Python API).
- :mod:`bmvseg.run.to_dir`: :func:`segment_to_dir`, a run written to an output directory.
- :mod:`bmvseg.run.live`: :func:`~bmvseg.run.live.segment_live_to_dir`, a stream that arrives
  (``-``, a URL, a device) written as it is segmented; :mod:`bmvseg.run.live_feed` reads it.
"""

from bmvseg.run.iterate import segment
from bmvseg.run.options import RunOptions
from bmvseg.run.to_dir import segment_to_dir

__all__ = ["RunOptions", "segment", "segment_to_dir"]

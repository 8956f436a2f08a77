"""Where bmvseg writes, and the promise that it never destroys what it did not write.

- :mod:`bmvseg.output.rundir`: output directories and their run record (``segment``,
  ``benchmark``): :func:`claim_output_dir`, :func:`check_claim`, :class:`RunDir`; the files
  each kind may hold are in :mod:`bmvseg.output.layouts`.
- :mod:`bmvseg.output.frames`: the one frame sink of a single run and a job's chunks alike:
  :func:`label_png`, :class:`OverlayEncoder`, :class:`FrameLog`, :class:`FrameSink`,
  :func:`check_storable`; :mod:`bmvseg.output.summary`: the one summary format
  (:func:`summarize`); :mod:`bmvseg.output.overlay`: chunks' overlay pieces joined;
  :mod:`bmvseg.output.live`: a live run's sink (streamed overlay, delays, running summary).
- :mod:`bmvseg.output.safe`: files created new and read back without following what was
  planted at their names.
- :mod:`bmvseg.output.files`: single-file outputs (``motion``): :func:`check_outputs`,
  :class:`Staged`, :func:`atomic_write`.
- :mod:`bmvseg.output.fingerprint`: :func:`input_fingerprint`, the input's identity for resume.
"""

from bmvseg.output.files import Staged, atomic_write, check_outputs
from bmvseg.output.fingerprint import input_fingerprint
from bmvseg.output.layouts import LAYOUTS
from bmvseg.output.rundir import RECORD, TMP_PREFIX, RunDir, check_claim, claim_output_dir

__all__ = [
    "LAYOUTS",
    "RECORD",
    "TMP_PREFIX",
    "RunDir",
    "Staged",
    "atomic_write",
    "check_claim",
    "check_outputs",
    "claim_output_dir",
    "input_fingerprint",
]

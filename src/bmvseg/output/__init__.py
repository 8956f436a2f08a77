"""Where bmvseg writes, and the promise that it never destroys what it did not write.

- :mod:`bmvseg.output.rundir`: output directories and their run record (``segment``,
  ``benchmark``): :func:`claim_output_dir`, :class:`RunDir`.
- :mod:`bmvseg.output.files`: single-file outputs (``motion``): :func:`check_outputs`,
  :class:`Staged`, :func:`atomic_write`.
- :mod:`bmvseg.output.fingerprint`: :func:`input_fingerprint`, the input's identity for resume.
"""

from bmvseg.output.files import Staged, atomic_write, check_outputs
from bmvseg.output.fingerprint import input_fingerprint
from bmvseg.output.rundir import LAYOUTS, RECORD, TMP_PREFIX, RunDir, claim_output_dir

__all__ = [
    "LAYOUTS",
    "RECORD",
    "TMP_PREFIX",
    "RunDir",
    "Staged",
    "atomic_write",
    "check_outputs",
    "claim_output_dir",
    "input_fingerprint",
]

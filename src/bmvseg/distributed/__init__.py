"""Segmenting many videos, and long videos in chunks, on a Ray cluster.

``inputs`` turns files, folders and glob patterns into a video list with clash-free output
names; ``chunks`` cuts a video into keyframe-aligned engine ranges; ``worker`` is the Ray actor
that segments a chunk; ``job`` is the driver (:func:`run_job` returns a ``JobResult``), in
parts: ``cluster`` (Ray, placement), ``pool`` (where chunks run, retries), ``schedule``
(keeping workers busy), ``records`` (the folders, resume checks, job.json).  Nothing here
imports Ray at module level: the plain CLI must work without the ``ray`` extra.
"""

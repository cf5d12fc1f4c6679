"""The scene adapter: the one place that touches MRML.

Every function takes a ``vtkMRMLScene`` argument (never the global ``slicer.mrmlScene``), so the same code runs
inside Slicer, in the web review app and in pytest on the ``slicer-core`` wheel. The library works in LPS; MRML
is RAS; the conversion happens in ``scene.coordinates`` only.

Modules: setup (what Slicer's application registers), coordinates (LPS <-> RAS), volumes (CT/PET/attention
nodes), views (slice layers, jump), segments (GTV_LN segmentation, terminology, edits read back), table
(candidate table), markups (centroids), review (operating point, accept/reject), review_state (save/restore),
rt_export (RTSTRUCT through SlicerRT's exporter: CT + reviewed segments, patient/study tags).
Import the submodules directly; this package does not import ``slicer`` itself.
"""

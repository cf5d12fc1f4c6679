"""Pieces of the LNStaging Slicer module. ``process``, ``dependencies`` and ``gpu`` are pure Python (tested with
pytest); ``logic`` runs on slicer-core too; ``widget``, ``demo`` and ``selftest`` need the Slicer application."""

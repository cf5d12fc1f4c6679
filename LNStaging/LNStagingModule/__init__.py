"""Pieces of the LNStaging Slicer module. ``process`` and ``dependencies`` are pure Python (tested with pytest);
``widget`` and ``logic`` need the Slicer application."""

"""The ipywidgets parameter panel: its fields, presets, compare mode and the words it shows."""

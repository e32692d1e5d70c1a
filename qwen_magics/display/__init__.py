"""Drawing in a notebook: the live display, the answer view and error boxes. No HTTP here."""

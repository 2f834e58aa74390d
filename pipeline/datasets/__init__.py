"""Locate, recognise and read raw MovieLens files."""

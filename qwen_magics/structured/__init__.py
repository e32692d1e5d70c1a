"""Structured output: schemas, finding JSON in answers, the JSON view, DataFrames and apply."""

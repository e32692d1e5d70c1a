"""The %%qwen and %qwen magics: parsing arguments, commands and conversations; plain functions do the work."""

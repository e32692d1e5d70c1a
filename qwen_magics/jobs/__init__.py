"""Batch API jobs: submitted, watched, resumed in another kernel, finished into what the live call
returns. ``job.py`` is the job, ``store.py`` where jobs are kept, ``files.py`` the input files and
their limits, ``progress.py`` the display while waiting, ``requests.py`` ``qwen_magics.batch``."""

from .job import Batch, Part, Status

__all__ = ["Batch", "Part", "Status"]

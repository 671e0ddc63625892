"""The write-path benchmark (``make bench``)."""

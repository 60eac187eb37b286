"""Subjects, templates and the vector index behind 1:1 and 1:N recognition."""
